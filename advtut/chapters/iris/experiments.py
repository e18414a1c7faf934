"""Chapter 1's experiments: fit, pick start points, compare minimal moves, sweep C.

All points are 2-D petal (length, width) in cm; models are :class:`~advtut.linear.LinearSoftmax`.
The post's numbers (Schoenmakers, "I Pity the fool, Deep Learning style", 2017) are in
:mod:`advtut.chapters.iris.source`; the tables and results entries in
:mod:`advtut.chapters.iris.report`, the figures in :mod:`advtut.chapters.iris.plots`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from advtut.linear import LinearSoftmax
from advtut.minimal_move import exact_minimal_move, minimal_move_gd, pairwise_lower_bound

__all__ = ["fit_logistic_regression", "Representatives", "representatives", "MoveTable",
           "compare_moves", "SweepPoint", "sweep_c"]


def fit_logistic_regression(x, y, *, C: float = 1.0, max_iter: int = 100):
    """scikit-learn's multinomial logistic regression (lbfgs, L2 penalty ``1/(2C) ||W||^2``).

    x: ``(N, d)``; y: ``(N,)``. Returns ``(clf, model)``: the fitted estimator and the same
    classifier as a :class:`LinearSoftmax`. Raises ``ValueError`` for ``C <= 0``.
    """
    from sklearn.linear_model import LogisticRegression

    if not C > 0:
        raise ValueError(f"C must be > 0 (the inverse regularization strength), got {C}")
    clf = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter)
    clf.fit(torch.as_tensor(x).detach().cpu().numpy(), torch.as_tensor(y).cpu().numpy())
    return clf, LinearSoftmax.from_sklearn(clf)


@dataclass(frozen=True)
class Representatives:
    """Per class ``k``: ``index[k]`` the flower nearest (L2) to the class mean ``means[k]``;
    ``index`` ``(K,)``, ``means`` ``(K, d)``."""

    index: torch.Tensor
    means: torch.Tensor


def representatives(x, y, n_classes: int = 3) -> Representatives:
    """The flowers ``x`` ``(N, d)`` nearest their class means (labels ``y`` ``(N,)``) and the
    means."""
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y)
    means = torch.stack([x[y == k].mean(0) for k in range(n_classes)])
    idx = []
    for k in range(n_classes):
        members = torch.nonzero(y == k).squeeze(1)
        idx.append(int(members[torch.linalg.vector_norm(x[members] - means[k], dim=1).argmin()]))
    return Representatives(torch.tensor(idx), means)


@dataclass(frozen=True)
class MoveTable:
    """Every (start, other class) pair: ``starts`` ``(M, 2)``, ``labels`` (start names),
    ``source_class`` and ``target`` ``(M,)``, and the three answers as MinimalMove results."""

    starts: torch.Tensor
    labels: tuple[str, ...]
    source_class: torch.Tensor
    target: torch.Tensor
    exact: object
    pairwise: object
    gd: object

    def rows(self, class_names) -> list[list]:
        """Table rows: start, from, to, exact, active ties, pairwise bound, bound lands in
        target?, GD."""
        return [[self.labels[i], class_names[int(self.source_class[i])],
                 class_names[int(self.target[i])], float(self.exact.distance[i]),
                 ", ".join(class_names[j] for j in self.exact.active[i]) or "none",
                 float(self.pairwise.distance[i]), bool(self.pairwise.feasible[i]),
                 float(self.gd.distance[i])] for i in range(len(self.target))]

    @property
    def gd_gap(self) -> float:
        """The largest ``|gradient descent - exact|`` distance (cm)."""
        return float((self.gd.distance - self.exact.distance).abs().max())

    @property
    def bound_excess(self) -> float:
        """The largest ``pairwise bound - exact`` distance (cm); <= 0: the bound is below."""
        return float((self.pairwise.distance - self.exact.distance).max())


def compare_moves(model: LinearSoftmax, starts, labels, *, gd_outer_steps: int = 20,
                  gd_inner_steps: int = 400) -> MoveTable:
    """For each start ``(S, 2)`` and each class other than its prediction: exact, bound and GD."""
    starts = torch.as_tensor(starts, dtype=torch.float64)
    pred = model.predict(starts)
    rows = [(i, t) for i in range(len(starts)) for t in range(model.n_classes) if t != int(pred[i])]
    idx = torch.tensor([i for i, _ in rows])
    x, target = starts[idx], torch.tensor([t for _, t in rows])
    return MoveTable(
        starts=x, labels=tuple(labels[i] for i in idx.tolist()), source_class=pred[idx],
        target=target, exact=exact_minimal_move(model, x, target),
        pairwise=pairwise_lower_bound(model, x, target),
        gd=minimal_move_gd(model.logits, x, target, outer_steps=gd_outer_steps,
                           inner_steps=gd_inner_steps))


@dataclass(frozen=True)
class SweepPoint:
    """One ``C`` of :func:`sweep_c`: training ``accuracy``, ``weight_norm`` (Frobenius), the mean
    and smallest exact move (cm) from the starts to every other class, the top probability at
    each probe (``probe_top_p``) and the share of the far points with top probability >= the
    sweep's ``confident``."""

    C: float
    accuracy: float
    weight_norm: float
    mean_move_cm: float
    min_move_cm: float
    probe_top_p: tuple[float, ...]
    far_share_confident: float


def sweep_c(x, y, c_values, *, starts, probes, far_points,
            confident: float = 0.99) -> list[SweepPoint]:
    """Refit for each C and measure accuracy, minimal moves and confidence far from the data.

    ``starts`` ``(S, 2)``: points whose exact moves to every other class are averaged;
    ``probes`` ``(P, 2)``: points whose top probability is reported; ``far_points`` ``(G, 2)``:
    a grid far from the data, reported as the share with top probability >= ``confident``.
    Returns one :class:`SweepPoint` per value of ``c_values``, in order.
    """
    y = torch.as_tensor(y)
    out = []
    for C in c_values:
        clf, model = fit_logistic_regression(x, y, C=C, max_iter=10_000)
        pred = model.predict(starts)
        pairs = [(s, t) for s in range(len(starts)) for t in range(model.n_classes)
                 if t != int(pred[s])]
        move = exact_minimal_move(model,
                                  torch.stack([torch.as_tensor(starts[s]) for s, _ in pairs]),
                                  torch.tensor([t for _, t in pairs]))
        far_top = model.proba(far_points).max(1).values
        out.append(SweepPoint(
            C=float(C),
            accuracy=float((model.predict(x) == y).double().mean()),
            weight_norm=float(torch.linalg.matrix_norm(model.weight)),
            mean_move_cm=float(move.distance.mean()),
            min_move_cm=float(move.distance.min()),
            probe_top_p=tuple(model.proba(probes).max(1).values.tolist()),
            far_share_confident=float((far_top >= confident).double().mean())))
    return out
