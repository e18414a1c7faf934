"""Chapter 2's figures beyond the library's (:mod:`advtut.plotting`): training curves of the
learning-rate and weight-decay sweeps and the resolution sweep."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from advtut.chapters.linear_imagenet.experiments import Resolution

__all__ = ["plot_lr_sweep", "plot_decay_training", "plot_resolution"]


def plot_lr_sweep(lr_logs: dict, *, n_classes: int):
    """The training loss per SGD step of each rate of ``lr_logs`` (``{rate: TrainLog}``,
    clipped at 1000, log scale) with ``log K`` for reference. Returns the figure."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for lr, log in lr_logs.items():
        steps = np.arange(1, len(log.step_losses) + 1)
        label = f"lr {lr:g}" + (" (diverged)" if log.diverged else "")
        ax.plot(steps, np.clip(log.step_losses, None, 1e3), label=label)
    ax.axhline(math.log(n_classes), color="grey", ls=":", label="log K")
    ax.set_yscale("log")
    ax.set_xlabel("SGD step (batch 256)")
    ax.set_ylabel("training loss (clipped at 1000)")
    ax.set_title("plain SGD + momentum in 0-255 pixel units")
    ax.legend(fontsize=8)
    return fig


def plot_decay_training(logs: dict, decays, *, epochs: int, n_classes: int):
    """The training loss (means of about 100 windows) of each weight decay's model (``logs``
    keyed by the decays). Returns the figure."""
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for lam in decays:
        losses = np.array(logs[lam].step_losses)  # numpy input: a tuple of floats
        k = max(1, len(losses) // 100)  # plot the mean of every k steps
        n = len(losses) // k * k
        ax.plot(k * np.arange(1, n // k + 1), losses[:n].reshape(-1, k).mean(1),
                label=f"λ = {lam:g}")
    ax.set_xlabel("Adam step (batch 256)")
    ax.set_ylabel("training loss + weight decay")
    ax.set_title(f"training, {epochs} epochs on {n_classes} classes")
    ax.legend(fontsize=8)
    return fig


def plot_resolution(r: Resolution):
    """Two log-log panels against the input dimension: the sign-step gain (with the ∝ d line)
    and the exact optima (with the ∝ 1/d line). Returns the figure."""
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6))
    axes[0].loglog(r.d, r.gain, "o-", label="trained models")
    axes[0].loglog(r.d, r.gain[-1] * r.d / r.d[-1], ":", color="grey",
                   label="∝ d (fixed weight size)")
    axes[0].set_ylabel("score gain of a 1/255 sign step")
    axes[1].loglog(r.d, r.exact_linf, "o-", label="exact L∞")
    axes[1].loglog(r.d, r.exact_rms, "s-", label="exact L2 (RMS)")
    axes[1].loglog(r.d, r.exact_linf[-1] * r.d[-1] / r.d, ":", color="grey",
                   label="∝ 1/d")
    axes[1].set_ylabel("median perturbation to flip")
    for ax in axes:
        ax.set_xlabel("input dimension d")
        ax.set_xticks(r.d, [f"{s}×{s}" for s in r.sizes])
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
