"""A linear softmax classifier as plain tensors, and the geometry of its decision regions.

A multinomial logistic regression with ``K`` classes on ``d`` features scores class ``c`` by
``z_c = w_c . x + b_c`` and predicts ``P(c | x) = exp(z_c) / sum_i exp(z_i)``. Two classes tie
where ``z_i = z_j``, that is on the line (plane, hyperplane)

    (w_i - w_j) . x + (b_i - b_j) = 0,

so every decision boundary is linear and every class region is an intersection of ``K - 1``
half-spaces: a convex polygon in 2-D. :class:`LinearSoftmax` holds ``weight`` ``(K, d)`` and
``bias`` ``(K,)`` as float64 tensors; :func:`pairwise_boundary` and :func:`triple_point` give the
lines and the points where three classes tie (``P = 1/3`` each when only three classes exist).

Example::

    clf = LogisticRegression().fit(x, y)     # scikit-learn
    model = LinearSoftmax.from_sklearn(clf)
    model.proba(torch.tensor([[0.1, 5.0]]))  # (1, K), rows sum to 1
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["LinearSoftmax", "pairwise_boundary", "triple_point"]


def _as_points(x, d: int) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"x must have shape (N, {d}) (or ({d},) for one point), got {tuple(x.shape)}")
    return x


@dataclass(frozen=True)
class LinearSoftmax:
    """``logits = x @ weight.T + bias``; ``weight``: float64 ``(K, d)``, ``bias``: ``(K,)``."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __post_init__(self):
        w = torch.as_tensor(self.weight, dtype=torch.float64)
        b = torch.as_tensor(self.bias, dtype=torch.float64)
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise ValueError(f"weight must be (K, d) and bias (K,), got {tuple(w.shape)} and "
                             f"{tuple(b.shape)}")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)

    @property
    def n_classes(self) -> int:
        return self.weight.shape[0]

    @property
    def n_features(self) -> int:
        return self.weight.shape[1]

    @classmethod
    def from_sklearn(cls, clf) -> "LinearSoftmax":
        """From a fitted scikit-learn ``LogisticRegression`` (multinomial, or binary)."""
        w = torch.as_tensor(clf.coef_, dtype=torch.float64)
        b = torch.as_tensor(clf.intercept_, dtype=torch.float64)
        if w.shape[0] == 1:  # binary: P(1) = sigmoid(z) = softmax([0, z])[1]
            w, b = torch.cat([torch.zeros_like(w), w]), torch.cat([torch.zeros_like(b), b])
        return cls(w, b)

    def logits(self, x) -> torch.Tensor:
        """x: ``(N, d)`` (or ``(d,)``) -> logits ``(N, K)``."""
        return _as_points(x, self.n_features) @ self.weight.T + self.bias

    def proba(self, x) -> torch.Tensor:
        """x: ``(N, d)`` -> class probabilities ``(N, K)``, rows summing to 1."""
        return torch.softmax(self.logits(x), dim=1)

    def predict(self, x) -> torch.Tensor:
        """x: ``(N, d)`` -> predicted class ``(N,)`` int64."""
        return self.logits(x).argmax(dim=1)

    def as_module(self) -> nn.Module:
        """The same classifier as a frozen float64 ``nn.Linear`` (for gradient-based code)."""
        layer = nn.Linear(self.n_features, self.n_classes, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(self.weight)
            layer.bias.copy_(self.bias)
        layer.requires_grad_(False)
        return layer.eval()


def pairwise_boundary(model: LinearSoftmax, i: int, j: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The tie between classes ``i`` and ``j``: ``(a, b)`` with ``a . x + b = 0``.

    ``a = w_i - w_j`` ``(d,)``, ``b = b_i - b_j`` (scalar tensor); ``a . x + b > 0`` on the side
    where class ``i`` scores higher. Whether a point of the line is on the visible boundary depends
    on the other classes.
    """
    k = model.n_classes
    if not (0 <= i < k and 0 <= j < k) or i == j:
        raise ValueError(f"i and j must be two different classes in [0, {k}), got {i} and {j}")
    return model.weight[i] - model.weight[j], model.bias[i] - model.bias[j]


def triple_point(model: LinearSoftmax, classes: tuple[int, int, int] = (0, 1, 2)) -> torch.Tensor:
    """The 2-D point ``(2,)`` where the three ``classes`` score equally.

    It solves ``z_i = z_j = z_k``; with exactly three classes every probability there is 1/3.
    Raises ``ValueError`` when the model is not 2-D or the boundaries are parallel.
    """
    if model.n_features != 2:
        raise ValueError(f"triple_point needs a 2-feature model, got {model.n_features} features")
    i, j, k = classes
    a1, b1 = pairwise_boundary(model, i, j)
    a2, b2 = pairwise_boundary(model, i, k)
    A = torch.stack([a1, a2])
    if abs(torch.linalg.det(A)) < 1e-12:
        raise ValueError(f"the boundaries of classes {classes} are parallel: no triple point")
    return torch.linalg.solve(A, -torch.stack([b1, b2]))
