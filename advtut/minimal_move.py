"""The smallest L2 move that makes a classifier predict a chosen class.

For a point ``x`` ``(d,)`` and a target class ``t``, the minimal move is

    r* = argmin ||r||_2  subject to  z_t(x + r) >= z_j(x + r)  for every class j != t,

the distance from ``x`` to the closed region where ``t`` wins (a point on its edge is a tie; any
step further inside makes ``t`` the prediction). Three ways to get at it:

- :func:`exact_minimal_move` for a :class:`~advtut.linear.LinearSoftmax`: the region is the
  polyhedron ``{z : (w_t - w_j) . z + (b_t - b_j) >= 0}``, and the projection onto it lies in the
  affine hull of some set of active edges with linearly independent normals. Enumerating those
  sets (at most ``d`` of the ``K - 1`` edges), projecting onto each, and keeping the nearest
  feasible projection gives the exact answer (a vertex, a point on an edge, or ``x`` itself).
- :func:`pairwise_lower_bound`: the distance to the one line between the current class ``c``
  and ``t``, ``margin / ||w_c - w_t||_2``. Reaching ``t``'s region means crossing that line, so this
  is a lower bound; its foot point may lie in a third class's region (``feasible`` is False).
- :func:`minimal_move_gd`: gradient descent on an augmented Lagrangian, for any differentiable
  model returning logits; used here to check the exact answer independently.

Inside a box of valid pixel values (chapters 2 and 4): :func:`exact_minimal_move_box` (L2, a QP
solved through its dual) and :func:`exact_minimal_move_linf_box` (L-infinity, an LP).

Distances are in the features' units (cm for Iris).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from advtut import lagrangian
from advtut.linear import LinearSoftmax

__all__ = ["MinimalMove", "exact_minimal_move", "exact_minimal_move_box", "exact_minimal_move_linf_box",
           "two_class_bounds", "pairwise_lower_bound", "minimal_move_gd"]


@dataclass(frozen=True)
class MinimalMove:
    """Moves of ``N`` points, all float64.

    ``x_new``: ``(N, d)`` the moved points; ``r = x_new - x``; ``distance``: ``(N,)`` ``||r||_2``
    (``max |r_i|`` for the L-infinity move); ``feasible``: bool ``(N,)``, True where ``x_new``
    lies in the target's closed region (up to 1e-9 in the logits); ``active``: for the exact
    method, the classes whose tie with the target binds at ``x_new`` (empty where ``x`` is already
    in the region; two at a vertex in 2-D).
    """

    x_new: torch.Tensor
    r: torch.Tensor
    distance: torch.Tensor
    feasible: torch.Tensor
    active: tuple[tuple[int, ...], ...] | None = None


def _points_and_targets(x, target, *, d: int | None = None,
                        k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` as float64 ``(N, d)`` (a single ``(d,)`` point allowed) and ``target`` as int64
    ``(N,)`` (one int broadcast to all); ``d`` and ``k`` are checked where given."""
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    if x.ndim != 2 or (d is not None and x.shape[1] != d):
        raise ValueError(f"x must have shape (N, {d if d is not None else 'd'}), got {tuple(x.shape)}")
    target = torch.as_tensor(target, dtype=torch.int64).reshape(-1)
    if target.shape == (1,) and len(x) > 1:
        target = target.expand(len(x))
    if target.shape != (len(x),):
        raise ValueError(f"target must have shape ({len(x)},), got {tuple(target.shape)}")
    if k is not None and ((target < 0).any() or (target >= k).any()):
        raise ValueError(f"target must be a class in [0, {k}), got {target.tolist()}")
    return x, target


def _check(model: LinearSoftmax, x, target) -> tuple[torch.Tensor, torch.Tensor]:
    return _points_and_targets(x, target, d=model.n_features, k=model.n_classes)


