"""Box-constrained L-BFGS adversarial examples (Szegedy et al., 2014, section 4.1).

The paper approximates ``D(x, l)``, the closest image to ``x`` in ``[0, 1]^m`` that the
classifier labels ``l``, by minimizing::

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
  scipy's L-BFGS-B run per example (the reference the tests check it against,
  ``tests/attacks/lbfgs_reference.py``).

The pieces: :class:`LBFGSSearch` (the settings of the search over ``c`` and of each solve),
:func:`penalty_objective` (the function minimized for one ``c``), :func:`c_search_step` (one
step of the search over ``c``, testable alone), :class:`SearchState` (every example's bracket,
best point and counts), the solver :func:`~advtut.attacks.box_lbfgs.box_lbfgs` (its own
module), :func:`lbfgs_attack` (all of it) and :func:`refine_on_boundary` (not in the paper).
Distortions are :func:`advtut.distances.rms`.
Both functions refuse a model in train mode (:func:`advtut.evaluation.require_eval_mode`).

Example::

    result = lbfgs_attack(model, x, target)         # x: (N, 1, 28, 28) in [0, 1]
    result.success.float().mean(), result.distortion.mean()
    finer = lbfgs_attack(model, x, target, settings=LBFGSSearch(c_rel_tol=1e-4, tol=1e-9))
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

from advtut import lagrangian
from advtut.attacks.base import AttackResult, check_attack_inputs
from advtut.attacks.box_lbfgs import _BoxLBFGS, box_lbfgs
from advtut.distances import rms
from advtut.evaluation import require_eval_mode

__all__ = ["LBFGSSearch", "lbfgs_attack", "refine_on_boundary", "penalty_objective", "CStep",
           "c_search_step", "SearchState", "prepare_search"]

NORMS = ("l2", "l2_squared")


@dataclass(frozen=True)
class LBFGSSearch:
    """The settings of :func:`lbfgs_attack`'s search over ``c`` and of each L-BFGS solve.

    ``c`` starts at ``c_init`` and moves by :func:`c_search_step` within ``[c_min, c_max]``
    (``0 < c_min <= c_init <= c_max``) until ``c_fail / c_ok - 1 <= c_rel_tol`` (``> 0``); each
    value of ``c`` is a fresh solve from ``x`` of at most ``max_iter`` iterations with
    ``history`` correction pairs, stopping at projected-gradient max-norm ``tol`` (as in
    :func:`~advtut.attacks.box_lbfgs.box_lbfgs`). ``ValueError`` on construction otherwise.
    """

    c_init: float = 1.0
    c_rel_tol: float = 0.01
    c_min: float = 1e-6
    c_max: float = 1e6
    max_iter: int = 300
    history: int = 10
    tol: float = 1e-5

    def __post_init__(self):
        if not (0 < self.c_min <= self.c_init <= self.c_max) or not self.c_rel_tol > 0:
            raise ValueError(f"need 0 < c_min <= c_init <= c_max and c_rel_tol > 0; got "
                             f"c_min={self.c_min}, c_init={self.c_init}, c_max={self.c_max}, "
                             f"c_rel_tol={self.c_rel_tol}")
        if self.history < 1 or self.max_iter < 1 or not self.tol > 0:
            raise ValueError(f"need history >= 1, max_iter >= 1 and tol > 0; got "
                             f"history={self.history}, max_iter={self.max_iter}, tol={self.tol}")


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



@dataclass(frozen=True)
class CStep:
    """One step of the search over ``c`` for ``R`` examples, all ``(R,)`` tensors.

    ``c_ok``: the largest ``c`` tried whose minimizer reached the target (0: none yet);
    ``c_fail``: the smallest ``c`` tried whose minimizer missed it (inf: none yet); ``c_next``:
    the value to try next; ``done``: bool, the example's search is over.
    """

    c_ok: torch.Tensor
    c_fail: torch.Tensor
    c_next: torch.Tensor
    done: torch.Tensor


def c_search_step(c: torch.Tensor, hit: torch.Tensor, c_ok: torch.Tensor, c_fail: torch.Tensor,
                  *, c_min: float, c_max: float, c_rel_tol: float) -> CStep:
    """Book the solve at ``c`` (``hit``: its minimizer reached the target) and pick the next ``c``.

    All arguments are ``(R,)``: ``c`` the values just tried, ``hit`` bool, ``c_ok``/``c_fail``
    the bracket so far (0 and inf before any solve). A hit raises ``c_ok`` to ``c``, a miss lowers
    ``c_fail`` to ``c``. Until both ends are known, ``c`` is multiplied by 10 (no miss yet) or
    divided by 10 (no hit yet); then it is bisected geometrically, ``sqrt(c_ok * c_fail)``. An
    example is done when ``c_fail / c_ok - 1 <= c_rel_tol``, when it missed even at ``c_min``, or
    when it hit even at ``c_max``. ``c_next`` is clamped to ``[c_min, c_max]``.
    """
    c_ok = torch.where(hit, torch.maximum(c_ok, c), c_ok)
    c_fail = torch.where(hit, c_fail, torch.minimum(c_fail, c))
    nxt = torch.where(torch.isinf(c_fail), c * 10,                  # bracket upwards
                      torch.where(c_ok == 0, c / 10,                 # bracket downwards
                                  torch.sqrt(c_ok * c_fail)))        # geometric bisection
    done = ((c_ok > 0) & torch.isfinite(c_fail)
            & (c_fail / c_ok.clamp_min(1e-300) - 1 <= c_rel_tol))
    done |= (c_ok == 0) & (c <= c_min * (1 + 1e-9))        # missed even at c_min: give up
    done |= torch.isinf(c_fail) & (c >= c_max * (1 - 1e-9))  # reached even at c_max: keep that
    return CStep(c_ok, c_fail, nxt.clamp(c_min, c_max), done)


def _stay_threshold(net, flat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(N,)``: the norm of the loss's gradient at ``x`` over the directions the box allows.

    With ``c ||r||_2`` and a loss convex in ``x``, ``x`` itself is the minimizer for every ``c``
    at or above it (the subgradient of ``c ||r||`` at ``r = 0`` is the ball of radius ``c``):
    those solves need no iterations and end at ``x``, missing the target.
    """
    with torch.enable_grad():
        z0 = flat.detach().clone().requires_grad_(True)
        (g0,) = torch.autograd.grad(F.cross_entropy(net(z0), target, reduction="sum"), z0)
    movable = ~(((flat <= 0) & (g0 > 0)) | ((flat >= 1) & (g0 < 0)))
    return torch.linalg.vector_norm(g0 * movable, dim=1)


