"""Chapter 2's results entries (and the source's counterparts), one function per notebook cell
that records numbers; each returns a list of :func:`~advtut.book.results.entry` /
:func:`~advtut.book.results.invariant` dicts, which the notebook concatenates in order.
"""
from __future__ import annotations

import torch

from advtut.book.results import entry, invariant
from advtut.chapters.linear_imagenet.experiments import Resolution, ToyExample
from advtut.chapters.linear_imagenet.source import (
    SOURCE_ACCURACY,
    SOURCE_INIT_LOSS,
    SOURCE_LR,
    SOURCE_TOP1_PAIRS,
    SOURCE_TOY,
)

__all__ = ["toy_entries", "initial_loss_entries", "learning_rate_entries", "accuracy_entries",
           "fooling_entries", "regularization_entries", "top1_entries", "optimum_entries",
           "optimum_invariants", "resolution_entries", "resolution_sweep_entries"]


def toy_entries(toy: ToyExample) -> list[dict]:
    """The toy logistic regression's scores and probabilities beside :data:`SOURCE_TOY`."""
    src = SOURCE_TOY
    exact = "the source's x and w; exact arithmetic"
    return [
        entry("toy score", toy.score, source=src["score"], tol=1e-12,
              note=exact),
        entry("toy P(class 1)", toy.p, source=src["p"], tol=5e-5,
              unit="probability", note="source rounds to 4 places"),
        entry("toy score after x + 0.5w", toy.score_ad, source=src["score_ad"],
              tol=1e-12, note="exact arithmetic"),
        entry("toy P(class 1) after x + 0.5w", toy.p_ad, source=src["p_ad"],
              tol=5e-3, unit="probability", note="source rounds to 2 places"),
    ]


def initial_loss_entries(init: dict, *, data_note: str) -> list[dict]:
    """The 1000-class initial losses of
    :func:`~advtut.chapters.linear_imagenet.experiments.initial_losses` (``{(init std, classes):
    loss}``) beside :data:`SOURCE_INIT_LOSS`."""
    src = SOURCE_INIT_LOSS
    return [
        entry("initial loss, init std 1e-4, 1000 classes", init[(1e-4, 1000)],
              source=src[1e-4], unit="nats",
              note=f"random labels on {data_note}; source: 'ballpark 7.0' "
                   "(-log(1/1000) = 6.91) on ImageNet"),
        entry("initial loss, init std 0.01, 1000 classes", init[(1e-2, 1000)],
              source=src[1e-2], unit="nats",
              note="random labels; grows with the image's contrast (our images' "
                   "length in 0-255 units), which the source's 80 does not "
                   "state"),
    ]


def learning_rate_entries(largest_stable: float, *, rates, steps: int,
                          data_note: str) -> list[dict]:
    """The largest stable plain-SGD rate of ``rates`` (``steps`` steps each) beside
    :data:`SOURCE_LR`."""
    return [entry(
        "largest stable SGD learning rate (0-255 pixels)", largest_stable,
        source=SOURCE_LR, unit="learning rate",
        note=f"of {list(rates)}, {steps} steps of batch 256 on "
             f"{data_note}; source: 'about 1e-7' on ImageNet")]


def accuracy_entries(accs: dict, *, best: float, n_classes: int, data_note: str) -> list[dict]:
    """The best decay's top-1 and top-5 (``accs[best]`` ``{1: top-1, 5: top-5}``) beside
    :data:`SOURCE_ACCURACY`."""
    return [
        entry("best top-1 validation accuracy", accs[best][1],
              source=SOURCE_ACCURACY[1], unit="fraction",
              note=f"{data_note}, {n_classes} classes, best of the weight "
                   "decays on the validation set; source: ImageNet-1k, 1000 "
                   "classes; not expected to match"),
        entry("best top-5 validation accuracy", accs[best][5],
              source=SOURCE_ACCURACY[5], unit="fraction",
              note=f"{data_note}; source: ImageNet-1k; not expected to match"),
    ]


def fooling_entries(pairs, fool, reached, start_names, class_names, *,
                    best: float) -> list[dict]:
    """Per ``(start, target)`` of ``pairs``: the template step's α from ``fool`` (a
    :class:`~advtut.attacks.template.TemplateResult`; null where ``reached[i]``, the pair's 0.99
    mask, is false), and the invariant that every reached pair has target probability >= 0.99."""
    out = []
    for i, (s, t) in enumerate(pairs):
        out.append(entry(
            f"fooling α, {start_names[s]} to {class_names[t]}",
            float(fool.alpha[i]) if reached[i] else None,
            unit="fraction of the pixel range",
            note=f"λ = {best:g} model; smallest α with p >= 0.99 (null: not "
                 "reached); the source shows images, no α"))
    p_reached = fool.p_target[reached]
    out.append(invariant(
        "template fooling: lowest target probability where reached",
        float(p_reached.min()) if reached.any() else 1.0, op=">=", value=0.99,
        unit="probability",
        note="a reported α must reach the 0.99 it was searched for"))
    return out


def regularization_entries(lam: float, stats: dict, *, n_fool: int, n_exact: int) -> list[dict]:
    """The results entries of one weight decay's row of
    :func:`~advtut.chapters.linear_imagenet.experiments.regularization_stats`."""
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
    """The results entries of one resolution of
    :func:`~advtut.chapters.linear_imagenet.experiments.resolution_sweep`."""
    note = f"median over {n_exact} images; beyond the source"
    return [
        entry(f"{size}px top-1", top1, unit="fraction",
              note=f"λ = {best:g}; {data_note}; beyond the source"),
        entry(f"{size}px exact L-infinity to flip", exact_linf, unit="[0, 1] pixels", note=note),
        entry(f"{size}px exact L2 (RMS) to flip", exact_rms, unit="[0, 1] pixels", note=note),
    ]


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




def resolution_sweep_entries(r: Resolution, *, best: float, n_exact: int,
                             data_note: str) -> list[dict]:
    """Every size's :func:`resolution_entries` and the log-log exponents of the exact
    L-infinity optimum and of the sign-step gain against the input dimension."""
    out = []
    for i, s in enumerate(r.sizes):
        out += resolution_entries(s, r.top1[i], r.exact_linf[i],
                                  r.exact_rms[i], best=best,
                                  n_exact=n_exact, data_note=data_note)
    out += [
        entry("exponent of exact L-infinity vs d", r.linf_slope,
              unit="log-log slope",
              note="-1 if the needed change fell as 1/d; beyond the source"),
        entry("exponent of the sign-step gain vs d", r.gain_slope,
              unit="log-log slope",
              note="+1 if weights kept their size as d grows (the toy "
                   "argument); beyond the source"),
    ]
    return out
