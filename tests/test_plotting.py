"""The plotting helpers draw what they are given, for any number of classes."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from advtut.chapters.linear_imagenet.experiments import fooling_row  # noqa: E402
from advtut.linear_images import PixelSoftmax  # noqa: E402
from advtut.plotting import (  # noqa: E402
    animate_images,
    class_color,
    fooling_figure,
    image_grid,
    make_grid,
    plot_confidence,
    plot_points,
    plot_regions,
    to_hwc,
)


def test_maps_take_ten_classes():
    x = np.random.default_rng(0).normal(size=(100, 2))
    y = np.arange(100) % 10
    fig, ax = plt.subplots()
    plot_points(ax, x, y, [f"class {k}" for k in range(10)])
    grid = make_grid((-1, 1, -1, 1), 5)
    plot_regions(ax, grid, np.arange(25) % 10)
    proba = np.full((25, 10), 0.1)
    im = plot_confidence(ax, grid, proba)
    assert im.get_clim() == pytest.approx((0.1, 1.0))  # from chance (1/K) to 1
    assert len({str(class_color(k)) for k in range(20)}) == 20
    plt.close(fig)


def test_to_hwc_and_image_grid():
    assert to_hwc(torch.zeros(3, 4, 5)).shape == (4, 5, 3)
    assert to_hwc(torch.zeros(1, 4, 5)).shape == (4, 5)
    with pytest.raises(ValueError, match="image must be"):
        to_hwc(torch.zeros(2, 2, 2, 2))
    fig = image_grid(torch.rand(10, 1, 6, 6), titles=[str(i) for i in range(10)], n_cols=4)
    assert len(fig.axes) == 12 and fig.axes[9].get_title() == "9"
    with pytest.raises(ValueError, match="one string per image"):
        image_grid(torch.rand(2, 6, 6), titles=["a"])
    plt.close("all")


def test_fooling_figure_shows_start_perturbation_and_result():
    m = PixelSoftmax(48, 3, scale=1.0, init_std=0.1)
    x = torch.rand(3, 4, 4)
    rows = [fooling_row(m, x, (x + 0.1).clamp(0, 1), "a"), fooling_row(m, x, x, "b", "note")]
    torch.testing.assert_close(rows[0]["p"].sum(), torch.tensor(1.0))
    fig = fooling_figure(rows, ["u", "v", "w"])
    assert len(fig.axes) == 6
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1].startswith("perturbation") and "p = " in titles[0] and "p = " in titles[2]
    assert titles[5].startswith("note")
    plt.close(fig)


def test_animation_plays_in_html_and_has_a_static_figure():
    frames = torch.rand(5, 8, 8)
    anim = animate_images(frames, titles=[f"step {i}" for i in range(5)], interval_ms=100)
    assert anim.n_frames == 5 and "<script" in anim.html and anim.html.count("data:image/png") >= 5
    assert [ax.get_title() for ax in anim.static.axes] == ["step 0", "step 2", "step 4"]
    with pytest.raises(ValueError, match="empty"):
        animate_images(frames[:0])


def test_animation_frames_can_be_jpeg_and_are_smaller_for_noisy_colour_images():
    frames = torch.rand(4, 3, 100, 200, generator=torch.Generator().manual_seed(0))
    png = animate_images(frames, size=2.0)            # about one screen pixel per pixel
    jpeg = animate_images(frames, size=2.0, frame_format="jpeg")
    assert jpeg.html.count("data:image/jpeg") >= 4 and "data:image/png" not in jpeg.html
    assert len(jpeg.html) < len(png.html) / 2
    w, h = png.static.get_size_inches()
    assert w == pytest.approx(2.0) and h == pytest.approx(3 * 2.0 / 2)   # wide: a column
    with pytest.raises(ValueError, match="frame_format must be one of"):
        animate_images(frames, frame_format="gif")
