"""Units against random directions of a layer (Szegedy et al., 2014, section 3).

A layer's features ``phi(x)`` ``(N, D)`` (flattened) of an image pool; a direction ``v``
``(D,)``. The images that "activate" the direction most are the top-k of ``<phi(x), v>``.
A unit is the direction ``e_i``; the paper compares units' top images with random directions'
and finds "no distinction". These functions make the comparison a number.

- :func:`unit_directions`, :func:`random_directions` (uniform on the unit sphere, seeded),
  :func:`class_mean_directions` (the most structured baseline);
- :func:`top_k_along`: indices of the k images with the largest projections;
- :func:`random_subsets`: k images drawn at random (the baseline with no structure);
- :func:`label_purity`, :func:`mean_pairwise_cosine`: coherence scores of a top-k set;
- :func:`mean_overlap`: how much the top-k sets of a family's directions repeat each other;
- :func:`live_units`: the units whose top-k is not a tie among silent images;
- :func:`compare`: two samples of scores, by the probability that one beats the other (with a
  bootstrap interval that can resample clusters, such as a convolutional layer's channels) and
  the Mann-Whitney U test;
- :func:`units_needed`: how many units an interval that decides would take (a power
  calculation).

Example::

    feats = model.activations(x_test)["fc1"].flatten(1)        # (N, D)
    top = top_k_along(feats, random_directions(feats.shape[1], 100, seed=0), k=8)
    label_purity(top, y_test)                                  # (100,) in [1/k, 1]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["unit_directions", "random_directions", "class_mean_directions", "top_k_along",
           "random_subsets", "label_purity", "mean_pairwise_cosine", "mean_overlap", "live_units",
           "Comparison", "compare", "units_needed"]


def _check_features(features: torch.Tensor) -> None:
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        got = (tuple(features.shape) if isinstance(features, torch.Tensor)
               else type(features).__name__)
        raise ValueError(f"features must be a (N, D) tensor, got {got}")


def unit_directions(dim: int, units) -> torch.Tensor:
    """The basis vectors ``e_i`` for ``units`` (indices into ``range(dim)``): ``(U, dim)``."""
    units = torch.as_tensor(list(units), dtype=torch.long)
    if units.numel() and (units.min() < 0 or units.max() >= dim):
        raise ValueError(f"units must lie in [0, {dim}), got {units.tolist()}")
    return F.one_hot(units, dim).double()


def random_directions(dim: int, n: int, *, seed: int, nonnegative: bool = False) -> torch.Tensor:
    """``n`` directions uniform on the unit sphere of ``R^dim`` (normalised Gaussians, from a
    generator seeded with ``seed``): ``(n, dim)`` float64. Unlike units of a ReLU layer, whose
    features are non-negative, about half of each direction's coordinates are negative;
    ``nonnegative=True`` takes absolute values (uniform on the sphere's positive orthant)."""
    if dim < 1 or n < 1:
        raise ValueError(f"dim and n must be positive, got {dim} and {n}")
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, dim, generator=g, dtype=torch.float64)
    return F.normalize(v.abs() if nonnegative else v, dim=1)


def class_mean_directions(features: torch.Tensor, y: torch.Tensor, *,
                          centered: bool = True) -> torch.Tensor:
    """The unit vector along each class's mean feature vector minus the mean over all images
    (``centered=True``; with ``False``, the raw class means): ``(K, D)`` float64, the most
    structured directions we can name (their top images should be of their class). Centring
    matters after a ReLU: every raw class mean shares the large positive part common to all
    images, so its top images are those with the most activity, of any class."""
    _check_features(features)
    if y.shape != (len(features),) or y.dtype != torch.long:
        raise ValueError(f"y must be a long tensor of shape ({len(features)},), got "
                         f"{y.dtype} {tuple(y.shape)}")
    k = int(y.max()) + 1
    empty = [c for c in range(k) if not bool((y == c).any())]
    if empty:
        raise ValueError(f"classes {empty} have no images: class means need every label "
                         f"0..{k - 1} present in y")
    f = features.double()
    means = torch.stack([f[y == c].mean(0) for c in range(k)])
    if centered:
        means = means - f.mean(0)
    return F.normalize(means, dim=1)


def top_k_along(features: torch.Tensor, directions: torch.Tensor, k: int) -> torch.Tensor:
    """For each direction ``v`` (rows of ``directions`` ``(M, D)``), the indices of the ``k``
    images with the largest ``<phi(x), v>``, largest first: ``(M, k)`` long. Computed in the
    features' precision (at least float32); a unit direction's projection is its activation
    exactly."""
    _check_features(features)
    if directions.ndim != 2 or directions.shape[1] != features.shape[1]:
        raise ValueError(f"directions must be (M, {features.shape[1]}), got "
                         f"{tuple(directions.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(features):
        raise ValueError(f"k must be an integer in [1, {len(features)}], got {k!r}")
    dtype = torch.promote_types(features.dtype, torch.float32)           # float32 or float64
    proj = features.to(dtype) @ directions.to(dtype).T                   # (N, M)
    return proj.topk(k, dim=0).indices.T


def random_subsets(n: int, m: int, k: int, *, seed: int) -> torch.Tensor:
    """``m`` sets of ``k`` distinct indices into ``range(n)``, each drawn uniformly (seeded):
    ``(m, k)`` long, shaped like :func:`top_k_along`'s answer."""
    if not 1 <= k <= n or m < 1:
        raise ValueError(f"need 1 <= k <= n and m >= 1, got n={n}, m={m}, k={k}")
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(m)])


