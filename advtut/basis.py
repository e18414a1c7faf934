"""Statistics that can see a layer's basis, and the layers that show whether they can.

A layer's features ``phi(x)`` ``(N, D)`` over a pool of images and a direction ``v`` ``(D,)`` of
unit norm: the direction's *projections* are ``<phi(x), v>`` over the pool, ``(N,)``. A unit is
``v = e_i``. Rotating the layer, ``phi(x) -> phi(x) Q`` with ``Q`` orthogonal, turns its units
into random directions and leaves everything a linear map after the layer can compute unchanged
(the Gram matrix ``phi phi^T`` is the same). A statistic can only tell units from random
directions if it changes under such a rotation; these are three that do, because each looks at
how one direction's projections are distributed rather than at which images it ranks first:

- :func:`excess_kurtosis`: heavy tails (a unit that is silent on most images and fires strongly
  on a few has a large kurtosis; a sum of many independent parts is near 0, the Gaussian's);
- :func:`class_selectivity`: how far the best class's mean projection stands above the others'
  (after Morcos et al., 2018, in a form that a shift or a scale of the projections leaves alone);
- :func:`ablation_loss`: the test loss gained when the direction is projected out of the layer
  (``phi -> phi - <phi, v> v``) and the rest of the network, :class:`Readout`, runs on.

And the layers to try them on, whose answer is known by construction:

- :func:`aligned_code`: a synthetic code whose every unit belongs to one class (a positive control);
- :func:`random_rotation`, :func:`rotate`: a Haar-random orthogonal ``Q`` and the layer under it,
  whose units are random directions (a negative control);
- :func:`ica_basis`: a real layer rotated to its independent components (scikit-learn's
  FastICA), the basis in which its projections are least Gaussian (a positive control for
  kurtosis on a real layer).

Example::

    q = random_rotation(feats.shape[1], seed=0)            # (D, D)
    v = random_directions(feats.shape[1], 100, seed=1)      # (100, D)
    excess_kurtosis(feats, v)                               # (100,)
    excess_kurtosis(feats @ q, torch.eye(feats.shape[1]))   # the rotated layer's units: the same law
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["projections", "excess_kurtosis", "class_selectivity", "Readout", "ablation_loss",
           "random_rotation", "Rotated", "rotate", "IcaBasis", "ica_basis", "aligned_code"]


def _check(features: torch.Tensor, directions: torch.Tensor) -> None:
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        raise ValueError(f"features must be a (N, D) tensor, got "
                         f"{tuple(getattr(features, 'shape', ())) or type(features).__name__}")
    if (not isinstance(directions, torch.Tensor) or directions.ndim != 2
            or directions.shape[1] != features.shape[1]):
        raise ValueError(f"directions must be a (M, {features.shape[1]}) tensor, got "
                         f"{tuple(getattr(directions, 'shape', ()))}")


def projections(features: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """``<phi(x), v>`` for every image (rows of ``features`` ``(N, D)``) and direction (rows of
    ``directions`` ``(M, D)``): ``(N, M)`` float64 on the features' device."""
    _check(features, directions)
    return features.double() @ directions.to(features.device, torch.float64).T


