"""Chapter 7's figures: attribution maps, the sign step as the source shows it, flip curves, the
sanity check. Each function returns a matplotlib figure (closed for pyplot, so a notebook shows
what it displays and nothing twice). Maps are shown as the source shows them, max-normalised
per image: a single-channel map in gray, the flowers' gradient x input as an RGB image, other
RGB maps as one heat map (their magnitude summed over the channels).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from advtut.arrays import to_numpy
from advtut.attribution import max_normalise
from advtut.chapters.attribution.experiments import FlipCurves
from advtut.plotting.images import to_hwc

__all__ = ["display_map", "plot_maps", "plot_changes", "plot_sign_step", "plot_flip_curves",
           "plot_budget", "plot_sanity"]


def display_map(maps: torch.Tensor, *, rgb: bool = False) -> torch.Tensor:
    """Maps ``(N, C, H, W)`` ready for ``imshow`` in [0, 1]: ``rgb`` keeps three channels
    (the source's gradient x input of a colour photo), otherwise the magnitude summed over
    channels ``(N, 1, H, W)``; max-normalised per image."""
    m = maps.detach().abs().float().cpu()
    if not rgb:
        m = m.sum(1, keepdim=True)
    return max_normalise(m)


def _show(ax, image, *, cmap="gray", title=None):
    ax.imshow(to_hwc(image), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def plot_maps(images: torch.Tensor, rows: dict[str, torch.Tensor], *, titles=None,
              rgb_rows=(), size: float = 1.25):
    """The images in the first row and one row per entry of ``rows`` (label -> maps
    ``(N, C, H, W)``); rows named in ``rgb_rows`` are drawn in colour, the others as heat
    maps. ``titles``: one per image."""
    n, k = len(images), len(rows) + 1
    fig, axes = plt.subplots(k, n, figsize=(size * n + 1.2, size * k), squeeze=False)
    gray = images.shape[1] == 1
    for j in range(n):
        _show(axes[0, j], images[j].cpu(), title=titles[j] if titles else None)
        for i, (label, maps) in enumerate(rows.items(), start=1):
            shown = display_map(maps, rgb=label in rgb_rows)
            _show(axes[i, j], shown[j], cmap="gray" if gray or label in rgb_rows else "magma")
    for i, label in enumerate(["image", *rows], start=0):
        axes[i, 0].set_ylabel(label.replace(" ", "\n", 1) if len(label) > 12 else label,
                              fontsize=10, rotation=0, ha="right", va="center")
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_changes(changes: dict[str, list[float]], *, window: int = 20):
    """How much gradient x input moves per update (relative L2 change), per dataset, with a
    running mean over ``window`` updates; log scale."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for (label, c), color in zip(changes.items(), ("#1f77b4", "#d62728")):
        c = to_numpy(c)
        steps = np.arange(1, len(c) + 1)
        ax.plot(steps, c, color=color, alpha=0.25, lw=0.8)
        if len(c) >= window:
            smooth = np.convolve(c, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], smooth, color=color, lw=2,
                    label=f"{label} (mean of {window})")
    ax.set_yscale("log")
    ax.set_xlabel("minibatch update")
    ax.set_ylabel("relative change of gradient × input")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_sign_step(images: torch.Tensor, examples: dict[str, torch.Tensor], class_names, *,
                   eps: float):
    """The source's figure, one image per row: the original, the perturbation
    ``eps * sign(g)`` alone (shown scaled to [0, 1]), the sum, and random signs of the same
    size, each titled with the predicted class and its softmax confidence."""
    n = len(images)
    fig, axes = plt.subplots(n, 4, figsize=(7.2, 1.9 * n), squeeze=False)
    for i in range(n):
        x = images[i].cpu()
        p = examples["perturbation"][i].cpu()
        shown = {"original": x, "alone": p / (2 * eps) + 0.5,
                 "adversarial": (x + p).clamp(0, 1),
                 "random": (x + examples["random_perturbation"][i].cpu()).clamp(0, 1)}
        for j, what in enumerate(("original", "alone", "adversarial", "random")):
            cls = class_names[int(examples[f"{what}_class"][i])]
            conf = float(examples[f"{what}_conf"][i])
            head = {"original": "original", "alone": f"{eps:g}·sign(∇) alone",
                    "adversarial": "original + step", "random": "+ random signs"}[what]
            title = f"{head}\n{cls} {conf:.0%}"
            _show(axes[i, j], shown[what], title=title)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_flip_curves(curves: dict[str, dict[str, FlipCurves]]):
    """One panel per dataset: the fraction of test labels that flip against ``eps`` under the
    sign step and under random signs, for the untrained and the trained network."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), squeeze=False)
    for ax, (dataset, by_state) in zip(axes[0], curves.items()):
        for state, color in (("untrained", "#999999"), ("trained", "#1f77b4")):
            c = by_state[state]
            ax.plot(c.eps, c.sign, "o-", color=color, label=f"{state}: sign step")
            ax.plot(c.eps, c.random, "s--", color=color, mfc="none",
                    label=f"{state}: random signs")
        ax.set_xlabel("ε (L∞ size of the step, 0-1 pixels)")
        ax.set_ylabel("fraction of labels flipped")
        ax.set_title(dataset, fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_budget(curves: dict[str, FlipCurves]):
    """Sign step against normalised gradient, per dataset: at equal L2 size (left column) and
    at equal L-infinity size (right column)."""
    fig, axes = plt.subplots(len(curves), 2, figsize=(8.4, 3.3 * len(curves)), squeeze=False)
    for row, (dataset, c) in zip(axes, curves.items()):
        row[0].plot(c.l2, c.sign, "o-", label="sign step")
        row[0].plot(c.l2, c.l2_equal, "^-", label="normalised gradient, same L2")
        row[0].set_xlabel("L2 size of the step")
        row[1].plot(c.eps, c.sign, "o-", label="sign step")
        row[1].plot(c.eps, c.linf_equal, "v-", color="#2ca02c",
                    label="normalised gradient, same L∞")
        row[1].set_xlabel("L∞ size of the step")
        for ax in row:
            ax.set_ylabel("fraction of labels flipped")
            ax.set_title(dataset, fontsize=10)
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_sanity(rows: dict[str, list[dict]], methods):
    """One panel per dataset: each method's rank correlation with the trained network's map
    (solid) and with the input itself (dashed) as the layers are re-initialised from the top,
    and for the untrained network."""
    fig, axes = plt.subplots(1, len(rows), figsize=(4.6 * len(rows), 5.0), squeeze=False)
    colors = ("#1f77b4", "#d62728", "#2ca02c")
    for ax, (dataset, rs) in zip(axes[0], rows.items()):
        states = [r["state"] for r in rs]
        pos = np.arange(len(states))
        for method, color in zip(methods, colors):
            ax.plot(pos, [r[f"{method} vs trained"] for r in rs], "o-", color=color,
                    label=f"{method}: vs trained map")
            ax.plot(pos, [r[f"{method} vs input"] for r in rs], "x--", color=color,
                    label=f"{method}: vs the input")
        ax.set_xticks(pos, states, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("mean rank correlation")
        ax.set_title(dataset, fontsize=10)
        ax.set_ylim(-0.3, 1.05)
        ax.axhline(0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    plt.close(fig)
    return fig
