"""Fooling images grown from noise: gradient descent on the inputs ("backworking").

A batch starts as uniform noise in [0, 1] and is moved, by Adam on the pixels (clipped to
[0, 1] after every step), to minimise

    penalty * mean_i (1 - p_i(label))              (objective="probability", the source's)
    + sum_k layer_coeffs[k] * (reference_coeff * R_k + batch_coeff * B_k)

where ``p_i`` is image ``i``'s softmax output and, for each named layer ``k`` (the model's
``activations(x)``; the source uses every layer except the softmax):

- ``R_k`` (the *reference cost*): the cosine similarity between an image's activations and
  the training images' activations at that layer, averaged over the batch. Cosine, because it
  compares the pattern of activity and not its size (a noise image can be brighter or darker
  than every digit). The source does not say how one image is compared with a whole set, so
  there are two readings (``reading`` in :func:`reference_directions`): ``"mean"``, the mean
  cosine over the reference set, which is the cosine with the mean of the reference set's unit
  vectors (one dot product per image); ``"nearest"``, the cosine with the most similar
  reference image (one dot product per reference image).
- ``B_k`` (the *batch cost*): the mean cosine similarity between the activations of two
  different images of the batch, over all pairs.

Descent stops when the smallest ``p_i(label)`` in the batch reaches ``threshold`` (the source:
0.999) and at least ``min_iter`` steps were taken, or after ``max_iter``. An image below the
threshold whose target probability fell at every one of the last ``num_mono_dec_saves`` saves
(a save: every ``save_every`` steps) is re-drawn from noise, its Adam moment estimates zeroed
(Adam's step count is shared by the batch and kept, so a re-drawn image's first steps are
larger): the source's masked re-initialisation of stuck inputs. No image is re-drawn at the
last step.

Not a minimal-perturbation attack: the images have no original to be measured from, so
:class:`BackworkResult` is its own type, with ``success`` per image and no ``distortion`` (the
exception to the rule of :mod:`advtut.attacks`); the target ``label`` is checked by
:func:`~advtut.attacks.base.check_attack_inputs` on the starting noise.

Options that go beyond the source (chapter 6 explains why): ``center=True`` in
:func:`reference_directions` subtracts the reference set's mean activation before every
cosine, and ``objective="margin"`` replaces ``1 - p`` by a hinge on the logit margin.

Example::

    ref = reference_directions(model, x_train[:1000], layers=("conv1", "conv2", "fc1", "logits"))
    out = backwork(model, label=3, reference=ref, batch_size=8, seed=0)
    out.x.shape, out.prob.min()        # (8, 1, 28, 28), >= 0.999 when out.success.all()
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from advtut.attacks.base import check_attack_inputs
from advtut.evaluation import require_eval_mode

__all__ = ["SOURCE_SETTINGS", "OBJECTIVES", "READINGS", "layer_activations",
           "reference_directions", "similarity_costs", "redraw", "first_redraw", "BackworkResult",
           "backwork", "backwork_many"]

#: The source's settings: threshold on the smallest target probability, the softmax penalty,
#: the reference and batch coefficients and the layer coefficients (log-spaced, one per
#: non-softmax layer, lowest layer first).
SOURCE_SETTINGS = dict(threshold=0.999, penalty=10.0, reference_coeff=0.5, batch_coeff=0.5,
                       layer_coeffs=(1e-5, 1e-4, 1e-3, 1e-2))


#: ``"probability"``: the source's ``mean (1 - p)``, whose pull fades as ``p`` nears 1;
#: ``"margin"``: ``mean relu(m - margin)`` on the logit margin over the runner-up, with ``m``
#: just above the margin that guarantees ``p >= threshold``: a constant pull until then.
OBJECTIVES = ("probability", "margin")

#: How the reference cost compares an image with the reference set: ``"mean"``, the mean
#: cosine over the set; ``"nearest"``, the largest cosine (the nearest reference image).
READINGS = ("mean", "nearest")


def _unit(a: torch.Tensor) -> torch.Tensor:
    return F.normalize(a.flatten(1), dim=1)


def layer_activations(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"input": x, **model.activations(x)}``: the input counts as a layer (the source's
    costs sit on "each input/hidden layer")."""
    return {"input": x, **model.activations(x)}


