"""Animations that play in the rendered book: matplotlib's ``to_jshtml`` (no ffmpeg needed),
always with a static figure beside them (the book's page rules): a reader may print the page.

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

__all__ = ["FRAME_FORMATS", "Animation", "animate_images"]


@dataclass(frozen=True)
class Animation:
    """``html``: the self-contained player (HTML + inline JavaScript + PNG frames);
    ``static``: a figure of the first, middle and last frames; ``n_frames``."""

    html: str
    static: object
    n_frames: int


FRAME_FORMATS = ("png", "jpeg")


def animate_images(frames, *, titles=None, interval_ms: int = 300, size: float = 3.0,
                   cmap="gray", vmin: float = 0.0, vmax: float = 1.0,
                   frame_format: str = "png") -> Animation:
    """An animation of ``frames`` (``(T, C, H, W)`` or ``(T, H, W)``, values in
    ``[vmin, vmax]``), ``titles`` one string per frame. ``size``: the figure's width in inches
    (its height follows the frames' aspect ratio; the static figure puts frames at least twice
    as wide as tall in a column, others in a row); ``frame_format``: how each frame is embedded,
    ``"png"`` (lossless) or ``"jpeg"`` (several times smaller for noisy colour images: keeps a
    page with a long animation fast to load). Both figures are closed for pyplot, so a notebook
    shows only what the caller displays."""
    if frame_format not in FRAME_FORMATS:
        raise ValueError(f"frame_format must be one of {FRAME_FORMATS}, got {frame_format!r}")
    n = len(frames)
    if n == 0:
        raise ValueError("frames is empty: an animation needs at least one frame")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles needs one string per frame ({n}), got {len(titles)}")
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be > 0, got {interval_ms}")
    h, w = to_hwc(frames[0]).shape[:2]
    height = size * h / w + (0.35 if titles is not None else 0.0)
    fig, ax = plt.subplots(figsize=(size, height), layout="constrained")
    ax.set_axis_off()
    im = ax.imshow(to_hwc(frames[0]), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")

    def draw(i):
        im.set_data(to_hwc(frames[i]))
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
        return (im,)

    with plt.rc_context({"animation.frame_format": frame_format}):
        html = animation.FuncAnimation(fig, draw, frames=n, interval=interval_ms,
                                       blit=False).to_jshtml()
    plt.close(fig)
    picks = sorted({0, n // 2, n - 1})
    # frames at least twice as wide as tall stack in a column, others sit in a row
    rows, cols = (len(picks), 1) if w >= 2 * h else (1, len(picks))
    static, axes = plt.subplots(rows, cols, figsize=(size * cols, height * rows),
                                squeeze=False)
    for ax_i, i in zip(axes.flat, picks):
        ax_i.imshow(to_hwc(frames[i]), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax_i.set_axis_off()
        ax_i.set_title(titles[i] if titles is not None else f"frame {i + 1} of {n}", fontsize=9)
    static.tight_layout()
    plt.close(static)
    return Animation(html, static, n)