def _check_box(model: LinearSoftmax, x, target, lo: float, hi: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_check`, and ``x`` inside the box ``[lo, hi]^d`` (with ``lo < hi``)."""
    x, target = _check(model, x, target)
    if not lo < hi:
        raise ValueError(f"the box needs lo < hi, got lo={lo}, hi={hi}")
    if (x < lo).any() or (x > hi).any():
        raise ValueError(f"x must lie in [{lo}, {hi}]; got min {float(x.min()):.4g}, "
                         f"max {float(x.max()):.4g}")
    return x, target


def _target_constraints(model: LinearSoftmax, t: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Rows ``A (K-1, d)``, ``c (K-1,)`` with the target's region ``A z + c >= 0``."""
    others = [j for j in range(model.n_classes) if j != t]
    A = model.weight[t] - model.weight[others]
    c = model.bias[t] - model.bias[others]
    return A, c, others


def exact_minimal_move(model: LinearSoftmax, x, target, *, tol: float = 1e-9) -> MinimalMove:
    """Exact projection of each point onto its target's decision region.

    x: ``(N, d)`` (or ``(d,)``) float; target: int ``(N,)`` or one int for all. Cost grows with
    the number of edge subsets, ``sum_{k<=d} C(K-1, k)``: meant for few classes (Iris: 4 subsets).
    """
    x, target = _check(model, x, target)
    d = model.n_features
    out, active = [], []
    for xn, t in zip(x, target.tolist()):
        A, c, others = _target_constraints(model, t)
        best = None
        for k in range(min(d, len(others)) + 1):
            for subset in itertools.combinations(range(len(others)), k):
                if k == 0:
                    z = xn
                else:
                    As, cs = A[list(subset)], c[list(subset)]
                    gram = As @ As.T
                    if torch.linalg.matrix_rank(gram) < k:
                        continue  # parallel edges: this set cannot be the active set
                    # projection onto {z : As z + cs = 0}
                    z = xn - As.T @ torch.linalg.solve(gram, As @ xn + cs)
                if ((A @ z + c) >= -tol).all():
                    dist = torch.linalg.vector_norm(z - xn)
                    if best is None or dist < torch.linalg.vector_norm(best - xn) - 1e-15:
                        best = z
        if best is None:  # cannot happen for a non-empty region; guard anyway
            raise RuntimeError(f"no feasible point found for target {t}: is its region empty?")
        out.append(best)
        # the binding ties, read off the answer (a corner binds two even if one set found it)
        moved = bool(torch.linalg.vector_norm(best - xn) > 0)
        residual = (A @ best + c).abs() / torch.linalg.vector_norm(A, dim=1).clamp_min(1e-300)
        active.append(tuple(o for o, r in zip(others, residual.tolist()) if moved and r <= 1e-9))
    x_new = torch.stack(out)
    r = x_new - x
    return MinimalMove(x_new, r, torch.linalg.vector_norm(r, dim=1),
                       torch.ones(len(x), dtype=torch.bool), tuple(active))


def _two_class(model: LinearSoftmax, x: torch.Tensor, target: torch.Tensor):
    """The two-class picture, ``x`` ``(N, d)`` float64: the winning class ``k`` ``(N,)``, the
    normal ``a = w_t - w_k`` ``(N, d)`` and the margin ``s_k - s_t >= 0`` ``(N,)``."""
    s = x @ model.weight.double().T + model.bias.double()
    k = s.argmax(1)
    a = model.weight.double()[target] - model.weight.double()[k]
    gap = (s.gather(1, k[:, None]) - s.gather(1, target[:, None])).squeeze(1).clamp_min(0)
    return k, a, gap


def two_class_bounds(model: LinearSoftmax, x: torch.Tensor, target: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The two-class closed forms against the currently winning class ``k``: the margin
    ``s_k - s_t`` over ``||a_t - a_k||_2`` (L2) and over ``||a_t - a_k||_1`` (L-infinity).

    They ignore the other classes and the box, so they are lower bounds of the exact optima.
    ``x``: ``(N, d)``; returns ``(l2, linf)``, each ``(N,)`` float64.
    """
    x = x.double().to(model.weight.device)
    _, a, gap = _two_class(model, x, target.to(model.weight.device))
    return gap / a.norm(dim=1).clamp_min(1e-300), gap / a.abs().sum(1).clamp_min(1e-300)


def pairwise_lower_bound(model: LinearSoftmax, x, target, *, tol: float = 1e-9) -> MinimalMove:
    """Project each point onto the tie line between its predicted class ``c`` and ``target``.

    ``distance = max(z_c - z_t, 0) / ||w_c - w_t||_2`` (the L2 half of
    :func:`two_class_bounds`): a lower bound on the exact distance. ``feasible`` says whether the
    foot point is in the target's region (it may be in a third class's region instead). Points
    already predicted as the target do not move.
    """
    x, target = _check(model, x, target)
    _, a, gap = _two_class(model, x, target)  # a: (N, d), the normal towards the target
    step = gap / (a * a).sum(1).clamp_min(1e-300)
    x_new = x + step.unsqueeze(1) * a
    logits = model.logits(x_new)
    feasible = logits.gather(1, target[:, None]).squeeze(1) >= logits.max(1).values - tol
    r = x_new - x
    return MinimalMove(x_new, r, torch.linalg.vector_norm(r, dim=1), feasible)


def minimal_move_gd(model, x, target, *, rho: float | None = None, outer_steps: int = 20,
                    inner_steps: int = 400, lr: float | None = None, tol: float = 1e-6) -> MinimalMove:
    """Minimal L2 move by gradient descent on an augmented Lagrangian (any differentiable model).

    ``model``: a callable mapping ``(N, d)`` float64 to logits ``(N, K)`` (an ``nn.Module`` or
    ``LinearSoftmax.logits``). The constraints are ``h_j(z) = z_j - z_t <= 0`` for ``j != t``;
    each outer step runs ``inner_steps`` plain gradient-descent steps on

        L(z) = 1/2 ||z - x||^2 + 1/(2 rho) * sum_j (max(0, lam_j + rho h_j(z))^2 - lam_j^2)

    and then updates ``lam_j <- max(0, lam_j + rho h_j(z))`` (:mod:`advtut.lagrangian`, shared with
    the L-BFGS attack's boundary refinement). Each ``h_j`` is first divided by
    ``||grad h_j(x)||`` (so every tie counts alike whatever the model's scale); ``rho`` defaults
    to 10 and ``lr`` to ``1 / (1 + rho * min(K - 1, d))``, a stable step for a linear model with
    every tie active.
    ``feasible``: ``max_j h_j(x_new) <= tol``.
    """
    x, target = _points_and_targets(x, target)
    if (rho is not None and rho <= 0) or outer_steps < 1 or inner_steps < 1:
        raise ValueError(f"rho must be > 0 (or None) and outer_steps, inner_steps >= 1; got "
                         f"rho={rho}, outer_steps={outer_steps}, inner_steps={inner_steps}")

    def raw_h(z):  # (N, K): z_j - z_t, the target's own column -inf (it never binds)
        logits = model(z)
        if logits.ndim != 2 or logits.shape[0] != len(x) or (target >= logits.shape[1]).any():
            raise ValueError(f"model must return logits (N, K) with targets < K, got {tuple(logits.shape)}")
        return lagrangian.ties(logits, target)

    scales = lagrangian.tie_scales(raw_h, x, target)  # (N, K)

    def h(z):  # the ties, each scaled to a unit gradient at x
        return raw_h(z) / scales

    k = scales.shape[1]
    rho = 10.0 if rho is None else rho
    lr = 1.0 / (1.0 + rho * min(k - 1, x.shape[1])) if lr is None else lr
    lam = torch.zeros_like(scales)
    z = x.clone()
    for _ in range(outer_steps):
        for _ in range(inner_steps):
            z.requires_grad_(True)
            loss = (0.5 * ((z - x) ** 2).sum(1) + lagrangian.penalty(h(z), lam, rho)).sum()
            (grad,) = torch.autograd.grad(loss, z)
            z = (z - lr * grad).detach()
        with torch.no_grad():
            lam = lagrangian.update_multipliers(h(z), lam, rho)
    with torch.no_grad():
        feasible = h(z).max(1).values <= tol
    r = z - x
    return MinimalMove(z, r, torch.linalg.vector_norm(r, dim=1), feasible)


def exact_minimal_move_box(model: LinearSoftmax, x, target, *, lo: float = 0.0, hi: float = 1.0,
                           tol: float = 1e-10) -> MinimalMove:
    """Exact smallest L2 move into the target's region *inside the box* ``[lo, hi]^d``.

    The convex QP ``min 1/2 ||z - x||^2  s.t.  A z + c >= 0,  lo <= z <= hi`` (``A``, ``c``: the
    target's ``K - 1`` ties) is solved through its dual, which has one variable per tie:

        z(lam) = clip(x + A^T lam, lo, hi),   maximize  q(lam) = 1/2||z - x||^2 - lam.(A z + c)

    over ``lam >= 0``. ``q`` is concave and continuously differentiable (gradient ``-(A z + c)``),
    so scipy's L-BFGS-B solves it to ``tol`` in a few dozen steps even for thousands of pixels;
    strong duality makes ``z(lam*)`` the primal optimum. ``x``: ``(N, d)`` inside the box;
    ``feasible`` is False where the target cannot be reached inside the box (the dual is
    unbounded). Used as the reference optimum for the L-BFGS attack (Szegedy et al.'s
    ``D(x, l)`` for a linear softmax model).
    """
    import numpy as np
    from scipy.optimize import minimize

    x, target = _check_box(model, x, target, lo, hi)
    W, b = model.weight.detach().cpu().numpy(), model.bias.detach().cpu().numpy()
    out, ok = [], []
    for xn, t in zip(x.cpu().numpy(), target.tolist()):
        others = [j for j in range(len(W)) if j != t]
        A, c = W[t] - W[others], b[t] - b[others]
        if (A @ xn + c >= 0).all():
            out.append(xn.copy())
            ok.append(True)
            continue

        def neg_dual(lam):
            z = np.clip(xn + A.T @ lam, lo, hi)
            g = A @ z + c
            return -(0.5 * np.sum((z - xn) ** 2) - lam @ g), g  # minimize -q; grad of -q is g

        res = minimize(neg_dual, np.zeros(len(others)), jac=True, method="L-BFGS-B",
                       bounds=[(0, None)] * len(others),
                       options={"ftol": 1e-15, "gtol": tol, "maxiter": 10_000, "maxcor": 30})
        z = np.clip(xn + A.T @ res.x, lo, hi)
        out.append(z)
        ok.append(bool((A @ z + c).min() >= -1e-6 * max(1.0, np.abs(A).max())))
    x_new = torch.as_tensor(np.stack(out), dtype=torch.float64, device=x.device)
    r = x_new - x
    return MinimalMove(x_new, r, torch.linalg.vector_norm(r, dim=1),
                       torch.tensor(ok, device=x.device))


def _linf_tau(v, b: float, x, lo: float, hi: float) -> float:
    """``v``, ``x``: NumPy ``(d,)``. The smallest ``t >= 0`` with ``b + sum_i |v_i| min(t, room_i)
    >= 0`` (inf if none), where
    ``room_i`` is how far pixel ``i`` can move in the direction of ``v_i`` inside the box: the
    best a combination ``v`` of the ties can gain with every pixel moved by at most ``t``."""
    import numpy as np

    if b >= 0:
        return 0.0
    room = np.where(v > 0, hi - x, x - lo)
    a = np.abs(v)
    order = np.argsort(room, kind="stable")
    room, a = room[order], a[order]
    tail = np.cumsum(a[::-1])[::-1]                       # slope of the gain on [room_{k-1}, room_k]
    gain_at = np.cumsum(a * room) - a * room + room * tail  # gain at t = room_k
    k = int(np.searchsorted(gain_at, -b))
    if k == len(room):
        return math.inf
    t0, g0 = (room[k - 1], gain_at[k - 1]) if k > 0 else (0.0, 0.0)
    return float(t0 + (-b - g0) / tail[k])


def _linf_value(D, e, x, t, lo, hi, rows: list[int], tol: float):
    """``max over |r_i| <= t, lo <= x + r <= hi`` of ``min_j D_j (x + r) + e_j``: an LP over the
    pixels solved on a growing subset ``rows`` of the ties (the others are checked after each
    solve and the most violated added). Returns the value, ``r``, the ties' weights (the LP's
    dual, summing to 1) and the rows used."""
    import numpy as np
    from scipy.optimize import linprog

    d = D.shape[1]
    bounds = np.stack([np.maximum(-t, lo - x), np.minimum(t, hi - x)], 1)
    base = D @ x + e
    cost = np.zeros(d + 1)
    cost[-1] = -1.0                                        # maximize z
    bounds = [*map(tuple, bounds), (None, None)]
    while True:
        a_ub = np.hstack([-D[rows], np.ones((len(rows), 1))])  # z - D_j r <= D_j x + e_j
        res = linprog(cost, A_ub=a_ub, b_ub=base[rows], bounds=bounds, method="highs")
        if res.status != 0:
            raise RuntimeError(f"the L-infinity subproblem did not solve: {res.message}")
        r, z = res.x[:-1], res.x[-1]
        g = D @ r + base
        missing = [j for j in np.argsort(g)[:8].tolist() if g[j] < z - tol and j not in rows]
        if not missing:
            lam = np.zeros(len(D))
            lam[rows] = -res.ineqlin.marginals
            return float(g.min()), r, lam, rows
        rows = rows + missing


def exact_minimal_move_linf_box(model: LinearSoftmax, x, target, *, lo: float = 0.0, hi: float = 1.0,
                                tol: float = 1e-9, max_rounds: int = 100) -> MinimalMove:
    """Exact smallest L-infinity move into the target's region inside the box ``[lo, hi]^d``.

    The LP ``min t  s.t.  A (x + r) + c >= 0,  |r_i| <= t,  lo <= x + r <= hi`` (``A``, ``c``: the
    target's ``K - 1`` ties, as in :func:`exact_minimal_move_box`). ``x``: ``(N, d)`` in the box;
    returns a :class:`MinimalMove` whose ``distance`` is ``max_i |r_i|`` (in the pixels' units);
    ``feasible`` False (distance inf) where the box forbids the target.

    Written as one LP it has ``2d`` rows for ``|r_i| <= t`` and ``K - 1`` dense ones: minutes
    per image at 12,288 pixels and 200 classes. Solved here in two nested, exact steps instead:

    - for a fixed ``t`` every pixel moves independently inside ``[max(-t, lo - x_i),
      min(t, hi - x_i)]``, and ``phi(t) = max_r min_j (tie j)`` is a small LP that only needs the
      few ties that bind (added as they are found violated);
    - its dual weights ``lam`` on the ties give a lower bound on ``t*``: the smallest ``t`` at
      which the single combined tie ``lam . (A (x + r) + c)`` can be met, in closed form by
      sorting the pixels' room to move. Starting from the best single tie, each round solves
      ``phi`` at the current bound; ``phi(t) >= 0`` proves it optimal, and otherwise the new
      ``lam`` raises the bound strictly. A handful of rounds suffice (about a second per image).

    The tests check it against the direct LP on small problems.
    """
    import numpy as np

    x, target = _check_box(model, x, target, lo, hi)
    W, bias = model.weight.detach().cpu().numpy(), model.bias.detach().cpu().numpy()
    moves = []
    for xn, t_cls in zip(x.cpu().numpy(), target.tolist()):
        others = [j for j in range(len(W)) if j != t_cls]
        moves.append(_linf_one(W[t_cls] - W[others], bias[t_cls] - bias[others], xn, lo, hi, tol, max_rounds))
    x_new = torch.as_tensor(np.stack([z for z, _ in moves]), dtype=torch.float64, device=x.device)
    ok = torch.tensor([feasible for _, feasible in moves], device=x.device)
    dist = torch.where(ok, (x_new - x).abs().amax(1), math.inf)
    return MinimalMove(x_new, x_new - x, dist, ok)


def _linf_one(D, e, x, lo: float, hi: float, tol: float, max_rounds: int):
    """One image's L-infinity optimum for the ties ``D z + e >= 0``: ``(z, feasible)``, with
    ``z = x`` where the box forbids the target (see :func:`exact_minimal_move_linf_box`)."""
    import numpy as np

    base = D @ x + e
    if base.min() >= 0:
        return x.copy(), True
    scale_tol = tol * max(1.0, float(np.abs(base).max()))
    single = np.array([_linf_tau(D[j], base[j], x, lo, hi) for j in range(len(D))])  # numpy input
    t = float(single.max())  # the best bound from one tie alone
    rows = list(dict.fromkeys([int(np.argmin(base)), int(np.argmax(single))]))
    for _ in range(max_rounds):
        if not math.isfinite(t):  # even one combination of the ties cannot be met inside the box
            return x.copy(), False
        value, r, lam, rows = _linf_value(D, e, x, t, lo, hi, rows, scale_tol)
        t_next = _linf_tau(lam @ D, float(lam @ base), x, lo, hi)
        if value >= -scale_tol or not t_next > t:  # optimal (or rounding stops the bound rising)
            z = np.clip(x + r, lo, hi)
            return z, bool((D @ z + e).min() >= -1e-6 * max(1.0, float(np.abs(D).max())))
        t = t_next
    raise RuntimeError(f"the L-infinity search did not converge in {max_rounds} rounds")
