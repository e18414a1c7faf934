"""Chapter 2's experiments: Karpathy, "Breaking Linear Classifiers on ImageNet" (2015).

The source's numbers are named constants below (``SOURCE_*``); each experiment of the chapter is
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

from advtut.seeding import seeded
from advtut.attacks.template import fool_with_template, template_step
from advtut.evaluation import logits, topk_accuracy
from advtut.book.results import entry, invariant
from advtut.linear_images import (PixelSoftmax, fooling_costs, initial_loss, pixel_mean, resize,
                                  smoothness, to_unit, train_pixel_softmax, train_softmax)

__all__ = ["Resolution", "resolution_summary", "ALEXNET_DECAY", "SOURCE_DECAY", "top1_entries", "SOURCE_TOY", "SOURCE_INIT_LOSS", "SOURCE_LR", "SOURCE_ACCURACY", "SOURCE_TOP1_PAIRS",
           "SOURCE_TARGETS", "ToyExample", "toy_example", "lesson_subset", "initial_losses",
           "lr_sweep", "largest_stable_rate", "decay_sweep", "fooling_starts", "fool_pairs",
           "regularization_stats", "sign_step_gain", "resolution_sweep", "loglog_slope",
           "regularization_entries", "optimum_entries", "optimum_invariants",
           "resolution_entries", "fooling_row"]

#: The toy logistic regression: score and P(class 1) before and after ``x + 0.5 w``.
SOURCE_TOY = dict(score=-3.0, p=0.0474, score_ad=2.0, p_ad=0.88)
#: Initial loss of a 1000-class model: "ballpark 7.0" at a small init, "about 80" at std 0.01.
SOURCE_INIT_LOSS = {1e-4: 7.0, 1e-2: 80.0}
#: The plain-SGD learning rate that worked, in 0-255 pixel units ("about 1e-7").
SOURCE_LR = 1e-7
#: The best model's validation accuracy on ImageNet-1k (1000 classes).
SOURCE_ACCURACY = {1: 0.030, 5: 0.10}
#: The source's accuracy pairs: noisy-template (weak decay) vs smooth-template (strong decay)
#: models, in its text (3.0% vs 1.6%) and in a figure caption (2.6% vs 1.4%); 2.8%: its
#: "very low regularization" model, decay not stated.
SOURCE_TOP1_PAIRS = dict(text=(0.030, 0.016), caption=(0.026, 0.014), very_low=0.028)
#: Weight decays of the source's lesson (Caffe units): AlexNet's default, "almost negligible"
#: with 12,288 inputs, and the value the source ended up needing.
ALEXNET_DECAY, SOURCE_DECAY = 0.0005, 100.0
#: The fooling targets of the source's figures (Tiny ImageNet has both).
SOURCE_TARGETS = ("goldfish", "school bus")


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
    """The source's numbers: ``x``, ``w`` in 10 dimensions, score -3 (P = 0.0474), and with
    ``x + 0.5 w`` score 2 (P = 0.88): every dimension gains ``eps |w_i|``, ``eps ||w||_1`` in all."""
    x = np.array([2, -1, 3, -2, 2, 2, 1, -4, 5, 1], dtype=float)
    w = np.array([-1, -1, 1, -1, 1, -1, 1, 1, -1, 1], dtype=float)
    sig = lambda s: 1.0 / (1.0 + math.exp(-s))  # noqa: E731
    x_ad = x + eps * w
    return ToyExample(x, w, eps, float(w @ x), sig(float(w @ x)), x_ad, float(w @ x_ad),
                      sig(float(w @ x_ad)))


def lesson_subset(x, y, n: int, *, seed: int):
    """``n`` seeded training images for the lessons: ``(x in [0, 1], y, random 1000-class labels,
    the 0-255 mean image)``. The 1000-class labels stand in for ImageNet-1k: an untrained model's
    loss does not depend on the labels."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)[:n]
    x_les, y_les = to_unit(x[idx]), y[idx]
    mean255 = pixel_mean(x_les, scale=255.0)
    y1000 = torch.randint(0, 1000, (len(idx),), generator=g)
    return x_les, y_les, y1000, mean255


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
                                 optimizer="sgd", momentum=0.9, max_steps=steps, seed=seed,
                                 progress=False)
    return logs


