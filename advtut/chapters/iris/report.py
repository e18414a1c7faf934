"""Chapter 1's tables and results entries (the notebook's last cells call these).

Each ``*_entries`` function returns a list of :func:`~advtut.book.results.entry` /
:func:`~advtut.book.results.invariant` dicts; the chapter's results JSON is their concatenation
in the order of the notebook.
"""
from __future__ import annotations

from advtut.book.results import entry, invariant
from advtut.book.tables import table
from advtut.chapters.iris.experiments import MoveTable, SweepPoint
from advtut.chapters.iris.source import POST_ACCURACY, POST_FOOLING

__all__ = ["TRUNCATED", "moves_table", "sweep_table", "accuracy_entries", "fooling_entries",
           "triple_point_entries", "move_entries", "sweep_entries"]

#: The tolerance note of every value the post prints truncated.
TRUNCATED = ("the post truncates to 3 decimals (96.6% for 0.9667): "
             "ours must be within 0.001")


def moves_table(moves: MoveTable, class_names):
    """The minimal moves of :func:`~advtut.chapters.iris.experiments.compare_moves`, one row
    per (start, target)."""
    return table(moves.rows(class_names),
                 ["start", "predicted", "target", "exact (cm)",
                  "exact: active tie with", "pairwise bound (cm)",
                  "bound's foot in target region?", "gradient descent (cm)"])


def sweep_table(sweep: list[SweepPoint]):
    """The regularization sweep of :func:`~advtut.chapters.iris.experiments.sweep_c`, probed at
    the post's three fooling points, one row per ``C``."""
    return table([[r.C, r.accuracy, r.weight_norm, r.mean_move_cm, r.min_move_cm,
                   *r.probe_top_p, r.far_share_confident] for r in sweep],
                 ["C", "training accuracy", "‖Θ‖ (Frobenius)", "mean move (cm)",
                  "smallest move (cm)", "P at (0.1, 5)", "P at (10, 10)",
                  "P at (5, −5)", "far field with P ≥ 0.99"])


def accuracy_entries(accuracy: float, n_wrong: int) -> list[dict]:
    """The training accuracy beside :data:`POST_ACCURACY` and the count of misclassified
    flowers (not in the post)."""
    return [entry("training accuracy", accuracy, source=POST_ACCURACY, tol=0.001,
                  unit="fraction",
                  note="sklearn lbfgs, C=1, all 150 flowers; " + TRUNCATED),
            entry("misclassified flowers", n_wrong, unit="flowers",
                  note="the post shows them in its Figure 0 without a count")]


def fooling_entries(predicted, probabilities) -> list[dict]:
    """Per fooling point of :data:`POST_FOOLING`: our predicted class name (``predicted[i]``)
    and its probability (``probabilities[i]``) beside the post's."""
    out = []
    for i, (point, src_name, src_p) in enumerate(POST_FOOLING):
        where = f"({point[0]:g}, {point[1]:g})"
        out.append(entry(f"prediction at {where}", predicted[i],
                         source=src_name, tol=0, unit="class",
                         note="must be the same class"))
        out.append(entry(f"probability at {where}", probabilities[i], source=src_p,
                         tol=0.001, unit="probability", note=TRUNCATED))
    return out


def triple_point_entries(tp) -> list[dict]:
    """The triple point ``(length, width)`` in cm, where all three classes tie."""
    return [entry("triple point petal length", float(tp[0]), unit="cm",
                  note="not in the post"),
            entry("triple point petal width", float(tp[1]), unit="cm",
                  note="not in the post")]


def move_entries(moves: MoveTable, class_names) -> list[dict]:
    """Each exact minimal move, the gradient-descent check, and what must hold of the three
    methods (the pairwise bound is below the exact move, gradient descent not below it)."""
    out = []
    for lab, frm, to, ex, act, pw, ok, gd in moves.rows(class_names):
        out.append(entry(
            f"exact move {lab} -> {to}", ex, unit="cm",
            note=f"ends on the tie with {act}; pairwise lower bound {pw:.4f} "
                 f"cm (foot in target region: {ok}); gradient descent "
                 f"{gd:.6f} cm"))
    gd_gap = moves.gd_gap
    out.append(entry("max |gradient descent - exact| move", gd_gap, unit="cm",
                     note="independent check of the exact projection"))
    out += [
        invariant("pairwise bound minus exact move, largest", moves.bound_excess,
                  op="<=", value=0.0, tol=1e-9, unit="cm",
                  note="the pairwise distance is a lower bound of the move"),
        invariant("gradient descent over exact move, smallest",
                  float((moves.gd.distance / moves.exact.distance).min()), op=">=", value=1.0,
                  tol=1e-6, unit="ratio",
                  note="no method can beat the exact minimal move"),
        invariant("gradient descent agrees with the exact move", gd_gap,
                  op="<=", value=1e-4, unit="cm",
                  note="the augmented Lagrangian reaches the same projection"),
    ]
    return out


def sweep_entries(sweep: list[SweepPoint]) -> list[dict]:
    """Per ``C`` of the regularization sweep: training accuracy, mean move from the class means
    and the far-field share with P >= 0.99."""
    out = []
    for r in sweep:
        c = f"C={r.C:g}"
        out.append(entry(f"{c} training accuracy", r.accuracy,
                         unit="fraction", note="regularization sweep"))
        out.append(entry(f"{c} mean move from class means", r.mean_move_cm,
                         unit="cm", note="regularization sweep"))
        out.append(entry(f"{c} far field share with P>=0.99",
                         r.far_share_confident, unit="fraction",
                         note="regularization sweep"))
    return out
