"""advtut.explorer: a live widget in a notebook, none in a headless book build."""
import torch

from advtut.book.execute import HEADLESS
from advtut.data import load_iris
from advtut.explorer import HEADLESS as EXPLORER_HEADLESS
from advtut.explorer import explorer
from advtut.linear import LinearSoftmax
from advtut.plotting import make_grid


def test_explorer_builds_no_widget_in_a_headless_build(monkeypatch):
    iris = load_iris()
    model = LinearSoftmax(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]), torch.zeros(3))
    grid = make_grid((0.0, 7.5, -0.5, 4.5), 20)
    assert EXPLORER_HEADLESS == HEADLESS          # the book sets what the explorer reads
    monkeypatch.setenv(HEADLESS, "1")
    assert explorer(model, grid, iris.class_names) is None
    monkeypatch.delenv(HEADLESS)
    widget = explorer(model, grid, iris.class_names)
    assert type(widget).__name__ == "interactive"
