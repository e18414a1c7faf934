"""Matplotlib helpers for the chapters' figures. They draw what they are given: model outputs
(probabilities, predictions, moves) are computed by the caller and passed in.

Conventions: white background, labelled axes, class colours fixed by label
(:data:`CLASS_COLORS`), colour bars with units.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap

__all__ = ["CLASS_COLORS", "Grid", "make_grid", "plot_points", "plot_regions", "plot_lines",
           "plot_contours", "plot_confidence", "plot_moves", "plot_explorer_view", "image_pairs"]

CLASS_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


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
        v = np.asarray(values)
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
    x, y = np.asarray(x), np.asarray(y)
    for k, name in enumerate(class_names):
        ax.scatter(*x[y == k].T, s=size, color=CLASS_COLORS[k], edgecolor="k", linewidth=0.4,
                   label=name, zorder=3)
    if wrong is not None and np.asarray(wrong).any():
        w = np.asarray(wrong)
        ax.scatter(*x[w].T, s=size * 5, facecolor="none", edgecolor="red", linewidth=1.6,
                   label=f"misclassified ({w.sum()})", zorder=4)
    _label(ax, feature_names)
    ax.legend(loc=legend_loc, fontsize=9, framealpha=0.9)


def plot_regions(ax, grid: Grid, pred, *, alpha=0.25, n_classes=3):
    """Shade each grid cell with the colour of its predicted class (``pred``: ``(n*n,)``)."""
    cmap = ListedColormap(CLASS_COLORS[:n_classes])
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
            xs = np.array([xmin, xmax])
            ys = -(a0 * xs + b) / a1
        else:
            ys = np.array([ymin, ymax])
            xs = -(a1 * ys + b) / a0
        ax.plot(xs, ys, label=None if labels is None else labels[i], **style_i)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)


def plot_contours(ax, grid: Grid, proba, levels, *, styles=("-", "--", ":"), n_classes=3):
    """Each class's probability contours at ``levels`` (one line style per level)."""
    P = grid.reshape(proba)
    for k in range(n_classes):
        for level, ls in zip(levels, styles):
            ax.contour(grid.xs, grid.ys, P[..., k], levels=[level], colors=[CLASS_COLORS[k]],
                       linestyles=[ls], linewidths=1.6)


def plot_confidence(ax, grid: Grid, proba, *, label="max class probability"):
    """Image of ``max_k P(k | x)`` with a colour bar; returns the image."""
    conf = grid.reshape(np.asarray(proba).max(axis=1))
    im = ax.imshow(conf, origin="lower", extent=grid.extent, cmap="viridis", vmin=1 / 3, vmax=1,
                   aspect="auto")
    ax.figure.colorbar(im, ax=ax, label=label)
    return im


def plot_moves(ax, starts, ends, *, color="k", ok=None, label=None, **style):
    """Arrows ``starts -> ends`` (``(N, 2)`` each); ``ok`` False draws a red cross at the end."""
    starts, ends = np.asarray(starts), np.asarray(ends)
    for i, (s, e) in enumerate(zip(starts, ends)):
        ax.annotate("", xy=e, xytext=s, arrowprops=dict(arrowstyle="->", color=color, lw=1.4, **style))
    ax.plot([], [], color=color, label=label, **style)
    if ok is not None:
        bad = ~np.asarray(ok)
        if bad.any():
            ax.scatter(*ends[bad].T, marker="x", s=70, color="red", zorder=5,
                       label="lands outside the target region")


def plot_explorer_view(grid: Grid, pred, point, proba, class_names, *, feature_names=None,
                       x=None, y=None):
    """The explorer's picture: the map with the chosen point, and its class probabilities."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1.6, 1]})
    plot_regions(ax, grid, pred, n_classes=len(class_names))
    if x is not None:
        for k in range(len(class_names)):
            ax.scatter(*np.asarray(x)[np.asarray(y) == k].T, s=12, color=CLASS_COLORS[k],
                       edgecolor="k", linewidth=0.3)
    ax.scatter([point[0]], [point[1]], marker="*", s=260, color="yellow", edgecolor="k", zorder=5)
    ax.set_title(f"petal ({point[0]:.2f}, {point[1]:.2f}) cm")
    _label(ax, feature_names)
    p = np.asarray(proba).ravel()
    bx.barh(list(class_names), p, color=CLASS_COLORS[:len(p)])
    for i, v in enumerate(p):
        bx.text(min(v + 0.02, 0.8), i, f"{v:.3f}", va="center")
    bx.set_xlim(0, 1)
    bx.set_xlabel("probability")
    bx.invert_yaxis()
    bx.set_title(f"prediction: {class_names[int(p.argmax())]}")
    fig.tight_layout()
    return fig


def image_pairs(ax, originals, distorted, *, n_rows: int = 2, title: str = "") -> None:
    """Szegedy et al.'s Figure 7 layout: odd columns the originals, even columns their distorted
    copies. ``originals``, ``distorted``: ``(M, 1, H, W)`` or ``(M, H, W)`` in [0, 1], ``M`` a
    multiple of ``n_rows``; grey scale from 0 (black) to 1 (white), a thin white gap between pairs."""
    a = np.asarray(originals, dtype=float).reshape(len(originals), *np.shape(originals)[-2:])
    b = np.asarray(distorted, dtype=float)
    if b.size != a.size:
        raise ValueError(f"originals and distorted must hold the same images, got shapes "
                         f"{np.shape(originals)} and {np.shape(distorted)}")
    b = b.reshape(a.shape)
    if n_rows < 1 or len(a) % n_rows:
        raise ValueError(f"{len(a)} images do not fill {n_rows} rows")
    h, w = a.shape[1:]
    per_row = len(a) // n_rows
    canvas = np.ones((n_rows * (h + 2), per_row * (2 * w + 3)))
    for i in range(len(a)):
        r, c = divmod(i, per_row)
        top, left = r * (h + 2), c * (2 * w + 3)
        canvas[top:top + h, left:left + w] = a[i]
        canvas[top:top + h, left + w:left + 2 * w] = b[i]
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
