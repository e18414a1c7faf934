"""What every attack shares: its result type, its input checks and seeded wrong labels.

- :class:`AttackResult`: the frozen outcome of a minimal-perturbation attack on ``N``
  examples (the rule of :mod:`advtut.attacks`);
- :func:`check_attack_inputs`: the checks every attack runs before it starts, each a
  ``ValueError`` that names the argument, what was expected and what arrived;
- :func:`random_wrong_labels`: a seeded target for each example, uniform over the other
  ``n_classes - 1`` labels (Szegedy et al.'s protocol; any number of classes).

Example::

    target = random_wrong_labels(y, seed=0, n_classes=10)     # y: long (N,)
    check_attack_inputs(model, x, target.to(x.device), targeted=True)
    check_attack_inputs(model, x, y, targeted=False)          # an untargeted attack: true labels
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["AttackResult", "check_attack_inputs", "random_wrong_labels"]


@dataclass(frozen=True)
class AttackResult:
    """The outcome of a minimal-perturbation attack on ``N`` examples (all ``(N,)`` but ``x_adv``).

    ``x_adv``: same shape and dtype as ``x``, inside [0, 1] (``x`` itself where the attack
    failed); ``success``: bool, the attack's criterion holds at ``x_adv`` (the model labels it
    as the target, or gives the target the asked confidence); ``distortion``: the RMS distance of
    :mod:`advtut.distances`, ``rms(x_adv, x) = sqrt(sum((x_adv - x)^2) / n)`` with ``n`` the
    number of pixels (Szegedy et al., Table 1), 0 where the attack failed; ``c``: the value of
    the attack's search parameter at the kept point, NaN where none succeeded (the L-BFGS
    attack: the penalty weight; the template attack: the step ``alpha``); ``n_iter``: long,
    iterations of the attack's inner loop summed over its search (L-BFGS iterations; the
    template attack: bisection steps); ``n_solves``: long, values of the search parameter tried.
    Attacks with more to say return a frozen subclass (e.g.
    :class:`~advtut.attacks.template.TemplateResult`).
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    distortion: torch.Tensor
    c: torch.Tensor
    n_iter: torch.Tensor
    n_solves: torch.Tensor


def check_attack_inputs(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, *,
                        targeted: bool, bounds: tuple[float, float] | None = (0.0, 1.0),
                        allow_current: bool = False, needs_grad: bool = True) -> None:
    """Raise a ``ValueError`` unless ``x`` and ``labels`` can be attacked on ``model``.

    ``x``: float ``(N, ...)``, finite, ``N >= 1``, inside ``bounds`` (``None``: any range);
    ``labels``: long ``(N,)`` on ``x``'s device, each a class of the model's ``(N, K)`` logits:
    with ``targeted=True`` the targets (named ``target`` in the messages), which must differ
    from the model's current labels unless ``allow_current`` (a minimal perturbation towards the
    current label is ``x`` itself: nothing to attack); with ``targeted=False`` the true labels
    (named ``y``), which the model may already get wrong. ``needs_grad``: the attack takes
    gradients, so ``torch.inference_mode()`` is refused (``no_grad`` is fine). Runs the model
    once on ``x`` (under ``no_grad``); put it in eval mode first.
    """
    if not isinstance(targeted, bool):
        raise ValueError(f"targeted must be True or False, got {targeted!r}")
    name = "target" if targeted else "y"
    if needs_grad and torch.is_inference_mode_enabled():
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
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long:
        raise ValueError(f"{name} must be a long tensor of class indices, shape (N,), got "
                         f"{getattr(labels, 'dtype', type(labels).__name__)}")
    if labels.device != x.device:
        raise ValueError(f"x is on {x.device} but {name} on {labels.device}: put both on the "
                         "model's device")
    if labels.shape != (x.shape[0],):
        raise ValueError(f"expected {name} to have shape ({x.shape[0]},), got "
                         f"{tuple(labels.shape)}")
    if bounds is not None:
        lo, hi = float(x.min()), float(x.max())
        if lo < bounds[0] or hi > bounds[1]:
            raise ValueError(f"x must lie in [{bounds[0]:g}, {bounds[1]:g}]; got min {lo:.4g}, "
                             f"max {hi:.4g} for x of shape {tuple(x.shape)}")
    with torch.no_grad():
        logits = model(x)
    if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"model must return logits of shape (N, K), got {tuple(logits.shape)}")
    k = logits.shape[1]
    if (labels < 0).any() or (labels >= k).any():
        raise ValueError(f"{name} must be a class in [0, {k}), got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    if targeted and not allow_current:
        same = logits.argmax(1) == labels
        if same.any():
            raise ValueError(f"target equals the model's current label for {int(same.sum())} "
                             f"example(s) (first at index {int(same.nonzero()[0])}): "
                             "D(x, f(x)) = x, there is nothing to attack; drop them or pick "
                             "another target")


def random_wrong_labels(y: torch.Tensor, *, seed: int, n_classes: int) -> torch.Tensor:
    """A seeded target for each example, uniform over the ``n_classes - 1`` labels other than ``y``.

    ``y``: long ``(N,)`` with values in ``[0, n_classes)``; returns long ``(N,)`` on the CPU,
    ``(y + k) % n_classes`` with ``k`` uniform in ``1 .. n_classes - 1`` drawn from a generator
    seeded with ``seed`` (the global generators are not touched).
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.ndim != 1:
        got = f"{getattr(y, 'dtype', type(y).__name__)} {tuple(getattr(y, 'shape', ()))}"
        raise ValueError(f"y must be a long tensor of shape (N,), got {got}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"y must hold classes in [0, {n_classes}), got values in "
                         f"[{int(y.min())}, {int(y.max())}]")
    g = torch.Generator().manual_seed(seed)
    return (y.cpu() + torch.randint(1, n_classes, (len(y),), generator=g)) % n_classes
