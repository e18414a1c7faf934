"""Chapter 6's tables and results entries (the experiments are in
:mod:`advtut.chapters.fooling.experiments`, the figures in :mod:`advtut.chapters.fooling.plots`),
with the invariant that holds in any profile: every reported fooling image, fed to the network
again, reaches the threshold on the network it was made for.
"""
from __future__ import annotations

import torch

from advtut.attacks.backwork import BackworkResult
from advtut.book.results import entry, invariant
from advtut.book.tables import table
from advtut.chapters.fooling.experiments import RejectionRound, SweepRow, first_crossing
from advtut.chapters.fooling.source import SETTINGS, SOURCE
from advtut.evaluation import logits as model_logits

__all__ = ["settings_table", "labels_table", "labels_entries", "sweep_table", "sweep_entries",
           "transfer_table", "transfer_entries", "rejection_table", "rejection_entries",
           "readings_table", "readings_entries", "confusion_table", "distances_table",
           "distances_entries", "strong_table", "evolve_table", "evolve_entries",
           "detector_table", "detector_entries"]


def settings_table():
    """Every setting of the source's backworking as the chapter runs it, marked as the
    source's (with its words) or ours (with the reason)."""
    return table([list(r) for r in SETTINGS], ["setting", "value", "whose", "why"],
                 caption="The settings called the source's, and the ones that are ours")


def labels_table(runs: dict[int, BackworkResult], caption: str):
    rows = [[k, r.n_iter, r.reinits, float(r.prob.min()), bool(r.success.all())]
            for k, r in runs.items()]
    return table(rows, ["label", "Adam steps", "re-drawn inputs", "smallest probability",
                        "reached 0.999"], caption=caption, digits=5)


def labels_entries(runs: dict[int, BackworkResult], model, *, what: str,
                   threshold: float = SOURCE["threshold"]) -> list[dict]:
    """Steps and re-draws per label, and the invariant on the images shown: each one's
    probability of its label, recomputed from the returned images on ``model``, reaches
    ``threshold`` (the images shown are the ones that were measured)."""
    out = []
    for k, r in runs.items():
        out.append(entry(f"{what}: label {k}, Adam steps", r.n_iter,
                         note=f"{len(r.x)} images from noise"))
        out.append(entry(f"{what}: label {k}, re-drawn inputs", r.reinits,
                         note="stuck inputs re-initialised from noise"))
    lowest = min(float(torch.softmax(model_logits(model, r.x).double(), 1)[:, k].min())
                 for k, r in runs.items())
    out.append(invariant(f"{what}: smallest probability of any shown image, recomputed",
                         lowest, op=">=", value=threshold, tol=1e-7,
                         note="each returned image fed to the network again: every image "
                              "shown reached the threshold on the network it was made for "
                              "(tol: float32 rounding of a recomputation)"))
    return out


def sweep_table(rows: list[SweepRow], caption: str):
    """One row per scale: means over the runs (labels), and the range of the batch cosine at
    fc1 over them."""
    n = len(rows[0].batch_fc1)
    out = []
    for r in rows:
        out.append([r.scale, r.converged, r.steps, r.reinits,
                    *[r.reference_cost[k] for k in ("conv2", "fc1")],
                    r.batch_cost["conv2"], r.batch_cost["fc1"],
                    *([f"{min(r.batch_fc1):.3f} to {max(r.batch_fc1):.3f}"] if n > 1 else [])])
    return table(out, ["scale", "reached 0.999", "steps", "re-drawn", "R conv2", "R fc1",
                       "B conv2", "B fc1", *(["B fc1 range"] if n > 1 else [])],
                 caption=caption + f" (R, B: centred cosines; means over {n} label"
                 + ("s" if n > 1 else "") + ", each a noise start)", digits=3)


