"""Chapter 6's figures: grids of fooling images and of the least typical training digits, and
the cost sweeps."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from advtut.attacks.backwork import BackworkResult
from advtut.chapters.fooling.experiments import SweepRow
from advtut.plotting.images import image_grid

__all__ = ["fooling_grid", "worst_grid", "plot_sweep", "evolved_grid"]


def fooling_grid(runs: dict[int, BackworkResult], *, size: float = 0.95):
    """One row per label: its images, each titled with the probability of the label."""
    x = torch.cat([r.x.cpu() for r in runs.values()])
    titles = [f"{k}: {float(p):.4f}" for k, r in runs.items() for p in r.prob]
    fig = image_grid(x, titles=titles, n_cols=len(next(iter(runs.values())).x), size=size)
    plt.close(fig)
    return fig


def evolved_grid(evolved: dict, *, size: float = 0.95):
    """The evolved images (:func:`~advtut.chapters.fooling.experiments.evolve_labels`), one row
    per label, each titled "label: probability (queries)"."""
    rs = [r for v in evolved.values() for r in v]
    fig = image_grid(torch.cat([r.x.cpu() for r in rs]),
                     titles=[f"{r.label}: {r.prob:.4f} ({r.queries:,})" for r in rs],
                     n_cols=len(next(iter(evolved.values()))), size=size)
    plt.close(fig)
    return fig


def worst_grid(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, p: torch.Tensor):
    """The training digits ``x[idx]``, each titled "label: probability of its label"."""
    fig = image_grid(x[idx], titles=[f"{int(y[i])}: {float(q):.3f}" for i, q in zip(idx, p)],
                     size=1.1)
    plt.close(fig)
    return fig


def plot_sweep(rows: dict[str, list[SweepRow]], *, baseline: float | None = None):
    """Batch similarity at fc1 (one ruler for all) and the fraction that reaches the
    threshold, against the scale of the layer coefficients, one line per design (the mean
    over labels; each label's own curve faint behind it);
    ``baseline``: the batch similarity of real digits, drawn dotted."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, rs in rows.items():
        xs = [max(r.scale, 0.1) for r in rs]
        line, = axes[0].plot(xs, [r.batch_cost["fc1"] for r in rs], "o-", label=name)
        if len(rs[0].batch_fc1) > 1:          # each label's own curve, faint
            for i in range(len(rs[0].batch_fc1)):
                axes[0].plot(xs, [r.batch_fc1[i] for r in rs], "-", color=line.get_color(),
                             alpha=0.3, lw=1)
        axes[1].plot(xs, [r.converged for r in rs], "o-", label=name)
    for ax, ylabel in zip(axes, ("batch cosine at fc1 (centred)", "fraction reaching 0.999")):
        ax.set_xscale("log")
        ax.set_xlabel("scale of the layer coefficients (0 drawn at 0.1)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.set_ylim(-0.05, 1.05)
        if baseline is not None and ylabel.startswith("batch"):
            ax.axhline(baseline, color="k", ls=":", lw=1, label="8 real digits of a label")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
