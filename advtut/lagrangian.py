"""The augmented Lagrangian for "the closest point where the target wins", shared by the
gradient-descent minimal move (:func:`advtut.minimal_move.minimal_move_gd`) and the boundary
refinement of the L-BFGS attack (:func:`advtut.attacks.lbfgs.refine_on_boundary`).

For a point ``z`` and a target ``t`` the ties are ``h_j(z) = logit_j(z) - logit_t(z) (+ margin)``
for ``j != t``; the target wins where every ``h_j <= 0``. Each tie is divided by the norm of
its gradient at the start, so that it reads as a signed distance in input units whatever the
model's scale. With multipliers ``lam >= 0`` and a weight ``rho > 0`` the penalty is

    1/(2 rho) * sum_j (max(0, lam_j + rho h_j(z))^2 - lam_j^2)

(Nocedal & Wright, Numerical Optimization, section 17.4), and after each inner solve
``lam_j <- max(0, lam_j + rho h_j(z))``. Shapes: ``z`` ``(N, d)``, ties and multipliers
``(N, K)``, the target's own column ``-inf`` (it never binds).
"""
from __future__ import annotations

import math

import torch

__all__ = ["ties", "tie_scales", "penalty", "update_multipliers"]


def ties(logits: torch.Tensor, target: torch.Tensor, *, margin: float = 0.0) -> torch.Tensor:
    """``logit_j - logit_t + margin`` ``(N, K)`` from ``logits`` ``(N, K)``, ``target`` ``(N,)``;
    the target's own column is ``-inf``."""
    h = logits - logits.gather(1, target[:, None]) + margin
    return h.scatter(1, target[:, None], -math.inf)


def tie_scales(tie_fn, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The norm of each tie's gradient at ``z`` ``(N, d)``, ``(N, K)``, at least 1e-12; 1 in the
    target's own column. ``tie_fn(z)`` returns the ties ``(N, K)`` of :func:`ties` (rows must
    not depend on each other, as in any batched model in eval mode)."""
    with torch.enable_grad():
        zg = z.detach().clone().requires_grad_(True)
        h = tie_fn(zg)
        scales = torch.ones_like(h)
        for j in range(h.shape[1]):
            rows = target != j
            if rows.any():
                (g,) = torch.autograd.grad(h[:, j].masked_fill(~rows, 0).sum(), zg,
                                           retain_graph=True)
                scales[:, j] = torch.linalg.vector_norm(g, dim=1).clamp_min(1e-12)
    return scales.detach()


def penalty(h: torch.Tensor, lam: torch.Tensor, rho: float) -> torch.Tensor:
    """The augmented-Lagrangian penalty of ties ``h`` ``(N, K)``, one value per row ``(N,)``."""
    return (torch.clamp(lam + rho * h, min=0) ** 2 - lam**2).sum(1) / (2 * rho)


def update_multipliers(h: torch.Tensor, lam: torch.Tensor, rho: float) -> torch.Tensor:
    """``max(0, lam + rho h)``: the multipliers after an inner solve."""
    return torch.clamp(lam + rho * h, min=0)