def largest_stable_rate(logs) -> float:
    """The largest rate whose loss neither diverged nor rose above twice its start (+1); NaN if
    none."""
    stable = [lr for lr, log in logs.items()
              if not log.diverged and max(log.step_losses) < 2 * log.step_losses[0] + 1]
    return max(stable) if stable else float("nan")


def decay_sweep(x_tr, y_tr, x_va, y_va, *, n_classes: int, decays, epochs: int, seed: int,
                device):
    """One [0, 1]-pixel model per weight decay (source units, divided by 255^2): ``(models,
    logs, accs)`` keyed by the decay; ``accs[lam]`` is ``{1: top-1, 5: top-5}`` on validation."""
    models, logs, accs = {}, {}, {}
    x_va = to_unit(x_va)
    for lam in decays:
        models[lam], logs[lam] = train_pixel_softmax(
            x_tr, y_tr, n_classes=n_classes, weight_decay=lam / 255**2, epochs=epochs,
            seed=seed, device=device, desc=f"softmax λ={lam:g}")
        accs[lam] = topk_accuracy(models[lam], x_va, y_va, batch_size=2048)
    return models, logs, accs


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
    ``pairs`` lists ``(start index, target)``, ``fool`` the :class:`~advtut.attacks.template.TemplateResult` and ``shown``
    the image to draw for each pair (the image at alpha = 1 where ``confidence`` is not
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
    return float(np.polyfit(np.log(np.asarray(d, float)), np.log(np.asarray(values, float)), 1)[0])


def regularization_entries(lam: float, stats: dict, *, n_fool: int, n_exact: int) -> list[dict]:
    """The results entries of one weight decay's :func:`regularization_stats` row."""
    px = "[0, 1] pixels"
    return [
        entry(f"λ={lam:g} template roughness", stats["rough"], unit="(1 = white noise)",
              note="mean over classes"),
        entry(f"λ={lam:g} fooling to 0.99 reached", stats["reached"], unit="fraction",
              note=f"{n_fool} validation images, random wrong targets"),
        entry(f"λ={lam:g} template fooling RMS", stats["rms"], unit=px,
              note="median where reached"),
        entry(f"λ={lam:g} template fooling max change", stats["linf"], unit=px,
              note="median where reached"),
        entry(f"λ={lam:g} exact L2 (RMS) to flip", stats["exact_rms"], unit=px,
              note=f"median over {n_exact} images; QP inside the pixel box"),
        entry(f"λ={lam:g} exact L-infinity to flip", stats["exact_linf"], unit=px,
              note=f"median over {n_exact} images; LP inside the pixel box"),
    ]


def _median_ratio(a, b) -> float:
    return float((a / b).median())


def optimum_entries(costs, *, best: float, n_exact: int) -> list[dict]:
    """The best model's template step and two-class bound over the exact optima (medians)."""
    beyond = f"λ = {best:g}, {n_exact} images; beyond the source"
    bound = "a lower bound, so at most 1"
    return [
        entry("template step / exact L-infinity (median)",
              _median_ratio(costs.template_linf, costs.exact_linf), unit="ratio", note=beyond),
        entry("template step / exact RMS (median)",
              _median_ratio(costs.template_rms, costs.exact_rms), unit="ratio", note=beyond),
        entry("two-class bound / exact L-infinity (median)",
              _median_ratio(costs.bound_linf, costs.exact_linf), unit="ratio", note=bound),
        entry("two-class bound / exact RMS (median)",
              _median_ratio(costs.bound_rms, costs.exact_rms), unit="ratio", note=bound),
    ]


def optimum_invariants(costs: dict) -> list[dict]:
    """What must hold for every model's :class:`FoolingCosts`: each two-class bound is at most
    the exact optimum, and the template step (a feasible perturbation) at least it."""
    def extreme(attr_a, attr_b, fn):
        vals = [getattr(c, attr_a) / getattr(c, attr_b) for c in costs.values()]
        v = torch.cat(vals)
        v = v[torch.isfinite(v)]
        return float(fn(v)) if len(v) else float("nan")

    out = []
    for norm, key in (("L2", "rms"), ("L-infinity", "linf")):
        out.append(invariant(
            f"two-class bound / exact {norm}, largest", extreme(f"bound_{key}", f"exact_{key}",
                                                               torch.max),
            op="<=", value=1.0, tol=1e-9, unit="ratio",
            note="over every model and image: the closed form ignores the other classes and "
                 "the box, so it can only be below the exact optimum"))
        out.append(invariant(
            f"template step / exact {norm}, smallest", extreme(f"template_{key}",
                                                               f"exact_{key}", torch.min),
            op=">=", value=1.0, tol=1e-4, unit="ratio",
            note="over every model and image: the template step is one feasible perturbation, "
                 "so it cannot beat the optimum (1e-4: its float32 bisection at the tie)"))
    return out


def resolution_entries(size: int, top1: float, exact_linf: float, exact_rms: float, *,
                       best: float, n_exact: int, data_note: str) -> list[dict]:
    """The results entries of one resolution of :func:`resolution_sweep`."""
    note = f"median over {n_exact} images; beyond the source"
    return [
        entry(f"{size}px top-1", top1, unit="fraction",
              note=f"λ = {best:g}; {data_note}; beyond the source"),
        entry(f"{size}px exact L-infinity to flip", exact_linf, unit="[0, 1] pixels", note=note),
        entry(f"{size}px exact L2 (RMS) to flip", exact_rms, unit="[0, 1] pixels", note=note),
    ]


def fooling_row(model, x, x_adv, label: str, note: str = "") -> dict:
    """One row of :func:`advtut.plotting.fooling_figure`: the images ``(3, H, W)`` in [0, 1]
    with ``model``'s class probabilities for both."""
    p = logits(model, torch.stack([x.float().cpu(), x_adv.float().cpu()])).softmax(1)
    return dict(x=x, x_adv=x_adv, p=p[0], p_adv=p[1], label=label, note=note)


def top1_entries(accs, *, low: float, high: float, best: float, data_note: str) -> list[dict]:
    """Each decay's top-1 beside its counterpart in the source (the weakest decay against the
    source's "very low regularization" model, the strongest against its smooth-template one,
    the best against its best), and the source's second pair, from a figure caption."""
    text, caption = SOURCE_TOP1_PAIRS["text"], SOURCE_TOP1_PAIRS["caption"]
    counterpart = {
        low: (SOURCE_TOP1_PAIRS["very_low"], "the source's 'very low regularization' model "
              "(its decay is not stated)"),
        high: (text[1], f"the source's smooth-template model (text; {caption[1]:.1%} in a "
               "caption)"),
        best: (text[0], f"the source's best model (text; {caption[0]:.1%} in a caption)")}
    out = []
    for lam, acc in accs.items():
        src, who = counterpart.get(lam, (None, "no counterpart in the source"))
        out.append(entry(f"λ={lam:g} top-1", acc[1], source=src, unit="fraction",
                         note=f"{data_note}; source: {who}, on ImageNet-1k; no tol: "
                              "different data"))
    out += [
        entry("caption pair: noisy-template model top-1", accs[best][1], source=caption[0],
              unit="fraction", note=f"ours: the best decay on {data_note}; source caption: "
                                    f"{caption[0]:.1%} (its text says {text[0]:.1%})"),
        entry("caption pair: smooth-template model top-1", accs[high][1], source=caption[1],
              unit="fraction", note=f"ours: the strongest decay on {data_note}; source caption: "
                                    f"{caption[1]:.1%} (its text says {text[1]:.1%})"),
    ]
    return out


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
    d = np.array([3 * s * s for s in sizes])
    gain = tuple(sign_step_gain(res[s][0], x if s == native else resize(x, s), target)
                 for s in sizes)
    linf = tuple(float(res[s][2].exact_linf.median()) for s in sizes)
    rms = tuple(float(res[s][2].exact_rms.median()) for s in sizes)
    return Resolution(sizes, d, tuple(res[s][1][1] for s in sizes), gain, linf, rms,
                      loglog_slope(d, linf), loglog_slope(d, gain))
