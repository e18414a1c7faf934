"""Chapter 5 (spectral analysis of instability): the paper's Table 5, its networks' layers, and
the experiments the chapter runs. The mathematics lives in :mod:`advtut.spectral`.

Source: Szegedy et al. (2014), "Intriguing properties of neural networks", section 4.3 and
Table 5 ("Frame bounds of each rectified layer of the network from [9]", Krizhevsky et al.'s
AlexNet); https://arxiv.org/abs/1312.6199, bib key ``szegedy2014intriguing``. The paper's
numbers are in :mod:`advtut.chapters.spectral.source`, the tables and results entries in
:mod:`advtut.chapters.spectral.report`, the figures in :mod:`advtut.chapters.spectral.plots`.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advtut.attacks.lbfgs import LBFGSSearch, lbfgs_attack, refine_on_boundary
from advtut.chapters.zoo import MNIST_CNN_TRAINING, BookCNN, mnist_cnn
from advtut.distances import l2
from advtut.evaluation import logits as model_logits
from advtut.models import ImageCNN, MnistCNN
from advtut.projection import ProjectToBound
from advtut.spectral import (
    avg_pool_lipschitz,
    bound_grid,
    certified_radius,
    conv_matrix,
    conv_operator_norm_bound,
    fold_batchnorm,
    layer_bound,
    local_lipschitz,
    max_pool_lipschitz,
    operator_norm,
)

#: torchvision's AlexNet: each rectified layer's module (``features`` or ``classifier`` index)
#: and the height and width of its input for 224 x 224 images (``None``: fully connected).
ALEXNET_LAYERS = (
    ("conv1", "features", 0, 224), ("conv2", "features", 3, 27), ("conv3", "features", 6, 13),
    ("conv4", "features", 8, 13), ("conv5", "features", 10, 13),
    ("fc1", "classifier", 1, None), ("fc2", "classifier", 4, None),
    ("fc3", "classifier", 6, None),
)


def _alexnet_module(model: nn.Module, part: str, index: int) -> nn.Module:
    return getattr(model, part)[index]


@dataclass(frozen=True)
class LayerNorms:
    """One rectified layer: the paper's printed formula, the corrected formula (an upper bound,
    exact for fully connected layers), and the norm as applied by power iteration with how far
    it was from converged (``rel_change``)."""

    layer: str
    shape: str
    stride: int | None
    printed: float
    bound: float
    exact: float
    rel_change: float
    iterations: int


def layer_norms(name: str, module: nn.Module, input_size: int | None, *, max_iter: int,
                tol: float, seed: int = 0, dtype: torch.dtype = torch.float64) -> LayerNorms:
    """:class:`LayerNorms` of a ``nn.Conv2d`` on ``input_size`` px or of a ``nn.Linear``.

    The bound: :func:`~advtut.spectral.layer_bound` (float64; the SVD for a linear layer); the
    norm as applied: :func:`~advtut.spectral.operator_norm` in ``dtype`` (power iteration on a
    ``dtype`` copy of the weights, for both kinds, so that ``bound >= norm`` compares two
    independent computations). ``dtype`` is float64 by default because the invariant
    ``bound >= norm`` holds to a relative 1e-9, far below float32's rounding (6e-8 per
    operation): float32 power iteration overshoots a float64 SVD by more than 1e-9 once the
    top singular value is separated (a trained layer), see ``tests/test_chapter_spectral.py``.
    Runs on the module's device; the module is not changed."""
    if isinstance(module, nn.Linear):
        shape, stride, in_shape = f"{module.in_features}×{module.out_features}", None, (
            module.in_features,)
    else:
        c_out, c_in, k, _ = module.weight.shape
        shape, stride, in_shape = f"{c_in}×{k}×{k}×{c_out}", module.stride[0], (
            c_in, input_size, input_size)
    est = operator_norm(module, in_shape, max_iter=max_iter, tol=tol, seed=seed, dtype=dtype)
    bound = layer_bound(module, input_size)
    # the printed formula differs from the corrected one only by its scaling: 1/stride^2
    # instead of 1/stride (scaling="paper" in advtut.spectral), so it is the bound / stride
    printed = bound if stride is None else bound / stride
    return LayerNorms(name, shape, stride, printed, bound, est.value, est.rel_change,
                      est.iterations)


