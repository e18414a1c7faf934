"""Chapter 3's tables and results entries (the measurements are in
:mod:`advtut.chapters.directions.experiments`, the figures in
:mod:`advtut.chapters.directions.plots`), with the invariants that hold in any profile: a unit's
top-k images are its k largest activations, and the class-mean directions' top images are purer than
k random images.
"""
from __future__ import annotations

import numpy as np
import torch

from advtut.book.results import entry, invariant
from advtut.book.tables import table
from advtut.chapters.directions.experiments import FAMILIES, Coherence, top_k_exact, verdict
from advtut.chapters.directions.source import SOURCE
from advtut.directions import mean_overlap

__all__ = ["summary_table", "holm", "tests_table", "agreement", "verdict_table", "largest_edge",
           "entries"]


def summary_table(c: Coherence, caption: str):
    """One row per family: how many directions, label purity and judge cosine (mean and
    median), and how much the family's top-k sets overlap."""
    rows = []
    for f in FAMILIES:
        p, s = c.purity[f], c.cosine[f]
        rows.append([f, len(p), float(p.mean()), float(p.median()), float(s.mean()),
                     float(s.median()), mean_overlap(c.top[f]) if len(c.top[f]) > 1 else None])
    return table(rows, ["directions", "count", "purity (mean)", "purity (median)",
                        "cosine (mean)", "cosine (median)", "overlap"], caption=caption, digits=3)


_OTHER = {"random": "random directions", "random images": "random images"}


def _interval(t) -> str:
    return f"{t.superiority:.2f} [{t.low:.2f}, {t.high:.2f}]"


def holm(p_values) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` for testing them together: each
    adjusted p-value is at least the raw one and at most 1."""
    p = np.asarray(p_values, dtype=float)  # numpy input: floats (scipy's p-values)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def tests_table(layers: dict[str, Coherence], caption: str):
    """The units against signed random directions and against random images, per layer and
    score: the probability that a unit's row scores higher with its 95% interval, the
    Mann-Whitney p-value, Holm's adjustment over the table's rows, and the verdict."""
    tests = [(name, score, other, t) for name, c in layers.items()
             for (score, other), t in c.tests.items()]
    adjusted = holm([t.p_value for *_, t in tests])
    rows = [[name, score, _OTHER[other], _interval(t), t.p_value, q,
             verdict(t, other=_OTHER[other])]
            for (name, score, other, t), q in zip(tests, adjusted)]
    return table(rows, ["layer", "score", "units against", "P(unit higher) [95%]", "p-value",
                        "Holm p", "verdict"], caption=caption, digits=3)


def agreement(verdicts) -> str:
    """How a layer's verdicts (:func:`~advtut.chapters.directions.experiments.verdict`) sit with the
    source's "no distinction": ``"yes"``; ``"nearly"`` when every difference found is
    negligible or small; ``"no"`` when one is medium or large; ``"in part"`` or ``"not
    settled"`` when some or all verdicts are inconclusive."""
    verdicts = list(verdicts)
    found = [v for v in verdicts if "more coherent" in v]
    if all(v == SOURCE["claim"] for v in verdicts):
        return "yes"
    if any(v.endswith(("(medium)", "(large)")) for v in found):
        return "no"
    if found:
        return "nearly (small differences)"
    return "in part" if SOURCE["claim"] in verdicts else "not settled"


def verdict_table(networks: dict[str, dict[str, Coherence]]):
    """Per network and layer: the units against signed random directions on both scores, and
    whether that agrees with the source's "no distinction"."""
    rows = []
    for net, layers in networks.items():
        for name, c in layers.items():
            ts = [c.tests[(s, "random")] for s in ("purity", "cosine")]
            vs = [verdict(t) for t in ts]
            rows.append([net, name, _interval(ts[0]), vs[0], _interval(ts[1]), vs[1],
                         agreement(vs)])
    return table(rows, ["network", "layer", "P (purity)", "purity", "P (cosine)", "cosine",
                        "agrees with the paper"], caption="Units against random directions",
                 digits=3)


def largest_edge(layers: dict[str, Coherence]) -> float:
    """The largest ``|P - 0.5|`` of the units against signed random directions, over the
    layers and both scores."""
    return max(abs(c.tests[(s, "random")].superiority - 0.5)
               for c in layers.values() for s in ("purity", "cosine"))


def entries(net: str, layers: dict[str, Coherence], features: dict[str, torch.Tensor]
            ) -> list[dict]:
    """Per layer: each family's mean scores, the units-against-random comparisons with the
    verdict beside the source's claim, and the invariants."""
    out = []
    for name, c in layers.items():
        what = f"{net}, {name}"
        for f in FAMILIES:
            out.append(entry(f"{what}: label purity, {f}", float(c.purity[f].mean()),
                             unit="fraction", note=f"mean over {len(c.purity[f])} "
                             f"directions of the top-{c.k} images' largest label share"))
            out.append(entry(f"{what}: judge cosine, {f}", float(c.cosine[f].mean()),
                             note="mean centred cosine between two top images in the judge "
                                  "layer"))
        out.append(entry(f"{what}: overlap of the top sets, random ≥ 0",
                         mean_overlap(c.top["random ≥ 0"]), unit="fraction",
                         note="share of images two non-negative directions' top sets share"))
        for score in ("purity", "cosine"):
            t = c.tests[(score, "random")]
            out.append(entry(f"{what}: P(unit's {score} > random direction's)", t.superiority,
                             source=0.5, unit="probability",
                             note="0.5 is what 'no distinction' means; the source gives no "
                                  "number, so no tolerance is claimed"))
            out.append(entry(f"{what}: P, {score}, 95% interval low", t.low,
                             unit="probability", note="percentile bootstrap, seeded"))
            out.append(entry(f"{what}: P, {score}, 95% interval high", t.high,
                             unit="probability", note="percentile bootstrap, seeded"))
            out.append(entry(f"{what}: Mann-Whitney p-value, {score}", t.p_value,
                             note=f"units ({t.n_a}) against random directions ({t.n_b})"))
            out.append(entry(f"{what}: verdict on {score}", verdict(t), source=SOURCE["claim"],
                             note="'no distinction' when P's 95% interval lies within "
                                  "[0.44, 0.56]; 'inconclusive' when it is neither there nor "
                                  "clear of 0.5"))
        out.append(invariant(f"{what}: units whose top-{c.k} are their {c.k} largest "
                             "activations", top_k_exact(features[name], c.units, c.top["units"]),
                             op="==", value=1.0, unit="fraction",
                             note="top_k_along checked against a full sort of each unit's "
                                  "activations"))
        out.append(invariant(f"{what}: class means' purity minus random images'",
                             float(c.purity["class means"].mean() -
                                   c.purity["random images"].mean()),
                             op=">=", value=0.0,
                             note="the class-mean directions are the most structured baseline, "
                                  "k random images the least"))
    return out
