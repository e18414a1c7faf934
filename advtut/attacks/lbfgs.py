"""Box-constrained L-BFGS adversarial examples (Szegedy et al., 2014, section 4.1).

The paper approximates ``D(x, l)``, the closest image to ``x`` in ``[0, 1]^m`` that the
classifier labels ``l``, by minimizing

    c * |r| + loss_f(x + r, l)    subject to    x + r in [0, 1]^m

with box-constrained L-BFGS, and searching over ``c > 0``. :func:`lbfgs_attack` does exactly
this for a batch: every example is its own problem with its own ``c``, and all of them are solved
together as tensors on the model's device.

- ``|r|`` is ``||r||_2`` by default (the norm the paper minimizes); ``norm="l2_squared"`` uses
  ``||r||_2^2`` instead (smooth at ``r = 0``). ``loss_f`` is the cross-entropy of the logits.
- The box is handled as L-BFGS-B does: variables at a bound whose gradient pushes outwards are
  held fixed (the active set), the quasi-Newton direction is computed on the free variables,
  and the step is projected back onto the box inside a backtracking (Armijo) line search. No
  clipping happens after the fact.
- The search over ``c``: a larger ``c`` weighs the distortion more, so the minimizer moves less;
  the smallest distortion is reached at the *largest* ``c`` whose minimizer still has the target
  label (the paper says "minimum c"; with the penalty on ``|r|`` it is the largest). Per example,
  ``c`` is multiplied or divided by 10 until the target is reached at one value and missed at a
  larger one, then bisected geometrically until the two differ by less than ``c_rel_tol``.
  With ``c ||r||_2`` and a loss convex in ``x`` (``convex=True``: a linear model), every ``c``
  at or above the norm of the loss's gradient at ``x`` (over the directions the box allows)
  has ``x`` itself as minimizer; those solves are booked without iterations. (For a network
  ``x`` is then only a local minimizer, and the search must try.)
- Fast on a CPU and a GPU alike: all examples share one L-BFGS state; when an example's solve
  for one ``c`` stops, it restarts from ``x`` with its next ``c`` while the others go on, and each
  step is one batched evaluation (a row that fails the line search halves its step at the next
  step instead of holding the batch up). ``benchmarks/lbfgs_attack.py`` measures it against
  scipy's L-BFGS-B run per example.

Example::

    result = lbfgs_attack(model, x, target)         # x: (N, 1, 28, 28) in [0, 1]
    result.success.float().mean(), result.distortion.mean()
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttackResult", "lbfgs_attack", "refine_on_boundary", "box_lbfgs", "penalty_objective",
           "distortion"]

NORMS = ("l2", "l2_squared")


@dataclass(frozen=True)
class AttackResult:
    """The outcome of an attack on ``N`` examples.

    ``x_adv``: same shape and dtype as ``x``, inside [0, 1] (``x`` itself where the attack
    failed); ``success``: bool ``(N,)``, the model labels ``x_adv`` as the target;
    ``distortion``: ``(N,)`` ``sqrt(sum((x_adv - x)^2) / n)`` with ``n`` the number of pixels
    (Szegedy et al., Table 1), 0 where the attack failed; ``c``: ``(N,)`` the penalty weight
    whose minimizer was kept (NaN where none reached the target); ``n_iter``: ``(N,)`` L-BFGS
    iterations summed over the search; ``n_solves``: ``(N,)`` values of ``c`` tried.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    distortion: torch.Tensor
    c: torch.Tensor
    n_iter: torch.Tensor
    n_solves: torch.Tensor


