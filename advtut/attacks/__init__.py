"""Adversarial attacks, one algorithm per module. Each takes a model and tensors (model, inputs,
labels or targets, then keyword-only settings) and returns tensors or a frozen dataclass; none
knows about datasets, files or profiles.

``base``: :class:`AttackResult`, the shared input checks, seeded wrong labels; ``box_lbfgs``: the
batched box-constrained L-BFGS solver; ``lbfgs``: Szegedy et al.'s attack and the boundary
refinement; ``sets``: adversarial copies of a whole set of images, noise and amplification;
``template``: the template step on a linear pixel classifier; ``gradient``: FGSM,
normalised-gradient steps, random signs and flip curves; ``backwork``: fooling images grown from
noise. Each module's functions document their own return type.
"""
from advtut.attacks.base import AttackResult
from advtut.attacks.lbfgs import lbfgs_attack

__all__ = ["AttackResult", "lbfgs_attack"]
