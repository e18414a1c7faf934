"""One-step gradient attacks: the fast gradient sign method and its normalised-gradient cousins.

The loss is the cross-entropy of the true label; its input gradient ``g = d loss / d x`` says
which way each pixel should move to make the model less sure of the right answer. One step
``x + eps * d`` along a direction ``d`` made from ``g`` (:func:`step_direction`):

- ``"sign"``: ``d = sign(g)``, Goodfellow et al.'s fast gradient sign method (FGSM), the
  largest first-order loss increase for an L-infinity budget ``eps``;
- ``"l2"``: ``d = g / ||g||_2``, the normalised gradient, the largest for an L2 budget ``eps``;
- ``"linf_scaled"``: ``d = g / max|g|``, the normalised gradient stretched until its largest
  pixel change is ``eps``, the same L-infinity budget as the sign step.

Inputs ``x`` ``(N, ...)``; labels ``y`` long ``(N,)``, the true labels (the attacks are
untargeted); ``eps`` in input units (0-1 pixels). :func:`gradient_step` and :func:`fgsm` are
one-step budgeted attacks: they return the perturbed input ``x + eps * d`` (a tensor of ``x``'s
shape), not the step. Steps are not clipped to the image range unless ``bounds`` is given (the
source adds ``0.01 * sign(g)`` to its images and does not clip); with ``bounds``, ``x`` must lie
inside them. Inputs are checked by :func:`~advtut.attacks.base.check_attack_inputs`.

Example::

    x_adv = fgsm(model, x, y, eps=0.01)                      # the source's step
    flipped = flip_rate(model, x, x_adv)                     # a float in [0, 1]
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advtut.attacks.base import check_attack_inputs
from advtut.evaluation import predict, require_eval_mode

__all__ = ["DIRECTIONS", "loss_gradient", "step_direction", "fgsm", "gradient_step",
           "random_signs", "flip_rate", "flip_curve"]

DIRECTIONS = ("sign", "l2", "linf_scaled")


def _checked(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, what: str,
             bounds: tuple[float, float] | None) -> torch.Tensor:
    """The model in eval mode, ``x`` and ``y`` through the one checker; ``y`` on ``x``'s device."""
    require_eval_mode(model, what=what)
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
        y = y.to(x.device)
    check_attack_inputs(model, x, y, targeted=False, bounds=bounds)
    return y


def _loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    return g


def loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``d CE(model(x_i), y_i) / d x_i`` for every example (summed loss, so no example's
    gradient depends on the batch): ``x``'s shape, in loss units per input unit. ``x``: float
    ``(N, ...)``, any range; ``y``: long ``(N,)`` true labels; the model in eval mode."""
    return _loss_gradient(model, x, _checked(model, x, y, what="loss_gradient", bounds=None))


def step_direction(g: torch.Tensor, *, kind: str) -> torch.Tensor:
    """The unit step made from gradients ``g`` ``(N, ...)`` (see the module): ``"sign"`` and
    ``"linf_scaled"`` have L-infinity norm 1, ``"l2"`` has L2 norm 1 (a zero gradient gives a
    zero step)."""
    if kind not in DIRECTIONS:
        raise ValueError(f"kind must be one of {DIRECTIONS}, got {kind!r}")
    if kind == "sign":
        return g.sign()
    flat = g.flatten(1)
    norm = flat.norm(dim=1) if kind == "l2" else flat.abs().amax(1)
    return g / norm.clamp_min(torch.finfo(g.dtype).tiny).view(-1, *(1,) * (g.ndim - 1))


def gradient_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                  kind: str = "sign", bounds: tuple[float, float] | None = None) -> torch.Tensor:
    """``x + eps * step_direction(loss_gradient(model, x, y), kind=kind)``, clipped to
    ``bounds`` when given (``x`` must then lie inside them): the perturbed input, ``x``'s
    shape."""
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    y = _checked(model, x, y, what="gradient_step", bounds=bounds)
    x_adv = x.detach() + eps * step_direction(_loss_gradient(model, x, y), kind=kind)
    return x_adv if bounds is None else x_adv.clamp(*bounds)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
         bounds: tuple[float, float] | None = None) -> torch.Tensor:
    """The fast gradient sign method, ``x + eps * sign(d loss / d x)`` (clipped to ``bounds``
    when given; foolbox's ``FGSM`` clips to its model's bounds): the perturbed input, ``x``'s
    shape."""
    return gradient_step(model, x, y, eps=eps, kind="sign", bounds=bounds)


def random_signs(like: torch.Tensor, *, seed: int) -> torch.Tensor:
    """Independent fair +-1 signs of ``like``'s shape, dtype and device, from a generator seeded
    with ``seed``: the random baseline for a sign step of the same size."""
    g = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, like.shape, generator=g).mul_(2).sub_(1)
    return signs.to(like.device, like.dtype)


def flip_rate(model: nn.Module, x: torch.Tensor, x_new: torch.Tensor) -> float:
    """The fraction of examples whose predicted label differs between ``x`` and ``x_new``."""
    if x.shape != x_new.shape:
        raise ValueError(f"x and x_new must have the same shape, got {tuple(x.shape)} and "
                         f"{tuple(x_new.shape)}")
    return float((predict(model, x) != predict(model, x_new)).double().mean())


def flip_curve(model: nn.Module, x: torch.Tensor, directions: torch.Tensor, eps,
               *, bounds: tuple[float, float] | None = None,
               batch_size: int = 1000) -> torch.Tensor:
    """For each ``eps`` (a sequence of floats >= 0), the fraction of ``x`` ``(N, ...)`` whose
    predicted label changes under ``x + eps * directions`` (``x``'s shape; clipped to
    ``bounds`` when given), predicted in batches of ``batch_size``. Returns ``(len(eps),)``
    float64 in [0, 1]."""
    if directions.shape != x.shape:
        raise ValueError(f"directions must have x's shape {tuple(x.shape)}, got "
                         f"{tuple(directions.shape)}")
    eps = [float(e) for e in eps]
    if any(not e >= 0 for e in eps):
        raise ValueError(f"eps must all be >= 0, got {eps}")
    clean = predict(model, x, batch_size=batch_size)
    rates = []
    for e in eps:
        if e == 0 and bounds is None:
            rates.append(0.0)
            continue
        x_new = x + e * directions
        x_new = x_new if bounds is None else x_new.clamp(*bounds)
        rates.append(float((predict(model, x_new, batch_size=batch_size) != clean)
                           .double().mean()))
    return torch.tensor(rates, dtype=torch.float64)