def table5(model: nn.Module, *, max_iter: int, tol: float) -> list[LayerNorms]:
    """:func:`layer_norms` of every rectified layer of a torchvision AlexNet, Table 5's rows;
    the norms as applied by float64 power iteration (their invariant's tolerance is a relative
    1e-9, see :func:`layer_norms`)."""
    return [layer_norms(name, _alexnet_module(model, part, i), size, max_iter=max_iter, tol=tol,
                        dtype=torch.float64)
            for name, part, i, size in ALEXNET_LAYERS]


def formula_check(*, seed: int, shape=(8, 3, 5, 5), size: int = 16,
                  strides=(1, 2, 4)) -> list[dict]:
    """The formula against the exact norm of the circular convolution (a dense SVD), for one
    seeded random kernel of ``shape`` per stride on a ``size x size`` grid."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for s in strides:
        w = torch.randn(shape, generator=gen, dtype=torch.float64)
        exact = float(torch.linalg.matrix_norm(conv_matrix(w, s, size, padding_mode="circular"), 2))
        rows.append({"stride": s, "printed": conv_operator_norm_bound(w, s, size, scaling="paper"),
                     "corrected": conv_operator_norm_bound(w, s, size), "exact": exact})
    return rows


@dataclass(frozen=True)
class PaddingSweep:
    """Zero-padded random convolutions: how often the formula on the bare ``n x n`` grid falls
    below the layer's exact norm, and on :func:`~advtut.spectral.bound_grid` points."""

    n_cases: int
    below_on_n: int
    worst_on_n: float          # largest exact / formula - 1 on the n x n grid
    worst_padding: str         # that case's padding relative to the kernel
    below_on_grid: int
    worst_on_grid: float       # largest exact / formula - 1 on the bound grid (<= 0 expected)


