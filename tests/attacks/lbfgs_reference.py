"""The reference the L-BFGS attack is checked against: the same search over ``c`` with every
solve done by scipy's L-BFGS-B on one example at a time (slow; tests and benchmarks only).

:func:`lbfgs_attack_scipy` takes :func:`advtut.attacks.lbfgs.lbfgs_attack`'s arguments and
returns the same :class:`~advtut.attacks.base.AttackResult`; only the solver differs (scipy
iterates in float64, the objective is evaluated in ``x``'s dtype). Imported by
``tests/attacks/test_lbfgs.py`` and ``benchmarks/lbfgs_attack.py``.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from advtut.attacks.base import AttackResult
from advtut.attacks.box_lbfgs import _value_and_grad
from advtut.attacks.lbfgs import LBFGSSearch, penalty_objective, prepare_search, refine_on_boundary

__all__ = ["scipy_solve", "lbfgs_attack_scipy"]


def scipy_solve(fun, z0: torch.Tensor, *, lo: float, hi: float, max_iter: int, history: int,
                tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """scipy's L-BFGS-B on each row of ``z0`` ``(R, m)`` alone, ``fun(z, rows)`` as for
    :func:`~advtut.attacks.box_lbfgs.box_lbfgs`: the minimizers ``(R, m)`` (clipped to the box)
    and their iterations, long ``(R,)``."""
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


def lbfgs_attack_scipy(model, x: torch.Tensor, target: torch.Tensor, *,
                       settings: LBFGSSearch = LBFGSSearch(), norm: str = "l2",
                       convex: bool = False, refine: bool = False) -> AttackResult:
    """:func:`~advtut.attacks.lbfgs.lbfgs_attack` with scipy's L-BFGS-B as the solver: the
    examples still searching solve their current ``c`` one after the other, then all move on."""
    n, shape, flat, net, search, c_stay = prepare_search(
        model, x, target, settings, norm=norm, convex=convex, what="lbfgs_attack_scipy")
    s = settings
    c = search.c
    while search.todo.any():
        idx = search.todo.nonzero().squeeze(1)
        z = flat[idx].clone()
        it = torch.zeros(len(idx), dtype=torch.long, device=flat.device)
        run = (c[idx] < c_stay[idx]).nonzero().squeeze(1)
        fun = penalty_objective(net, flat[idx[run]], target[idx[run]], c[idx[run]], norm=norm)
        z[run], it[run] = scipy_solve(fun, flat[idx[run]], lo=0.0, hi=1.0, max_iter=s.max_iter,
                                      history=s.history, tol=s.tol)
        search.record(idx, z, it)
    result = search.result(x)
    return refine_on_boundary(model, x, result, target) if refine else result
