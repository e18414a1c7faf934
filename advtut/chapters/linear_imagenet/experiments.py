"""Chapter 2's experiments: Karpathy, "Breaking Linear Classifiers on ImageNet" (2015).

The source's numbers are named constants in :mod:`advtut.chapters.linear_imagenet.source`
(``SOURCE_*``), the tables and results entries in :mod:`advtut.chapters.linear_imagenet.report`,
the figures in :mod:`advtut.chapters.linear_imagenet.plots`; each experiment of the chapter is
one function returning plain dicts or the package's result types, so that every notebook cell is
one call. Images are ``(N, 3, H, W)``, uint8 (0-255) or float in [0, 1]; everything about fooling
is in [0, 1] pixel units; weight decays are in the source's Caffe units (0-255 pixels) unless
the name says otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from advtut.arrays import to_numpy
from advtut.attacks.template import fool_with_template, template_step
from advtut.chapters.linear_imagenet.source import SOURCE_TARGETS, TOY_W, TOY_X
from advtut.evaluation import logits, topk_accuracy
from advtut.linear_images import (
    PixelSoftmax,
    fooling_costs,
    initial_loss,
    pixel_mean,
    resize,
    smoothness,
    to_unit,
    train_pixel_softmax,
    train_softmax,
)
from advtut.seeding import seeded

__all__ = ["Resolution", "resolution_summary", "ToyExample", "toy_example", "Lessons",
           "lesson_subset", "initial_losses", "lr_sweep", "largest_stable_rate", "DecaySweep",
           "decay_sweep", "fooling_starts", "fool_pairs", "regularization_stats",
           "sign_step_gain", "resolution_sweep", "loglog_slope", "fooling_row"]

@dataclass(frozen=True)
class ToyExample:
    """The source's binary logistic regression: score ``w.x`` (no bias), ``P(class 1)``, and
    the same after the step ``x_ad = x + eps * w``."""

    x: np.ndarray
    w: np.ndarray
    eps: float
    score: float
    p: float
    x_ad: np.ndarray
    score_ad: float
    p_ad: float


def toy_example(eps: float = 0.5) -> ToyExample:
    """The source's numbers: ``x``, ``w`` (``TOY_X``, ``TOY_W`` of
    :mod:`advtut.chapters.linear_imagenet.source`) in 10 dimensions,
    score -3 (P = 0.0474), and with ``x + 0.5 w`` score 2 (P = 0.88): every dimension gains
    ``eps |w_i|``, ``eps ||w||_1`` in all."""
    x = np.array(TOY_X, dtype=float)  # numpy input: the source's numbers
    w = np.array(TOY_W, dtype=float)  # numpy input
    sig = lambda s: 1.0 / (1.0 + math.exp(-s))  # noqa: E731
    x_ad = x + eps * w
    return ToyExample(x, w, eps, float(w @ x), sig(float(w @ x)), x_ad, float(w @ x_ad),
                      sig(float(w @ x_ad)))


@dataclass(frozen=True)
class Lessons:
    """The lessons' images: ``x`` ``(n, 3, H, W)`` in [0, 1], their labels ``y``, random
    1000-class labels ``y1000`` and the 0-255 mean image ``mean255``."""

    x: torch.Tensor
    y: torch.Tensor
    y1000: torch.Tensor
    mean255: torch.Tensor


def lesson_subset(x, y, n: int, *, seed: int) -> Lessons:
    """``n`` seeded training images for the lessons (:class:`Lessons`). The 1000-class labels
    stand in for ImageNet-1k: an untrained model's loss does not depend on the labels."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)[:n]
    x_les, y_les = to_unit(x[idx]), y[idx]
    mean255 = pixel_mean(x_les, scale=255.0)
    y1000 = torch.randint(0, 1000, (len(idx),), generator=g)
    return Lessons(x_les, y_les, y1000, mean255)


def initial_losses(x, y, y1000, mean255, *, n_classes: int, stds=(1e-4, 1e-2),
                   seed: int) -> dict[tuple[float, int], float]:
    """``{(init std, classes): loss}`` of a fresh 0-255 :class:`PixelSoftmax`, for the real
    labels (``n_classes``) and the 1000-class ones."""
    out = {}
    for std in stds:
        out[(std, n_classes)] = initial_loss(x, y, n_classes=n_classes, init_std=std,
                                             mean=mean255, seed=seed)
        out[(std, 1000)] = initial_loss(x, y1000, n_classes=1000, init_std=std, mean=mean255,
                                        seed=seed)
    return out


