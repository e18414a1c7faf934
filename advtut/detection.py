"""Out-of-distribution detection by the maximum softmax probability (Hendrycks and Gimpel
2017), and the area under the ROC curve with its interval.

- :func:`max_softmax_score`: a score that orders inputs exactly as the maximum softmax
  probability does, without its saturation: ``-log sum_{j != top} exp(z_j - z_top)`` from the
  logits in float64. The probability itself rounds to 1.0 for most confident inputs (in float32
  beyond a margin of about 17, in float64 beyond 37), which would tie them; this score is
  ``-log((1 - p) / p)`` = the log-odds of the top class, strictly increasing in ``p``, so the
  AUROC is the probability's and the ties are gone.
- :func:`auroc`: the AUROC of scores for in-distribution inputs (``positive``, which a
  detector should score high) against others (``negative``), with DeLong's interval
  (DeLong, DeLong and Clarke-Pearson 1988): deterministic, from the two samples' placement
  values. 0.5 is a detector that cannot tell them apart, 1 one that always ranks the positives
  higher, 0 one that always ranks them lower.

Example::

    s_in = max_softmax_score(model(x_test))
    s_out = max_softmax_score(model(torch.rand(1000, 1, 28, 28)))
    auroc(s_in, s_out)            # Auroc(value=..., low=..., high=..., n_positive=..., ...)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from advtut.intervals import _check_level, _normal_quantile

__all__ = ["max_softmax_score", "Auroc", "auroc"]


def max_softmax_score(logits: torch.Tensor) -> torch.Tensor:
    """``(N,)`` float64 on the CPU, for ``logits`` ``(N, K)``, ``K >= 2``: the log-odds of the
    top class, ``log(p_max / (1 - p_max))``, computed as ``-logsumexp_{j != top}(z_j - z_top)``
    so that it does not saturate; it orders inputs as the maximum softmax probability does."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] < 2:
        what = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be (N, K) with K >= 2 classes, got {what}")
    z = logits.detach().double().cpu()
    top = z.max(1, keepdim=True)
    rest = z.scatter(1, top.indices, float("-inf")) - top.values
    return -torch.logsumexp(rest, 1)


@dataclass(frozen=True)
class Auroc:
    """The area under the ROC curve ``value`` with a ``level`` interval ``(low, high)``
    (DeLong's variance, normal approximation, clipped to [0, 1]) from ``n_positive`` and
    ``n_negative`` scores."""

    value: float
    low: float
    high: float
    n_positive: int
    n_negative: int
    level: float = 0.95


def auroc(positive: torch.Tensor, negative: torch.Tensor, *, level: float = 0.95) -> Auroc:
    """The probability that a random ``positive`` score exceeds a random ``negative`` one (ties
    count one half): the Mann-Whitney form of the AUROC, exact, in float64; with DeLong's
    interval (needs at least two of each; with one of either the interval is [0, 1]). Where
    the two samples do not overlap DeLong's variance is 0 and the interval is the value alone:
    read it with the sample sizes."""
    level = _check_level(level)
    for name, v in (("positive", positive), ("negative", negative)):
        if not isinstance(v, torch.Tensor) or v.ndim != 1 or len(v) == 0:
            what = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"{name} must be a non-empty 1-D tensor of scores, got {what}")
        if torch.isnan(v).any():
            raise ValueError(f"{name} holds NaN scores: drop them first")
    x, y = positive.detach().double().cpu(), negative.detach().double().cpu()
    m, n = len(x), len(y)
    # placement values: for each positive the share of negatives below it, and vice versa
    ys = y.sort().values
    below = torch.searchsorted(ys, x, right=False).double()
    ties = torch.searchsorted(ys, x, right=True).double() - below
    v10 = (below + 0.5 * ties) / n                     # (m,)
    xs = x.sort().values
    above = m - torch.searchsorted(xs, y, right=True).double()
    tie_y = torch.searchsorted(xs, y, right=True).double() - torch.searchsorted(xs, y).double()
    v01 = (above + 0.5 * tie_y) / m                    # (n,)
    value = float(v10.mean())
    if m < 2 or n < 2:
        return Auroc(value, 0.0, 1.0, m, n, level)
    var = float(v10.var() / m + v01.var() / n)
    half = _normal_quantile(0.5 + level / 2) * math.sqrt(max(var, 0.0))
    return Auroc(value, max(0.0, value - half), min(1.0, value + half), m, n, level)
