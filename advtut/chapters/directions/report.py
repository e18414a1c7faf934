"""Chapter 3's tables and results entries (the measurements are in
:mod:`advtut.chapters.directions.experiments` and :mod:`advtut.chapters.directions.bases`, the
figures in :mod:`advtut.chapters.directions.plots`). The invariants are what holds by
construction in any profile: every statistic of the projections separates the units of the sparse
aligned code from random directions, a rotation keeps a layer's Gram matrix, and the ablation's
shortcut equals running the network on the ablated features. What the trained networks give is
recorded as entries with verdicts.
"""
from __future__ import annotations

import numpy as np

from advtut.book.results import entry, invariant
from advtut.book.tables import table
from advtut.chapters.directions.bases import CONTROLS, POSITIVE, BasisTest
from advtut.chapters.directions.experiments import FAMILIES, Coherence, verdict
from advtut.chapters.directions.source import SOURCE
from advtut.directions import Comparison, mean_overlap, units_needed

__all__ = ["summary_table", "holm", "tests_table", "agreement", "controls_table",
           "negative_table", "false_alarms", "layers_table", "networks_table", "power_table",
           "verdict_table", "key", "claim", "reading", "entries", "control_entries", "layer_entries"]


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


_OTHER = {"random images": "random images"}


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
    """The units against k random images (the baseline with no structure), per layer and
    score: the probability that a unit's row scores higher with its 95% interval, the p-value,
    Holm's adjustment over the table's rows, and the verdict."""
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
    found = [v for v in verdicts if " higher (" in v]
    if all(v == SOURCE["claim"] for v in verdicts):
        return "yes"
    if any(v.endswith(("(medium)", "(large)")) for v in found):
        return "no"
    if found:
        return "nearly (small differences)"
    return "in part" if SOURCE["claim"] in verdicts else "not settled"


def _short(c: Comparison) -> str:
    return f"{c.superiority:.2f} [{c.low:.2f}, {c.high:.2f}]"


NEGATIVE = tuple(name for name, kind in CONTROLS if kind == "negative")


def controls_table(controls: dict[str, BasisTest], verdicts: dict[str, str]):
    """One row per score: ``P`` [95%] on each positive control, how many of the negative
    controls' intervals hold 0.5, and what the score can see
    (:func:`~advtut.chapters.directions.bases.control_verdicts`)."""
    rows = []
    for score in controls[POSITIVE[0]].tests:
        held = sum(controls[n].tests[score].low <= 0.5 <= controls[n].tests[score].high
                   for n in NEGATIVE)
        rows.append([score, *(_short(controls[n].tests[score]) for n in POSITIVE),
                     f"{held} of {len(NEGATIVE)}", verdicts[score]])
    return table(rows, ["score", *(f"positive: {n}" for n in POSITIVE),
                        "negative controls holding 0.5", "the score"],
                 caption="Controls: P(unit's score > random direction's) [95%]")


def negative_table(controls: dict[str, BasisTest]):
    """One row per score: ``P`` [95%] on each negative control (0.5 by construction)."""
    rows = [[score, *(_short(controls[n].tests[score]) for n in NEGATIVE)]
            for score in controls[NEGATIVE[0]].tests]
    return table(rows, ["score", *NEGATIVE],
                 caption="Negative controls: rotated layers, whose units are random directions")


def false_alarms(controls: dict[str, BasisTest]) -> tuple[int, int]:
    """How many of the negative controls' intervals exclude 0.5, and how many there are (about
    5% should, by chance, when the intervals are right)."""
    tests = [t for n in NEGATIVE for t in controls[n].tests.values()]
    return sum(not t.low <= 0.5 <= t.high for t in tests), len(tests)


def layers_table(layers: dict[str, BasisTest], verdicts: dict[str, str], caption: str):
    """One row per score: what it can see (the controls), then for each layer ``P`` [95%] and
    the verdict (:func:`~advtut.chapters.directions.experiments.verdict`)."""
    scores = list(next(iter(layers.values())).tests)
    rows = []
    for score in scores:
        row = [score, verdicts.get(score, "-")]
        for bt in layers.values():
            t = bt.tests.get(score)
            row += [_short(t), verdict(t)] if t is not None else [None, "not measured"]
        rows.append(row)
    cols = ["score", "controls"]
    for name, bt in layers.items():
        cols += [f"{name} P ({bt.n_groups} {'channels' if bt.groups is not None else 'units'})",
                 f"{name} verdict"]
    return table(rows, cols, caption=caption)