def distortion(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Szegedy et al.'s measure ``sqrt(sum((x_adv - x)^2) / n)`` per example, ``(N,)``."""
    diff = (x_adv - x).flatten(1)
    return diff.pow(2).mean(1).sqrt()


def penalty_objective(model: nn.Module, x: torch.Tensor, target: torch.Tensor, c: torch.Tensor,
                      *, norm: str = "l2"):
    """The per-example objective ``z -> c * |z - x| + CE(model(z), target)``, ``(N,)``.

    ``x``, ``z``: ``(N, m)`` flattened; the model sees them reshaped to ``x``'s original shape
    by the caller's closure. Returned as a function ``fun(z, rows=None)`` for :func:`box_lbfgs`:
    with ``rows`` (long indices), ``z`` holds only those examples.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")

    def fun(z: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        xr, tr, cr = (x, target, c) if rows is None else (x[rows], target[rows], c[rows])
        r2 = (z - xr).pow(2).sum(1)
        # sqrt(r2 + tiny): the L2 norm with gradient 0 (not NaN) at r = 0
        pen = r2 if norm == "l2_squared" else torch.sqrt(r2 + 1e-30)
        return cr * pen + F.cross_entropy(model(z), tr, reduction="none")

    return fun


def _value_and_grad(fun, z, rows):
    with torch.enable_grad():  # also under a caller's no_grad() or inference_mode()
        z = z.detach().clone().requires_grad_(True)
        f = fun(z, rows)
        (g,) = torch.autograd.grad(f.sum(), z)
    return f.detach(), g.detach()


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of two ``(N, m)`` tensors, ``(N,)``."""
    return torch.linalg.vecdot(a, b)


@torch.no_grad()
def _two_loop(g, free, S, Y, rho, valid, newest, n_pairs):
    """L-BFGS direction ``-H g`` on the free variables (``free``: 0/1 mask); ``S, Y``: ``(h, N, m)``.

    ``H`` is built from the ``n_pairs`` newest pairs, each restricted to the free variables (an
    example's discarded pairs have ``rho = 0`` and drop out). In-place updates, no temporaries.
    """
    h = S.shape[0]
    q = g * free
    order = [(newest - k) % h for k in range(n_pairs)]  # newest first
    alphas = []
    for k in order:
        a = rho[k] * _rowdot(S[k], q)
        q.addcmul_(Y[k], a[:, None], value=-1).mul_(free)  # q stays on the free variables
        alphas.append(a)
    # initial scaling from the newest valid pair; 1 / ||g|| where there is none
    sy, yy = _rowdot(S[newest], Y[newest]), _rowdot(Y[newest], Y[newest])
    gamma = torch.where(valid[newest] > 0, sy / yy.clamp_min(1e-300),
                        1.0 / torch.linalg.vector_norm(g * free, dim=1).clamp_min(1e-12))
    r = q.mul_(gamma[:, None])
    for k, a in zip(reversed(order), reversed(alphas)):
        b = rho[k] * _rowdot(Y[k], r)
        r.addcmul_(S[k], (a - b)[:, None]).mul_(free)
    return r.neg_()


def _projected_gradient_norm(z, g, lo, hi):
    return (z - (z - g).clamp(lo, hi)).abs().amax(1)


def box_lbfgs(fun, z0: torch.Tensor, *, lo: float = 0.0, hi: float = 1.0, max_iter: int = 300,
              history: int = 10, tol: float = 1e-5, ftol: float | None = None,
              max_backtracks: int = 20):
    """Minimize ``N`` independent functions over the box ``[lo, hi]^m`` with projected L-BFGS.

    ``fun(z, rows)``: ``z`` ``(R, m)`` holds the examples ``rows`` (long ``(R,)``); returns their
    values ``(R,)``, each depending on its own row only. ``z0``: ``(N, m)`` inside the box. An
    example stops, as in scipy's L-BFGS-B, when its projected gradient ``z - clip(z - g)`` has
    max-norm at most ``tol`` (``pgtol``), when a step lowers its value by a relative amount of at
    most ``ftol`` (``factr * eps``; default ``max(2.2e-9, 10 eps)`` of ``z0``'s dtype, so float32
    stops at its own precision), when the line search finds no decrease, or after ``max_iter``
    iterations. Each iteration works on the examples still running only; every line-search trial
    evaluates value and gradient together, so an accepted first step costs one forward and one
    backward pass. Returns ``(z, f, n_iter)``, ``n_iter`` ``(N,)``.
    """
    if history < 1 or max_iter < 1 or max_backtracks < 1 or not tol > 0 or not lo < hi:
        raise ValueError(f"need history, max_iter, max_backtracks >= 1, tol > 0 and lo < hi; got "
                         f"history={history}, max_iter={max_iter}, max_backtracks={max_backtracks}, "
                         f"tol={tol}, lo={lo}, hi={hi}")
    state = _BoxLBFGS(fun, z0, lo=lo, hi=hi, max_iter=max_iter, history=history, tol=tol,
                      ftol=ftol, max_backtracks=max_backtracks)
    while state.step():
        pass
    return state.z, state.f, state.n_iter


class _BoxLBFGS:
    """``N`` projected L-BFGS runs as one state.

    :meth:`step` makes one batched evaluation: every running row tries its current step; rows
    whose trial passes the Armijo test move and get a new direction next time, the others halve
    their step and try again at the next call (their line search runs *across* calls, so a few
    rows backtracking never cost a batch a string of tiny evaluations). :meth:`restart` starts
    some rows afresh (new start, history cleared) while the others go on, so that a search over
    ``c`` never waits for a batch's slowest solve.
    """

    def __init__(self, fun, z0, *, lo, hi, max_iter, history, tol, ftol, max_backtracks):
        n, m = z0.shape
        self.fun, self.lo, self.hi, self.tol = fun, lo, hi, tol
        self.max_iter, self.history, self.max_backtracks = max_iter, history, max_backtracks
        dev, dt = z0.device, z0.dtype
        self.ftol = max(2.2e-9, 10 * torch.finfo(dt).eps) if ftol is None else ftol
        self.z = z0.detach().clone()
        self.f, self.g = _value_and_grad(fun, self.z, torch.arange(n, device=dev))
        self.S = torch.zeros(history, n, m, dtype=dt, device=dev)
        self.Y = torch.zeros_like(self.S)
        self.rho = torch.zeros(history, n, dtype=dt, device=dev)
        self.valid = torch.zeros_like(self.rho)
        self.newest, self.n_pairs = 0, 0
        self.running = _projected_gradient_norm(self.z, self.g, lo, hi) > tol
        self.n_iter = torch.zeros(n, dtype=torch.long, device=dev)  # all iterations, per row
        self.it = torch.zeros(n, dtype=torch.long, device=dev)      # this run's, per row
        self.d = torch.zeros_like(self.z)                            # current search direction
        self.step_len = torch.ones(n, dtype=dt, device=dev)
        self.backtracks = torch.zeros(n, dtype=torch.long, device=dev)
        self.searching = torch.zeros(n, dtype=torch.bool, device=dev)  # mid line search

    @torch.no_grad()
    def restart(self, rows: torch.Tensor, z0_rows: torch.Tensor) -> None:
        if len(rows) == 0:
            return
        self.z[rows] = z0_rows
        for buf in (self.S, self.Y, self.rho, self.valid):
            buf[:, rows] = 0
        with torch.enable_grad():
            f, g = _value_and_grad(self.fun, self.z[rows], rows)
        self.f[rows], self.g[rows] = f, g
        self.it[rows] = 0
        self.searching[rows] = False
        self.running[rows] = _projected_gradient_norm(self.z[rows], g, self.lo, self.hi) > self.tol

    @torch.no_grad()
    def _new_directions(self, rows: torch.Tensor) -> None:
        z, g, lo, hi = self.z, self.g, self.lo, self.hi
        S, Y, rho, valid = self.S, self.Y, self.rho, self.valid
        n = z.shape[0]
        zr, gr = z[rows], g[rows]
        # active set: at a bound with the gradient pushing outwards
        free = (~(((zr <= lo) & (gr > 0)) | ((zr >= hi) & (gr < 0)))).to(z.dtype)
        if 2 * len(rows) >= n:  # most rows: work on all of them, mask the others
            everyone = len(rows) == n
            free_all = free if everyone else torch.zeros_like(z).index_copy_(0, rows, free)
            d = _two_loop(g, free_all, S, Y, rho, valid, self.newest, self.n_pairs)
            d = d if everyone else d[rows]
        else:  # a few rows: gather their history
            d = _two_loop(gr, free, S[:, rows], Y[:, rows], rho[:, rows], valid[:, rows],
                          self.newest, self.n_pairs)
        bad = _rowdot(gr, d) >= 0  # not a descent direction: restart from steepest descent
        if bad.any():
            gf = (gr * free)[bad]
            d[bad] = -gf / torch.linalg.vector_norm(gf, dim=1, keepdim=True).clamp_min(1e-12)
            valid[:, rows[bad]] = 0
            rho[:, rows[bad]] = 0
        self.d[rows] = d
        self.step_len[rows] = 1.0
        self.backtracks[rows] = 0
        self.searching[rows] = True

    def step(self) -> bool:
        """One batched evaluation for every running row; False (nothing done) when none runs."""
        act = self.running.nonzero().squeeze(1)
        if len(act) == 0:
            return False
        fresh = act[~self.searching[act]]
        if len(fresh):
            self._new_directions(fresh)
        z, g, f, lo, hi = self.z, self.g, self.f, self.lo, self.hi
        everyone = len(act) == z.shape[0]
        za, ga, fa = (z, g, f) if everyone else (z[act], g[act], f[act])
        with torch.no_grad():
            trial = (za + self.step_len[act, None] * self.d[act]).clamp(lo, hi)
        f_t, g_t = _value_and_grad(self.fun, trial, act)
        with torch.no_grad():
            s = trial - za
            ok = f_t <= fa + 1e-4 * _rowdot(ga, s)
            # rows that failed: halve the step for the next call, or give up
            failed = act[~ok]
            self.step_len[failed] *= 0.5
            self.backtracks[failed] += 1
            self.running[failed[self.backtracks[failed] >= self.max_backtracks]] = False
            # rows that moved: a new (s, y) pair, the stopping tests, a new direction next call
            y = g_t - ga
            sy = _rowdot(s, y)
            self.newest = (self.newest + 1) % self.history
            self.n_pairs = min(self.n_pairs + 1, self.history)
            k = self.newest
            keep = ok & (sy > 1e-10 * _rowdot(y, y).clamp_min(1e-300))
            for buf in (self.S[k], self.Y[k], self.rho[k], self.valid[k]):
                buf.zero_()
            self.S[k, act[keep]] = s[keep]
            self.Y[k, act[keep]] = y[keep]
            self.rho[k, act[keep]] = 1.0 / sy[keep]
            self.valid[k, act[keep]] = 1.0
            moved = act[ok]
            fo, fn = fa[ok], f_t[ok]
            scale = torch.maximum(torch.maximum(fo.abs(), fn.abs()), torch.ones_like(fo))
            stop = (fo - fn) <= self.ftol * scale
            stop |= _projected_gradient_norm(trial[ok], g_t[ok], lo, hi) <= self.tol
            z[moved], f[moved], g[moved] = trial[ok], fn, g_t[ok]  # written after reading za, fa
            self.n_iter[moved] += 1
            self.it[moved] += 1
            self.searching[moved] = False
            stop |= self.it[moved] >= self.max_iter
            self.running[moved[stop]] = False
        return True


def _check_inputs(model, x, target):
    if torch.is_inference_mode_enabled():
        raise ValueError("the attack needs gradients: call it outside torch.inference_mode() "
                         "(torch.no_grad() is fine)")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a float tensor (N, ...), got {type(x).__name__} "
                         f"{getattr(x, 'dtype', '')}")
    if x.ndim < 2:
        raise ValueError(f"x must have a batch dimension: (N, ...), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"x is an empty batch (shape {tuple(x.shape)}): nothing to attack")
    if not torch.isfinite(x).all():
        raise ValueError(f"x contains NaN or infinite values (shape {tuple(x.shape)})")
    if not isinstance(target, torch.Tensor) or target.dtype != torch.long:
        raise ValueError("target must be a long tensor of class indices, shape (N,)")
    if target.device != x.device:
        raise ValueError(f"x is on {x.device} but target on {target.device}: put both on the model's device")
    if target.shape != (x.shape[0],):
        raise ValueError(f"expected target to have shape ({x.shape[0]},), got {tuple(target.shape)}")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"x must lie in [0, 1]; got min {lo:.4g}, max {hi:.4g} for x of shape "
                         f"{tuple(x.shape)}")
    with torch.no_grad():
        logits = model(x)
    if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"model must return logits of shape (N, K), got {tuple(logits.shape)}")
    k = logits.shape[1]
    if (target < 0).any() or (target >= k).any():
        raise ValueError(f"target must be a class in [0, {k}), got values in "
                         f"[{int(target.min())}, {int(target.max())}]")
    same = logits.argmax(1) == target
    if same.any():
        raise ValueError(f"target equals the model's current label for {int(same.sum())} "
                         f"example(s) (first at index {int(same.nonzero()[0])}): D(x, f(x)) = x, "
                         f"there is nothing to attack; drop them or pick another target")