class SearchState:
    """The search over ``c`` for ``N`` examples, as tensors ``(N,)`` on ``flat``'s device.

    ``flat``: the inputs ``(N, m)``; ``target``: long ``(N,)``; ``net``: ``(M, m) -> (M, K)``
    logits. Per example: ``c`` the value being solved (read by the objective at each call, so
    updated in place), the bracket ``c_ok``/``c_fail`` of :func:`c_search_step`, the successful
    minimizer of smallest L2 distance so far (``best``, ``best_dist``, ``best_c``), the counts
    ``n_iter``/``n_solves``, and ``todo``, whose search is not over. :meth:`record` books
    finished solves; :meth:`result` makes the :class:`AttackResult`.
    """

    def __init__(self, net, flat: torch.Tensor, target: torch.Tensor, settings: LBFGSSearch):
        n, dev, dt = flat.shape[0], flat.device, flat.dtype
        self.net, self.flat, self.target, self.settings = net, flat, target, settings
        self.c = torch.full((n,), float(settings.c_init), dtype=dt, device=dev)
        self.c_ok = torch.zeros(n, dtype=dt, device=dev)            # largest c that reached it
        self.c_fail = torch.full((n,), math.inf, dtype=dt, device=dev)  # smallest that missed
        self.best = flat.clone()
        self.best_dist = torch.full((n,), math.inf, dtype=dt, device=dev)
        self.best_c = torch.full((n,), math.nan, dtype=dt, device=dev)
        self.n_iter = torch.zeros(n, dtype=torch.long, device=dev)
        self.n_solves = torch.zeros(n, dtype=torch.long, device=dev)
        self.todo = torch.ones(n, dtype=torch.bool, device=dev)

    def record(self, idx: torch.Tensor, z: torch.Tensor, it: torch.Tensor) -> torch.Tensor:
        """Book one finished solve per row of ``idx`` (long ``(R,)``): its minimizer ``z``
        ``(R, m)`` after ``it`` iterations; moves each row's ``c`` on. Returns bool ``(R,)``,
        the rows whose search is over."""
        s = self.settings
        with torch.no_grad():
            hit = self.net(z).argmax(1) == self.target[idx]
            dist = (z - self.flat[idx]).pow(2).sum(1).sqrt()
        self.n_iter[idx] += it
        self.n_solves[idx] += 1
        better = hit & (dist < self.best_dist[idx])
        self.best[idx[better]] = z[better]
        self.best_dist[idx[better]] = dist[better]
        self.best_c[idx[better]] = self.c[idx[better]]
        step = c_search_step(self.c[idx], hit, self.c_ok[idx], self.c_fail[idx], c_min=s.c_min,
                             c_max=s.c_max, c_rel_tol=s.c_rel_tol)
        self.c_ok[idx], self.c_fail[idx], self.c[idx] = step.c_ok, step.c_fail, step.c_next
        self.todo[idx[step.done]] = False
        return step.done

    def result(self, x: torch.Tensor) -> AttackResult:
        """The kept minimizers as an :class:`AttackResult` for the inputs ``x`` ``(N, ...)``."""
        success = torch.isfinite(self.best_dist)
        x_adv = self.best.view_as(x).to(x.dtype)
        d = torch.where(success, rms(x_adv, x), torch.zeros_like(self.best_dist))
        return AttackResult(x_adv=x_adv, success=success, distortion=d, c=self.best_c,
                            n_iter=self.n_iter, n_solves=self.n_solves)


