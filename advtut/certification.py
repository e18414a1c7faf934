"""What a Lipschitz bound certifies, and how far below the truth it sits.

A classifier whose logit map is ``L``-Lipschitz in L2 keeps its label within
``margin / (sqrt 2 L)`` of an input (:func:`advtut.spectral.certified_radius`, Tsuzuku et al.,
2018). This module holds what surrounds that guarantee:

- :func:`certified_accuracy`: the fraction of examples labelled correctly *and* certified at
  each radius ``eps``, with Wilson 95% intervals (:mod:`advtut.intervals`);
- :func:`first_order_radius`: the margin-wise first-order estimate of the distance to the
  nearest label change, ``min_j (z_y - z_j) / ||grad (z_y - z_j)||`` (the distance to each
  linearised boundary; not a bound), and the labels ranked by it;
- :func:`lipschitz_lower_bound`: a *lower* bound on the network's constant over the input box,
  by gradient ascent on the stretch ``||f(x') - f(x)|| / ||x' - x||`` over pairs of inputs,
  then the Jacobian's norm at the points found, then a random local search
  (:func:`jacobian_climb`) for larger Jacobian norms around the best of them. With the product
  of the layers' bounds above, it brackets the true constant.

Every distance is L2 in the input's units (pixels in [0, 1] for the book's MNIST CNN).

Example::

    radius = certified_radius(logits(model, x), L)                      # (N,)
    table = certified_accuracy(logits(model, x), y, L, eps=(0.1, 0.5))
    low = lipschitz_lower_bound(model, x[:32], steps=100).value        # <= the true constant
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from advtut.intervals import proportion_interval
from advtut.spectral import certified_radius, local_lipschitz

__all__ = ["CertifiedAccuracy", "certified_accuracy", "FirstOrder", "first_order_radius",
           "LowerBound", "lipschitz_lower_bound", "jacobian_climb"]


@dataclass(frozen=True)
class CertifiedAccuracy:
    """Certified accuracy at each radius: ``eps``, ``accuracy``, ``low`` and ``high`` (the
    Wilson 95% interval), all ``(E,)`` float64; ``n``: the examples; ``lipschitz``: the bound
    used. At ``eps = 0`` the accuracy is the plain test accuracy (ties excluded)."""

    eps: torch.Tensor
    accuracy: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    n: int
    lipschitz: float

    def at(self, eps: float) -> tuple[float, float, float]:
        """``(accuracy, low, high)`` at the radius ``eps``, one of ``self.eps``."""
        hit = torch.isclose(self.eps, torch.tensor(float(eps), dtype=torch.float64)).nonzero()
        if len(hit) == 0:
            raise ValueError(f"eps={eps} is not among the radii {self.eps.tolist()}")
        k = int(hit[0])
        return float(self.accuracy[k]), float(self.low[k]), float(self.high[k])


def certified_accuracy(logits: torch.Tensor, y: torch.Tensor, lipschitz: float, *,
                       eps: Sequence[float]) -> CertifiedAccuracy:
    """The fraction of examples that are labelled ``y`` and whose certified radius
    ``margin / (sqrt 2 lipschitz)`` exceeds each ``eps`` (L2, the input's units).

    ``logits``: ``(N, K)`` at the clean inputs; ``y``: ``(N,)`` the true labels; ``lipschitz``:
    an upper bound on the logit map's L2 constant; ``eps``: radii ``>= 0``. An example counts
    at ``eps`` only when its radius is strictly larger: no perturbation of norm ``eps`` or less
    can then change its label.
    """
    radius = certified_radius(logits, lipschitz)                  # validates logits, lipschitz
    if not isinstance(y, torch.Tensor) or y.shape != (len(logits),):
        raise ValueError(f"y must have shape ({len(logits)},), got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    e = torch.as_tensor(list(eps), dtype=torch.float64)
    if e.ndim != 1 or len(e) == 0 or not bool((e >= 0).all()):
        raise ValueError(f"eps must be a non-empty sequence of radii >= 0, got {eps!r}")
    right = logits.detach().argmax(1).cpu() == y.detach().cpu().long()
    ok = right[None, :] & (radius.cpu()[None, :] > e[:, None])          # (E, N)
    k = ok.sum(1)
    n = len(logits)
    lows, highs = zip(*(proportion_interval(int(ki), n) for ki in k))
    return CertifiedAccuracy(e, k.double() / n, torch.tensor(lows, dtype=torch.float64),
                             torch.tensor(highs, dtype=torch.float64), n, float(lipschitz))


@dataclass(frozen=True)
class FirstOrder:
    """The margin-wise first-order estimate at each example, all ``(N,)`` but ``ranked``:
    ``estimate``: ``min_j (z_y - z_j) / ||grad_x (z_y - z_j)||`` over ``j != y``, the distance
    to the nearest linearised boundary (float64); ``label``: the ``j`` that attains it;
    ``ranked``: ``(N, K - 1)`` the wrong labels ordered by their estimate, nearest first."""

    estimate: torch.Tensor
    label: torch.Tensor
    ranked: torch.Tensor


def first_order_radius(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       y: torch.Tensor) -> FirstOrder:
    """:class:`FirstOrder` for the model's logits at ``x`` ``(N, ...)`` against labels ``y``
    ``(N,)`` (usually the predicted ones: the estimate of the distance to a label change).

    One vector-Jacobian product per class (``K`` backward passes of the batch) gives the input
    gradient of every logit; the difference of two logits' gradients is that of their
    difference. The model's own dtype and device; the distances in float64.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or not x.is_floating_point():
        raise ValueError("x must be a floating-point batch (N, ...), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(y, torch.Tensor) or y.shape != (len(x),):
        raise ValueError(f"y must have shape ({len(x)},), got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    xg = x.detach().clone().requires_grad_(True)
    z = model(xg)
    k = z.shape[1]
    grads = torch.stack([torch.autograd.grad(z[:, j].sum(), xg, retain_graph=j < k - 1)[0]
                         for j in range(k)], 1).flatten(2)                 # (N, K, D)
    y = y.to(z.device).long()
    rows = torch.arange(len(x), device=z.device)
    gap = (z[rows, y][:, None] - z).detach().double()                    # (N, K)
    slope = (grads[rows, y][:, None] - grads).double().norm(dim=2)        # (N, K)
    dist = gap / slope.clamp_min(1e-300)
    dist[rows, y] = math.inf
    order = dist.argsort(1)[:, :k - 1]
    best = dist.gather(1, order[:, :1]).squeeze(1)
    return FirstOrder(best.cpu(), order[:, 0].cpu(), order.cpu())


@dataclass(frozen=True)
class LowerBound:
    """A lower bound on a function's L2 Lipschitz constant over the input box.

    ``value``: the largest of ``pair``, ``jacobian``, ``climbed`` and ``at_start``; ``pair``:
    the largest stretch ``||f(x') - f(x)|| / ||x' - x||`` met during the ascent (every pair is
    inside the box); ``jacobian``: the largest Jacobian norm (power iteration, itself from
    below) at the points the ascent ended on; ``climbed``: the largest Jacobian norm the local
    search :func:`jacobian_climb` reached from the best point of each start (0 without it);
    ``at_start``: the largest Jacobian norm at the starting points, and ``start_norms`` ``(N,)``
    each start's; ``x``: ``(1, ...)`` the point where ``value`` was found; ``steps``: the
    ascent's steps."""

    value: float
    pair: float
    jacobian: float
    climbed: float
    at_start: float
    start_norms: torch.Tensor
    x: torch.Tensor
    steps: int


def jacobian_climb(f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, *,
                   rounds: int, proposals: int = 8, sigma: float = 0.1,
                   bounds: tuple[float, float] = (0.0, 1.0), power_iter: int = 10,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random local search for inputs where ``f``'s Jacobian stretches most.

    ``x0``: ``(N, ...)`` starting points inside ``bounds``. Each round draws ``proposals``
    seeded Gaussian moves of per-pixel standard deviation ``sigma`` around each current point,
    clamps them to the box, measures every proposal's Jacobian norm with
    :func:`~advtut.spectral.local_lipschitz` (``power_iter`` iterations: an estimate from
    below, so a lower bound on the constant even when not converged) and keeps the best
    proposal when it beats the current point. A ReLU network's Jacobian is constant between
    the kinks, so it has no gradient to follow; this search needs none, and never goes down.

    Returns ``(x, norms)``: ``(N, ...)`` the points reached and ``(N,)`` their Jacobian norms
    (the starts' own when nothing better was found)."""
    lo, hi = bounds
    for name, v in (("rounds", rounds), ("proposals", proposals), ("power_iter", power_iter)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "rounds" else 1):
            raise ValueError(f"{name} must be a {'non-negative' if name == 'rounds' else 'positive'}"
                             f" integer, got {v!r}")
    if not (sigma > 0 and hi > lo):
        raise ValueError(f"need sigma > 0 and bounds (low, high) with high > low; got "
                         f"sigma={sigma}, bounds={bounds}")
    _check_start(x0, bounds, "x0")
    gen = torch.Generator().manual_seed(seed)
    cur = x0.detach().clone()
    best = local_lipschitz(f, cur, max_iter=power_iter, seed=seed)
    n, shape = len(cur), cur.shape[1:]
    for r in range(rounds):
        noise = torch.randn((n * proposals, *shape), generator=gen, dtype=cur.dtype)
        cand = (cur.repeat_interleave(proposals, 0) + sigma * noise.to(cur.device)).clamp(lo, hi)
        norms = local_lipschitz(f, cand, max_iter=power_iter, seed=seed + 1 + r)
        top, pick = norms.view(n, proposals).max(1)
        better = top > best
        cur[better] = cand.view(n, proposals, *shape)[better, pick[better]]
        best = torch.where(better, top, best)
    return cur, best


def _check_start(x0, bounds, name):
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2 or not x0.is_floating_point():
        raise ValueError(f"{name} must be a floating-point batch (N, ...), got "
                         f"{tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__}")
    if bool((x0 < bounds[0]).any() or (x0 > bounds[1]).any()):
        raise ValueError(f"{name} must lie inside bounds {bounds}: clamp it first")


def lipschitz_lower_bound(f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, *,
                          steps: int = 100, lr: float = 0.01, radius: float = 0.5,
                          bounds: tuple[float, float] = (0.0, 1.0), power_iter: int = 100,
                          climb_rounds: int = 0, climb_sigma: float = 0.1,
                          climb_proposals: int = 8, seed: int = 0) -> LowerBound:
    """Search the box for inputs where ``f`` stretches most: a lower bound on its constant.

    ``f``: maps ``(N, ...)`` to ``(N, ...)`` example by example (a model in eval mode);
    ``x0``: ``(N, ...)`` starting points inside ``bounds`` (test images, uniform noise, ...).
    Each start ``x`` is paired with ``x' = x + r``, ``r`` a seeded random direction of L2 norm
    ``radius``; Adam (``lr``, ``steps`` steps) moves both points, projected onto the box after
    every step, to increase ``log ||f(x') - f(x)|| - log ||x' - x||``. A ReLU network's
    Jacobian is constant between the kinks, so its own gradient with respect to the input is
    zero almost everywhere; the pair's stretch is not, which is why the ascent works on pairs.
    Afterwards the Jacobian's norm at every point reached (and at the starts) is measured by
    :func:`~advtut.spectral.local_lipschitz`, and with ``climb_rounds > 0``
    :func:`jacobian_climb` (``climb_sigma``, ``climb_proposals``, 10 power iterations per
    proposal) searches around the best of each start's three points. Every number returned is
    a stretch attained in the box, so each is at most the true constant.
    """
    lo, hi = bounds
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if isinstance(power_iter, bool) or not isinstance(power_iter, int) or power_iter < 1:
        raise ValueError(f"power_iter must be a positive integer, got {power_iter!r}")
    if not (lr > 0 and radius > 0 and hi > lo):
        raise ValueError(f"need lr > 0, radius > 0 and bounds (low, high) with high > low; got "
                         f"lr={lr}, radius={radius}, bounds={bounds}")
    _check_start(x0, bounds, "x0")
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(x0.shape, generator=gen, dtype=x0.dtype).to(x0.device)
    r = r * radius / r.flatten(1).norm(dim=1).view(-1, *[1] * (r.ndim - 1))
    a = x0.detach().clone().requires_grad_(True)
    b = (x0.detach() + r).clamp(lo, hi).requires_grad_(True)
    opt = torch.optim.Adam([a, b], lr=lr)
    best = 0.0
    for step in range(steps + 1):
        num = (f(b) - f(a)).flatten(1).norm(dim=1)
        den = (b - a).flatten(1).norm(dim=1)
        ratio = (num / den.clamp_min(1e-12)).where(den > 1e-12, torch.zeros_like(num))
        best = max(best, float(ratio.detach().max()))
        if step == steps:
            break
        loss = -(num.clamp_min(1e-30).log() - den.clamp_min(1e-12).log()).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            a.clamp_(lo, hi)
            b.clamp_(lo, hi)
    n = len(x0)
    start = local_lipschitz(f, x0.detach(), max_iter=power_iter, seed=seed)
    points = torch.cat([x0.detach(), a.detach(), b.detach()])                 # (3N, ...)
    norms = torch.cat([start, local_lipschitz(f, points[n:], max_iter=power_iter, seed=seed)])
    jac = float(norms[n:].max())
    # each start's best of (start, a, b), then the local search from there
    own = norms.view(3, n).argmax(0)
    tops = points.view(3, n, *x0.shape[1:])[own, torch.arange(n, device=own.device)]
    climbed = 0.0
    if climb_rounds:
        tops, top_norms = jacobian_climb(f, tops, rounds=climb_rounds, proposals=climb_proposals,
                                         sigma=climb_sigma, bounds=bounds, seed=seed)
        climbed = float(top_norms.max())
        points, norms = torch.cat([points, tops]), torch.cat([norms, top_norms])
    i = int(norms.argmax())
    return LowerBound(max(best, float(norms.max())), best, jac, climbed, float(start.max()),
                      start.cpu(), points[i:i + 1].cpu(), steps)
