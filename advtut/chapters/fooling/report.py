"""Chapter 6's tables and results entries (the experiments are in
:mod:`advtut.chapters.fooling.experiments`, the figures in :mod:`advtut.chapters.fooling.plots`),
with the invariants that hold in any profile: every reported
fooling image reaches the threshold on the network it was made for, and stays in [0, 1].
"""
from __future__ import annotations

import torch

from advtut.attacks.backwork import BackworkResult
from advtut.book.results import entry, invariant
from advtut.book.tables import table
from advtut.chapters.fooling.experiments import RejectionRound, SweepRow
from advtut.chapters.fooling.source import SOURCE

__all__ = ["labels_table", "labels_entries", "sweep_table", "sweep_entries", "transfer_table",
           "transfer_entries", "rejection_table", "rejection_entries"]


def labels_table(runs: dict[int, BackworkResult], caption: str):
    rows = [[k, r.n_iter, r.reinits, float(r.prob.min()), bool(r.success.all())]
            for k, r in runs.items()]
    return table(rows, ["label", "Adam steps", "re-drawn inputs", "smallest probability",
                        "reached 0.999"], caption=caption, digits=5)


def labels_entries(runs: dict[int, BackworkResult], *, what: str) -> list[dict]:
    """Steps and re-draws per label, and the invariants on the images shown."""
    out = []
    for k, r in runs.items():
        out.append(entry(f"{what}: label {k}, Adam steps", r.n_iter,
                         note=f"{len(r.x)} images from noise"))
        out.append(entry(f"{what}: label {k}, re-drawn inputs", r.reinits,
                         note="stuck inputs re-initialised from noise"))
    lowest = min(float(r.prob.min()) for r in runs.values())
    out.append(entry(f"{what}: threshold on the smallest probability", SOURCE["threshold"],
                     source=SOURCE["threshold"], tol=0.0, note="the source's stopping rule"))
    out.append(invariant(f"{what}: smallest probability of any shown image", lowest, op=">=",
                         value=SOURCE["threshold"],
                         note="every image shown reached the threshold on the network it was "
                              "made for"))
    xs = torch.cat([r.x for r in runs.values()])
    out.append(invariant(f"{what}: smallest pixel", float(xs.min()), op=">=", value=0.0,
                         note="images are clipped to [0, 1] after every step"))
    out.append(invariant(f"{what}: largest pixel", float(xs.max()), op="<=", value=1.0,
                         note="images are clipped to [0, 1] after every step"))
    return out


def sweep_table(rows: list[SweepRow], caption: str):
    out = []
    for r in rows:
        out.append([r.scale, r.converged, r.steps, r.reinits,
                    *[r.reference_cost[k] for k in ("conv2", "fc1")],
                    *[r.batch_cost[k] for k in ("conv2", "fc1")]])
    return table(out, ["scale", "reached 0.999", "steps", "re-drawn", "R conv2", "R fc1",
                       "B conv2", "B fc1"], caption=caption + " (R, B: centred cosines)",
                 digits=3)


def sweep_entries(rows: list[SweepRow], diff: float | None, *, what: str) -> list[dict]:
    out = []
    for r in rows:
        out.append(entry(f"{what}, scale {r.scale:g}: fraction reaching 0.999", r.converged,
                         note="layer coefficients times the scale"))
        out.append(entry(f"{what}, scale {r.scale:g}: batch cosine at fc1", r.batch_cost["fc1"],
                         note="centred, mean over pairs of images in a batch"))
        out.append(entry(f"{what}, scale {r.scale:g}: reference cosine at fc1",
                         r.reference_cost["fc1"], note="centred, mean over batch and reference"))
        out.append(entry(f"{what}, scale {r.scale:g}: mean steps", r.steps,
                         note="Adam steps per label"))
    if diff is not None:
        out.append(entry(f"{what}: largest pixel difference, costs off vs the source's", diff,
                         note="0: the source's coefficients change nothing"))
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


def rejection_table(rounds: list[RejectionRound]):
    rows = [[r.round, r.test_accuracy, r.noise_rejected, r.success, r.steps, r.prob]
            for r in rounds]
    return table(rows, ["round", "clean test accuracy", "noise rejected",
                        "labels fooled within budget", "mean steps", "mean smallest p"],
                 caption="A rejection class, round by round", digits=4)


def rejection_entries(rounds: list[RejectionRound], *, what: str = "rejection round"
                      ) -> list[dict]:
    out = []
    for r in rounds:
        out.append(entry(f"{what} {r.round}: labels fooled within the budget",
                         r.success, note="fraction of labels whose batch reached 0.999"))
        out.append(entry(f"{what} {r.round}: mean steps", r.steps,
                         note="Adam steps per label, at most the budget"))
        out.append(entry(f"{what} {r.round}: clean test accuracy", r.test_accuracy,
                         note="a digit called 'fooling image' counts as an error"))
    return out
