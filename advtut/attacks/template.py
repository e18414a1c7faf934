"""The template attack on a linear pixel classifier: step along the target's template.

Karpathy (2015), "Breaking Linear Classifiers on ImageNet": for a linear model the gradient of
class ``t``'s score with respect to the image is its template ``a_t``, so adding a fraction of
the template raises that score fastest per unit of L2 change. The model is a
:class:`advtut.linear_images.PixelSoftmax` (the attack reads its ``templates(shape)``); ``x`` is
``(N, 3, H, W)`` in [0, 1]; ``alpha`` is the largest change of any pixel before clipping to the
box.

- :func:`template_step`: one step of a given size, a budgeted function returning the stepped
  images (a tensor, as every one-step attack of :mod:`advtut.attacks`);
- :func:`fool_with_template`: the smallest step that reaches a confidence on the target, a
  search for a minimal perturbation along one direction, returning a :class:`TemplateResult`.

Example::

    res = fool_with_template(model, x, target, confidence=0.99)
    res.alpha[res.success]        # the smallest steps that reach 99% on the target
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from advtut.attacks.base import AttackResult, check_attack_inputs
from advtut.evaluation import eval_mode

if TYPE_CHECKING:
    from advtut.linear_images import PixelSoftmax

__all__ = ["TemplateResult", "template_step", "fool_with_template"]


@dataclass(frozen=True)
class TemplateResult(AttackResult):
    """:func:`fool_with_template`'s outcome, per example ``(N,)`` on the CPU (``x_adv``
    ``(N, 3, H, W)``): the :class:`~advtut.attacks.base.AttackResult` fields, where ``c`` is the
    smallest step ``alpha`` found (NaN where not reached; also readable as :attr:`alpha`),
    ``x_adv`` the fooled image (``x`` where not reached), ``success`` whether the criterion was
    reached within ``alpha_max``, ``distortion`` the perturbation's RMS (root mean square over
    pixels, :func:`advtut.distances.rms`, 0 where not reached), ``n_iter`` the bisection steps
    and ``n_solves`` the values of ``alpha`` tried; and the extras ``p_target``, ``x_adv``'s
    target probability, and ``linf``, the perturbation's largest pixel change, in [0, 1] units.
    """

    p_target: torch.Tensor
    linf: torch.Tensor

    @property
    def alpha(self) -> torch.Tensor:
        """The step found, ``c`` under the template attack's own name."""
        return self.c


def _check_model(model) -> None:
    if not callable(getattr(model, "templates", None)) or not hasattr(model, "mean"):
        raise ValueError(f"model must be a PixelSoftmax (a linear pixel classifier with "
                         f"templates(shape) and a mean buffer), got {type(model).__name__}")


@torch.no_grad()
def _step(model, x, target, alpha):
    dev = model.mean.device
    x, target = x.to(dev), target.to(dev)
    direction = model.templates(tuple(x.shape[1:]))[target]
    direction = direction / direction.flatten(1).abs().amax(1).clamp_min(1e-300).view(-1, 1, 1, 1)
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=dev).expand(len(x))
    return (x + alpha.view(-1, 1, 1, 1) * direction).clamp(0, 1)


@torch.no_grad()
def template_step(model: PixelSoftmax, x: torch.Tensor, target: torch.Tensor,
                  alpha: torch.Tensor | float) -> torch.Tensor:
    """``clip(x + alpha * a_t / max|a_t|, 0, 1)``: ``x`` ``(N, 3, H, W)`` in [0, 1] stepped along
    each target's template, scaled so that ``alpha`` is the largest change of any pixel before
    clipping (``alpha``: a number or ``(N,)``). ``model``: a
    :class:`~advtut.linear_images.PixelSoftmax` (``ValueError`` otherwise); ``target``: long
    ``(N,)`` (may be the current label). Returns the stepped images, on the model's device."""
    _check_model(model)
    dev = model.mean.device
    check_attack_inputs(model, x.to(dev), target.to(dev), targeted=True, allow_current=True,
                        needs_grad=False)
    return _step(model, x, target, alpha)