def sweep_entries(rows: list[SweepRow], diff: float | None, *, what: str,
                  diff_mean: float | None = None) -> list[dict]:
    out = []
    for r in rows:
        out.append(entry(f"{what}, scale {r.scale:g}: fraction reaching 0.999", r.converged,
                         note="layer coefficients times the scale"))
        out.append(entry(f"{what}, scale {r.scale:g}: batch cosine at fc1", r.batch_cost["fc1"],
                         note="centred, mean over pairs of images in a batch, mean over "
                              f"labels {', '.join(map(str, r.labels))}: from "
                              f"{min(r.batch_fc1):.4f} to {max(r.batch_fc1):.4f}"))
        out.append(entry(f"{what}, scale {r.scale:g}: reference cosine at fc1",
                         r.reference_cost["fc1"], note="centred, mean over batch and reference"))
        out.append(entry(f"{what}, scale {r.scale:g}: mean steps", r.steps,
                         note="Adam steps per label"))
    if diff is not None:
        out.append(entry(f"{what}: largest pixel difference, costs off vs the source's", diff,
                         note="0: the source's coefficients change nothing"))
    if diff_mean is not None:
        out.append(entry(f"{what}: mean pixel difference, costs off vs the source's",
                         diff_mean, note="over every pixel of every image of the sweep"))
    return out


def transfer_table(rates: dict[str, dict[int, tuple[float, float]]],
                   noise: dict[str, torch.Tensor]):
    """``rates``: network -> {label: (rate, probability)}; ``noise``: network -> per-class
    fraction of noise images."""
    rows = []
    for net, per in rates.items():
        for k, (rate, p) in per.items():
            rows.append([net, k, rate, p, float(noise[net][k])])
    return table(rows, ["network", "label", "fooling images called the label",
                        "mean probability", "noise called the label"],
                 caption="Transfer of the fooling images, beside plain noise", digits=3)


def transfer_entries(rates, noise) -> list[dict]:
    out = []
    for net, per in rates.items():
        mean_rate = sum(r for r, _ in per.values()) / len(per)
        out.append(entry(f"transfer to {net}: fraction called their label", mean_rate,
                         note="mean over labels"))
        out.append(entry(f"transfer to {net}: share of noise given its favourite label",
                         float(noise[net].max()),
                         note=f"label {int(noise[net].argmax())}; the per-label baseline is "
                              "in the chapter's table"))
    return out


def rejection_table(rounds: list[RejectionRound], caption: str = "A rejection class, "
                    "round by round"):
    def pct(v):
        return "" if v is None else f"{v:.0%}"

    rows = [[r.round, r.test_accuracy, r.noise_rejected, r.success, r.steps, r.capped, r.prob,
             pct(r.trained_rejected), pct(r.held_rejected)] for r in rounds]
    return table(rows, ["round", "clean test accuracy", "noise rejected",
                        "labels fooled", "mean steps", "stopped by the budget",
                        "mean smallest p", "last round's images rejected: trained on",
                        "held out"], caption=caption, digits=4)


def rejection_entries(rounds: list[RejectionRound], *, what: str = "rejection round"
                      ) -> list[dict]:
    out = []
    for r in rounds:
        out.append(entry(f"{what} {r.round}: labels fooled within the budget",
                         r.success, note="fraction of labels whose batch reached 0.999"))
        out.append(entry(f"{what} {r.round}: mean steps", r.steps,
                         note="Adam steps per label, at most the budget"))
        out.append(entry(f"{what} {r.round}: labels stopped by the budget", r.capped,
                         note="fraction: a capped search measures the budget, not the steps"))
        out.append(entry(f"{what} {r.round}: clean test accuracy", r.test_accuracy,
                         note="a digit called 'fooling image' counts as an error"))
        out.append(entry(f"{what} {r.round}: uniform noise rejected", r.noise_rejected,
                         note="fraction put in class 10"))
        if r.held_rejected is not None:
            out.append(entry(f"{what} {r.round}: held-out fooling images rejected",
                             r.held_rejected, note="the last round's images of labels this "
                                                   "network never trained on"))
    return out


