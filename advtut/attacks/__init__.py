"""Adversarial attacks: each module one algorithm, each a function returning an AttackResult."""
from advtut.attacks.lbfgs import AttackResult, lbfgs_attack

__all__ = ["AttackResult", "lbfgs_attack"]
