"""Chapter 5's figures: each layer's bound, exact norm and local constants, the sandwich of
certified radius, minimal distortion and attack, and certified accuracy against the radius."""
from __future__ import annotations

import math

import torch

from advtut.chapters.spectral.experiments import CNNNorms, NetworkReport, Sandwich

__all__ = ["plot_layer_norms", "plot_sandwich", "plot_certified", "plot_attack_vs_certified"]


def plot_layer_norms(init: list[CNNNorms], trained: list[CNNNorms], *, ax=None):
    """Per layer (and the network), on a log scale: the bound at initialisation and after
    training, the exact norm after training and the local constants at test images (mean,
    with the max as a tick)."""
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    names = [r.layer for r in trained]
    pos = np.arange(len(names))
    series = [("bound at initialisation", [r.bound for r in init], "#bbbbbb"),
              ("bound, trained", [r.bound for r in trained], "#1f77b4"),
              ("exact norm, trained", [r.exact for r in trained], "#2ca02c"),
              ("local, mean over test images", [r.local_mean for r in trained], "#d62728")]
    width = 0.2
    for i, (label, values, color) in enumerate(series):
        ax.bar(pos + (i - 1.5) * width, values, width, label=label, color=color)
    ax.scatter(pos + 1.5 * width, [r.local_max for r in trained], marker="_", s=200,
               color="black", label="local, max", zorder=3)
    ax.set_yscale("log")
    ax.set_xticks(pos, names)
    ax.set_ylabel("Lipschitz constant (L2 → L2)")
    ax.set_title("How much each layer can stretch, and how much it does at test images")
    ax.legend(fontsize=9, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    return ax


def plot_sandwich(sandwiches: dict[str, Sandwich], *, ax=None):
    """Each attacked image as a point: the certified radius (x) against the smallest L2
    distance the attack found (y), per network, with the margin-wise first-order estimate as
    open markers; everything above the diagonal is consistent with the certificate."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5))
    lo, hi = math.inf, 0.0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, sw), color in zip(sandwiches.items(), colors):
        ok = sw.success
        c, a, e = sw.certified[ok], sw.found[ok], sw.first_order[ok]
        ax.scatter(c, a, s=22, color=color, label=f"{name}: distance found")
        ax.scatter(c, e, s=22, facecolors="none", edgecolors=color,
                   label=f"{name}: first-order estimate")
        lo, hi = min(lo, float(c.min())), max(hi, float(a.max()), float(e.max()))
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="certified radius (y = x)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("certified radius margin / (√2 L)  (L2, pixels in [0, 1])")
    ax.set_ylabel("L2 distance")
    ax.set_title("Certified radius ≤ minimal distortion ≤ attack")
    ax.legend(fontsize=8)
    return ax


def plot_certified(reports: list[NetworkReport], *, ax=None):
    """Certified accuracy over the test set against the L2 radius, one curve per network
    (group): with one seed its Wilson 95% band, with several the mean over seeds and the band
    from the lowest to the highest seed; radius 0 is the plain accuracy."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    groups: dict[str, list[NetworkReport]] = {}
    for r in reports:
        groups.setdefault(r.group, []).append(r)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (group, rs), color in zip(groups.items(), colors * 2):
        acc = torch.stack([r.certified.accuracy for r in rs])
        eps, lip = rs[0].certified.eps, sum(r.certified.lipschitz for r in rs) / len(rs)
        if len(rs) == 1:
            low, high, what = rs[0].certified.low, rs[0].certified.high, ""
        else:
            low, high, what = acc.min(0).values, acc.max(0).values, f", {len(rs)} seeds"
        ax.plot(eps, acc.mean(0), marker="o", ms=4, color=color,
                label=f"{group} (L = {lip:.3g}{what})")
        ax.fill_between(eps, low, high, color=color, alpha=0.2, lw=0)
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_ylim(0, 1)
    ax.set_xlabel("L2 radius ε (pixels in [0, 1])")
    ax.set_ylabel("certified accuracy")
    ax.set_title("Labelled correctly and certified at radius ε")
    ax.legend(fontsize=8, loc="upper right")
    return ax


def plot_attack_vs_certified(reports: list[NetworkReport], *, ax=None):
    """Per network of the first seed, each attacked image as a point: its certified radius
    (x) against the distance DDN needed (y), log-log, with the diagonal below which no point
    can lie."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5), layout="constrained")
    lo, hi = math.inf, 0.0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    first = min(r.seed for r in reports)
    for r, color in zip([r for r in reports if r.seed == first], colors * 2):
        if r.attack is None:
            continue
        ok = (r.attack < math.inf) & (r.certified_at_attack > 0)
        c, a = r.certified_at_attack[ok], r.attack[ok]
        if len(c) == 0:
            continue
        ax.scatter(c, a, s=18, color=color, label=r.name)
        lo, hi = min(lo, float(c.min())), max(hi, float(a.max()))
    if hi > 0:
        ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="distance = certified radius")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("certified radius (L2, pixels in [0, 1])")
    ax.set_ylabel("DDN distance (L2)")
    ax.set_title("What each network certifies, and what an attack needs")
    ax.legend(fontsize=8)
    return ax