@torch.no_grad()
def reference_directions(model: nn.Module, x: torch.Tensor, *, layers: Sequence[str],
                         center: bool = False, reading: str = "mean", batch_size: int = 1000
                         ) -> dict[str, torch.Tensor]:
    """What the costs compare with, from the reference images ``x`` ``(R, ...)`` (training
    images in [0, 1]): for each layer in ``layers`` a tensor on the model's device whose row 0
    is the centre ``c`` subtracted from every activation vector before the cosine (zero, or
    with ``center=True`` the reference set's mean activation). With ``reading="mean"`` it is
    ``(2, D_layer)``, row 1 the mean of the reference set's unit vectors ``unit(r_j - c)``,
    since ``mean_j cos(a - c, r_j - c) = unit(a - c) . mean_j unit(r_j - c)``; with
    ``"nearest"`` it is ``(1 + R, D_layer)``, rows 1.. the unit vectors themselves, and the
    cost takes the largest cosine (``R * D_layer`` floats per layer: pass the references of
    one label, or a few hundred images, for the wide layers). With one reference image the two
    readings are the same number."""
    require_eval_mode(model, what="reference_directions")
    if len(x) == 0:
        raise ValueError("x is empty: the reference set needs at least one image")
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")
    device = next(model.parameters()).device

    def passes():
        for i in range(0, len(x), batch_size):
            acts = layer_activations(model, x[i:i + batch_size].to(device))
            for name in layers:
                if name not in acts:
                    raise ValueError(f"layers: the model has no layer {name!r}; it has "
                                     f"{sorted(acts)}")
            yield acts

    centers = {name: 0.0 for name in layers}
    if center:
        sums: dict[str, torch.Tensor] = {}
        for acts in passes():
            for name in layers:
                s = acts[name].flatten(1).sum(0)
                sums[name] = s if name not in sums else sums[name] + s
        centers = {name: s / len(x) for name, s in sums.items()}
    dirs: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    for acts in passes():
        for name in layers:
            u = _unit(acts[name].flatten(1) - centers[name])
            dirs[name].append(u.sum(0, keepdim=True) if reading == "mean" else u)
    out = {}
    for name in layers:
        d = torch.cat(dirs[name])
        if reading == "mean":
            d = d.sum(0, keepdim=True) / len(x)
        c = centers[name] if center else torch.zeros_like(d[0])
        out[name] = torch.cat([c.reshape(1, -1), d])
    return out


def similarity_costs(acts: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]
                     ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The reference cost ``R_k`` and the batch cost ``B_k`` (scalars, see the module) of each
    layer in ``reference`` (:func:`reference_directions`), from a batch's activations ``acts``
    (``{layer: (B, ...)}``), both on the activations minus the reference's centre: ``R_k`` the
    cosine with the one mean direction (``reading="mean"``) or the largest cosine with the
    reference images (``"nearest"``). ``B_k`` is 0 for a batch of one."""
    ref, bat = {}, {}
    for name, table in reference.items():
        center, directions = table[0], table[1:]
        u = _unit(acts[name].flatten(1) - center)               # (B, D)
        ref[name] = (u @ directions.T).max(1).values.mean()     # one row: the mean reading
        b = len(u)
        if b < 2:
            bat[name] = u.new_zeros(())
        else:
            gram = u @ u.T                                      # (B, B), ones on the diagonal
            bat[name] = (gram.sum() - gram.diagonal().sum()) / (b * (b - 1))
    return ref, bat


@dataclass(frozen=True)
class BackworkResult:
    """Fooling images grown from noise (not a minimal perturbation: no ``x_adv`` of an original,
    no ``distortion``). ``x``: ``(B, C, H, W)`` in [0, 1], the final batch; ``prob``: ``(B,)``
    each image's probability of ``label`` (the target); ``success``: bool ``(B,)``,
    ``prob >= threshold`` (the batch converged where ``success.all()``); ``n_iter``: Adam steps
    taken; ``reinits``: images re-drawn from noise; ``reference_cost``, ``batch_cost``: each
    layer's costs at the end (floats); ``label``; ``redrawn``: ``(B,)`` int64, how often each
    image's slot was re-drawn (its sum is ``reinits``); ``trace``: ``(n_iter + 1, B)`` each
    image's target probability before every step and at the end (on the CPU)."""

    x: torch.Tensor
    prob: torch.Tensor
    label: int
    success: torch.Tensor
    n_iter: int
    reinits: int
    reference_cost: dict
    batch_cost: dict
    redrawn: torch.Tensor | None = None
    trace: torch.Tensor | None = None


