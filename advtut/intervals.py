"""95% intervals over examples: a proportion (Wilson) and a median (order statistics).

Both are deterministic (no resampling) and computed in float64 on the CPU. The median's
interval is distribution-free (coverage at least the level for any continuous distribution);
Wilson's is an approximation whose coverage stays close to the level even near 0 and 1 (use
an exact Clopper-Pearson interval where "at least 95%" must be guaranteed).

- :func:`proportion_interval`: the Wilson score interval for ``k`` successes in ``n`` trials
  (Wilson, 1927), which stays inside [0, 1] and keeps its coverage near 0 and 1, where a
  certified accuracy often lies.
- :func:`median_interval`: the order-statistic interval for a median: the ``j``-th and
  ``(n + 1 - j)``-th smallest values, ``j`` the largest index with ``P(Binomial(n, 1/2) < j)
  <= alpha / 2``; its coverage is at least the level for any continuous distribution.

Example::

    proportion_interval(45, 50)                 # (0.786, 0.957)
    median_interval(torch.rand(100))            # two order statistics around the median
"""
from __future__ import annotations

import math

import torch

__all__ = ["proportion_interval", "median_interval"]


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return float(level)


def _normal_quantile(p: float) -> float:
    return float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(p, dtype=torch.float64)))


def proportion_interval(k: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval ``(low, high)`` for a proportion ``k / n``.

    ``k``: successes, ``0 <= k <= n``; ``n``: trials, ``>= 1``; ``level``: the coverage, in
    (0, 1). Both ends lie in [0, 1]; ``low`` is 0 when ``k = 0`` and ``high`` is 1 when ``k = n``.
    """
    level = _check_level(level)
    for name, v in (("k", k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{name} must be an integer, got {v!r}")
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need n >= 1 and 0 <= k <= n, got k={k}, n={n}")
    z = _normal_quantile(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if k == 0 else low), (1.0 if k == n else high)


def median_interval(values: torch.Tensor, *, level: float = 0.95) -> tuple[float, float]:
    """An interval ``(low, high)`` for the median of the distribution ``values`` ``(n,)`` came
    from, with coverage at least ``level``: two order statistics of the sample.

    NaN values are refused (say which examples to leave out first). With fewer than 6 values
    no pair of order statistics reaches 95%: the interval is then the sample's range, and its
    coverage is ``1 - 2^(1-n)`` only.
    """
    level = _check_level(level)
    if not isinstance(values, torch.Tensor) or values.ndim != 1 or len(values) == 0:
        what = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"values must be a non-empty 1-D tensor, got {what}")
    v = values.detach().to(torch.float64).cpu()
    if torch.isnan(v).any():
        raise ValueError(f"values holds {int(torch.isnan(v).sum())} NaN: drop them first")
    v = v.sort().values
    n = len(v)
    # P(B < j) for B ~ Binomial(n, 1/2), j = 1..n: the largest j with P(B < j) <= alpha / 2
    k = torch.arange(n + 1, dtype=torch.float64)
    log_pmf = (torch.lgamma(torch.tensor(n + 1.0, dtype=torch.float64)) - torch.lgamma(k + 1)
               - torch.lgamma(n - k + 1) - n * math.log(2))
    cdf_below = torch.cumsum(log_pmf.exp(), 0)            # cdf_below[j - 1] = P(B < j)
    ok = (cdf_below[:n] <= (1 - level) / 2).nonzero()
    j = int(ok[-1]) + 1 if len(ok) else 1
    j = min(j, (n + 1) // 2)
    return float(v[j - 1]), float(v[n - j])