def fool_with_template(model: PixelSoftmax, x: torch.Tensor, target: torch.Tensor, *,
                       confidence: float | None = 0.99, alpha_max: float = 1.0, grid: int = 64,
                       bisections: int = 30) -> TemplateResult:
    """The source's fooling: ``x(alpha) = clip(x + alpha * a_t / max|a_t|, 0, 1)``, ``a_t`` the
    target's template in [0, 1] units, with the smallest ``alpha`` in ``(0, alpha_max]`` at which
    the target's probability reaches ``confidence`` (``None``: at which the target becomes the
    top class, the criterion of the exact minimal perturbations).

    ``model``: a :class:`~advtut.linear_images.PixelSoftmax`, run in eval mode (the caller's
    mode is restored); ``x``: ``(N, 3, H, W)`` in [0, 1]; ``target``: long ``(N,)`` class
    indices (a target that is already the top class is allowed: it may still lack the
    confidence). ``alpha`` is the largest change of any pixel before clipping. A geometric grid
    of ``grid`` values from ``alpha_max / 1e4`` finds the first that succeeds, then
    ``bisections`` halvings narrow it (success need not be monotone once pixels clip, so it is
    the first crossing on the grid). Not reached within ``alpha_max``: ``success`` False.
    """
    with eval_mode(model), torch.no_grad():
        return _fool(model, x, target, confidence=confidence, alpha_max=alpha_max, grid=grid,
                     bisections=bisections)


def _fool(model, x, target, *, confidence, alpha_max, grid, bisections) -> TemplateResult:
    if (confidence is not None and not 0 < confidence < 1) or alpha_max <= 0:
        raise ValueError(f"need confidence in (0, 1) or None and alpha_max > 0, got "
                         f"confidence={confidence}, alpha_max={alpha_max}")
    if grid < 1 or bisections < 0:
        raise ValueError(f"need grid >= 1 and bisections >= 0, got grid={grid}, "
                         f"bisections={bisections}")
    _check_model(model)
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be images (N, 3, H, W), got "
                         f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}")
    dev = model.mean.device
    x, target = x.to(dev), target.to(dev)
    check_attack_inputs(model, x, target, targeted=True, allow_current=True, needs_grad=False)

    def at(alpha):  # alpha (N,) -> (success (N,), target probability (N,))
        logits = model(_step(model, x, target, alpha))
        p = logits.softmax(1).gather(1, target[:, None]).squeeze(1)
        if confidence is None:
            others = logits.scatter(1, target[:, None], -math.inf).amax(1)
            return logits.gather(1, target[:, None]).squeeze(1) > others, p
        return p >= confidence, p

    alphas = torch.logspace(math.log10(alpha_max) - 4, math.log10(alpha_max), grid, device=dev)
    n = len(x)
    first = torch.full((n,), -1, dtype=torch.long, device=dev)
    for i, a in enumerate(alphas):
        ok = at(a.expand(n))[0] & (first < 0)
        first[ok] = i
    reached = first >= 0
    hi = torch.where(reached, alphas[first.clamp_min(0)], torch.full((n,), math.nan, device=dev))
    lo = torch.where(first > 0, alphas[(first - 1).clamp_min(0)], torch.zeros(n, device=dev))
    for _ in range(bisections):
        mid = (lo + hi) / 2
        ok = at(torch.nan_to_num(mid))[0]
        hi = torch.where(reached & ok, mid, hi)
        lo = torch.where(reached & ~ok, mid, lo)
    alpha = torch.where(reached, hi, torch.zeros(n, device=dev))
    x_adv = _step(model, x, target, alpha)
    r = (x_adv - x).flatten(1)
    n_iter = torch.where(reached, bisections, 0).cpu()
    # sqrt(mean r^2): advtut.distances.rms, in the order of operations the chapters recorded
    return TemplateResult(x_adv=x_adv.cpu(), success=reached.cpu(),
                          distortion=r.pow(2).mean(1).sqrt().cpu(), c=hi.cpu(), n_iter=n_iter,
                          n_solves=grid + n_iter, p_target=at(alpha)[1].cpu(),
                          linf=r.abs().amax(1).cpu())