def lr_sweep(x, y, mean255, *, n_classes: int, rates, steps: int, seed: int, device):
    """Plain SGD (momentum 0.9, batch 256) on 0-255 pixels at each rate, ``steps`` steps from
    init std 1e-4: ``{rate: advtut.training.TrainLog}``. Each model starts from the same
    seeded init (the caller's random state is left as it was)."""
    logs = {}
    for lr in rates:
        with seeded(seed):
            model = PixelSoftmax(x[0].numel(), n_classes, scale=255.0, mean=mean255,
                                 init_std=1e-4).to(device)
        logs[lr] = train_softmax(model, x, y, lr=lr, weight_decay=0.0, epochs=100,
                                 optimizer="sgd", momentum=0.9, max_iter=steps, seed=seed,
                                 progress=False)
    return logs


def largest_stable_rate(logs) -> float:
    """The largest rate whose loss neither diverged nor rose above twice its start (+1); NaN if
    none."""
    stable = [lr for lr, log in logs.items()
              if not log.diverged and max(log.step_losses) < 2 * log.step_losses[0] + 1]
    return max(stable) if stable else float("nan")


@dataclass(frozen=True)
class DecaySweep:
    """One model per weight decay, each dict keyed by the decay: ``models`` the
    :class:`PixelSoftmax` models, ``logs`` their training logs, ``accs[lam]`` ``{1: top-1,
    5: top-5}`` on validation."""

    models: dict
    logs: dict
    accs: dict


def decay_sweep(x_tr, y_tr, x_va, y_va, *, n_classes: int, decays, epochs: int, seed: int,
                device) -> DecaySweep:
    """One [0, 1]-pixel model per weight decay (source units, divided by 255^2), trained on
    ``x_tr``, ``y_tr`` and scored on ``x_va``, ``y_va``: a :class:`DecaySweep`."""
    models, logs, accs = {}, {}, {}
    x_va = to_unit(x_va)
    for lam in decays:
        models[lam], logs[lam] = train_pixel_softmax(
            x_tr, y_tr, n_classes=n_classes, weight_decay=lam / 255**2, epochs=epochs,
            seed=seed, device=device, desc=f"softmax λ={lam:g}")
        accs[lam] = topk_accuracy(models[lam], x_va, y_va, batch_size=2048)
    return DecaySweep(models, logs, accs)


def fooling_starts(model, x_va, y_va, class_names, *, seed: int):
    """The source's fooling setup: two correctly classified validation photos of different
    classes and one uniform-noise image, ``(x (3, 3, H, W) in [0, 1], names, targets, p_va)``;
    targets are :data:`SOURCE_TARGETS` (classes 1 and 2 where a dataset lacks them) and
    ``p_va`` the model's probabilities on every validation image."""
    p_va = logits(model, to_unit(x_va), batch_size=1000).softmax(1)
    correct = (p_va.argmax(1) == y_va).nonzero().flatten()
    starts = []
    for i in correct.tolist():
        if all(y_va[i] != y_va[j] for j in starts):
            starts.append(i)
        if len(starts) == 2:
            break
    targets = [class_names.index(n) if n in class_names else k
               for k, n in enumerate(SOURCE_TARGETS, start=1)]
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.cat([to_unit(x_va[starts]), torch.rand(1, *x_va.shape[1:], generator=gen)])
    names = [f"photo of a {class_names[y_va[i]]}" for i in starts] + ["uniform noise"]
    return x, names, targets, p_va


def fool_pairs(model, x_start, targets, *, confidence: float = 0.99):
    """Every start sent to every target with the template step: ``(pairs, fool, shown)`` where
    ``pairs`` lists ``(start index, target)``, ``fool`` the
    :class:`~advtut.attacks.template.TemplateResult` and ``shown`` the image to draw for each pair
    (the image at alpha = 1 where ``confidence`` is not
    reached)."""
    pairs = [(s, t) for s in range(len(x_start)) for t in targets]
    xs = x_start[[s for s, _ in pairs]]
    ts = torch.tensor([t for _, t in pairs])
    fool = fool_with_template(model, xs, ts, confidence=confidence)
    shown = [fool.x_adv[i] if fool.success[i]
             else template_step(model, xs[i:i + 1], ts[i:i + 1], 1.0)[0].cpu()
             for i in range(len(pairs))]
    return pairs, fool, shown