def _check_top(top: torch.Tensor, n: int) -> None:
    if not isinstance(top, torch.Tensor) or top.ndim != 2 or top.dtype != torch.long:
        raise ValueError(f"top must be a (M, k) long tensor of image indices, got "
                         f"{getattr(top, 'dtype', type(top).__name__)} "
                         f"{tuple(getattr(top, 'shape', ()))}")
    if top.numel() and (int(top.min()) < 0 or int(top.max()) >= n):
        raise ValueError(f"top holds indices outside [0, {n})")


def label_purity(top: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The share of each row of ``top`` ``(M, k)`` taken by its most common label ``y[top]``:
    ``(M,)`` in ``[1/k, 1]`` (1: all k images of one class). ``y``: long ``(N,)``."""
    if y.ndim != 1 or y.dtype != torch.long:
        raise ValueError(f"y must be a long (N,) tensor of labels, got {y.dtype} {tuple(y.shape)}")
    _check_top(top, len(y))
    labels = y[top]                                                      # (M, k)
    counts = F.one_hot(labels, int(y.max()) + 1).sum(1)                  # (M, K)
    return counts.max(1).values.double() / top.shape[1]


def mean_pairwise_cosine(top: torch.Tensor, features: torch.Tensor, *,
                         chunk: int = 128) -> torch.Tensor:
    """The mean cosine between two different images of each row of ``top`` ``(M, k)``, in the
    feature space ``features`` ``(N, D)`` (usually another layer's): ``(M,)`` float64. The
    cosines are computed in the features' precision (float32 for a network's features: about
    1e-7) and averaged in float64; rows are gathered ``chunk`` at a time, so memory stays near
    ``chunk * k * D`` numbers."""
    _check_features(features)
    _check_top(top, len(features))
    k = top.shape[1]
    if k < 2:
        raise ValueError("k must be at least 2 for pairs")
    u = features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)      # (N, D) unit rows
    out = []
    for rows in top.split(chunk):
        g = u[rows]                                                          # (m, k, D)
        gram = (g @ g.transpose(1, 2)).double()                             # (m, k, k)
        out.append((gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(1)) / (k * (k - 1)))
    return torch.cat(out)


def mean_overlap(top: torch.Tensor) -> float:
    """The mean share of images two different rows of ``top`` ``(M, k)`` have in common,
    ``|A & B| / k`` over all pairs of rows, in [0, 1] (0: every direction finds its own images;
    1: all find the same k). Coherent rows are only interesting if they are not one row."""
    m, k = top.shape
    if m < 2:
        raise ValueError("mean_overlap needs at least two rows")
    hits = torch.zeros(m, int(top.max()) + 1, dtype=torch.float64)
    hits.scatter_(1, top, 1.0)                                            # (M, N) indicators
    shared = hits @ hits.T                                                # (M, M) |A & B|
    return float((shared.sum() - shared.diagonal().sum()) / (m * (m - 1) * k))


def live_units(features: torch.Tensor, k: int) -> torch.Tensor:
    """The units (columns of ``features`` ``(N, D)``) whose k-th largest value is above their
    smallest: ``(L,)`` long, ascending. For the others (a ReLU unit that fires on fewer than
    ``k`` images) the top-k is partly a tie among images where the unit is silent."""
    _check_features(features)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(features):
        raise ValueError(f"k must be an integer in [1, {len(features)}], got {k!r}")
    kth = features.topk(k, dim=0).values[-1]                              # (D,)
    return torch.nonzero(kth > features.min(0).values).flatten()


@dataclass(frozen=True)
class Comparison:
    """Two samples of scores ``a`` and ``b``.

    ``superiority``: P(a > b) + P(a = b) / 2 over all pairs, in [0, 1] (0.5: neither tends to
    score higher; Vargha and Delaney call ``|superiority - 0.5| < 0.06`` negligible);
    ``low``, ``high``: its 95% percentile-bootstrap interval (both samples resampled, seeded;
    ``a`` by whole clusters when it has ``n_groups`` of them); ``u``: the Mann-Whitney U of
    ``a``; ``p_value``: two-sided, from scipy's Mann-Whitney test (normal approximation with
    tie and continuity corrections) when ``a``'s scores are independent, from the bootstrap's
    standard error (a normal approximation) when they come in clusters; ``n_a``, ``n_b``: the
    sample sizes; ``n_groups``: the clusters of ``a`` (None: every score its own).
    """

    superiority: float
    low: float
    high: float
    u: float
    p_value: float
    n_a: int
    n_b: int
    n_groups: int | None = None

    @property
    def negligible(self) -> bool:
        """The whole interval lies within the negligible band [0.44, 0.56]."""
        return 0.44 <= self.low and self.high <= 0.56


def _superiority_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(a > b) + P(a = b) / 2 for each row of ``a`` ``(R, n_a)`` and ``b`` ``(R, n_b)``."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([a, b], axis=1), axis=1)[:, :a.shape[1]]
    n_a, n_b = a.shape[1], b.shape[1]
    return (ranks.sum(1) - n_a * (n_a + 1) / 2) / (n_a * n_b)


def _cluster_boot(a: np.ndarray, b: np.ndarray, groups: np.ndarray, n_boot: int,
                  rng: np.random.Generator) -> np.ndarray:
    """The superiority of ``n_boot`` resamples that draw ``a``'s clusters (all their scores
    together) and ``b``'s scores with replacement."""
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    out = np.empty(n_boot)
    for r in range(n_boot):
        pick = rng.integers(0, len(members), len(members))
        ra = a[np.concatenate([members[i] for i in pick])]
        out[r] = _superiority_rows(ra[None], b[rng.integers(0, len(b), len(b))][None])[0]
    return out