def networks_table(networks: list[dict[str, BasisTest]], seeds):
    """One row per layer and score: ``P`` for each independently trained network (its seed in
    the header), their mean and range. The unit of replication for a claim about networks is
    the network: with one, the range is a dash."""
    rows = []
    for layer in networks[0]:
        for score in networks[0][layer].tests:
            ps = [net[layer].tests[score].superiority for net in networks]
            spread = f"{min(ps):.2f} to {max(ps):.2f}" if len(ps) > 1 else None
            rows.append([layer, score, *ps, sum(ps) / len(ps), spread])
    return table(rows, ["layer", "score", *(f"P, seed {s}" for s in seeds), "mean", "range"],
                 caption=f"{len(networks)} independently trained MNIST CNN(s)", digits=3)


def power_table(bt: BasisTest, n_random: int):
    """One row per score of a layer: ``P`` measured, the units it had, and how many units an
    interval that decides (inside the negligible band, or clear of 0.5) would need if ``P`` were
    the truth (:func:`advtut.directions.units_needed`; a dash: more random directions needed)."""
    rows = []
    for score, t in bt.tests.items():
        need = units_needed(min(max(t.superiority, 1e-3), 1 - 1e-3), n_random)
        rows.append([score, t.superiority, verdict(t), t.n_a, need])
    return table(rows, ["score", "P", "verdict", "units", "units needed to decide"],
                 caption=f"{bt.layer}: how many units would decide", digits=3)


def verdict_table(layers: dict[str, BasisTest], verdicts: dict[str, str]):
    """The chapter's answer, one row per score: what the score can see, its verdict on each
    real layer (``layers``: "network, layer" -> test), and whether that agrees with the
    source's "no distinction" (:func:`agreement`; "cannot tell" for a blind score)."""
    rows = []
    for score in next(iter(layers.values())).tests:
        vs = [verdict(bt.tests[score]) for bt in layers.values() if score in bt.tests]
        agrees = "cannot tell" if verdicts[score] == "blind" else agreement(vs)
        shown = [verdict(bt.tests[score]) if score in bt.tests else "not measured"
                 for bt in layers.values()]
        rows.append([score, verdicts[score], *shown, agrees])
    return table(rows, ["score", "can it see a basis?", *layers, "agrees with the paper"],
                 caption="Units against random directions: the verdicts")


def key(score: str) -> str:
    """A short name for a score, for glue keys: ``"purity8"``, ``"cosine32"``,
    ``"kurtosis"``, ``"selectivity"``, ``"ablation"``."""
    if "(k=" in score:
        k = score.split("(k=")[1].rstrip(")")
        return ("purity" if score.startswith("label") else "cosine") + k
    return score.split()[-1]


def claim(layers: dict[str, BasisTest], verdicts: dict[str, str]) -> dict[str, str]:
    """The scores, in words, grouped by what they say of the source's "no distinction" over
    the real ``layers``, counting only the verdicts that decide (not "inconclusive"):
    ``"holds"``: every one "no distinction" or negligible; ``"nearly"``: small differences at
    most; ``"fails"``: units higher by a medium or large margin somewhere; ``"open"``: the
    score is blind on the controls, or no verdict decides."""
    out = {"holds": [], "nearly": [], "fails": [], "open": []}
    for score in next(iter(layers.values())).tests:
        vs = [verdict(bt.tests[score]) for bt in layers.values() if score in bt.tests]
        decided = [v for v in vs if v != "inconclusive"]
        if verdicts[score] == "blind" or not decided:
            out["open"].append(score)
        elif any(v.startswith("units") and v.endswith(("(medium)", "(large)")) for v in decided):
            out["fails"].append(score)
        elif all(v == SOURCE["claim"] or v.endswith("(negligible)") for v in decided):
            out["holds"].append(score)
        elif all(v == SOURCE["claim"] or v.endswith(("(negligible)", "(small)"))
                 for v in decided):
            out["nearly"].append(score)
        else:
            out["open"].append(score)
    return {k: ", ".join(v) if v else "none" for k, v in out.items()}


def reading(on_layer: Comparison, sees: str) -> str:
    """What a score's verdict on a real layer means, given what the score saw on the controls
    (``sees``: :func:`~advtut.chapters.directions.bases.control_verdicts`' words)."""
    v = verdict(on_layer)
    if v.startswith("units") and v.endswith(("(medium)", "(large)")):
        return f"{v}: by this score the units are not random directions"
    if sees == "blind":
        return f"{v}, from a score that separated no control: no evidence either way"
    if sees == "sees the basis":
        return f"{v}, from a score that separated every positive control"
    return f"{v}, from a score that separated every positive control but the " + \
        sees.removeprefix("misses ")


