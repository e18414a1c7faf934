"""Chapter 7's tables and results entries: each experiment of
:mod:`advtut.chapters.attribution.experiments` beside the source's numbers (its
:mod:`~advtut.chapters.attribution.source`) as an HTML table (:func:`advtut.book.tables.table`)
and as results JSON rows (``*_entries``), with the invariants that hold in any profile (FGSM
equals foolbox's, the completeness gap stays below its stated bound, the sign step beats random
signs and the stretched gradient at equal L-infinity size, the plain gradient fails to survive
randomisation while gradient x input keeps the picture).
"""
from __future__ import annotations

from advtut.book.results import entry, invariant
from advtut.book.tables import table
from advtut.chapters.attribution.experiments import FlipCurves, SignStepStats
from advtut.chapters.attribution.source import SOURCE

__all__ = ["accuracy_table", "accuracy_entries", "sign_step_table", "sign_step_entries",
           "budget_table", "budget_entries", "edge_table", "edge_entries", "completeness_table",
           "completeness_entries", "integral_table", "sanity_table", "sanity_entries",
           "at_eps", "GAP_BOUND"]

#: The completeness bound the chapter states for integrated gradients (Gauss-Legendre, 50
#: nodes): the mean ``|gap|`` at most this fraction of the mean ``|f(x) - f(0)|``.
GAP_BOUND = 0.02


def at_eps(c: FlipCurves, eps: float, field: str = "sign") -> float:
    """The value of curve ``field`` at the grid point ``eps`` (which must be on the grid)."""
    hits = [i for i, e in enumerate(c.eps.tolist()) if abs(e - eps) < 1e-12]
    if not hits:
        raise ValueError(f"eps {eps} is not on the curve's grid {c.eps.tolist()}")
    return float(getattr(c, field)[hits[0]])


# --- accuracy ----------------------------------------------------------------------------------
def accuracy_table(rows: list[dict]):
    """``rows``: ``{"model", "classes", "epochs", "size", "accuracy", "untrained", "source"}``."""
    return table([[r["model"], r["classes"], r["size"], r["epochs"], r["untrained"],
                   r["accuracy"], r["source"]] for r in rows],
                 ["network", "classes", "pixels", "epochs", "untrained", "test accuracy",
                  "source"], caption="Test accuracy, ours beside the source's", digits=3)


def accuracy_entries(rows: list[dict], *, minimum: dict[str, float]) -> list[dict]:
    """One entry per network (source's accuracy beside ours) and the invariant that each beats
    its profile's floor ``minimum[row["key"]]``."""
    out = []
    for r in rows:
        out.append(entry(f"{r['model']}: test accuracy", r["accuracy"], source=r["source"],
                         note=f"{r['epochs']} epochs at {r['size']} px; the source trained "
                              "its own (larger) networks for longer"))
        floor = minimum[r["key"]]
        out.append(invariant(f"{r['model']}: test accuracy at least {floor:g}", r["accuracy"],
                             op=">=", value=floor,
                             note="the profile's floor, well above chance (1/classes); the "
                                  "full profile asks for the source's 91% on Fashion-MNIST"))
    return out


# --- the sign step -----------------------------------------------------------------------------
def sign_step_table(stats: dict[str, SignStepStats]):
    """``stats``: label (dataset and state) -> :class:`SignStepStats`."""
    rows = [[label, s.eps, s.n, s.flipped, s.random_flipped, s.resist, s.alone_confidence]
            for label, s in stats.items()]
    return table(rows, ["network", "ε", "images", "flipped by the step",
                        "flipped by random signs", "resist (label kept)",
                        "step alone: median confidence"],
                 caption="The sign step on the test images", digits=3)


def sign_step_entries(stats: dict[str, SignStepStats], *, resist_key: str,
                      fb_diff: float | None) -> list[dict]:
    out = []
    for label, s in stats.items():
        out.append(entry(f"{label}: fraction flipped by the sign step (ε={s.eps:g})", s.flipped,
                         note=f"{s.n} test images"))
        out.append(entry(f"{label}: fraction flipped by random signs (ε={s.eps:g})",
                         s.random_flipped, note="the same L∞ size, random direction"))
        if label.endswith("trained") and not label.endswith("untrained"):
            out.append(invariant(f"{label}: fraction flipped, sign step minus random signs",
                                 s.flipped - s.random_flipped, op=">=", value=0.0,
                                 note="the gradient points where the loss rises fastest; a "
                                      "random direction is almost orthogonal to it"))
    s = stats[resist_key]
    out.append(entry(f"{resist_key}: fraction that resists the sign step (ε={s.eps:g})",
                     s.resist, source=SOURCE["resist"],
                     note=f"label kept; the source: 'around a third' after "
                          f"{SOURCE['resist_epochs']} epochs of its own network"))
    if fb_diff is not None:
        out.append(invariant("FGSM: fraction of pixels where ours and foolbox's FGSM differ",
                             fb_diff, op="<=", value=1e-3,
                             note="the same step on the same model and images, clipped to "
                                  "[0, 1]; only a gradient within rounding of zero may take "
                                  "the other sign"))
    return out


