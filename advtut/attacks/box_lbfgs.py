"""Projected L-BFGS over a box for ``N`` independent problems at once, as one batched state.

:func:`box_lbfgs` minimizes ``N`` functions, each of its own row of ``z`` ``(N, m)``, over
``[lo, hi]^m``, the way scipy's L-BFGS-B does for one: variables at a bound whose gradient
pushes outwards are held fixed (the active set), the quasi-Newton direction is computed on the
free variables, and each step is projected back onto the box inside a backtracking (Armijo)
line search; every row stops on scipy's criteria. It is the solver of the L-BFGS attack
(:mod:`advtut.attacks.lbfgs`), which keeps one ``_BoxLBFGS`` state for a whole batch and
restarts rows with new penalty weights while the others go on.

Example::

    z, f, n_iter = box_lbfgs(lambda z, rows: (z - 0.3).pow(2).sum(1), torch.rand(4, 10))
"""
from __future__ import annotations

import torch

__all__ = ["box_lbfgs"]


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
