"""2-D decision maps: a grid over two features, the predicted regions, tie lines, probability
contours and confidence, points and moves, for any number of classes.

They draw what they are given: model outputs (probabilities, predictions, moves) are computed by
the caller and passed in. Class ``k`` always gets ``class_color(k)`` (matplotlib's tab10, then
tab20 beyond ten classes).
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap

from advtut.arrays import to_numpy

__all__ = ["CLASS_COLORS", "class_color", "Grid", "make_grid", "plot_points", "plot_regions",
           "plot_lines", "plot_contours", "plot_confidence", "plot_moves", "plot_explorer_view"]

CLASS_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
                "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def class_color(k: int):
    """The colour of class ``k`` (any ``k >= 0``): tab10 for the first ten, tab20 after."""
    if k < len(CLASS_COLORS):
        return CLASS_COLORS[k]
    return plt.get_cmap("tab20")(k % 20)


@dataclass(frozen=True)
class Grid:
    """A regular 2-D grid: ``points`` float64 ``(n * n, 2)`` in row-major order over ``ys``."""

    xs: np.ndarray
    ys: np.ndarray
    points: torch.Tensor

    @property
    def extent(self) -> tuple[float, float, float, float]:
        return (self.xs[0], self.xs[-1], self.ys[0], self.ys[-1])

    def reshape(self, values) -> np.ndarray:
        """Values for ``points`` (``(n*n,)`` or ``(n*n, K)``) -> ``(n, n)`` or ``(n, n, K)``."""
        v = to_numpy(values)
        return v.reshape(len(self.ys), len(self.xs), *v.shape[1:])


def make_grid(extent: tuple[float, float, float, float], n: int) -> Grid:
    """``n x n`` points covering ``extent = (xmin, xmax, ymin, ymax)``."""
    xmin, xmax, ymin, ymax = extent
    if not (xmax > xmin and ymax > ymin) or n < 2:
        raise ValueError(f"extent must be (xmin, xmax, ymin, ymax) with max > min and n >= 2; "
                         f"got {extent}, n={n}")
    xs, ys = np.linspace(xmin, xmax, n), np.linspace(ymin, ymax, n)
    xx, yy = np.meshgrid(xs, ys)
    pts = torch.as_tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float64)
    return Grid(xs, ys, pts)


def _label(ax, feature_names):
    if feature_names:
        ax.set_xlabel(feature_names[0])
        ax.set_ylabel(feature_names[1])


def plot_points(ax, x, y, class_names, *, wrong=None, feature_names=None, size=28,
                legend_loc="upper left"):
    """Scatter 2-D points coloured by class; ``wrong`` (bool ``(N,)``) rings points in red."""
    x, y = to_numpy(x), to_numpy(y)
    for k, name in enumerate(class_names):
        ax.scatter(*x[y == k].T, s=size, color=class_color(k), edgecolor="k", linewidth=0.4,
                   label=name, zorder=3)
    if wrong is not None and to_numpy(wrong).any():
        w = to_numpy(wrong)
        ax.scatter(*x[w].T, s=size * 5, facecolor="none", edgecolor="red", linewidth=1.6,
                   label=f"misclassified ({w.sum()})", zorder=4)
    _label(ax, feature_names)
    ax.legend(loc=legend_loc, fontsize=9, framealpha=0.9)


def plot_regions(ax, grid: Grid, pred, *, alpha=0.25, n_classes: int | None = None):
    """Shade each grid cell with the colour of its predicted class (``pred``: ``(n*n,)``);
    ``n_classes`` defaults to the largest predicted class + 1."""
    if n_classes is None:
        n_classes = int(to_numpy(pred).max()) + 1
    cmap = ListedColormap([class_color(k) for k in range(n_classes)])
    ax.imshow(grid.reshape(pred), origin="lower", extent=grid.extent, cmap=cmap, alpha=alpha,
              vmin=-0.5, vmax=n_classes - 0.5, aspect="auto", interpolation="nearest")
    ax.set_xlim(grid.extent[:2])
    ax.set_ylim(grid.extent[2:])


def plot_lines(ax, lines, *, extent, labels=None, linestyles=("--", "-.", ":"), **style):
    """Draw lines ``a . x + b = 0`` (``lines``: pairs ``(a (2,), b)``) across ``extent``,
    the i-th in ``linestyles[i]``."""
    xmin, xmax, ymin, ymax = extent
    for i, (a, b) in enumerate(lines):
        style_i = {"color": "k", "linewidth": 1.4, "linestyle": linestyles[i % len(linestyles)], **style}
        a0, a1, b = float(a[0]), float(a[1]), float(b)
        if abs(a1) > abs(a0):
            xs = np.array([xmin, xmax])  # numpy input: the extent's floats
            ys = -(a0 * xs + b) / a1
        else:
            ys = np.array([ymin, ymax])  # numpy input: the extent's floats
            xs = -(a1 * ys + b) / a0
        ax.plot(xs, ys, label=None if labels is None else labels[i], **style_i)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)


def plot_contours(ax, grid: Grid, proba, levels, *, styles=("-", "--", ":")):
    """Each class's probability contours at ``levels`` (one line style per level);
    ``proba``: ``(n*n, K)``."""
    P = grid.reshape(proba)
    for k in range(P.shape[-1]):
        for level, ls in zip(levels, styles):
            ax.contour(grid.xs, grid.ys, P[..., k], levels=[level], colors=[class_color(k)],
                       linestyles=[ls], linewidths=1.6)


def plot_confidence(ax, grid: Grid, proba, *, label="max class probability"):
    """Image of ``max_k P(k | x)`` with a colour bar from ``1/K`` (chance) to 1; returns it."""
    proba = to_numpy(proba)
    conf = grid.reshape(proba.max(axis=1))
    im = ax.imshow(conf, origin="lower", extent=grid.extent, cmap="viridis",
                   vmin=1 / proba.shape[1], vmax=1,
                   aspect="auto")
    ax.figure.colorbar(im, ax=ax, label=label)
    return im


def plot_moves(ax, starts, ends, *, color="k", ok=None, label=None, **style):
    """Arrows ``starts -> ends`` (``(N, 2)`` each); ``ok`` False draws a red cross at the end."""
    starts, ends = to_numpy(starts), to_numpy(ends)
    for i, (s, e) in enumerate(zip(starts, ends)):
        ax.annotate("", xy=e, xytext=s, arrowprops=dict(arrowstyle="->", color=color, lw=1.4, **style))
    ax.plot([], [], color=color, label=label, **style)
    if ok is not None:
        bad = ~to_numpy(ok)
        if bad.any():
            ax.scatter(*ends[bad].T, marker="x", s=70, color="red", zorder=5,
                       label="lands outside the target region")


def plot_explorer_view(grid: Grid, pred, point, proba, class_names, *, feature_names=None,
                       x=None, y=None, unit: str = ""):
    """The explorer's picture: the map with the chosen point, and its class probabilities."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1.6, 1]})
    plot_regions(ax, grid, pred, n_classes=len(class_names))
    if x is not None:
        for k in range(len(class_names)):
            ax.scatter(*to_numpy(x)[to_numpy(y) == k].T, s=12, color=class_color(k),
                       edgecolor="k", linewidth=0.3)
    ax.scatter([point[0]], [point[1]], marker="*", s=260, color="yellow", edgecolor="k", zorder=5)
    ax.set_title(f"point ({point[0]:.2f}, {point[1]:.2f}){' ' + unit if unit else ''}")
    _label(ax, feature_names)
    p = to_numpy(proba).ravel()
    bx.barh(list(class_names), p, color=[class_color(k) for k in range(len(p))])
    for i, v in enumerate(p):
        bx.text(min(v + 0.02, 0.8), i, f"{v:.3f}", va="center")
    bx.set_xlim(0, 1)
    bx.set_xlabel("probability")
    bx.invert_yaxis()
    bx.set_title(f"prediction: {class_names[int(p.argmax())]}")
    fig.tight_layout()
    return fig
