import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from advtut.data import load_iris
from advtut.linear import LinearSoftmax, pairwise_boundary, triple_point


@pytest.fixture(scope="module")
def fitted():
    iris = load_iris()
    clf = LogisticRegression(C=1.0, max_iter=1000).fit(iris.x.numpy(), iris.y.numpy())
    return clf, LinearSoftmax.from_sklearn(clf), iris


def test_matches_sklearn(fitted):
    clf, model, iris = fitted
    pts = torch.tensor([[0.1, 5.0], [10.0, 10.0], [5.0, -5.0], [4.9, 1.6]], dtype=torch.float64)
    np.testing.assert_allclose(model.proba(pts).numpy(), clf.predict_proba(pts.numpy()), rtol=1e-12)
    assert torch.equal(model.predict(iris.x), torch.as_tensor(clf.predict(iris.x.numpy())))


def test_binary_sklearn_model_becomes_two_softmax_rows():
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    clf = LogisticRegression().fit(x, [0, 0, 1, 1])
    model = LinearSoftmax.from_sklearn(clf)
    np.testing.assert_allclose(model.proba(torch.tensor(x)).numpy(), clf.predict_proba(x), rtol=1e-12)


def test_tie_line_has_equal_scores_and_triple_point_is_one_third(fitted):
    _, model, _ = fitted
    a, b = pairwise_boundary(model, 1, 2)
    # a point on the line a.x + b = 0
    p = -b * a / (a @ a)
    z = model.logits(p)[0]
    assert torch.isclose(z[1], z[2], atol=1e-12)
    tp = triple_point(model)
    np.testing.assert_allclose(model.proba(tp).numpy(), np.full((1, 3), 1 / 3), atol=1e-12)


def test_hand_computed_geometry():
    model = LinearSoftmax(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), torch.zeros(3))
    a, b = pairwise_boundary(model, 1, 2)
    assert a.tolist() == [1.0, -1.0] and float(b) == 0.0
    assert triple_point(model).tolist() == [0.0, 0.0]


def test_as_module_is_the_same_function(fitted):
    _, model, iris = fitted
    torch.testing.assert_close(model.as_module()(iris.x), model.logits(iris.x))