def regularization_stats(models, templates, x, target, *, n_exact: int):
    """For each decay: template fooling to 0.99 on ``x`` -> ``target`` and the exact optima on
    the first ``n_exact``; returns ``(stats, costs)``: ``stats[lam]`` holds ``reached`` (share),
    ``rms``/``linf`` (medians where reached), ``rough`` (mean template roughness),
    ``exact_rms``/``exact_linf`` (medians); ``costs[lam]`` the :class:`FoolingCosts`."""
    stats, costs = {}, {}
    nan = float("nan")
    for lam, model in models.items():
        f = fool_with_template(model, x, target, confidence=0.99)
        costs[lam] = fooling_costs(model, x[:n_exact], target[:n_exact],
                                   desc=f"exact optima λ={lam:g}")
        ok = f.success
        stats[lam] = dict(reached=float(ok.float().mean()),
                          rms=float(f.distortion[ok].median()) if ok.any() else nan,
                          linf=float(f.linf[ok].median()) if ok.any() else nan,
                          rough=float(smoothness(templates[lam]).mean()),
                          exact_rms=float(costs[lam].exact_rms.median()),
                          exact_linf=float(costs[lam].exact_linf.median()))
    return stats, costs


def sign_step_gain(model: PixelSoftmax, x, target) -> float:
    """The median score gain of a one-grey-level sign step towards ``target`` against the
    currently winning class: ``||a_t - a_k||_1 / 255`` (the toy argument's ``eps ||w||_1``)."""
    aff = model.affine()
    k_now = (x.flatten(1).double() @ aff.weight.T + aff.bias).argmax(1)
    return float(((aff.weight[target] - aff.weight[k_now]).abs().sum(1) / 255).median())


def resolution_sweep(x_tr, y_tr, x_va, y_va, x_f, t_f, *, sizes, n_classes: int,
                     weight_decay: float, epochs: int, seed: int, device):
    """The same model trained at each smaller ``size`` (area-averaged images): ``{size:
    (model, accs, costs)}`` with the exact optima on ``x_f`` -> ``t_f`` resized alike."""
    out = {}
    for size in sizes:
        model, _ = train_pixel_softmax(resize(x_tr, size), y_tr, n_classes=n_classes,
                                       weight_decay=weight_decay / 255**2, epochs=epochs,
                                       seed=seed, device=device, desc=f"softmax {size}px")
        accs = topk_accuracy(model, to_unit(resize(x_va, size)), y_va, batch_size=2048)
        costs = fooling_costs(model, resize(x_f, size), t_f, progress=False)
        out[size] = (model, accs, costs)
    return out


def loglog_slope(d, values) -> float:
    """The least-squares slope of ``log(values)`` against ``log(d)``."""
    return float(np.polyfit(np.log(to_numpy(d, float)), np.log(to_numpy(values, float)), 1)[0])


def fooling_row(model, x, x_adv, label: str, note: str = "") -> dict:
    """One row of :func:`advtut.plotting.fooling_figure`: the images ``(3, H, W)`` in [0, 1]
    with ``model``'s class probabilities for both."""
    p = logits(model, torch.stack([x.float().cpu(), x_adv.float().cpu()])).softmax(1)
    return dict(x=x, x_adv=x_adv, p=p[0], p_adv=p[1], label=label, note=note)


@dataclass(frozen=True)
class Resolution:
    """The resolution sweep, one value per size in ``sizes`` (ascending): ``d`` the input
    dimension ``3 size^2``; ``top1``; ``gain`` the median one-grey-level sign-step gain;
    ``exact_linf``/``exact_rms`` the median exact perturbations ([0, 1] units); and the log-log
    slopes of the L-infinity optimum and of the gain against ``d``."""

    sizes: tuple[int, ...]
    d: np.ndarray
    top1: tuple[float, ...]
    gain: tuple[float, ...]
    exact_linf: tuple[float, ...]
    exact_rms: tuple[float, ...]
    linf_slope: float
    gain_slope: float


def resolution_summary(res: dict, x, target, *, native: int) -> Resolution:
    """Summarise ``{size: (model, accs, costs)}`` (:func:`resolution_sweep` plus the ``native``
    size's model) on the images ``x`` ``(n, 3, native, native)`` and their ``target``."""
    sizes = tuple(sorted(res))
    d = np.array([3 * s * s for s in sizes])  # numpy input: ints
    gain = tuple(sign_step_gain(res[s][0], x if s == native else resize(x, s), target)
                 for s in sizes)
    linf = tuple(float(res[s][2].exact_linf.median()) for s in sizes)
    rms = tuple(float(res[s][2].exact_rms.median()) for s in sizes)
    return Resolution(sizes, d, tuple(res[s][1][1] for s in sizes), gain, linf, rms,
                      loglog_slope(d, linf), loglog_slope(d, gain))