SOLVERS = ("batched", "scipy")


def _scipy_solve(fun, z0: torch.Tensor, *, lo: float, hi: float, max_iter: int, history: int,
                 tol: float):
    """The reference: scipy's L-BFGS-B on each row of ``z0`` alone (slow). scipy iterates in
    float64; the objective is evaluated in ``z0``'s dtype."""
    import numpy as np
    from scipy.optimize import minimize

    out, n_iter = z0.detach().clone(), torch.zeros(len(z0), dtype=torch.long)
    for i in range(len(z0)):
        row = torch.tensor([i], device=z0.device)

        def f_np(v):
            z = torch.as_tensor(v, dtype=z0.dtype, device=z0.device).view(1, -1)
            f, g = _value_and_grad(fun, z, row)
            return float(f), g.double().cpu().numpy().ravel()

        res = minimize(f_np, z0[i].double().cpu().numpy(), jac=True, method="L-BFGS-B",
                       bounds=[(lo, hi)] * z0.shape[1],
                       options={"maxiter": max_iter, "maxcor": history, "gtol": tol})
        out[i] = torch.as_tensor(np.clip(res.x, lo, hi), dtype=z0.dtype, device=z0.device)
        n_iter[i] = res.nit
    return out, n_iter.to(z0.device)


def lbfgs_attack(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, norm: str = "l2",
                 c_init: float = 1.0, c_rel_tol: float = 0.01, c_min: float = 1e-6,
                 c_max: float = 1e6, max_iter: int = 300, history: int = 10, tol: float = 1e-5,
                 refine: bool = False, solver: str = "batched", convex: bool = False,
                 progress: bool = False) -> AttackResult:
    """Szegedy et al.'s box-constrained L-BFGS attack, batched, with the search over ``c``.

    ``model``: an ``nn.Module`` mapping ``x`` to logits ``(N, K)`` (put in eval mode by the
    caller; it is not changed); ``x``: float ``(N, ...)`` in [0, 1]; ``target``: long ``(N,)``,
    different from the model's current labels. ``norm``: ``"l2"`` (``c ||r||_2``, the paper's)
    or ``"l2_squared"``. ``c`` starts at ``c_init`` and is bracketed by factors of 10 within
    ``[c_min, c_max]``, then bisected until ``c_fail / c_success - 1 <= c_rel_tol``; each value
    of ``c`` is a fresh L-BFGS solve from ``x`` (``max_iter``, ``history``, ``tol`` as in
    :func:`box_lbfgs`). ``solver="scipy"`` solves each problem alone with scipy's L-BFGS-B (same
    objective, same search over ``c``; the slow reference for tests and benchmarks).
    ``convex=True`` declares the loss convex in ``x`` (a linear model such as FC10), which settles
    every ``c`` above the gradient norm at ``x`` without a solve (see the module docstring); for
    a network leave it False.
    ``refine=True`` then shortens every successful ``r`` with :func:`refine_on_boundary` (not in
    the paper). Returns an :class:`AttackResult` holding, per example, the successful minimizer of
    smallest distortion.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if not (0 < c_min <= c_init <= c_max) or not c_rel_tol > 0:
        raise ValueError(f"need 0 < c_min <= c_init <= c_max and c_rel_tol > 0; got c_min={c_min}, "
                         f"c_init={c_init}, c_max={c_max}, c_rel_tol={c_rel_tol}")
    if history < 1 or max_iter < 1 or not tol > 0:
        raise ValueError(f"need history >= 1, max_iter >= 1 and tol > 0; got history={history}, "
                         f"max_iter={max_iter}, tol={tol}")
    _check_inputs(model, x, target)
    n, shape = x.shape[0], x.shape[1:]
    flat = x.detach().flatten(1)

    def net(z):  # (M, m) -> logits, in x's own shape
        return model(z.reshape(-1, *shape))

    dev, dt = x.device, flat.dtype
    c = torch.full((n,), float(c_init), dtype=dt, device=dev)
    c_ok = torch.zeros(n, dtype=dt, device=dev)            # largest c that reached the target
    c_fail = torch.full((n,), math.inf, dtype=dt, device=dev)  # smallest c that missed it
    best = flat.clone()
    best_dist = torch.full((n,), math.inf, dtype=dt, device=dev)
    best_c = torch.full((n,), math.nan, dtype=dt, device=dev)
    n_iter = torch.zeros(n, dtype=torch.long, device=dev)
    n_solves = torch.zeros(n, dtype=torch.long, device=dev)
    todo = torch.ones(n, dtype=torch.bool, device=dev)
    # With c ||r||_2, x itself is the minimizer for every c at or above the norm of the loss's
    # gradient at x over the directions the box allows (the subgradient of c ||r|| at r = 0 is
    # the ball of radius c): those solves need no iterations and end at x, missing the target.
    c_stay = torch.full((n,), math.inf, dtype=dt, device=dev)
    if norm == "l2" and convex:
        with torch.enable_grad():
            z0 = flat.detach().clone().requires_grad_(True)
            (g0,) = torch.autograd.grad(F.cross_entropy(net(z0), target, reduction="sum"), z0)
        movable = ~(((flat <= 0) & (g0 > 0)) | ((flat >= 1) & (g0 < 0)))
        c_stay = torch.linalg.vector_norm(g0 * movable, dim=1)

    def record(idx, z, it):
        """Book one finished solve per row of ``idx``; returns the rows whose search is done."""
        with torch.no_grad():
            hit = net(z).argmax(1) == target[idx]
            dist = (z - flat[idx]).pow(2).sum(1).sqrt()
        n_iter[idx] += it
        n_solves[idx] += 1
        better = hit & (dist < best_dist[idx])
        best[idx[better]] = z[better]
        best_dist[idx[better]] = dist[better]
        best_c[idx[better]] = c[idx[better]]
        c_ok[idx[hit]] = torch.maximum(c_ok[idx[hit]], c[idx[hit]])
        c_fail[idx[~hit]] = torch.minimum(c_fail[idx[~hit]], c[idx[~hit]])
        ci = c[idx]
        lo_, hi_ = c_ok[idx], c_fail[idx]
        nxt = torch.where(torch.isinf(hi_), ci * 10,                    # bracket upwards
                          torch.where(lo_ == 0, ci / 10,                 # bracket downwards
                                      torch.sqrt(lo_ * hi_)))           # geometric bisection
        done = ((lo_ > 0) & torch.isfinite(hi_) & (hi_ / lo_.clamp_min(1e-300) - 1 <= c_rel_tol))
        done |= (lo_ == 0) & (ci <= c_min * (1 + 1e-9))       # missed even at c_min: give up
        done |= torch.isinf(hi_) & (ci >= c_max * (1 - 1e-9))  # reached even at c_max: keep that
        c[idx] = nxt.clamp(c_min, c_max)
        todo[idx[done]] = False
        return done

    if solver == "scipy":  # one example after the other, each through its whole search
        while todo.any():
            idx = todo.nonzero().squeeze(1)
            z, it = flat[idx].clone(), torch.zeros(len(idx), dtype=torch.long, device=dev)
            run = (c[idx] < c_stay[idx]).nonzero().squeeze(1)
            fun = penalty_objective(net, flat[idx[run]], target[idx[run]], c[idx[run]], norm=norm)
            z[run], it[run] = _scipy_solve(fun, flat[idx[run]], lo=0.0, hi=1.0, max_iter=max_iter,
                                           history=history, tol=tol)
            record(idx, z, it)
    else:
        # every example in one L-BFGS state; when its solve for one c stops, it is booked and
        # restarted from x with the next c while the others go on (c is read at each call)
        fun = penalty_objective(net, flat, target, c, norm=norm)
        state = _BoxLBFGS(fun, flat, lo=0.0, hi=1.0, max_iter=max_iter, history=history,
                          tol=tol, ftol=None, max_backtracks=20)
        state.running &= c < c_stay
        steps = 0
        while True:
            finished = todo & ~state.running
            if finished.any():
                idx = finished.nonzero().squeeze(1)
                done = record(idx, state.z[idx].clone(), state.it[idx].clone())
                again = idx[~done]
                state.restart(again, flat[again])
                state.running[again] &= c[again] < c_stay[again]
            if not todo.any():
                break
            state.step()
            steps += 1
            if progress and steps % 50 == 0:
                print(f"[lbfgs_attack] {steps} iterations: {int(todo.sum())} of {n} still searching c")
    success = torch.isfinite(best_dist)
    x_adv = best.view_as(x).to(x.dtype)
    result = AttackResult(x_adv=x_adv, success=success,
                          distortion=torch.where(success, distortion(x_adv, x), torch.zeros_like(best_dist)),
                          c=best_c, n_iter=n_iter, n_solves=n_solves)
    return refine_on_boundary(model, x, result, target) if refine else result


def refine_on_boundary(model: nn.Module, x: torch.Tensor, result: AttackResult,
                       target: torch.Tensor, *, outer_steps: int = 30, rho: float = 10.0,
                       margin: float = 1e-5, max_iter: int = 200, tol: float = 1e-7) -> AttackResult:
    """Shorten each successful ``r`` by moving along the decision boundary (not in the paper).

    Solves ``min 1/2 ||z - x||_2^2  s.t.  logit_j(z) - logit_t(z) <= -margin (j != t), z in [0, 1]^m``
    from ``result.x_adv`` with an augmented Lagrangian: ``outer_steps`` rounds of
    :func:`box_lbfgs` on

        1/2 ||z - x||^2 + 1/(2 rho) sum_j (max(0, lam_j + rho h_j(z))^2 - lam_j^2),

    then ``lam_j <- max(0, lam_j + rho h_j(z))``. Each tie ``h_j`` is divided by the norm of its
    gradient at the start (every tie then reads as a signed distance, in pixel units). For a
    linear model the problem is the convex QP whose optimum is ``D(x, t)``, and this converges to
    it; for a network it is a local improvement. An example keeps its refined point only where
    the model labels it ``target`` and it is closer to ``x``; ``c``, ``n_iter``, ``n_solves`` are
    carried over from ``result``. Shapes as in :func:`lbfgs_attack`.
    """
    if outer_steps < 1 or not rho > 0 or margin < 0:
        raise ValueError(f"need outer_steps >= 1, rho > 0, margin >= 0; got outer_steps={outer_steps}, "
                         f"rho={rho}, margin={margin}")
    if result.x_adv.shape != x.shape:
        raise ValueError(f"result.x_adv has shape {tuple(result.x_adv.shape)}, x has {tuple(x.shape)}")
    if not isinstance(target, torch.Tensor) or target.dtype != torch.long or target.shape != (len(x),):
        raise ValueError(f"target must be a long tensor of shape ({len(x)},)")
    shape = x.shape[1:]
    idx = result.success.nonzero().squeeze(1)
    if len(idx) == 0:
        return result
    x0 = x.detach().flatten(1)[idx]
    z = result.x_adv.detach().flatten(1)[idx].clone()
    t = target[idx]

    def ties(v, tv):  # (R, K): logit_j - logit_t (+ margin); the target's own column never binds
        logits = model(v.reshape(-1, *shape))
        h = logits - logits.gather(1, tv[:, None]) + margin
        return h.scatter(1, tv[:, None], -math.inf)

    with torch.enable_grad():
        zg = z.clone().requires_grad_(True)
        h0 = ties(zg, t)
        k = h0.shape[1]
        norms = torch.ones_like(h0)
        for j in range(k):
            mask = t != j
            if mask.any():
                (gj,) = torch.autograd.grad(h0[:, j].masked_fill(~mask, 0).sum(), zg, retain_graph=True)
                norms[:, j] = torch.linalg.vector_norm(gj, dim=1).clamp_min(1e-12)
    norms = norms.detach()
    lam = torch.zeros_like(norms)

    for _ in range(outer_steps):
        def fun(v, rows, lam=lam):
            h = ties(v, t[rows]) / norms[rows]
            pen = (torch.clamp(lam[rows] + rho * h, min=0) ** 2 - lam[rows] ** 2).sum(1) / (2 * rho)
            return 0.5 * (v - x0[rows]).pow(2).sum(1) + pen
        z, _, _ = box_lbfgs(fun, z, max_iter=max_iter, tol=tol)
        with torch.no_grad():
            lam = torch.clamp(lam + rho * ties(z, t) / norms, min=0)
    with torch.no_grad():
        # the multipliers leave z a hair outside the target's region where the ties are not yet
        # exactly met: bisect on the segment to the (successful) start, which stays in the box
        start = result.x_adv.detach().flatten(1)[idx].to(z.dtype)
        a_lo, a_hi = torch.zeros(len(z), dtype=z.dtype, device=z.device), torch.ones_like(z[:, 0])
        hit = model(z.reshape(-1, *shape)).argmax(1) == t
        a_hi[hit] = 0.0
        for _ in range(40):
            if bool(hit.all()):
                break
            mid = (a_lo + a_hi) / 2
            ok = model((z + mid[:, None] * (start - z)).reshape(-1, *shape)).argmax(1) == t
            a_hi = torch.where(ok & ~hit, mid, a_hi)
            a_lo = torch.where(~ok & ~hit, mid, a_lo)
        z = z + a_hi[:, None] * (start - z)
        hit = model(z.reshape(-1, *shape)).argmax(1) == t
        shorter = (z - x0).pow(2).sum(1) < (result.x_adv.flatten(1)[idx] - x0).pow(2).sum(1)
        keep = hit & shorter
    flat = result.x_adv.flatten(1).clone()
    flat[idx[keep]] = z[keep].to(flat.dtype)
    x_adv = flat.view_as(x)
    return replace(result, x_adv=x_adv,
                   distortion=torch.where(result.success, distortion(x_adv, x),
                                          torch.zeros_like(result.distortion)))