def entries(net: str, layers: dict[str, Coherence]) -> list[dict]:
    """Per layer: each family's mean scores (top-k rows), how much non-negative random
    directions' rows repeat each other, and how far the class means are purer than random
    images."""
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
        out.append(entry(f"{what}: class means' purity minus random images'",
                         float(c.purity["class means"].mean() - c.purity["random images"].mean()),
                         unit="fraction", note="the most structured baseline against the least"))
    return out


def _test_entries(what: str, score: str, t: Comparison, *, source=None) -> list[dict]:
    n = f"{t.n_a} units in {t.n_groups} channels" if t.n_groups else f"{t.n_a} units"
    return [
        entry(f"{what}: P({score}), unit over random direction", t.superiority, source=source,
              unit="probability", note=f"{n} against {t.n_b} signed random directions"),
        entry(f"{what}: P({score}), 95% interval low", t.low, unit="probability",
              note="percentile bootstrap, seeded" + (", resampling channels" if t.n_groups
                                                     else "")),
        entry(f"{what}: P({score}), 95% interval high", t.high, unit="probability",
              note="percentile bootstrap, seeded"),
        entry(f"{what}: p-value, {score}", t.p_value,
              note="cluster bootstrap (normal approximation)" if t.n_groups
              else "Mann-Whitney, two-sided"),
    ]


def control_entries(controls: dict[str, BasisTest], verdicts: dict[str, str],
                    facts: dict) -> list[dict]:
    """The controls: every score's P on each control (named "positive control: ..." and
    "negative control: ..."), what each score can see, the false alarms; the invariants that
    hold by construction."""
    kinds = dict(CONTROLS)
    out = []
    for name, bt in controls.items():
        for score, t in bt.tests.items():
            out += _test_entries(f"{kinds[name]} control: {name}", score, t)
    for score, v in verdicts.items():
        out.append(entry(f"controls: what {score} can see", v,
                         note="'sees the basis': P's interval above 0.56 on every positive "
                              "control"))
    bad, total = false_alarms(controls)
    out.append(entry("negative controls: intervals excluding 0.5", bad, unit="count",
                     note=f"of {total}; about 5% are expected by chance"))
    for score in ("kurtosis", "class selectivity", "ablation"):
        t = controls["sparse aligned code"].tests[score]
        out.append(invariant(f"positive control: sparse aligned code: {score}, interval low",
                             t.low, op=">=", value=0.56, unit="probability",
                             note="every unit is a class's factor by construction; a statistic "
                                  "of the projections must separate them from random directions"))
    for score in ("kurtosis", "class selectivity"):
        t = controls["clustered aligned code"].tests[score]
        out.append(invariant(f"positive control: clustered aligned code: {score}, interval low",
                             t.low, op=">=", value=0.56, unit="probability",
                             note="each unit copies its class's indicator: its projections are "
                                  "sparse and one class stands out, a random direction's not"))
    for name, change in facts["gram"].items():
        out.append(invariant(f"rotation keeps the Gram matrix: {name}", change, op="<=",
                             value=1e-12, unit="relative",
                             note="largest change of phi phi^T over 500 images, float64"))
    for name, gap in facts.get("ablation_check", {}).items():
        out.append(invariant(f"ablation shortcut against the network run with a hook: {name}",
                             gap, op="<=", value=1e-5, unit="nats",
                             note="largest gap in the loss gained, 3 random directions, 200 "
                                  "images; the network in float32"))
    out.append(entry("ICA: FastICA iterations", facts["ica_iter"], unit="iterations",
                     note="converged" if facts["ica_converged"] else "hit max_iter"))
    return out


def layer_entries(net: str, layers: dict[str, BasisTest]) -> list[dict]:
    """Each real layer's scores: P with its interval and p-value, and the verdict beside the
    source's "no distinction"."""
    out = []
    for name, bt in layers.items():
        what = f"{net}, {name}"
        for score, t in bt.tests.items():
            out += _test_entries(what, score, t, source=0.5)
            out.append(entry(f"{what}: verdict on {score}", verdict(t), source=SOURCE["claim"],
                             note="'no distinction' when P's 95% interval lies within "
                                  "[0.44, 0.56]; 'inconclusive' when it is neither there nor "
                                  "clear of 0.5"))
    return out
