"""Animations that play in the rendered book: matplotlib's ``to_jshtml`` (no ffmpeg needed),
always with a static figure beside them (BOOK.md), since a reader may print the page.

Example (chapter 7: attributions over training)::

    anim = animate_images(frames, titles=[f"epoch {e}" for e in epochs])
    display(HTML(anim.html))   # plays in JupyterLab and in the book
    anim.static                # the first, middle and last frames as one figure
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib import animation

from advtut.plotting.images import to_hwc

__all__ = ["Animation", "animate_images"]


@dataclass(frozen=True)
class Animation:
    """``html``: the self-contained player (HTML + inline JavaScript + PNG frames);
    ``static``: a figure of the first, middle and last frames; ``n_frames``."""

    html: str
    static: object
    n_frames: int


def animate_images(frames, *, titles=None, interval_ms: int = 300, size: float = 3.0,
                   cmap="gray", vmin: float = 0.0, vmax: float = 1.0) -> Animation:
    """An animation of ``frames`` (``(T, C, H, W)`` or ``(T, H, W)``, values in
    ``[vmin, vmax]``), ``titles`` one string per frame. Both figures are closed for pyplot, so
    a notebook shows only what the caller displays."""
    n = len(frames)
    if n == 0:
        raise ValueError("frames is empty: an animation needs at least one frame")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles needs one string per frame ({n}), got {len(titles)}")
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be > 0, got {interval_ms}")
    fig, ax = plt.subplots(figsize=(size, size))
    ax.set_axis_off()
    im = ax.imshow(to_hwc(frames[0]), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")

    def draw(i):
        im.set_data(to_hwc(frames[i]))
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
        return (im,)

    html = animation.FuncAnimation(fig, draw, frames=n, interval=interval_ms, blit=False).to_jshtml()
    plt.close(fig)
    picks = sorted({0, n // 2, n - 1})
    static, axes = plt.subplots(1, len(picks), figsize=(size * len(picks), size), squeeze=False)
    for ax_i, i in zip(axes[0], picks):
        ax_i.imshow(to_hwc(frames[i]), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax_i.set_axis_off()
        ax_i.set_title(titles[i] if titles is not None else f"frame {i + 1} of {n}", fontsize=9)
    static.tight_layout()
    plt.close(static)
    return Animation(html, static, n)