def budget_table(curves: dict[str, FlipCurves], eps: dict[str, float]):
    rows = []
    for dataset, c in curves.items():
        e = eps[dataset]
        i = [k for k, v in enumerate(c.eps.tolist()) if abs(v - e) < 1e-12][0]
        rows.append([dataset, e, float(c.l2[i]), at_eps(c, e), at_eps(c, e, "l2_equal"),
                     at_eps(c, e, "linf_equal")])
    return table(rows, ["dataset", "ε (L∞)", "L2 of the sign step", "sign step",
                        "normalised, same L2", "normalised, same L∞"],
                 caption="Fraction of labels flipped at equal budgets", digits=3)


def budget_entries(curves: dict[str, FlipCurves], eps: dict[str, float]) -> list[dict]:
    out = []
    for dataset, c in curves.items():
        e = eps[dataset]
        sign, l2, linf = at_eps(c, e), at_eps(c, e, "l2_equal"), at_eps(c, e, "linf_equal")
        out.append(entry(f"{dataset}: flipped by the normalised gradient at the sign step's L2 "
                         f"(ε={e:g})", l2, note=f"sign step: {sign:.3f}"))
        out.append(invariant(f"{dataset}: fraction flipped at equal L∞ (ε={e:g}), sign step "
                             "minus normalised gradient", sign - linf, op=">=",
                             value=0.0, note="to first order the sign step is the steepest "
                                             "ascent in the L∞ ball; measured margins are large"))
    return out


# --- gradients and the input's features --------------------------------------------------------
def edge_table(corr: dict[str, dict[str, float]]):
    """``corr``: dataset -> {"untrained": mean, "trained": mean}."""
    return table([[d, c["n"], c["untrained"], c["trained"]] for d, c in corr.items()],
                 ["dataset", "images", "untrained", "trained"],
                 caption="Rank correlation of |∇ loss| with the image's edges (mean)", digits=3)


def edge_entries(corr: dict[str, dict[str, float]]) -> list[dict]:
    out = []
    for d, c in corr.items():
        out.append(entry(f"{d}: edge correlation of |gradient|, untrained", c["untrained"],
                         note="Spearman per image, mean"))
        out.append(invariant(f"{d}: edge correlation of |gradient|, trained minus untrained",
                             c["trained"] - c["untrained"], op=">=", value=0.0,
                             note="the source: untrained networks keep practically no input "
                                  "features in the gradient; trained ones do"))
    return out


def completeness_table(rows: dict[str, list[dict]]):
    out = [[d, r["rule"], r["steps"], r["mean |gap|"], r["max |gap|"], r["mean |f(x) - f(0)|"]]
           for d, rs in rows.items() for r in rs]
    return table(out, ["dataset", "rule", "steps", "mean |gap|", "max |gap|",
                       "mean |f(x) − f(0)|"],
                 caption="Integrated gradients: completeness gap by rule (logit units)", digits=3)


def completeness_entries(rows: dict[str, list[dict]]) -> list[dict]:
    out = []
    for d, rs in rows.items():
        for r in rs:
            rel = r["mean |gap|"] / r["mean |f(x) - f(0)|"]
            name = (f"{d}: IG mean |gap| / mean |f(x) - f(0)| ({r['rule']}, "
                    f"{r['steps']} steps)")
            if r["rule"] == "gausslegendre":
                out.append(invariant(name, rel, op="<=", value=GAP_BOUND,
                                     note="the stated bound; ReLU kinks along the path are "
                                          "what a 50-node rule cannot integrate exactly"))
            else:
                out.append(entry(name, rel, note="relative completeness gap, same evaluations"))
    return out


def integral_table(rows: list[list]):
    return table(rows, ["dataset", "vs integrated gradients", "vs gradient × input (trained)",
                        "vs |gradient| (trained)"],
                 caption="Integrated over training: rank correlation with other maps (mean)",
                 digits=3)


# --- sanity checks -----------------------------------------------------------------------------
def sanity_table(rows: dict[str, list[dict]], methods):
    out = []
    for d, rs in rows.items():
        for r in rs[1:]:
            out.append([d, r["state"], *[r[f"{m} vs trained"] for m in methods]])
    return table(out, ["dataset", "network", *methods],
                 caption="Rank correlation with the trained network's map", digits=3)


def sanity_entries(rows: dict[str, list[dict]], methods) -> list[dict]:
    """Per dataset and method, the correlation with the trained map once every listed layer is
    re-initialised and for the untrained network; invariants: the plain gradient's untrained
    map is unlike the trained one, and gradient x input keeps more of it than the gradient."""
    out = []
    for d, rs in rows.items():
        last, untrained = rs[-2], rs[-1]   # every listed layer re-initialised; untrained
        for m in methods:
            out.append(entry(f"{d}: {m}, all layers re-initialised: correlation with the "
                             "trained map", last[f"{m} vs trained"], note="Spearman, mean"))
            if m != "gradient":
                out.append(entry(f"{d}: {m}, untrained: correlation with the trained map",
                                 untrained[f"{m} vs trained"], note="Spearman, mean"))
        out.append(invariant(f"{d}: gradient, untrained: correlation with the trained map",
                             untrained["gradient vs trained"], op="<=", value=0.5,
                             note="Adebayo et al.'s check: a map that depends on the weights "
                                  "changes when they are replaced"))
        out.append(invariant(f"{d}: untrained, correlation with the trained map, gradient × "
                             "input minus gradient", untrained["gradient x input vs trained"]
                             - untrained["gradient vs trained"], op=">=", value=0.0,
                             note="multiplying by the input carries the picture into the map "
                                  "whatever the weights"))
    return out