def excess_kurtosis(features: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """The excess kurtosis of each direction's projections over the pool, ``m4 / m2^2 - 3`` with
    the population moments (scipy's ``kurtosis(bias=True)``): ``(M,)`` float64, 0 for a
    Gaussian, -2 at least, large for a sparse code; NaN for a direction whose projections are
    all equal (a silent unit)."""
    p = projections(features, directions)
    c = p - p.mean(0)
    m2, m4 = (c ** 2).mean(0), (c ** 4).mean(0)
    return torch.where(m2 > 0, m4 / m2.clamp_min(1e-300) ** 2 - 3, torch.nan).cpu()


def class_selectivity(features: torch.Tensor, directions: torch.Tensor,
                      y: torch.Tensor) -> torch.Tensor:
    """How much one class stands out along each direction: over the K class means of its
    projections, ``(max - mean) / sd`` (population sd): ``(M,)`` float64, from about 1 (classes
    spread evenly) to ``sqrt(K - 1)`` (one class apart, all others equal); NaN when every class
    mean is equal. ``y``: long ``(N,)`` with every label ``0..K-1`` present.

    Morcos et al. (2018) score a ReLU unit by ``(mu_max - mu_rest) / (mu_max + mu_rest)``, which
    needs non-negative activations and changes when they are shifted; a random direction's
    projections are signed and their zero is arbitrary, so this form keeps the idea (the best
    class against the rest) and is unchanged by ``p -> a p + b`` for ``a > 0``."""
    p = projections(features, directions)
    if y.shape != (p.shape[0],) or y.dtype != torch.long:
        raise ValueError(f"y must be a long tensor of shape ({p.shape[0]},), got "
                         f"{y.dtype} {tuple(y.shape)}")
    y = y.to(p.device)
    k = int(y.max()) + 1
    counts = torch.bincount(y, minlength=k)
    if bool((counts == 0).any()):
        raise ValueError(f"classes {torch.nonzero(counts == 0).flatten().tolist()} have no "
                         f"images: class_selectivity needs every label 0..{k - 1} in y")
    means = torch.zeros(k, p.shape[1], dtype=torch.float64, device=p.device)
    means.index_add_(0, y, p)
    means = means / counts[:, None]
    sd = means.std(0, unbiased=False)
    return torch.where(sd > 0, (means.max(0).values - means.mean(0)) / sd.clamp_min(1e-300),
                       torch.nan).cpu()


@dataclass(frozen=True)
class Readout:
    """The network above a layer, cut after its first linear map ``A`` (bias ``b``), so that a
    direction can be projected out cheaply: ``A (phi - <phi, v> v) + b = pre - <phi, v> A v``.

    ``pre`` ``(N, D')``: ``A phi + b`` over the pool (float64); ``linear``: ``(M, D) -> (M, D')``,
    ``A`` without its bias, applied to directions; ``rest``: ``(B, D') -> (B, C)`` logits, the
    network from there on, in float64.
    """

    pre: torch.Tensor
    linear: Callable[[torch.Tensor], torch.Tensor]
    rest: Callable[[torch.Tensor], torch.Tensor]


def ablation_loss(features: torch.Tensor, directions: torch.Tensor, y: torch.Tensor,
                  readout: Readout) -> torch.Tensor:
    """The mean cross-entropy over the pool after each direction ``v`` (rows of ``directions``,
    unit norm) is projected out of the layer, ``phi -> phi - <phi, v> v``, minus the mean
    cross-entropy of the intact network: ``(M,)`` float64, in nats (0: the network did not need
    the direction). ``features`` ``(N, D)`` and ``y`` ``(N,)``: the pool; ``readout``: the
    network above the layer, over the same pool."""
    _check(features, directions)
    norms = directions.double().norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-6):
        raise ValueError("directions must have unit norm (rows of random_directions or "
                         "unit_directions)")
    if readout.pre.shape[0] != len(features) or y.shape != (len(features),):
        raise ValueError(f"readout.pre and y must cover the pool's {len(features)} images, got "
                         f"{tuple(readout.pre.shape)} and {tuple(y.shape)}")
    dev = readout.pre.device
    y = y.to(dev)
    base = F.cross_entropy(readout.rest(readout.pre), y)
    p = projections(features.to(dev), directions)                           # (N, M)
    moved = readout.linear(directions.to(dev, torch.float64))              # (M, D')
    out = [F.cross_entropy(readout.rest(readout.pre - p[:, m, None] * moved[m]), y) - base
           for m in range(len(directions))]
    return torch.stack(out).cpu()


