"""Chapter 4's figures: the faithful and refined attacks against the exact optimum, and Figure 7
(adversarial examples beside Gaussian noise)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from advtut.attacks.sets import AdversarialSet
from advtut.chapters.blindspots.experiments import ExactCheck
from advtut.plotting.images import image_pairs

__all__ = ["plot_exact_ratios", "figure7"]


def plot_exact_ratios(check: ExactCheck):
    """Histogram of the attack's distortion over the exact optimum's (1 = optimal), for the
    faithful attack and with the boundary refinement, on FC10(1e-4)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.linspace(1, max(1.001, float(check.faithful.max())) + 1e-3, 40)
    ax.hist(check.faithful, bins=bins, alpha=0.7, label="faithful attack")
    ax.hist(check.refined, bins=bins, alpha=0.7, label="with boundary refinement")
    ax.set_xlabel("distortion / exact optimum's distortion")
    ax.set_ylabel("images")
    ax.set_title(f"FC10(1e-4), {len(check.x)} images, random wrong targets")
    ax.legend()
    return fig


def figure7(sets: dict[str, AdversarialSet], x: torch.Tensor, noisy: torch.Tensor, *, n: int,
            accuracy: dict[str, float], noise_accuracy: float, paper_noise_accuracy: float):
    """The paper's Figure 7: originals beside adversarial copies for the linear FC10(1e-4) and
    FC200-200-10 (their first ``n`` attacked images, ``accuracy`` on those copies), and ``x``
    beside Gaussian-noise copies ``noisy`` with FC200-200-10's accuracy on them."""
    fig, axes = plt.subplots(3, 1, figsize=(11, 5.6))
    panels = [("FC10(1e-4)", "(a) linear (FC10(1e-4))"),
              ("FC200-200-10", "(b) 200-200-10 sigmoid network")]
    for ax, (name, label) in zip(axes, panels):
        s = sets[name]
        d = float(s.distortion[:n].mean())
        image_pairs(ax, s.x[:n], s.x_adv[:n], n_rows=2,
                    title=f"{label}: adversarial examples, av. distortion "
                          f"{d:.3f}; accuracy {accuracy[name]:.0%}")
    image_pairs(axes[2], x[:n], noisy[:n], n_rows=2,
                title=f"(c) Gaussian noise, stddev 1: FC200-200-10 accuracy "
                      f"{noise_accuracy:.0%} (paper: {paper_noise_accuracy:.0%})")
    fig.tight_layout()
    return fig
