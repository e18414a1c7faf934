"""An ipywidgets explorer for a 2-feature classifier: two sliders, live probabilities and map.

Widgets need a live kernel: in the rendered (static) book the same view appears as an ordinary
figure drawn by :func:`advtut.plotting.plot_explorer_view`, and a book build (which sets the
environment variable :data:`HEADLESS` for its kernels) builds no widget at all.
"""
from __future__ import annotations

import os

import matplotlib.pyplot as plt

from advtut.linear import LinearSoftmax
from advtut.plotting import Grid, plot_explorer_view

__all__ = ["HEADLESS", "explorer_figure", "explorer"]

#: Set (to anything) by a book build for its kernels (``advtut.book.execute`` sets it under the
#: same name): nobody can move a slider in a headless run, and nbclient can wait forever on a
#: widget's messages, so :func:`explorer` builds none there.
HEADLESS = "ADVTUT_HEADLESS"


def explorer_figure(model: LinearSoftmax, grid: Grid, point, class_names, *, feature_names=None,
                    x=None, y=None, unit: str = ""):
    """The explorer's view at ``point`` ``(2,)``: the map with the point, and its probabilities
    (``unit``: the features' unit, shown in the title)."""
    proba = model.proba([float(point[0]), float(point[1])])[0]
    return plot_explorer_view(grid, model.predict(grid.points), point, proba, class_names,
                              feature_names=feature_names, x=x, y=y, unit=unit)


def explorer(model: LinearSoftmax, grid: Grid, class_names, *, start=(4.0, 1.2),
             feature_names=None, x=None, y=None, unit: str = ""):
    """Sliders over ``grid``'s extent; each move redraws :func:`explorer_figure`. Returns the
    widget, or None without building one in a headless book build (:data:`HEADLESS` set)."""
    if os.environ.get(HEADLESS):
        return None
    import ipywidgets as widgets

    xmin, xmax, ymin, ymax = grid.extent
    length = widgets.FloatSlider(value=start[0], min=xmin, max=xmax, step=0.05,
                                 description=(feature_names or ["x1"])[0], continuous_update=False)
    width = widgets.FloatSlider(value=start[1], min=ymin, max=ymax, step=0.05,
                                description=(feature_names or ["", "x2"])[1], continuous_update=False)
    for s in (length, width):
        s.style.description_width = "initial"
        s.layout.width = "420px"

    def show(length, width):
        explorer_figure(model, grid, (length, width), class_names, feature_names=feature_names,
                        x=x, y=y, unit=unit)
        plt.show()

    return widgets.interactive(show, length=length, width=width)
