"""Adversarial attacks: each module one algorithm, each a function returning an AttackResult.

``base``: :class:`AttackResult`, the shared input checks, seeded wrong labels; ``box_lbfgs``: the
batched box-constrained L-BFGS solver; ``lbfgs``: Szegedy et al.'s attack and the boundary
refinement; ``sets``: adversarial copies of a whole set of images, noise and amplification.
"""
from advtut.attacks.base import AttackResult
from advtut.attacks.lbfgs import lbfgs_attack

__all__ = ["AttackResult", "lbfgs_attack"]
