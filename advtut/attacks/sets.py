"""Adversarial copies of a whole set of images, and the noise they are compared with.

- :func:`adversarial_set`: every correctly classified image pushed to a wrong label with the
  L-BFGS attack (:func:`advtut.attacks.lbfgs.lbfgs_attack`, and its boundary refinement
  beside it), so that the model's accuracy on the set is 0%; any number of classes (read from
  the model's logits);
- :func:`gaussian_noise`: seeded Gaussian noise clipped to the box;
- :func:`amplify`: Szegedy et al.'s amplified adversarial examples (Table 4).

Images are ``(N, ...)`` float in [0, 1] on the CPU, labels long ``(N,)``; distortions are the
RMS distance of :mod:`advtut.distances`, ``sqrt(sum((x' - x)^2) / n)`` (Szegedy et al.'s
measure). Nothing here reads files or knows a dataset: a chapter caches the results.

Example::

    s = adversarial_set(model, x, y, seed=0)
    s.success.all(), s.distortion.mean()          # every image fooled; its mean distortion
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.std import tqdm

from advtut.attacks.base import check_attack_inputs, random_wrong_labels
from advtut.attacks.lbfgs import LBFGSSearch, lbfgs_attack, refine_on_boundary
from advtut.distances import rms
from advtut.evaluation import logits, predict, require_eval_mode

__all__ = ["AdversarialSet", "adversarial_set", "gaussian_noise", "amplify"]


@dataclass(frozen=True)
class AdversarialSet:
    """Adversarial copies of ``x`` for one model (all tensors on the CPU; a table that shows
    several sets names them itself, e.g. as the keys of a dict).

    ``x`` ``(N, ...)``, ``y`` ``(N,)``: the images and their true
    labels; ``target`` ``(N,)``: the label each example was pushed to (for ``untargeted`` sets,
    the wrong label that needed the least distortion); ``x_adv``/``distortion``: the faithful
    attack; ``x_refined``/``distortion_refined``: after
    :func:`~advtut.attacks.lbfgs.refine_on_boundary`. Distortions ``(N,)`` float32 are
    :func:`advtut.distances.rms`. Examples the model already got wrong are left as they are
    (distortion 0: they need none to be misclassified). ``success`` ``(N,)``: the model labels
    ``x_adv`` as ``target`` (or already got ``x`` wrong); ``seconds``: the attack's wall time.
    """

    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor
    x_adv: torch.Tensor
    distortion: torch.Tensor
    x_refined: torch.Tensor
    distortion_refined: torch.Tensor
    success: torch.Tensor
    seconds: float


def _attack_batches(model, x, target, *, batch_size, c_rel_tol, convex, progress, desc):
    """Faithful and refined attacks over ``x`` in batches; returns (x_adv, x_ref, success)."""
    dev = next(model.parameters()).device
    dt = next(model.parameters()).dtype
    adv, ref, ok = [], [], []
    starts = range(0, len(x), batch_size)
    for i in tqdm(starts, desc=desc, disable=not progress, mininterval=2.0):
        xb, tb = x[i:i + batch_size].to(dev, dt), target[i:i + batch_size].to(dev)
        res = lbfgs_attack(model, xb, tb, settings=LBFGSSearch(c_rel_tol=c_rel_tol),
                           convex=convex)
        refd = refine_on_boundary(model, xb, res, tb)
        adv.append(res.x_adv.cpu())
        ref.append(refd.x_adv.cpu())
        ok.append(res.success.cpu())
    return torch.cat(adv), torch.cat(ref), torch.cat(ok)


def _stored(model, x, z, target, ok):
    """``z`` (float64, ``(M, ...)``) cast to ``x``'s dtype so that ``model``, in its own dtype,
    still labels it ``target``: points a hair from the boundary can flip when cast, so those are
    pushed further along ``r = z - x`` (by 0.01% up to 10%) until they hold. Returns the points
    and where they hold."""
    out = z.to(x.dtype)
    bad = ok & (predict(model, out) != target)
    for scale in (1.0001, 1.001, 1.01, 1.1):
        if not bad.any():
            break
        xb = x[bad].double()
        out[bad] = (xb + scale * (z[bad].double() - xb)).clamp(0, 1).to(x.dtype)
        bad = ok & (predict(model, out) != target)
    return out, ok & ~bad


def adversarial_set(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int,
                    untargeted: bool = False, batch_size: int = 500, c_rel_tol: float = 0.01,
                    float64: bool = True, convex: bool = False, progress: bool = True,
                    desc: str = "attack") -> AdversarialSet:
    """Push every correctly classified image of ``x`` to a wrong label with the L-BFGS attack.

    ``model``: in eval mode (``ValueError`` otherwise), returning ``(N, K)`` logits; ``x``:
    ``(N, ...)`` in [0, 1] on the CPU, ``y`` long ``(N,)``. The target is
    :func:`~advtut.attacks.base.random_wrong_labels` (``seed``, ``K`` classes), or with
    ``untargeted=True`` each of the ``K - 1`` wrong labels in turn, keeping the closest
    (``K - 1`` times the work). ``float64`` attacks a float64 copy of the model (the refinement
    needs the precision; the model itself is not changed); the images are stored in ``x``'s
    dtype and checked against ``model`` itself (see ``_stored``). ``convex``: the model is
    linear (passed on to :func:`~advtut.attacks.lbfgs.lbfgs_attack`). Attacks run on the
    model's device in batches of ``batch_size``, ``c`` bisected to ``c_rel_tol``; ``progress``
    shows a tqdm bar labelled ``desc``. Inputs are checked by
    :func:`~advtut.attacks.base.check_attack_inputs` (untargeted: ``y`` the true labels).
    """
    require_eval_mode(model, what="adversarial_set")
    dev = next(model.parameters()).device
    check_attack_inputs(model, x.to(dev), y.to(dev), targeted=False)
    start = time.perf_counter()
    net = copy.deepcopy(model).double() if float64 else model
    x, y = x.cpu(), y.cpu()
    pred = predict(model, x)
    n_classes = logits(model, x[:1]).shape[1]
    right = pred == y
    if not untargeted:
        choices = [random_wrong_labels(y, seed=seed, n_classes=n_classes)]
    else:
        choices = [(y + k) % n_classes for k in range(1, n_classes)]
    best_adv, best_ref = x.clone(), x.clone()
    best_d = torch.where(right, torch.full((len(x),), math.inf, dtype=torch.float64), 0.0)
    best_dr = best_d.clone()
    best_t = torch.where(right, choices[0], pred)
    success = ~right
    idx = right.nonzero().squeeze(1)
    for k, target in enumerate(choices):
        if len(idx) == 0:
            break
        label = desc + (f" (target +{k + 1})" if untargeted else "")
        xi = x[idx].double() if float64 else x[idx]
        adv, ref, ok = _attack_batches(net, xi, target[idx], batch_size=batch_size,
                                       c_rel_tol=c_rel_tol, convex=convex, progress=progress,
                                       desc=label)
        adv, ok = _stored(model, x[idx], adv, target[idx], ok)
        ref, ok_ref = _stored(model, x[idx], ref, target[idx], ok)
        d = torch.where(ok, rms(adv.double(), x[idx].double()), math.inf)
        dr = torch.where(ok, rms(ref.double(), x[idx].double()), math.inf)
        # keep the refined point only where it still holds after the cast and is not longer
        # (the cast may push it outwards); else the faithful one
        keep = ok_ref & (dr <= d)
        ref = torch.where(keep.view(-1, *[1] * (x.ndim - 1)), ref, adv)
        dr = torch.where(keep, dr, d)
        better = d < best_d[idx]
        rows = idx[better]
        best_adv[rows], best_d[rows], best_t[rows] = adv[better], d[better], target[idx][better]
        best_ref[rows], best_dr[rows] = ref[better], dr[better]
        success[idx[ok]] = True
    failed = ~success
    best_d[failed], best_dr[failed] = 0.0, 0.0  # left as x: reported through success
    return AdversarialSet(x, y, best_t, best_adv, best_d.float(), best_ref,
                          best_dr.float(), success, time.perf_counter() - start)


def gaussian_noise(x: torch.Tensor, std: float, *, seed: int) -> torch.Tensor:
    """``clip(x + N(0, std^2), 0, 1)`` elementwise, seeded; same shape, dtype and device as
    ``x`` (the noise is drawn on the CPU, so a seed gives the same noise on any device)."""
    if not std >= 0:
        raise ValueError(f"std must be >= 0, got {std}")
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    return (x + std * noise).clamp(0, 1)


def amplify(x: torch.Tensor, x_adv: torch.Tensor, *, to: float = 0.1) -> torch.Tensor:
    """Szegedy et al.'s amplified examples: ``clip(x + to * r / d(r), 0, 1)``, ``r = x_adv - x``.

    ``x``, ``x_adv``: ``(N, ...)`` in [0, 1]; returns the same shape and dtype. ``d`` is the
    paper's distortion measure, :func:`advtut.distances.rms`, so the result has distortion
    ``to`` before clipping (the paper writes ``x + 0.1 (x' - x) / ||x' - x||_2``; with the plain
    L2 norm that would shrink every perturbation to ``0.1 / sqrt(n)``, ``0.0036`` on MNIST, not
    magnify it by 40% to the stddev 0.1 its Table 4 reports). Rows with ``r = 0`` stay ``x``.
    """
    r = (x_adv - x).double()
    d = rms(r, torch.zeros_like(r))                                     # (N,)
    scale = torch.where(d > 0, to / d.clamp_min(1e-300), 0.0).view(-1, *([1] * (x.ndim - 1)))
    return (x.double() + scale * r).clamp(0, 1).to(x.dtype)
