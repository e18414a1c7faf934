"""Adversarial attacks: each module one algorithm, all under one contract.

The rule every attack follows:

- **Signature**: ``attack(model, x, target_or_y, *, settings...)``; ``x`` float ``(N, ...)``
  (images in [0, 1] unless the attack says otherwise), ``target_or_y`` long ``(N,)``: the
  targets of a targeted attack, the true labels of an untargeted one.
- **Inputs**: every attack checks them through the one checker,
  :func:`~advtut.attacks.base.check_attack_inputs` ``(model, x, labels, *, targeted=...)``,
  which raises a ``ValueError`` naming the argument (``target`` or ``y``); the model must be in
  eval mode (or the attack puts it there and restores it, as the template attack does).
- **Minimal-perturbation attacks** (a search for the smallest perturbation that meets a
  criterion: :func:`~advtut.attacks.lbfgs.lbfgs_attack`,
  :func:`~advtut.attacks.template.fool_with_template`) return an
  :class:`~advtut.attacks.base.AttackResult`, or a frozen subclass for extras
  (:class:`~advtut.attacks.template.TemplateResult`), with the same field names: ``x_adv``,
  ``success`` (bool ``(N,)``), ``distortion`` (``(N,)``, the RMS distance of
  :mod:`advtut.distances`, 0 where the attack failed), ``c``, ``n_iter``, ``n_solves``.
- **One-step budgeted attacks** (a fixed budget ``eps`` or ``alpha``, no search:
  :func:`~advtut.attacks.gradient.fgsm`, :func:`~advtut.attacks.gradient.gradient_step`,
  :func:`~advtut.attacks.template.template_step`) return a tensor: the perturbed input
  ``x_adv`` of ``x``'s shape, never the perturbation alone.
- **Iteration limits** are called ``max_iter`` ("at most this many iterations", as in torch and
  scipy), and iteration counts in results ``n_iter``. A fixed number of rounds always taken
  keeps its own name (``refine_on_boundary``'s ``outer_steps``, the template attack's
  ``grid`` and ``bisections``).
- **Progress** goes through a tqdm bar (``progress=True``), never ``print``.

The exception: :func:`~advtut.attacks.backwork.backwork` grows fooling images from noise. With
no original input there is no perturbation to measure, so it is not a minimal-perturbation
attack and does not claim a ``distortion``: it returns its own
:class:`~advtut.attacks.backwork.BackworkResult` (``success`` per image, ``n_iter``, the target
probability ``prob``), and checks only its target label through the checker. Its
gradient-free counterpart :func:`~advtut.attacks.evolve.evolve` returns
:class:`~advtut.attacks.evolve.EvolveResult` likewise.
:class:`~advtut.attacks.sets.AdversarialSet` holds a whole set's attack (untargeted: it takes
the true labels); the caller names it (a table's row, a dict's key).

Modules: ``base`` (:class:`AttackResult`, the checker, seeded wrong labels); ``box_lbfgs``
(the batched box-constrained L-BFGS solver); ``lbfgs`` (Szegedy et al.'s attack, its settings
:class:`~advtut.attacks.lbfgs.LBFGSSearch`, the boundary refinement); ``sets`` (adversarial
copies of a whole set, noise, amplification); ``template`` (the template attack on a linear
pixel classifier); ``gradient`` (FGSM and normalised-gradient steps, flip curves);
``backwork`` (fooling images grown from noise); ``evolve`` (the same without gradients:
separable CMA-ES, which only queries the network's output).
"""
from advtut.attacks.base import AttackResult, check_attack_inputs
from advtut.attacks.lbfgs import LBFGSSearch, lbfgs_attack

__all__ = ["AttackResult", "check_attack_inputs", "LBFGSSearch", "lbfgs_attack"]