def padding_sweep(*, n_cases: int, seed: int) -> PaddingSweep:
    """Random small zero-padded convolutions (1-6 output and 1-4 input channels, kernels of
    1-5 px, strides 1-3, inputs up to 12 px, padding 0 to k-1), each checked by a dense SVD."""
    gen = torch.Generator().manual_seed(seed)

    def draw(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))

    below_n = below_g = 0
    worst_n, worst_g, worst_pad = -math.inf, -math.inf, ""
    for _ in range(n_cases):
        k, s = draw(1, 5), draw(1, 3)
        p = draw(0, k - 1)
        n = s * draw(max(1, -(-k // s)), 12 // s)
        w = torch.randn((draw(1, 6), draw(1, 4), k, k), generator=gen, dtype=torch.float64)
        exact = float(torch.linalg.matrix_norm(conv_matrix(w, s, n, padding=p), 2))
        on_n = exact / conv_operator_norm_bound(w, s, n) - 1
        on_g = exact / conv_operator_norm_bound(w, s, bound_grid(n, padding=p, stride=s)) - 1
        below_n += on_n > 1e-9
        below_g += on_g > 1e-9
        if on_n > worst_n:
            worst_n, worst_pad = on_n, ("k-1" if p == k - 1 else f"{p} (k={k})")
        worst_g = max(worst_g, on_g)
    return PaddingSweep(n_cases, below_n, worst_n, worst_pad, below_g, worst_g)


# --- a trained photo network: the book's flowers CNN -------------------------------------------

def flowers_layers(model: ImageCNN, size: int) -> list[tuple[str, nn.Module | None, int | None]]:
    """The layers of an :class:`~advtut.models.ImageCNN` on ``size``-px photos, as bounded:
    ``(name, module, input size)``, each convolution with its BatchNorm folded in
    (:func:`~advtut.spectral.fold_batchnorm`, float64), then the global average pool
    (``module`` None) and the linear layer. The 2 x 2 max-poolings are 1-Lipschitz."""
    out, s = [], size
    for i, (conv, bn) in enumerate(zip(model.convs, model.bns), start=1):
        out.append((f"conv{i} + bn{i}", fold_batchnorm(conv, bn), s))
        s //= 2
    out.append(("avgpool", None, s))
    out.append(("fc", model.fc, None))
    return out


def flowers_norms(model: ImageCNN, size: int, *, max_iter: int, tol: float) -> list[LayerNorms]:
    """:class:`LayerNorms` of each layer of :func:`flowers_layers` (the average pool's row:
    ``1/sqrt(h w)`` for its ``h x w`` map, exact), and a last row ``"network"`` whose numbers
    are the products of the layers' (the max-poolings contribute 1). Float64 power iteration;
    the model is not changed."""
    rows = []
    for name, module, s in flowers_layers(model.eval(), size):
        if module is None:
            c = avg_pool_lipschitz(s, s)
            rows.append(LayerNorms(name, f"{s}×{s} → 1", None, c, c, c, 0.0, 0))
        else:
            rows.append(layer_norms(name, module, s, max_iter=max_iter, tol=tol))
    prod = {k: math.prod(getattr(r, k) for r in rows) for k in ("printed", "bound", "exact")}
    rows.append(LayerNorms("network", "", None, prod["printed"], prod["bound"], prod["exact"],
                           max(r.rel_change for r in rows), max(r.iterations for r in rows)))
    return rows


# --- the book's MNIST CNN ---------------------------------------------------------------------

def cnn_layers(model: MnistCNN) -> list[tuple[str, nn.Module, int | None]]:
    """The rectified layers of a :class:`~advtut.models.MnistCNN`: ``(name, module, input
    size)``; the max-poolings between them (2 x 2, stride 2) are 1-Lipschitz."""
    s = model.image_size
    return [("conv1", model.conv1, s), ("conv2", model.conv2, s // 2),
            ("fc1", model.fc1, None), ("fc2", model.fc2, None)]


def _blocks(model: MnistCNN, x: torch.Tensor):
    """Each rectified layer as a function of its own input, and that input at ``x``."""
    a = model.activations(x)
    return [(lambda h: F.relu(model.conv1(h)), x),
            (lambda h: F.relu(model.conv2(h)), a["pool1"]),
            (lambda h: F.relu(model.fc1(h)), a["pool2"].flatten(1)),
            (model.fc2, a["relu3"])]


def correctly_labelled(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The indices ``(M,)`` of the examples of ``x`` ``(N, ...)`` that ``model`` labels ``y``."""
    from advtut.evaluation import predict

    return (predict(model, x) == y.to(torch.long)).nonzero().squeeze(1)


def global_bound(model: MnistCNN) -> float:
    """The product of the layers' upper bounds: an L2 Lipschitz constant of the logit map."""
    pools = max_pool_lipschitz(2) ** 2        # 1: non-overlapping windows
    return pools * math.prod(layer_bound(m, size) for _, m, size in cnn_layers(model))


@dataclass(frozen=True)
class CNNNorms:
    """A CNN's per-layer norms and the whole network's (``layer == "network"``): the paper's
    printed formula, the corrected bound, the exact norm as applied, and the local Lipschitz
    constants (largest Jacobian singular value) at test images, mean and max, and ``local``:
    ``(N,)`` each image's (None without images)."""

    layer: str
    printed: float
    bound: float
    exact: float
    local_mean: float
    local_max: float
    local: torch.Tensor | None = None


def cnn_norms(model: MnistCNN, x: torch.Tensor | None, *, max_iter: int,
              tol: float) -> list[CNNNorms]:
    """:class:`CNNNorms` for each rectified layer of ``model`` and for the network, with the
    local constants at the test images ``x`` ``(N, 1, 28, 28)`` (NaN when ``x`` is None); the
    network's row multiplies the layers' columns (the 2 x 2 max-poolings contribute 1), except
    the local constants, which are the whole network's Jacobian's. Computed on a float64 copy
    of ``model``."""
    nan = float("nan")
    rows = []
    model = copy.deepcopy(model).double().eval()      # float64: the invariants are tight
    x = None if x is None else x.double()
    with torch.no_grad():
        blocks = _blocks(model, x) if x is not None else [(None, None)] * 4
    for (name, module, size), (f, h) in zip(cnn_layers(model), blocks):
        n = layer_norms(name, module, size, max_iter=max_iter, tol=tol, dtype=torch.float64)
        local = local_lipschitz(f, h, max_iter=max_iter, tol=tol) if x is not None else None
        rows.append(CNNNorms(name, n.printed, n.bound, n.exact,
                             nan if local is None else float(local.mean()),
                             nan if local is None else float(local.max()),
                             None if local is None else local.cpu()))
    local = local_lipschitz(model, x, max_iter=max_iter, tol=tol) if x is not None else None
    pools = max_pool_lipschitz(2) ** 2
    rows.append(CNNNorms("network", pools * math.prod(r.printed for r in rows),
                         pools * math.prod(r.bound for r in rows),
                         pools * math.prod(r.exact for r in rows),
                         nan if local is None else float(local.mean()),
                         nan if local is None else float(local.max()),
                         None if local is None else local.cpu()))
    return rows


def comparison_cnn(book: BookCNN, n_train: int | None, *, seed: int, book_seed: int,
                   device="cpu", cache_dir=None) -> BookCNN:
    """The plain network the regularisers trained with ``seed`` are compared with: ``book``
    itself (trained with ``book_seed``) when it used that seed and ``n_train`` is None (or not
    smaller than its training set), otherwise the same CNN trained the same way with ``seed``
    on the first ``n_train`` of ``book``'s digits (already a seeded random subset): every
    network of the comparison, whatever its seed, sees the same digits."""
    n = len(book.x_train) if n_train is None else min(n_train, len(book.x_train))
    if n == len(book.x_train) and seed == book_seed:
        return book
    x, y = book.x_train[:n], book.y_train[:n]
    model, info = mnist_cnn(x, y, epochs=book.epochs, seed=seed, device=device,
                            cache_dir=cache_dir, variant=f"plain{n}")
    return BookCNN(model, x, y, info, book.epochs)


#: The regularisers :func:`train_regularised` knows, and what their ``strength`` is.
REGULARISERS = {
    "rescale": "every layer's bound at most the strength (uniform rescaling, ProjectToBound)",
    "clip": "every layer's singular values clipped at the strength (Sedghi et al., 2019)",
    "margin": "Lipschitz-margin training at the radius eps = strength (Tsuzuku et al., 2018)",
}


def train_regularised(book: BookCNN, method: str, strength: float, *, every: int, seed: int,
                      device="cpu", cache_dir=None) -> MnistCNN:
    """The book's CNN trained again, on the same digits with the same seed and schedule, under
    one of :data:`REGULARISERS` (kept in ``cache_dir`` like the plain one):

    - ``"rescale"``: :class:`~advtut.projection.ProjectToBound` at ``strength`` every
      ``every`` steps and after the last (a network bound of at most ``strength ** 4``);
    - ``"clip"``: :class:`~advtut.projection.ClipSingularValues` at ``strength``, as often;
      the projection onto the 5 x 5 kernels can leave a convolution's bound above it;
    - ``"margin"``: :class:`~advtut.lipschitz_margin.LipschitzMargin` with ``eps = strength``
      (L2, pixels in [0, 1]); ``every`` is unused.

    Returns the model in eval mode."""
    from advtut.lipschitz_margin import LipschitzMargin
    from advtut.projection import ClipSingularValues

    if method not in REGULARISERS:
        raise ValueError(f"method must be one of {tuple(REGULARISERS)}, got {method!r}")
    if not strength > 0:
        raise ValueError(f"strength must be > 0, got {strength!r}")
    n_steps = book.epochs * math.ceil(len(book.x_train) / MNIST_CNN_TRAINING["batch_size"])
    callback = loss = None
    if method == "rescale":
        callback = ProjectToBound(strength, layers=cnn_layers, every=every, n_steps=n_steps)
    elif method == "clip":
        callback = ClipSingularValues(strength, layers=cnn_layers, every=every, n_steps=n_steps)
    else:
        loss = LipschitzMargin(strength, layers=cnn_layers, seed=seed)
    settings = {"method": method, "strength": strength,
                **({"every": every} if method != "margin" else {})}
    model, _ = mnist_cnn(book.x_train, book.y_train, epochs=book.epochs, seed=seed,
                         device=device, cache_dir=cache_dir, variant=f"{method}{strength:g}",
                         callback=callback, loss=loss, variant_settings=settings,
                         code=(train_regularised, type(callback or loss)))
    return model


@dataclass(frozen=True)
class Regularised:
    """One regularised network: ``name`` (method and strength, and the seed when the
    comparison has several), ``group`` (the name without the seed), ``method`` (one of
    :data:`REGULARISERS`), ``strength``, ``seed``, ``model`` (eval mode) and ``matched``: the
    product bound its per-layer target was chosen to reach (None for a margin network)."""

    name: str
    group: str
    method: str
    strength: float
    seed: int
    model: MnistCNN
    matched: float | None


def train_matched(base: BookCNN, eps: float, *, methods=("rescale", "clip"), every: int,
                  seed: int, name_seed: bool = False, device="cpu",
                  cache_dir=None) -> list[Regularised]:
    """Regularisers matched by the bound they reach: Lipschitz-margin training at the radius
    ``eps`` first; its network's product bound ``B`` (:func:`global_bound`) then sets the
    per-layer target ``t = B ** (1/4)`` of each of ``methods`` (four rectified layers,
    1-Lipschitz poolings), so that rescaling reaches a bound of at most ``B`` and clipping one
    near it (its projection onto the 5 x 5 support can leave a convolution above ``t``).
    Every network trains as :func:`train_regularised` with ``seed`` on ``base``'s digits;
    ``name_seed``: put the seed into the names (a comparison over several seeds)."""
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    tag = f" · seed {seed}" if name_seed else ""

    def one(method, strength, matched):
        group = f"margin ε={strength:g}" if method == "margin" else f"{method} t={strength:.3g}"
        model = train_regularised(base, method, strength, every=every, seed=seed,
                                  device=device, cache_dir=cache_dir)
        return Regularised(group + tag, group, method, strength, seed, model, matched)

    margin = one("margin", eps, None)
    bound = global_bound(margin.model)
    target = float(f"{bound ** 0.25:.6g}")          # a readable, cache-stable target
    return [margin, *(one(m, target, bound) for m in methods)]


# --- the bracket and the sandwich ------------------------------------------------------------

@dataclass(frozen=True)
class Bracket:
    """The network's L2 Lipschitz constant lies in ``[lower, upper]``.

    ``upper``: the product of the layers' bounds (:func:`global_bound`); ``lower``: the
    larger of ``at_test`` and ``search``; ``at_test``: the largest Jacobian norm at the test
    images (what the local constants of :func:`cnn_norms` see); ``search``: the largest
    stretch :func:`~advtut.certification.lipschitz_lower_bound` found over the input box
    (pair ascent and local search from ``n_starts`` starts: the steepest test images and
    uniform noise); ``gap``: ``upper / lower``, how loose the bound can at most be."""

    upper: float
    lower: float
    at_test: float
    search: float
    gap: float
    n_starts: int


def bracket(model: MnistCNN, x_test: torch.Tensor, *, n_starts: int, n_noise: int, steps: int,
            seed: int, power_iter: int = 100, climb_rounds: int = 0,
            local: torch.Tensor | None = None) -> Bracket:
    """:class:`Bracket` of ``model`` at the test images ``x_test`` ``(N, 1, 28, 28)``: their
    Jacobian norms (``local`` ``(N,)`` when already measured, e.g. :class:`CNNNorms`'s,
    otherwise :func:`~advtut.spectral.local_lipschitz` with ``power_iter``), then the search
    from the ``n_starts`` test images of largest norm and ``n_noise`` seeded uniform-noise
    images (``steps`` of pair ascent, ``climb_rounds`` of local search), in the model's dtype
    on its device (a stretch reached in float32 is a lower bound to float32's rounding, far
    below the gap to the upper bound; the upper bound is float64)."""
    from advtut.certification import lipschitz_lower_bound

    net = model.eval()
    p = next(net.parameters())
    x_test = x_test.to(p.device, p.dtype)
    if local is None:
        local = local_lipschitz(net, x_test, max_iter=power_iter, seed=seed)
    if local.shape != (len(x_test),):
        raise ValueError(f"local must have shape ({len(x_test)},), got {tuple(local.shape)}")
    steep = x_test[local.cpu().argsort(descending=True)[:n_starts].to(p.device)]
    gen = torch.Generator().manual_seed(seed)
    noise = torch.rand((n_noise, *x_test.shape[1:]), generator=gen, dtype=p.dtype)
    starts = torch.cat([steep, noise.to(p.device)])
    low = lipschitz_lower_bound(net, starts, steps=steps, seed=seed, power_iter=power_iter,
                                climb_rounds=climb_rounds)
    at_test = max(float(local.max()), low.at_start)
    upper = global_bound(model)
    lower = max(low.value, at_test)
    return Bracket(upper, lower, at_test, low.value, upper / lower, len(starts))


@dataclass(frozen=True)
class Sandwich:
    """Per attacked test image ``(N,)``: the logit ``margin`` to the runner-up, the certified
    radius ``margin / (sqrt 2 L)`` (no label change closer), the margin-wise first-order
    estimate ``min_j (z_y - z_j) / ||grad (z_y - z_j)||`` (not a bound), and ``found``: the L2
    distance of the closest misclassified image the L-BFGS attack (refined on the boundary)
    reached over the labels it tried (``labels_tried`` per image; inf where none succeeded);
    ``check``: the distance the second, independent attack reached (foolbox's DDN, untargeted;
    NaN for images it was not run on, or when foolbox is missing); ``lipschitz``: ``L``."""

    margin: torch.Tensor
    certified: torch.Tensor
    first_order: torch.Tensor
    found: torch.Tensor
    check: torch.Tensor
    labels_tried: int
    lipschitz: float

    @property
    def success(self) -> torch.Tensor:
        return torch.isfinite(self.found)


def ddn_distances(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, *,
                  steps: int) -> torch.Tensor | None:
    """The L2 distances ``(N,)`` reached by foolbox's untargeted decoupled-direction-and-norm
    attack (Rony et al., 2019; ``steps`` steps) from ``x`` ``(N, ...)`` in [0, 1] away from
    ``labels``; inf where it failed; None when foolbox (a development dependency) is missing."""
    try:
        import foolbox
    except ImportError:
        return None
    fmodel = foolbox.PyTorchModel(model, bounds=(0, 1), device=x.device)
    crit = foolbox.criteria.Misclassification(labels)
    adv, _, _ = foolbox.attacks.DDNAttack(steps=steps)(fmodel, x, crit, epsilons=None)
    ok = (model_logits(model, adv).argmax(1) != labels.cpu()).to(x.device)
    d = l2(adv.double(), x.double())
    return torch.where(ok, d, torch.full_like(d, math.inf)).cpu()


def sandwich(model: MnistCNN, x: torch.Tensor, *, n_labels: int | None, max_iter: int,
             c_rel_tol: float, refine_steps: int, n_check: int, check_steps: int) -> Sandwich:
    """Certified radius <= minimal untargeted distortion <= the attacks' distances, at the
    images ``x`` ``(N, 1, 28, 28)``.

    Each image is attacked with box-constrained L-BFGS towards the ``n_labels`` wrong labels
    of smallest first-order estimate (``None``: all nine), each result refined on the boundary
    with ``refine_steps`` rounds of :func:`~advtut.attacks.lbfgs.refine_on_boundary` (0:
    none); the
    minimum over a subset of labels is still an upper side of the minimal distortion. The
    first ``n_check`` images are also attacked by :func:`ddn_distances` (``check_steps``)."""
    from advtut.certification import first_order_radius

    lip = global_bound(model)
    z = model_logits(model, x).cpu()
    top2 = z.double().topk(2, dim=1).values
    pred = z.argmax(1)
    first = first_order_radius(model, x, pred.to(x.device))
    ranked = first.ranked if n_labels is None else first.ranked[:, :n_labels]
    found = torch.full((len(x),), math.inf, dtype=torch.float64)
    search = LBFGSSearch(max_iter=max_iter, c_rel_tol=c_rel_tol)
    for t in ranked.T:
        t = t.to(x.device)
        r = lbfgs_attack(model, x, t, settings=search)
        if refine_steps:
            r = refine_on_boundary(model, x, r, t, outer_steps=refine_steps, max_iter=max_iter)
        d = l2(r.x_adv.double(), x.double()).cpu()
        found = torch.minimum(found, torch.where(r.success.cpu(), d, math.inf))
    check = torch.full((len(x),), math.nan, dtype=torch.float64)
    if n_check:
        d = ddn_distances(model, x[:n_check], pred[:n_check].to(x.device), steps=check_steps)
        if d is not None:
            check[:n_check] = d
    return Sandwich(top2[:, 0] - top2[:, 1], certified_radius(z, lip), first.estimate, found,
                    check, ranked.shape[1], lip)


# --- one network, every measure ----------------------------------------------------------------

@dataclass(frozen=True)
class NetworkReport:
    """One network of the regulariser comparison: its ``test_error`` on the test digits it is
    given, the :class:`Bracket` on its constant, its certified accuracy on those digits at each
    radius (:class:`~advtut.certification.CertifiedAccuracy`), its median logit margin there,
    and ``attack``: ``(M,)`` the L2 distances foolbox's DDN reached at the attacked images
    (inf where it failed; None without foolbox), with ``certified_at_attack`` ``(M,)`` the
    certified radii there. ``group``: the network without its seed (what the verdict compares
    across seeds), ``seed``: its training seed, ``matched``: the bound its strength was chosen
    to reach (None: not matched)."""

    name: str
    test_error: float
    bracket: Bracket
    certified: object
    margin: float
    attack: torch.Tensor | None
    certified_at_attack: torch.Tensor
    group: str
    seed: int
    matched: float | None = None


def network_report(name: str, model: MnistCNN, x_test: torch.Tensor, y_test: torch.Tensor,
                   x_attack: torch.Tensor, *, eps, bracket_settings: dict, attack_steps: int,
                   group: str | None = None, seed: int = 0,
                   matched: float | None = None) -> NetworkReport:
    """:class:`NetworkReport` of ``model``: certified accuracy over ``x_test`` ``(N, 1, 28,
    28)`` / ``y_test`` at the radii ``eps``, :func:`bracket` (its ``bracket_settings``, at
    ``x_attack``) and :func:`ddn_distances` (``attack_steps``) at the images of ``x_attack``,
    each moved away from the label ``model`` gives it. ``group`` defaults to ``name``."""
    from advtut.certification import certified_accuracy

    z = model_logits(model, x_test).cpu()
    y = y_test.cpu().long()
    top2 = z.double().topk(2, dim=1).values
    br = bracket(model, x_attack, **bracket_settings)
    cert = certified_accuracy(z, y, br.upper, eps=eps)
    err = float((z.argmax(1) != y).double().mean())
    za = model_logits(model, x_attack).cpu()
    dist = ddn_distances(model, x_attack, za.argmax(1).to(x_attack.device), steps=attack_steps)
    return NetworkReport(name, err, br, cert, float((top2[:, 0] - top2[:, 1]).median()), dist,
                         certified_radius(za, br.upper), group or name, seed, matched)


def clip_check(model: MnistCNN, target: float) -> tuple[dict[str, float], dict[str, float]]:
    """A check of the clipping operator on the trained weights: clip ``model``'s layers at
    ``target`` again (without changing it) and give, per layer, the
    largest singular value of the clipped operator before the projection (a convolution's,
    recomputed from the clipped kernel on its bound grid; a linear layer's after clipping),
    and the bound of the layer as the network holds it."""
    from advtut.projection import clip_conv_singular_values, clip_matrix_singular_values
    from advtut.spectral import linear_norm

    tops, bounds = {}, {}
    for name, module, size in cnn_layers(model):
        bounds[name] = layer_bound(module, size)
        if isinstance(module, nn.Linear):
            tops[name] = linear_norm(clip_matrix_singular_values(module.weight, target))
        else:
            grid = bound_grid(size, padding=module.padding[0], stride=1)
            tops[name] = clip_conv_singular_values(module.weight, target, grid).top_clipped
    return tops, bounds


def margin_loss_gap(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """``|LMT loss at eps = 0 - cross-entropy|`` on ``model``'s logits at ``x`` (float64)."""
    from advtut.lipschitz_margin import LipschitzMargin

    z = model_logits(model, x).double().cpu()
    y = y.cpu().long()
    lmt = LipschitzMargin(0.0, layers=cnn_layers)
    return float((lmt(model, x, y, z) - F.cross_entropy(z, y)).abs())


@dataclass(frozen=True)
class MarginCheck:
    """Lipschitz-margin training's loss checked on a network: ``gap``, ``|loss - cross-entropy
    of logits shifted by hand|`` at ``eps > 0`` (every wrong logit ``+ sqrt 2 L eps``, ``L``
    the loss's own estimate); ``estimate``: that estimate after ``steps`` power steps per
    layer; ``bound``: :func:`global_bound`, which the estimate (from below) cannot exceed."""

    gap: float
    estimate: float
    bound: float
    steps: int


def margin_check(model: MnistCNN, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                 steps: int = 30) -> MarginCheck:
    """:class:`MarginCheck` of ``model`` (a float64 copy) at ``x`` ``(N, 1, 28, 28)``,
    ``y`` ``(N,)``: ``steps`` power steps per layer, then one loss evaluation."""
    from advtut.lipschitz_margin import LipschitzMargin

    net = copy.deepcopy(model).double().cpu().eval()
    xd, y = x.double().cpu(), y.cpu().long()
    lmt = LipschitzMargin(eps, layers=cnn_layers)
    with torch.no_grad():
        for _ in range(steps):
            lmt.lipschitz(net)
        z = net(xd)
        loss = lmt(net, xd, y, z)
    lip = lmt.last_lipschitz
    shifted = z + math.sqrt(2.0) * lip * eps
    shifted[torch.arange(len(y)), y] = z[torch.arange(len(y)), y]
    gap = float((loss - F.cross_entropy(shifted, y)).abs())
    return MarginCheck(gap, lip, global_bound(net), steps)


def recalibrated(model: ImageCNN, x: torch.Tensor, *, batch_size: int = 256) -> ImageCNN:
    """A copy of ``model`` whose BatchNorm running statistics are re-estimated on ``x``
    ``(N, 3, H, W)`` (cumulative averages over batches, no weight changed), in eval mode:
    an untrained network's BatchNorm otherwise holds the defaults (mean 0, variance 1), and
    its folded bounds would measure those defaults rather than the weights."""
    net = copy.deepcopy(model)
    for bn in net.bns:
        bn.reset_running_stats()
        bn.momentum = None                       # a cumulative moving average
    net.train()
    dev = next(net.parameters()).device
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            net(x[i:i + batch_size].to(dev))
    return net.eval()


def certify_subset(n_test: int, n: int | None, *, seed: int) -> torch.Tensor:
    """The indices ``(n,)`` of a seeded random subset of ``n`` of ``n_test`` test examples
    (all of them, in order, when ``n`` is None or not smaller): MNIST's test set is ordered
    (its first 5,000 digits are the cleaner half), so a prefix is not a fair sample."""
    if n is None or n >= n_test:
        return torch.arange(n_test)
    return torch.randperm(n_test, generator=torch.Generator().manual_seed(seed))[:n].sort().values
