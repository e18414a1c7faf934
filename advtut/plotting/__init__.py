"""Matplotlib helpers for the chapters' figures, by kind: ``maps`` (2-D decision maps over two
features), ``images`` (grids, original/distorted pairs, templates, fooling rows) and
``animation`` (players that run in the rendered book, with a static figure beside them).

They draw what they are given: model outputs are computed by the caller and passed in.
Conventions: white background, labelled axes, class colours fixed by label, colour bars with
units. The names below can be imported from ``advtut.plotting`` directly.
"""
from advtut.plotting.animation import Animation, animate_images
from advtut.plotting.images import fooling_figure, image_grid, image_pairs, show_templates, to_hwc
from advtut.plotting.maps import (
                                  CLASS_COLORS,
                                  Grid,
                                  class_color,
                                  make_grid,
                                  plot_confidence,
                                  plot_contours,
                                  plot_explorer_view,
                                  plot_lines,
                                  plot_moves,
                                  plot_points,
                                  plot_regions,
)

__all__ = ["Animation", "animate_images", "fooling_figure", "image_grid", "image_pairs",
           "show_templates", "to_hwc", "CLASS_COLORS", "Grid", "class_color", "make_grid",
           "plot_confidence", "plot_contours", "plot_explorer_view", "plot_lines", "plot_moves",
           "plot_points", "plot_regions"]