def backwork(model: nn.Module, *, label: int, reference: dict[str, torch.Tensor],
             batch_size: int = 8, image_shape: tuple[int, ...] = (1, 28, 28),
             layer_coeffs: Sequence[float] = SOURCE_SETTINGS["layer_coeffs"],
             reference_coeff: float = SOURCE_SETTINGS["reference_coeff"],
             batch_coeff: float = SOURCE_SETTINGS["batch_coeff"],
             penalty: float = SOURCE_SETTINGS["penalty"],
             threshold: float = SOURCE_SETTINGS["threshold"], objective: str = "probability",
             lr: float = 0.01,
             max_iter: int = 2000, min_iter: int = 0, save_every: int = 10,
             num_mono_dec_saves: int = 5,
             seed: int = 0, progress: bool = True) -> BackworkResult:
    """Grow ``batch_size`` images of ``image_shape`` from uniform noise (seeded by ``seed``)
    until ``model`` gives each ``label`` with probability at least ``threshold`` (at least
    ``min_iter`` and at most ``max_iter`` Adam steps); see the module for the cost.
    ``reference``: :func:`reference_directions`, one entry per costed layer, in the order of
    ``layer_coeffs`` (lowest layer first). ``model`` must be in eval mode and have
    ``activations(x) -> {layer: tensor, ..., "logits": (B, K)}``."""
    return backwork_many(model, labels=[label], seeds=[seed], reference=reference,
                         batch_size=batch_size, image_shape=image_shape,
                         layer_coeffs=layer_coeffs, reference_coeff=reference_coeff,
                         batch_coeff=batch_coeff, penalty=penalty, threshold=threshold,
                         objective=objective, lr=lr, max_iter=max_iter, min_iter=min_iter,
                         save_every=save_every, num_mono_dec_saves=num_mono_dec_saves,
                         progress=progress)[0]


class _Batch:
    """One batch's search state inside :func:`backwork_many`."""

    def __init__(self, label: int, seed: int, batch_size: int, image_shape, lr: float, device):
        self.label, self.device, self.image_shape = label, device, image_shape
        self.gen = torch.Generator().manual_seed(seed)
        self.x = self.noise(batch_size).requires_grad_(True)
        self.opt = torch.optim.Adam([self.x], lr=lr)
        self.history: list[torch.Tensor] = []      # target probability at each save, (B,)
        self.trace: list[torch.Tensor] = []        # target probability at every step, (B,)
        self.reinits, self.step, self.done = 0, 0, False
        self.redrawn = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.acts: dict[str, torch.Tensor] = {}
        self.prob = torch.zeros(batch_size, device=device)

    def noise(self, n: int) -> torch.Tensor:
        return torch.rand(n, *self.image_shape, generator=self.gen).to(self.device)


