"""Chapter 3's figures: the top images along a family's directions, and the distributions of
the coherence scores of each family."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from advtut.chapters.directions.bases import BasisTest
from advtut.chapters.directions.experiments import FAMILIES, Coherence
from advtut.plotting.images import to_hwc

__all__ = ["rows_figure", "plot_scores", "plot_intervals"]

_COLORS = {"units": "tab:blue", "random": "tab:orange", "random ≥ 0": "tab:green",
           "random images": "tab:gray", "class means": "tab:red"}


def rows_figure(images: torch.Tensor, labels: torch.Tensor, c: Coherence, family: str,
                class_names, *, n_rows: int, size: float = 1.05, title: str = ""):
    """The source's figure layout: one row per direction of ``family`` (``"units"`` or
    ``"random"``; the first ``n_rows`` drawn, not chosen), its top-k pool images from the left,
    each titled with its label. ``images`` ``(N, C, H, W)`` in [0, 1] and ``labels``
    ``(N,)``: the pool."""
    if family not in ("units", "random"):
        raise ValueError(f"family must be 'units' or 'random', got {family!r}")
    top = c.top[family][:n_rows]
    k = top.shape[1]
    fig, axes = plt.subplots(len(top), k, figsize=(size * k + 0.9, size * 1.2 * len(top)),
                             squeeze=False)
    for r, row in enumerate(top):
        for j, i in enumerate(row.tolist()):
            ax = axes[r, j]
            ax.imshow(to_hwc(images[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(str(class_names[int(labels[i])]), fontsize=8)
        name = (f"unit {int(c.units[r])}" if family == "units" else f"direction {r + 1}")
        axes[r, 0].set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_scores(layers: dict[str, Coherence], *, title: str = ""):
    """Histograms of the two scores per layer (a row each): units, random directions (signed
    and non-negative) and random images; the class-mean directions as ticks on the axis."""
    fig, axes = plt.subplots(len(layers), 2, figsize=(9, 2.6 * len(layers)), squeeze=False)
    for r, (name, c) in enumerate(layers.items()):
        for ax, score in zip(axes[r], ("purity", "cosine")):
            values = getattr(c, score)
            lo = min(float(v.min()) for v in values.values())
            hi = max(float(v.max()) for v in values.values())
            bins = (np.arange(0.5 / c.k, 1 + 1 / c.k, 1 / c.k) if score == "purity"
                    else np.linspace(lo, hi, 31))
            for f in FAMILIES[:-1]:
                ax.hist(values[f].cpu().numpy(), bins=bins, histtype="step", lw=1.6,
                        color=_COLORS[f], label=f, density=True)
            ax.plot(values["class means"].cpu().numpy(), np.zeros(len(values["class means"])), "|",
                    color=_COLORS["class means"], ms=14, mew=2, label="class means",
                    clip_on=False)
            ax.set_xlabel("label purity of the top images" if score == "purity"
                          else "mean centred cosine in the judge layer")
            ax.set_ylabel("density")
            ax.set_title(f"{name}: {score}", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    plt.close(fig)
    return fig


def plot_intervals(rows: dict[str, BasisTest], *, title: str = "", band: float = 0.06):
    """A forest plot: one line of the y axis per entry of ``rows`` (a control or a real layer,
    top to bottom), and for every score its ``P`` = P(unit's score > random direction's) with
    the 95% interval, offset a little per score; 0.5 (no distinction) and the negligible band
    ``0.5 +- band`` are marked."""
    scores = list(next(iter(rows.values())).tests)
    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) * 1.6 + 1.2))
    ax.axvspan(0.5 - band, 0.5 + band, color="0.9", zorder=0, label="negligible band")
    ax.axvline(0.5, color="0.4", lw=0.8, zorder=1)
    step = 0.8 / max(len(scores), 1)
    for j, score in enumerate(scores):
        ys, ps, lo, hi = [], [], [], []
        for i, bt in enumerate(rows.values()):
            if score not in bt.tests:
                continue
            t = bt.tests[score]
            ys.append(i + (j - (len(scores) - 1) / 2) * step)
            ps.append(t.superiority)
            lo.append(t.superiority - t.low)
            hi.append(t.high - t.superiority)
        ax.errorbar(ps, ys, xerr=[lo, hi], fmt="o", ms=3.5, lw=1.2, capsize=0,
                    color=colors(j), label=score)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(list(rows), fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("P(unit's score > random direction's), with 95% interval")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / len(rows)), ncol=4,
              fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig
