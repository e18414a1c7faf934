"""Chapter 1's figures beyond the library's (:mod:`advtut.plotting`): the regularization sweep."""
from __future__ import annotations

import matplotlib.pyplot as plt

from advtut.chapters.iris.experiments import SweepPoint

__all__ = ["plot_sweep"]


def plot_sweep(sweep: list[SweepPoint]):
    """Two panels against ``C`` (log scale): the mean and smallest exact move, and the share of
    the far field with P >= 0.99. Returns the figure."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    cs = [r.C for r in sweep]
    a1.semilogx(cs, [r.mean_move_cm for r in sweep], "o-",
                label="mean move from class means")
    a1.semilogx(cs, [r.min_move_cm for r in sweep], "s--",
                label="smallest move")
    a1.set_xlabel("C (inverse regularization strength)")
    a1.set_ylabel("exact L2 move (cm)")
    a1.legend(fontsize=8)
    a2.semilogx(cs, [r.far_share_confident for r in sweep], "o-",
                color="tab:red")
    a2.set_xlabel("C (inverse regularization strength)")
    a2.set_ylabel("share of far field with P ≥ 0.99")
    a2.set_ylim(0, 1)
    fig.suptitle("What regularization changes")
    fig.tight_layout()
    return fig
