"""The template attack on a linear pixel classifier: step along the target's template.

Karpathy (2015), "Breaking Linear Classifiers on ImageNet": for a linear model the gradient of
class ``t``'s score with respect to the image is its template ``a_t``, so adding a fraction of
the template raises that score fastest per unit of L2 change. ``x`` is ``(N, 3, H, W)`` in
[0, 1]; ``alpha`` is the largest change of any pixel before clipping to the box.

Example::

    res = fool_with_template(model, x, target, confidence=0.99)
    res.alpha[res.reached]        # the smallest steps that reach 99% on the target
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from advtut.evaluation import eval_mode

__all__ = ["FoolResult", "template_step", "fool_with_template"]


@dataclass(frozen=True)
class FoolResult:
    """Per example: ``alpha`` the smallest step found (NaN where not reached), ``x_adv`` the
    fooled image (``x`` where not reached), ``p_target`` its target probability, ``reached``,
    and the perturbation's ``rms`` (root mean square over pixels) and ``linf``, in [0, 1] units."""

    alpha: torch.Tensor
    x_adv: torch.Tensor
    p_target: torch.Tensor
    reached: torch.Tensor
    rms: torch.Tensor
    linf: torch.Tensor


@torch.no_grad()
def template_step(model, x: torch.Tensor, target: torch.Tensor,
                  alpha: torch.Tensor | float) -> torch.Tensor:
    """``clip(x + alpha * a_t / max|a_t|, 0, 1)``: ``x`` ``(N, 3, H, W)`` in [0, 1] stepped along
    each target's template, scaled so that ``alpha`` is the largest change of any pixel before
    clipping (``alpha``: a number or ``(N,)``). On the model's device."""
    dev = model.mean.device
    x, target = x.to(dev), target.to(dev)
    direction = model.templates(tuple(x.shape[1:]))[target]
    direction = direction / direction.flatten(1).abs().amax(1).clamp_min(1e-300).view(-1, 1, 1, 1)
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=dev).expand(len(x))
    return (x + alpha.view(-1, 1, 1, 1) * direction).clamp(0, 1)


def fool_with_template(model, x: torch.Tensor, target: torch.Tensor, *,
                       confidence: float | None = 0.99, alpha_max: float = 1.0, grid: int = 64,
                       bisections: int = 30) -> FoolResult:
    """The source's fooling: ``x(alpha) = clip(x + alpha * a_t / max|a_t|, 0, 1)``, ``a_t`` the
    target's template in [0, 1] units, with the smallest ``alpha`` in ``(0, alpha_max]`` at which
    the target's probability reaches ``confidence`` (``None``: at which the target becomes the
    top class, the criterion of the exact minimal perturbations).

    ``x``: ``(N, 3, H, W)`` in [0, 1]; ``target``: ``(N,)`` class indices; ``model`` runs in
    eval mode (the caller's mode is restored). ``alpha`` is the largest change of any pixel
    before clipping. A geometric grid of ``grid`` values from
    ``alpha_max / 1e4`` finds the first that succeeds, then bisection narrows it (success need
    not be monotone once pixels clip, so it is the first crossing on the grid). Not reached within
    ``alpha_max``: ``reached`` False.
    """
    with eval_mode(model), torch.no_grad():
        return _fool(model, x, target, confidence=confidence, alpha_max=alpha_max, grid=grid,
                     bisections=bisections)


def _fool(model, x, target, *, confidence, alpha_max, grid, bisections) -> FoolResult:
    if (confidence is not None and not 0 < confidence < 1) or alpha_max <= 0:
        raise ValueError(f"need confidence in (0, 1) or None and alpha_max > 0, got {confidence}, {alpha_max}")
    if x.ndim != 4 or target.shape != (len(x),):
        raise ValueError(f"x must be (N, 3, H, W) and target (N,), got {tuple(x.shape)}, {tuple(target.shape)}")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("x must lie in [0, 1]")
    k = model.linear.out_features
    if len(target) and (int(target.min()) < 0 or int(target.max()) >= k):
        raise ValueError(f"target must be classes in [0, {k}), got {target.tolist()}")
    dev = model.mean.device
    x, target = x.to(dev), target.to(dev)

    def at(alpha):  # alpha (N,) -> (success (N,), target probability (N,))
        logits = model(template_step(model, x, target, alpha))
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
    x_adv = template_step(model, x, target, alpha)
    r = (x_adv - x).flatten(1)
    return FoolResult(hi.cpu(), x_adv.cpu(), at(alpha)[1].cpu(),
                      reached.cpu(), r.pow(2).mean(1).sqrt().cpu(), r.abs().amax(1).cpu())
