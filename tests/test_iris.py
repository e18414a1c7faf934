import pytest
import torch

import advtut.chapters.iris.report as report
from advtut.chapters.iris.experiments import (
    compare_moves,
    fit_logistic_regression,
    representatives,
    sweep_c,
)
from advtut.data import load_iris


def test_fit_reproduces_the_post():
    iris = load_iris()
    clf, model = fit_logistic_regression(iris.x, iris.y, C=1.0, max_iter=100)
    assert clf.n_iter_[0] < 100  # converged: the post's max_iter=100 was not binding
    assert float((model.predict(iris.x) == iris.y).double().mean()) == pytest.approx(145 / 150)


def test_representatives_are_members_nearest_their_mean():
    iris = load_iris()
    reps = representatives(iris.x, iris.y)
    idx, means = reps.index, reps.means
    assert iris.y[idx].tolist() == [0, 1, 2]
    for k in range(3):
        d = torch.linalg.vector_norm(iris.x[iris.y == k] - means[k], dim=1)
        assert torch.linalg.vector_norm(iris.x[idx[k]] - means[k]) == d.min()


def test_compare_moves_covers_every_other_class():
    iris = load_iris()
    _, model = fit_logistic_regression(iris.x, iris.y)
    means = representatives(iris.x, iris.y).means
    table = compare_moves(model, means, ["a", "b", "c"], gd_outer_steps=10, gd_inner_steps=200)
    assert len(table.target) == 6
    assert (table.target != table.source_class).all()
    assert (table.pairwise.distance <= table.exact.distance + 1e-12).all()
    assert len(table.rows(iris.class_names)[0]) == 8


def test_sweep_c_rejects_bad_c_and_reports_each_value():
    iris = load_iris()
    with pytest.raises(ValueError, match="C must be > 0"):
        fit_logistic_regression(iris.x, iris.y, C=0)
    rows = sweep_c(iris.x, iris.y, [0.1, 10.0], starts=iris.x[:2], probes=iris.x[:1],
                   far_points=torch.tensor([[20.0, 20.0]], dtype=torch.float64))
    assert [r.C for r in rows] == [0.1, 10.0]
    assert rows[1].weight_norm > rows[0].weight_norm  # less regularization, larger weights
    assert len(report.sweep_entries(rows)) == 3 * len(rows)


def test_report_entries_have_the_documented_names():
    iris = load_iris()
    _, model = fit_logistic_regression(iris.x, iris.y)
    means = representatives(iris.x, iris.y).means
    moves = compare_moves(model, means, ["a", "b", "c"], gd_outer_steps=5, gd_inner_steps=50)
    names = [e["name"] for e in report.move_entries(moves, iris.class_names)]
    assert names[-4:] == ["max |gradient descent - exact| move",
                          "pairwise bound minus exact move, largest",
                          "gradient descent over exact move, smallest",
                          "gradient descent agrees with the exact move"]
    assert len(names) == len(moves.target) + 4
    fooling = report.fooling_entries(["setosa", "virginica", "versicolor"], [0.9985, 1.0, 0.9929])
    assert [e["name"] for e in fooling[:2]] == ["prediction at (0.1, 5)", "probability at (0.1, 5)"]
    assert [e["name"] for e in report.accuracy_entries(0.9667, 5)] == [
        "training accuracy", "misclassified flowers"]