def evolve_table(evolved, runs):
    """Per label: the evolution strategy's success, median queries and largest query count,
    beside the gradient search's steps to 0.999 for the same starting images (each image's
    first crossing, median) and for its whole batch."""
    rows = []
    for k, rs in evolved.items():
        q = torch.tensor([float(r.queries) for r in rs])
        ok = sum(r.success for r in rs)
        steps = first_crossing(runs[k])[:len(rs)].double()
        rows.append([k, f"{ok} of {len(rs)}", float(q.median()), float(q.max()),
                     min(r.prob for r in rs), float(steps.median()), runs[k].n_iter])
    return table(rows, ["label", "reached 0.999", "median queries", "most queries",
                        "smallest probability", "gradient: steps, same images (median)",
                        "gradient: steps, whole batch"],
                 caption="Fooling images without gradients: separable CMA-ES from the "
                         "gradient search's starting noise, one image per run", digits=5)


def evolve_entries(evolved, model, *, cap: int, threshold: float = SOURCE["threshold"]
                   ) -> list[dict]:
    """Success and queries per label, and the invariant on the evolved images: each one's
    recomputed probability is the one the search reported."""
    out = []
    for k, rs in evolved.items():
        ok = sum(r.success for r in rs)
        out.append(entry(f"evolution: label {k}, runs reaching {threshold:g}", ok / len(rs),
                         note=f"{len(rs)} runs, at most {cap:,} queries each"))
        q = torch.tensor([float(r.queries) for r in rs])
        out.append(entry(f"evolution: label {k}, median queries", float(q.median()),
                         note="forward passes, one per candidate image"))
    worst = max(abs(float(torch.softmax(model_logits(model, r.x).double(), 1)[0, r.label])
                    - r.prob) for rs in evolved.values() for r in rs)
    out.append(invariant("evolution: reported probability against a recomputation", worst,
                         op="<=", value=1e-6,
                         note="each evolved image fed to the network again (float32 rounding)"))
    return out


#: The fewest images a detector row's DeLong interval is shown for (its normal approximation
#: needs more, and the images of one batch are not independent).
MIN_INTERVAL = 30


def detector_table(rows):
    """:class:`~advtut.chapters.fooling.experiments.DetectorRow` s: AUROC with its interval."""
    out = [[r.name, r.n, r.auroc.value,
            f"{r.auroc.low:.3f} to {r.auroc.high:.3f}" if r.n >= MIN_INTERVAL else "(n too small)",
            r.fpr95, r.median_p] for r in rows]
    return table(out, ["held-out digits against", "n", "AUROC", "95% interval",
                       "let through at 95% of digits", "median top probability"],
                 caption="The maximum softmax probability as a detector (AUROC 1: digits always "
                         "score higher; 0.5: no better than chance; below 0.5: the images "
                         "score higher than digits; intervals by DeLong, for independent "
                         f"images, shown from {MIN_INTERVAL} images up)", digits=4)


def detector_entries(rows) -> list[dict]:
    out = []
    for r in rows:
        spread = (f"DeLong 95% interval {r.auroc.low:.3f} to {r.auroc.high:.3f}; "
                  if r.n >= MIN_INTERVAL else "too few images for an interval; ")
        out.append(entry(f"max-softmax detector: AUROC, digits against {r.name}", r.auroc.value,
                         note=spread + f"{r.auroc.n_positive} digits, {r.n} others"))
        out.append(entry(f"max-softmax detector: {r.name} let through at 95% of digits",
                         r.fpr95, unit="fraction", note="false-positive rate at 95% true-positive "
                                                         "rate"))
    return out