def random_rotation(dim: int, *, seed: int) -> torch.Tensor:
    """A ``(dim, dim)`` float64 orthogonal matrix drawn from the Haar measure (the QR
    factorisation of a seeded Gaussian matrix, with the signs of ``R``'s diagonal moved into
    ``Q``, Mezzadri 2007): its columns are random directions, jointly uniform."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


@dataclass(frozen=True)
class Rotated:
    """A layer under a rotation: ``features`` ``(N, D)`` = the original's times ``q``;
    ``readout``: the same network above it (None when the original had none)."""

    features: torch.Tensor
    readout: Readout | None
    q: torch.Tensor


def rotate(features: torch.Tensor, readout: Readout | None, q: torch.Tensor) -> Rotated:
    """The layer ``phi Q`` with the network above it unchanged: a direction ``v`` of the rotated
    layer is ``Q v`` of the original, so ``linear`` becomes ``v -> A Q v``."""
    if q.shape != (features.shape[1], features.shape[1]):
        raise ValueError(f"q must be ({features.shape[1]}, {features.shape[1]}), got "
                         f"{tuple(q.shape)}")
    q = q.double()
    rotated = features.double() @ q.to(features.device)
    if readout is None:
        return Rotated(rotated, None, q)
    qd = q.to(readout.pre.device)
    lin = readout.linear
    return Rotated(rotated, Readout(readout.pre, lambda v: lin(v @ qd.T), readout.rest), q)


@dataclass(frozen=True)
class IcaBasis:
    """A layer in its independent components.

    ``sources`` ``(N, n)`` float64: the pool's coordinates in the ICA basis, each of unit variance,
    signed so that its skew is positive (a component "fires" upwards, like a unit); ``mixing``
    ``(D, n)`` and ``mean`` ``(D,)``: ``features ~ mean + sources @ mixing.T`` (exact up to the
    part of the features outside the ``n`` leading principal components); ``readout``: the
    network above the layer, seen from the sources (None without one); ``n_iter``,
    ``converged``: FastICA's iterations and whether it stopped before ``max_iter``.
    """

    sources: torch.Tensor
    mixing: torch.Tensor
    mean: torch.Tensor
    readout: Readout | None
    n_iter: int
    converged: bool


def ica_basis(features: torch.Tensor, readout: Readout | None, *, n_components: int, seed: int,
              fit_on: int | None = None, max_iter: int = 1_000, tol: float = 1e-4) -> IcaBasis:
    """Rotate ``features`` ``(N, D)`` to their ``n_components`` independent components:
    scikit-learn's ``FastICA`` (``whiten="unit-variance"``, seeded by ``seed``) fitted on the
    first ``fit_on`` images (all when None) and applied to all. The whitening keeps the
    ``n_components`` leading principal components, so that near-silent directions (whose
    whitened values would be mostly noise) stay out. A fit that reaches ``max_iter`` raises no
    warning: it is recorded in ``converged``."""
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    n, d = features.shape
    if isinstance(n_components, bool) or not isinstance(n_components, int) or \
            not 1 <= n_components <= min(n, d):
        raise ValueError(f"n_components must be an integer in [1, {min(n, d)}], got "
                         f"{n_components!r}")
    x = features.detach().double().cpu().numpy()
    ica = FastICA(n_components=n_components, whiten="unit-variance", random_state=seed,
                  max_iter=max_iter, tol=tol)
    with warnings.catch_warnings():          # not converging is reported in ``converged``
        warnings.simplefilter("ignore", ConvergenceWarning)
        ica.fit(x[:fit_on])
    s = torch.from_numpy(ica.transform(x))
    s = (s - s.mean(0)) / s.std(0, unbiased=False)
    skew = (s ** 3).mean(0)
    sign = torch.where(skew < 0, -1.0, 1.0).double()
    s = s * sign
    # features - mean ~ s @ mixing.T: least squares over the pool (FastICA's own mixing_ is for
    # its unscaled sources), so a move of the sources maps onto the layer exactly
    mean = torch.from_numpy(x.mean(0))
    mixing = torch.linalg.lstsq(s, torch.from_numpy(x) - mean).solution.T       # (D, n)
    ro = None
    if readout is not None:
        a = mixing.to(readout.pre.device)
        lin = readout.linear
        ro = Readout(readout.pre, lambda v: lin(v @ a.T), readout.rest)
    return IcaBasis(s, mixing, mean, ro, int(ica.n_iter_), int(ica.n_iter_) < max_iter)


def aligned_code(y: torch.Tensor, *, dim: int, fire: float = 0.5, sizes: str = "exponential",
                 noise: float = 0.0, seed: int) -> tuple[torch.Tensor, Readout]:
    """A synthetic layer aligned with the classes by construction, over images labelled ``y``
    ``(N,)`` (K classes): unit ``i`` belongs to class ``i mod K`` and, on an image of that
    class, fires with probability ``fire`` at a size drawn from Exp(1) (``sizes="exponential"``:
    a sparse code, whose images of one class differ) or of 1 (``"equal"``: with ``fire=1``, every
    image of a class has the same code, a layer that clusters by class); otherwise it is 0.
    ``noise``: the scale of a half-normal term added to every unit of every image (it breaks the
    ties of an ``"equal"`` code). Returns the features ``(N, dim)`` float64 and the readout that
    sums each class's units into its logit (scaled by 4, so that the code classifies well).
    Every unit is, by construction, a factor of the data; a rotation of the code is not."""
    if y.ndim != 1 or y.dtype != torch.long:
        raise ValueError(f"y must be a long (N,) tensor of labels, got {y.dtype} {tuple(y.shape)}")
    k = int(y.max()) + 1
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < k:
        raise ValueError(f"dim must be an integer of at least the {k} classes, got {dim!r}")
    if not 0 < fire <= 1:
        raise ValueError(f"fire must lie in (0, 1], got {fire}")
    if sizes not in ("exponential", "equal"):
        raise ValueError(f"sizes must be 'exponential' or 'equal', got {sizes!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    g = torch.Generator().manual_seed(seed)
    owner = torch.arange(dim) % k                                           # (dim,)
    mine = y.cpu()[:, None] == owner[None]                                  # (N, dim)
    on = torch.rand(len(y), dim, generator=g, dtype=torch.float64) < fire
    size = torch.ones(len(y), dim, dtype=torch.float64)
    if sizes == "exponential":
        size.exponential_(1.0, generator=g)
    code = size * (mine & on)
    if noise:
        code = code + noise * torch.randn(len(y), dim, generator=g, dtype=torch.float64).abs()
    weight = 4.0 * F.one_hot(owner, k).double().T                           # (K, dim)
    return code, Readout(code @ weight.T, lambda v: v @ weight.T, lambda z: z)