def compare(a: torch.Tensor, b: torch.Tensor, *, groups=None, n_boot: int = 2_000,
            seed: int = 0) -> Comparison:
    """Compare the scores ``a`` ``(n_a,)`` with ``b`` ``(n_b,)``; see :class:`Comparison`.
    ``groups`` ``(n_a,)``: a cluster label per score of ``a`` (a convolutional layer's
    coordinates at different positions of one channel are not independent: pass the channel),
    so that the bootstrap resamples clusters; None: every score independent. ``n_boot``
    bootstrap resamples drawn from a generator seeded with ``seed``."""
    from scipy.stats import mannwhitneyu, norm

    a = torch.as_tensor(a).detach().double().flatten().cpu().numpy()
    b = torch.as_tensor(b).detach().double().flatten().cpu().numpy()
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"compare needs at least two scores on each side, got {len(a)} and {len(b)}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("compare got NaN scores (a silent unit?): drop them first")
    res = mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
    u = float(res.statistic)
    rng = np.random.default_rng(seed)
    n_groups = None
    if groups is not None:
        groups = torch.as_tensor(groups).flatten().cpu().numpy()
        if groups.shape != a.shape:
            raise ValueError(f"groups must give one cluster per score of a ({len(a)}), got "
                             f"{groups.shape[0]}")
        n_groups = len(np.unique(groups))
        if n_groups < 2:
            raise ValueError("groups must hold at least two clusters")
        boot = _cluster_boot(a, b, groups, n_boot, rng)
    else:
        boot = np.concatenate([
            _superiority_rows(a[rng.integers(0, len(a), (r, len(a)))],
                              b[rng.integers(0, len(b), (r, len(b)))])
            for r in (min(500, n_boot - s) for s in range(0, n_boot, 500))])
    superiority = u / (len(a) * len(b))
    low, high = np.quantile(boot, [0.025, 0.975])
    p_value = float(res.pvalue)
    if groups is not None:
        se = float(boot.std())
        p_value = 1.0 if se == 0 else float(2 * norm.sf(abs(superiority - 0.5) / se))
    return Comparison(superiority, float(low), float(high), u, p_value, len(a), len(b),
                      n_groups)


def units_needed(superiority: float, n_random: int, *, band: float = 0.06,
                 max_units: int = 1_000_000) -> int | None:
    """How many units a comparison with ``n_random`` random directions would need for its 95%
    interval to decide, if ``superiority`` were the truth: either lie within the negligible
    band ``0.5 +- band`` or exclude 0.5, whichever a narrower interval reaches first. The
    interval's half-width is taken as 1.96 standard errors of the Mann-Whitney estimate
    (Hanley and McNeil, 1982, with ``Q1 = P / (2 - P)``, ``Q2 = 2 P^2 / (1 + P)``). Returns
    None when even ``max_units`` would not do (``n_random`` is then too small)."""
    p = float(superiority)
    if not 0 < p < 1:
        raise ValueError(f"superiority must lie in (0, 1), got {superiority}")
    edge = abs(p - 0.5)
    half = max(edge, band - edge)                        # the wider of the two targets
    q1, q2 = p / (2 - p), 2 * p * p / (1 + p)

    def width(n_a: int) -> float:
        var = (p * (1 - p) + (n_a - 1) * (q1 - p * p) + (n_random - 1) * (q2 - p * p))
        return 1.96 * float(np.sqrt(var / (n_a * n_random)))

    if width(max_units) >= half:
        return None
    lo, hi = 2, max_units                                # width falls as n_a grows
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if width(mid) >= half else (lo, mid)
    return lo