def backwork_many(model: nn.Module, *, labels: Sequence[int], seeds: Sequence[int],
                  reference: dict[str, torch.Tensor], batch_size: int = 8,
                  image_shape: tuple[int, ...] = (1, 28, 28),
                  layer_coeffs: Sequence[float] = SOURCE_SETTINGS["layer_coeffs"],
                  reference_coeff: float = SOURCE_SETTINGS["reference_coeff"],
                  batch_coeff: float = SOURCE_SETTINGS["batch_coeff"],
                  penalty: float = SOURCE_SETTINGS["penalty"],
                  threshold: float = SOURCE_SETTINGS["threshold"],
                  objective: str = "probability", lr: float = 0.01, max_iter: int = 2000,
                  min_iter: int = 0, save_every: int = 10, num_mono_dec_saves: int = 5,
                  progress: bool = True) -> list[BackworkResult]:
    """:func:`backwork` for each ``(label, seed)`` of ``labels`` and ``seeds``, one
    :class:`BackworkResult` each, in order: the same searches (each batch its own noise, Adam
    optimiser, costs, stopping rule and re-draws), in one forward and backward pass per step
    over every batch still running: ten labels cost about two thirds of ten runs alone on a
    2-core CPU, and far less on a GPU. Each result equals :func:`backwork`'s up to the float
    rounding of a larger batch's matrix products (none at all for the book's CNN on our CPU;
    Adam rescales every gradient, so where there is some it can grow over a long run)."""
    require_eval_mode(model, what="backwork")
    device = next(model.parameters()).device
    n_classes = model.activations(torch.zeros(1, *image_shape,
                                              device=device))["logits"].shape[1]
    labels, seeds = list(labels), list(seeds)
    if len(labels) != len(seeds) or not labels:
        raise ValueError(f"labels and seeds must pair up, one seed per label, got "
                         f"{len(labels)} labels and {len(seeds)} seeds")
    for label in labels:
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < n_classes:
            raise ValueError(f"label must be an integer class in [0, {n_classes}), got {label!r}")
    if len(layer_coeffs) != len(reference):
        raise ValueError(f"layer_coeffs needs one coefficient per reference layer "
                         f"({list(reference)}), got {list(layer_coeffs)}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be a probability in (0, 1), got {threshold}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    # the logit margin over every other class that guarantees p >= threshold, plus a little
    target_margin = math.log((n_classes - 1) * threshold / (1 - threshold)) + 0.5
    for name, v in (("batch_size", batch_size), ("max_iter", max_iter),
                    ("save_every", save_every), ("num_mono_dec_saves", num_mono_dec_saves)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    batches = [_Batch(k, s, batch_size, image_shape, lr, device) for k, s in zip(labels, seeds)]
    for b in batches:                           # noise the model already calls label: fine
        check_attack_inputs(model, b.x.detach(), torch.full((batch_size,), b.label,
                                                            device=device),
                            targeted=True, allow_current=True)
    coeffs = dict(zip(reference, (float(c) for c in layer_coeffs)))
    with tqdm(total=max_iter, desc=f"labels {labels}", disable=not progress,
              mininterval=2.0) as bar:
        while True:
            running = [b for b in batches if not b.done]
            if not running:
                break
            acts_all = layer_activations(model, torch.cat([b.x for b in running]))
            cost = 0.0
            stepping = []
            for i, b in enumerate(running):
                part = slice(i * batch_size, (i + 1) * batch_size)
                acts = {k: v[part] for k, v in acts_all.items()}
                prob = torch.softmax(acts["logits"], 1)[:, b.label]
                b.trace.append(prob.detach().cpu().clone())
                b.acts, b.prob = {k: v.detach() for k, v in acts.items()}, prob
                if (float(prob.detach().min()) >= threshold and b.step >= min_iter) \
                        or b.step == max_iter:
                    b.done = True
                    continue
                ref, bat = similarity_costs(acts, reference)
                if objective == "probability":
                    miss = (1 - prob).mean()
                else:
                    z = acts["logits"]
                    others = z.masked_fill(F.one_hot(torch.tensor(b.label, device=z.device),
                                                     n_classes).bool(), float("-inf"))
                    margin = z[:, b.label] - others.max(1).values
                    miss = F.relu(target_margin - margin).mean()
                cost = cost + penalty * miss + sum(
                    coeffs[k] * (reference_coeff * ref[k] + batch_coeff * bat[k])
                    for k in coeffs)
                stepping.append(b)
            if not stepping:
                break
            for b in stepping:
                b.opt.zero_grad(set_to_none=True)
            cost.backward()
            for b in stepping:
                b.opt.step()
                b.step += 1
            bar.update()
            with torch.no_grad():
                for b in stepping:
                    b.x.clamp_(0.0, 1.0)
                    if b.step % save_every == 0 and b.step < max_iter:  # never return fresh noise
                        prob = b.prob.detach()
                        b.history.append(prob.clone())   # its own copy: nan-ed below
                        # stuck: below the threshold and falling at every one of the last saves
                        stuck = _falling(b.history, num_mono_dec_saves) & (prob < threshold)
                        if stuck.any():
                            redraw(b.x, stuck, b.opt, b.noise(int(stuck.sum())))
                            for h in b.history:
                                h[stuck] = float("nan")   # a re-drawn image starts a new history
                            b.reinits += int(stuck.sum())
                            b.redrawn += stuck.long()
    out = []
    for b in batches:
        with torch.no_grad():
            ref, bat = similarity_costs(b.acts, reference)
        prob = b.prob.detach()
        # in float64, as float(prob.min()) >= threshold compares
        out.append(BackworkResult(b.x.detach(), prob, b.label, prob.double() >= threshold,
                                  b.step, b.reinits, {k: float(v) for k, v in ref.items()},
                                  {k: float(v) for k, v in bat.items()}, b.redrawn.cpu(),
                                  torch.stack(b.trace)))
    return out


@torch.no_grad()
def redraw(x: torch.Tensor, stuck: torch.Tensor, optimizer: torch.optim.Optimizer,
           fresh: torch.Tensor) -> None:
    """The source's masked re-initialisation, in place: the images ``x[stuck]`` (``x``: the
    optimised ``(B, ...)`` leaf, ``stuck``: bool ``(B,)``) become ``fresh`` ``(k, ...)``, ``k``
    the number of stuck images, and the optimizer's per-pixel state of those images (Adam's
    moment estimates) is zeroed; every other image and its state stay as they were. Adam's
    step count is shared by the batch and kept."""
    if stuck.shape != x.shape[:1] or stuck.dtype != torch.bool:
        raise ValueError(f"stuck must be a bool mask of shape ({len(x)},), got "
                         f"{stuck.dtype} {tuple(stuck.shape)}")
    if fresh.shape != (int(stuck.sum()), *x.shape[1:]):
        raise ValueError(f"fresh must have shape ({int(stuck.sum())}, "
                         f"{', '.join(map(str, x.shape[1:]))}), got {tuple(fresh.shape)}")
    x[stuck] = fresh.to(x.device, x.dtype)
    for state in optimizer.state.get(x, {}).values():
        if isinstance(state, torch.Tensor) and state.shape == x.shape:
            state[stuck] = 0


def first_redraw(trace: torch.Tensor, *, save_every: int, num_mono_dec_saves: int,
                 threshold: float, max_iter: int | None = None) -> int | None:
    """The first step at which the re-draw rule would have fired on a run's ``trace``
    (:attr:`BackworkResult.trace`, ``(T, B)``) had saves come every ``save_every`` steps, or
    None if it never would (``max_iter``: the run's cap, at which no save is taken). Exact
    only for a trace with no re-draw in it (``reinits == 0``, or up to the run's own first
    re-draw): until a re-draw fires the rule only watches, so such a run whose trace never
    fires under an interval is exactly the run that interval would have produced, and one that
    fires at step ``s`` is the same up to ``s``."""
    if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 1:
        raise ValueError(f"save_every must be a positive integer, got {save_every!r}")
    history: list[torch.Tensor] = []
    for step in range(save_every, len(trace), save_every):
        if max_iter is not None and step >= max_iter:
            break
        # backwork saves, after step `step`, the probability measured before that step
        history.append(trace[step - 1])
        if (_falling(history, num_mono_dec_saves) & (trace[step - 1] < threshold)).any():
            return step
    return None


def _falling(history: list[torch.Tensor], n: int) -> torch.Tensor:
    """Images whose value fell at each of the last ``n`` saves: bool ``(B,)``."""
    if len(history) < n + 1:
        return torch.zeros_like(history[-1], dtype=torch.bool)
    h = torch.stack(history[-(n + 1):])                         # (n + 1, B)
    return (h[1:] < h[:-1]).all(0)                              # nan compares False