def prepare_search(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                   settings: "LBFGSSearch", *, norm: str, convex: bool, what: str):
    """The checks and the starting state every solver of the attack shares: ``(n, shape, flat,
    net, search, c_stay)`` with ``flat`` ``(N, m)`` the inputs flattened, ``net`` the model on
    flat inputs, ``search`` a fresh :class:`SearchState` and ``c_stay`` ``(N,)`` the penalty
    weight above which a convex model's optimum is ``x`` itself (inf otherwise)."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if not isinstance(settings, LBFGSSearch):
        raise ValueError(f"settings must be an LBFGSSearch, got {type(settings).__name__}")
    require_eval_mode(model, what=what)
    check_attack_inputs(model, x, target, targeted=True)
    n, shape = x.shape[0], x.shape[1:]
    flat = x.detach().flatten(1)

    def net(z):  # (M, m) -> logits, in x's own shape
        return model(z.reshape(-1, *shape))

    search = SearchState(net, flat, target, settings)
    c_stay = torch.full((n,), math.inf, dtype=flat.dtype, device=flat.device)
    if norm == "l2" and convex:
        c_stay = _stay_threshold(net, flat, target)
    return n, shape, flat, net, search, c_stay


def lbfgs_attack(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
                 settings: LBFGSSearch = LBFGSSearch(), norm: str = "l2", convex: bool = False,
                 refine: bool = False, progress: bool = False) -> AttackResult:
    """Szegedy et al.'s box-constrained L-BFGS attack, batched, with the search over ``c``.

    ``model``: an ``nn.Module`` in eval mode (``ValueError`` otherwise; it is not changed)
    mapping ``x`` to logits ``(N, K)``; ``x``: float ``(N, ...)`` in [0, 1]; ``target``: long
    ``(N,)`` on ``x``'s device, different from the model's current labels. ``settings``: the
    search over ``c`` and each solve's limits (:class:`LBFGSSearch`). ``norm``: ``"l2"``
    (``c ||r||_2``, the paper's) or ``"l2_squared"``. ``convex=True`` declares the loss convex
    in ``x`` (a linear model such as FC10), which settles every ``c`` above the gradient norm at
    ``x`` without a solve (see the module docstring); for a network leave it False.
    ``refine=True`` then shortens every successful ``r`` with :func:`refine_on_boundary` (not in
    the paper). ``progress``: a tqdm bar of the examples whose search is over. Returns an
    :class:`AttackResult` holding, per example, the successful minimizer of smallest distortion
    (``distortion``: :func:`advtut.distances.rms`).
    """
    n, shape, flat, net, search, c_stay = prepare_search(model, x, target, settings, norm=norm,
                                                         convex=convex, what="lbfgs_attack")
    s = settings
    # every example in one L-BFGS state; when its solve for one c stops, it is booked and
    # restarted from x with the next c while the others go on (c is read at each call)
    fun = penalty_objective(net, flat, target, search.c, norm=norm)
    state = _BoxLBFGS(fun, flat, lo=0.0, hi=1.0, max_iter=s.max_iter, history=s.history,
                      tol=s.tol, ftol=None, max_backtracks=20)
    state.running &= search.c < c_stay
    with tqdm(total=n, desc="lbfgs_attack", unit="example", disable=not progress,
              mininterval=2.0) as bar:
        while True:
            finished = search.todo & ~state.running
            if finished.any():
                idx = finished.nonzero().squeeze(1)
                done = search.record(idx, state.z[idx].clone(), state.it[idx].clone())
                bar.update(int(done.sum()))
                again = idx[~done]
                state.restart(again, flat[again])
                state.running[again] &= search.c[again] < c_stay[again]
            if not search.todo.any():
                break
            state.step()
    result = search.result(x)
    return refine_on_boundary(model, x, result, target) if refine else result


def refine_on_boundary(model: nn.Module, x: torch.Tensor, result: AttackResult,
                       target: torch.Tensor, *, outer_steps: int = 30, rho: float = 10.0,
                       margin: float = 1e-5, max_iter: int = 200,
                       tol: float = 1e-7) -> AttackResult:
    """Shorten each successful ``r`` by moving along the decision boundary (not in the paper).

    Solves ``min 1/2 ||z - x||_2^2`` s.t. ``logit_j(z) - logit_t(z) <= -margin`` (``j != t``) and
    ``z in [0, 1]^m`` from ``result.x_adv`` with an augmented Lagrangian: ``outer_steps`` rounds of
    :func:`box_lbfgs` on

        1/2 ||z - x||^2 + 1/(2 rho) sum_j (max(0, lam_j + rho h_j(z))^2 - lam_j^2),

    then ``lam_j <- max(0, lam_j + rho h_j(z))``. Each tie ``h_j`` is divided by the norm of its
    gradient at the start (every tie then reads as a signed distance, in pixel units). For a
    linear model the problem is the convex QP whose optimum is ``D(x, t)``, and this converges to
    it; for a network it is a local improvement. An example keeps its refined point only where
    the model labels it ``target`` and it is closer to ``x``; ``c``, ``n_iter``, ``n_solves`` are
    carried over from ``result``. Shapes, and the model in eval mode, as in :func:`lbfgs_attack`.
    """
    require_eval_mode(model, what="refine_on_boundary")
    if outer_steps < 1 or not rho > 0 or margin < 0:
        raise ValueError(f"need outer_steps >= 1, rho > 0, margin >= 0; got "
                         f"outer_steps={outer_steps}, rho={rho}, margin={margin}")
    if result.x_adv.shape != x.shape:
        raise ValueError(f"result.x_adv has shape {tuple(result.x_adv.shape)}, x has "
                         f"{tuple(x.shape)}")
    if (not isinstance(target, torch.Tensor) or target.dtype != torch.long
            or target.shape != (len(x),)):
        raise ValueError(f"target must be a long tensor of shape ({len(x)},)")
    shape = x.shape[1:]
    idx = result.success.nonzero().squeeze(1)
    if len(idx) == 0:
        return result
    x0 = x.detach().flatten(1)[idx]
    z = result.x_adv.detach().flatten(1)[idx].clone()
    t = target[idx]

    def ties(v, tv):  # (R, K): logit_j - logit_t + margin; the target's own column -inf
        return lagrangian.ties(model(v.reshape(-1, *shape)), tv, margin=margin)

    scales = lagrangian.tie_scales(lambda v: ties(v, t), z, t)  # (R, K), at the start
    lam = torch.zeros_like(scales)
    for _ in range(outer_steps):
        def fun(v, rows, lam=lam):
            h = ties(v, t[rows]) / scales[rows]
            return 0.5 * (v - x0[rows]).pow(2).sum(1) + lagrangian.penalty(h, lam[rows], rho)
        z, _, _ = box_lbfgs(fun, z, max_iter=max_iter, tol=tol)
        with torch.no_grad():
            lam = lagrangian.update_multipliers(ties(z, t) / scales, lam, rho)
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
                   distortion=torch.where(result.success, rms(x_adv, x),
                                          torch.zeros_like(result.distortion)))
