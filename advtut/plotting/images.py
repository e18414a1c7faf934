"""Images: grids, pairs (original beside distorted), templates and fooling rows.

Every function draws what it is given: images as tensors or arrays ``(C, H, W)`` or ``(H, W)``
in [0, 1] (``(N, ...)`` for several), and, where a title shows a prediction, the probabilities
computed by the caller.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from advtut.arrays import to_numpy

__all__ = ["to_hwc", "image_grid", "image_pairs", "show_templates", "fooling_figure", "mosaic"]


def to_hwc(image) -> np.ndarray:
    """One image as a NumPy array matplotlib can show: ``(C, H, W)`` -> ``(H, W, C)``,
    ``(1, H, W)`` -> ``(H, W)``; float in [0, 1]."""
    a = to_numpy(image, dtype=float)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    if a.ndim not in (2, 3):
        raise ValueError(f"image must be (C, H, W), (H, W, C) or (H, W), got shape {a.shape}")
    return a


def image_grid(images, *, titles=None, n_cols: int = 8, size: float = 1.3, cmap="gray"):
    """A figure with ``images`` (``(N, C, H, W)`` or ``(N, H, W)`` in [0, 1]) in rows of
    ``n_cols``, each titled from ``titles`` (a list of N strings). Returns the figure."""
    n = len(images)
    if n == 0:
        raise ValueError("images is empty: nothing to draw")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles needs one string per image ({n}), got {len(titles)}")
    n_rows = -(-n // n_cols)
    cols = min(n, n_cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(size * cols, size * n_rows * 1.15),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(to_hwc(images[i]), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def image_pairs(ax, originals, distorted, *, n_rows: int = 2, title: str = "") -> None:
    """Szegedy et al.'s Figure 7 layout: odd columns the originals, even columns their distorted
    copies. ``originals``, ``distorted``: ``(M, 1, H, W)`` or ``(M, H, W)`` in [0, 1], ``M`` a
    multiple of ``n_rows``; grey scale from 0 (black) to 1 (white), a thin white gap between pairs."""
    a = to_numpy(originals, dtype=float)
    a = a.reshape(len(a), *a.shape[-2:])
    b = to_numpy(distorted, dtype=float)
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


def show_templates(ax, templates: torch.Tensor, *, title: str = "") -> None:
    """One template as an RGB image, each min-max scaled to [0, 1] (the source's rendering)."""
    t = templates.double()
    t = (t - t.min()) / (t.max() - t.min()).clamp_min(1e-300)
    ax.imshow(t.permute(1, 2, 0).detach().cpu().numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def fooling_figure(rows: list[dict], class_names, *, scale_title: str = "perturbation (scaled)"):
    """The source's fooling figure: one row per case, the start image, the perturbation (min-max
    scaled to be visible) and the result, each titled with the predicted class and probability.

    ``rows``: dicts with ``x`` and ``x_adv`` (``(3, H, W)`` in [0, 1]), ``p`` and ``p_adv``
    (the model's class probabilities for each, ``(K,)``), ``label`` (a line shown left of the
    row) and optionally ``note`` (a line above the result's title, e.g. "0.99 not reached").
    Returns the figure.
    """
    fig, axes = plt.subplots(len(rows), 3, figsize=(6.6, 2.35 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        x, x_adv = row["x"].float().cpu(), row["x_adv"].float().cpu()
        for ax, img, p, note in ((ax_row[0], x, row["p"], ""),
                                 (ax_row[2], x_adv, row["p_adv"], row.get("note", ""))):
            k = int(torch.as_tensor(p).argmax())
            ax.imshow(to_hwc(img), interpolation="nearest")
            ax.set_title((note + "\n" if note else "") + f"{class_names[k]}\np = {float(p[k]):.3f}",
                         fontsize=9)
        r = x_adv - x
        show_templates(ax_row[1], r, title=f"{scale_title}\nmax |r| = {float(r.abs().max()):.3f}")
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(row["label"], fontsize=9)
    fig.tight_layout()
    return fig


def mosaic(images: torch.Tensor, *, n_cols: int, pad: int = 2) -> torch.Tensor:
    """Images ``(N, C, H, W)`` tiled in rows of ``n_cols`` with ``pad`` white pixels between
    them: ``(C, H', W')``, one frame of an animation."""
    n, c, h, w = images.shape
    rows = -(-n // n_cols)
    out = torch.ones(c, rows * (h + pad) - pad, n_cols * (w + pad) - pad, dtype=images.dtype)
    for i, im in enumerate(images):
        r, q = divmod(i, n_cols)
        out[:, r * (h + pad):r * (h + pad) + h, q * (w + pad):q * (w + pad) + w] = im
    return out
