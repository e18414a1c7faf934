"""Chapter 5's figures: each layer's bound, exact norm and local constants, and the sandwich of
certified radius, minimal distortion and attack."""
from __future__ import annotations

import math

from advtut.chapters.spectral.experiments import CNNNorms, Sandwich

__all__ = ["plot_layer_norms", "plot_sandwich"]


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
    """Each attacked image as a point: the certified radius (x) against the attack's L2
    distance (y), per network, with the first-order estimate as open markers; everything
    above the diagonal is consistent with the certificate."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5))
    lo, hi = math.inf, 0.0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, sw), color in zip(sandwiches.items(), colors):
        ok = sw.success
        c, a, e = sw.certified[ok], sw.attack_l2[ok], sw.local_estimate[ok]
        ax.scatter(c, a, s=22, color=color, label=f"{name}: L-BFGS distance")
        ax.scatter(c, e, s=22, facecolors="none", edgecolors=color,
                   label=f"{name}: margin / (√2 local)")
        lo, hi = min(lo, float(c.min())), max(hi, float(a.max()), float(e.max()))
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="certified radius (y = x)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("certified radius margin / (√2 L)  (L2, pixels in [0, 1])")
    ax.set_ylabel("L2 distance")
    ax.set_title("Certified radius ≤ minimal distortion ≤ attack")
    ax.legend(fontsize=8)
    return ax