def readings_table(rows):
    """The four readings of the source's costs
    (:func:`~advtut.chapters.fooling.experiments.readings`): each scored by its own reference
    cost at its top layer."""
    out = [[f"{r.activations} · {r.similarity}", r.scale, r.digits, r.noise, r.off, r.on,
            r.diff, r.converged] for r in rows]
    return table(out, ["reading", "scale", "real digits", "noise", "costs off", "costs on",
                       "largest pixel change", "reached 0.999"],
                 caption="The source's costs under each reading (activations · one image "
                         "against the set): its own reference cost at the top costed layer "
                         "(fc1 or its ReLU) for held-out digits, uniform noise and fooling "
                         "images grown with the costs off and on",
                 digits=3)


def readings_entries(rows) -> list[dict]:
    out = []
    for r in rows:
        what = f"reading {r.activations}, {r.similarity}, scale {r.scale:g}"
        out.append(entry(f"{what}: reference cost, digits minus noise", r.digits - r.noise,
                         note="the control: a reading that sees the training data scores real "
                              "digits above noise"))
        out.append(entry(f"{what}: reference cost, costs on minus off", r.on - r.off,
                         note="what the cost achieved on the quantity it lowers"))
        out.append(entry(f"{what}: largest pixel change from the costs", r.diff,
                         note="against the run with the costs off, same noise start"))
    return out


def confusion_table(confusions: dict[str, torch.Tensor], labels):
    """Target by predicted for each other network: one row per (network, target label)."""
    rows = []
    for net, m in confusions.items():
        for k, row in zip(labels, m):
            rows.append([net, k, *[int(v) for v in row]])
    n_classes = next(iter(confusions.values())).shape[1]
    return table(rows, ["network", "target", *[str(j) for j in range(n_classes)]],
                 caption="The fooling images' target label (rows) against what each other "
                         "network calls them (columns)")


def distances_table(d):
    """:class:`~advtut.chapters.fooling.experiments.DigitDistances` as medians and ranges."""
    def row(name, v):
        v = v.double()
        return [name, len(v), float(v.median()), float(v.min()), float(v.max())]

    rows = [row("fooling images, to the nearest training digit", d.fooling),
            row("fooling images, to the nearest digit of their label", d.fooling_own),
            row("held-out digits, to the nearest of their label", d.held_out),
            row("uniform noise, to the nearest training digit", d.noise),
            row("two training digits of one label", d.within_label)]
    return table(rows, ["images", "n", "median L2", "min", "max"],
                 caption="Are the fooling images digits? L2 distances, pixels in [0, 1]",
                 digits=3)


def distances_entries(d) -> list[dict]:
    return [entry("fooling images: median L2 to the nearest training digit",
                  float(d.fooling.median()), note="pixels in [0, 1]"),
            entry("held-out digits: median L2 to the nearest training digit of their label",
                  float(d.held_out.median()), note="how near a real digit lies: the control"),
            entry("uniform noise: median L2 to the nearest training digit",
                  float(d.noise.median()), note="how near an image with no digit lies"),
            entry("two training digits of one label: median L2",
                  float(d.within_label.median()), note="random pairs"),
            entry("fooling images whose nearest training digit has their target",
                  d.nearest_is_target, unit="fraction", note="chance: about 1/10"),
            entry("noise: largest share of one label among the nearest training digits",
                  d.noise_favourite, unit="fraction", note="what noise alone does")]


def strong_table(runs, *, first: float = 0.999):
    """Runs to a stricter threshold: per label the steps until the batch's smallest
    probability first reached ``first`` (from the trace) and until the end."""
    rows = []
    for k, r in runs.items():
        hit = (r.trace.min(1).values.double() >= first).nonzero()
        rows.append([k, int(hit[0, 0]) if len(hit) else None, r.n_iter, float(r.prob.min()),
                     bool(r.success.all())])
    return table(rows, ["label", f"steps to {first:g}", "steps to the end",
                        "smallest probability", "reached"],
                 caption="Backworking on to p >= 0.9999 (the \">99.99%\" the source's "
                         "introduction cites from Nguyen et al.)", digits=5)
