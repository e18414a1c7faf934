"""Chapter 5's tables and results entries: each experiment of
:mod:`advtut.chapters.spectral.experiments` beside the paper's Table 5 as an HTML table
(:func:`advtut.book.tables.table`), written as results JSON rows (``*_entries``) and as
invariants that hold in any profile (``*_invariants``: the corrected formula is the circular
convolution's norm, every bound is above the norm it bounds, no certified radius exceeds a
distance the attack reached, ...).
"""
from __future__ import annotations

from advtut.book.results import entry, invariant
from advtut.book.tables import table
from advtut.chapters.spectral.experiments import CNNNorms, LayerNorms, PaddingSweep, Sandwich
from advtut.chapters.spectral.source import TABLE5
from advtut.spectral import NormEstimate

__all__ = ["formula_table", "big_conv_table", "table5", "network_row", "big_conv_entries",
           "sweep_table", "cnn_table", "sandwich_summary", "sandwich_table",
           "regulariser_table", "formula_entries", "table5_entries",
           "sweep_entries", "cnn_entries", "sandwich_entries", "regulariser_entries"]

PAPER = {name: (size, stride, value) for name, size, stride, value in TABLE5}


# --- tables ------------------------------------------------------------------------------------
def formula_table(rows: list[dict]):
    """The formula as printed and corrected against the exact norm of the circular convolution."""
    out = [[r["stride"], r["printed"], r["corrected"], r["exact"], r["printed"] / r["exact"],
            r["corrected"] / r["exact"]] for r in rows]
    return table(out, ["stride", "printed (s⁻²)", "corrected (s⁻¹)", "exact (dense SVD)",
                       "printed / exact", "corrected / exact"],
                 caption="Formula (1) against the exact norm, one random kernel per stride")


def big_conv_table(big: dict, est: NormEstimate):
    """conv1's shape at its real size: both formulas against power iteration."""
    rows = [["printed (s⁻²)", big["printed"], big["printed"] / big["exact"]],
            ["corrected (s⁻¹)", big["corrected"], big["corrected"] / big["exact"]],
            [f"power iteration ({est.iterations} iterations, last change {est.rel_change:.0e})",
             big["exact"], 1.0]]
    return table(rows, ["", "norm", "/ power iteration"],
                 caption="A random 96×3×11×11 kernel at stride 4 on a circular 228×228 grid")


def network_row(test_error: float, sw: Sandwich, norms: list[CNNNorms]) -> dict:
    """One network's row of the regulariser table: test error, bound, mean local constant and
    the sandwich's medians."""
    s = sandwich_summary(sw)
    return {"test_error": test_error, "bound": norms[-1].bound,
            "local": norms[-1].local_mean, "margin": s["margin"], "certified": s["certified"],
            "attack": s["attack"]}


def table5(rows: list[LayerNorms]):
    """Table 5: the paper's bound beside ours (printed formula, corrected bound, the norm as
    applied and how far its power iteration had converged)."""
    out = []
    for r in rows:
        size, stride, value = PAPER[r.layer]
        name = r.layer if stride is None else f"{r.layer} (stride {stride})"
        out.append([name, f"{size} / {r.shape}", value, r.printed, r.bound, r.exact,
                    f"{r.rel_change:.0e}"])
    return table(out, ["layer", "size: paper / ours", "paper", "printed formula",
                       "corrected bound", "as applied", "last change"],
                 caption="Table 5: upper Lipschitz bound of each rectified layer")


def sweep_table(sweep: PaddingSweep):
    """How often the formula on each grid falls below a zero-padded layer's exact norm."""
    rows = [["n × n (the input)", sweep.below_on_n, sweep.below_on_n / sweep.n_cases,
             sweep.worst_on_n, sweep.worst_padding],
            ["n + 2p (bound_grid)", sweep.below_on_grid, sweep.below_on_grid / sweep.n_cases,
             sweep.worst_on_grid, "–"]]
    return table(rows, ["grid", "cases below the exact norm", "fraction",
                        "worst exact / formula − 1", "worst case's padding"],
                 caption=f"{sweep.n_cases} random zero-padded convolutions, checked by dense SVD")


def cnn_table(init: list[CNNNorms], trained: list[CNNNorms]):
    """Per layer and for the network: bounds before and after training, the exact norm, the
    local constants at test images, and how loose the bound is against them."""
    rows = [[t.layer, i.bound, t.bound, t.exact, t.local_mean, t.local_max, t.bound / t.local_mean]
            for i, t in zip(init, trained)]
    return table(rows, ["layer", "bound at init", "bound, trained", "exact, trained",
                        "local, mean", "local, max", "bound / local mean"],
                 caption="Our MNIST CNN: upper bounds, exact norms and local Lipschitz constants "
                         "(network row: products of the layers', but the local constants are "
                         "the whole network's)")


def sandwich_summary(sw: Sandwich) -> dict:
    """Medians over the attacked images the attack fooled, and the fraction certified <= attack."""
    ok = sw.success
    c, e, a = sw.certified[ok], sw.local_estimate[ok], sw.attack_l2[ok]
    return {"n": len(ok), "success": float(ok.double().mean()),
            "margin": float(sw.margin[ok].median()),
            "certified": float(c.median()),
            "estimate": float(e.median()), "attack": float(a.median()),
            "ratio": float((a / c).median()),
            "consistent": float((sw.certified[ok] <= sw.attack_l2[ok]).double().mean())}


def sandwich_table(sandwiches: dict[str, Sandwich]):
    """Per network: the three distances (medians) and the fraction with certified <= attack."""
    rows = []
    for name, sw in sandwiches.items():
        s = sandwich_summary(sw)
        rows.append([name, s["n"], s["success"], s["certified"], s["estimate"], s["attack"],
                     s["ratio"], s["consistent"]])
    return table(rows, ["network", "images", "attack success", "certified radius",
                        "margin / (√2 local)", "L-BFGS distance", "attack / certified",
                        "certified ≤ attack"],
                 caption="The sandwich, medians over the attacked test images "
                         "(L2, pixels in [0, 1])")


def regulariser_table(nets: dict[str, dict]):
    """Per network: test error, the bound on the whole network, the mean local constant, and
    the sandwich's medians."""
    rows = [[name, n["test_error"], n["bound"], n["local"], n["margin"], n["certified"],
             n["attack"]] for name, n in nets.items()]
    return table(rows, ["network", "test error", "bound L (product)", "local, mean",
                        "logit margin", "certified radius", "L-BFGS distance"],
                 caption="Does a smaller bound buy robustness? (medians over the attacked images)")


# --- results entries ---------------------------------------------------------------------------
def formula_entries(rows: list[dict]) -> list[dict]:
    """Per stride: corrected == exact (relative 1e-3, an invariant) and the printed ratio."""
    out = []
    for r in rows:
        s = r["stride"]
        out.append(invariant(f"formula (1) corrected = circular norm, stride {s}", r["corrected"],
                             op="==", value=r["exact"], tol=1e-9 * r["exact"],
                             note="Parseval on the folded frequency grid: with the scaling 1/s "
                                  "the formula is the circular convolution's norm (dense SVD); "
                                  "tol: relative 1e-9, float64 rounding"))
        out.append(entry(f"formula (1) as printed / exact, stride {s}", r["printed"] / r["exact"],
                         note="the paper's s^-2 scaling; 1/s expected"))
    return out


def big_conv_entries(big: dict) -> list[dict]:
    """conv1's shape: the corrected formula is never below power iteration's estimate."""
    return [invariant("conv1 shape at 228 px: corrected formula >= power iteration",
                      big["corrected"], op=">=", value=big["exact"], tol=1e-6 * big["exact"],
                      note="power iteration approaches the circular norm from below; the "
                           "corrected formula is that norm"),
            entry("conv1 shape at 228 px: corrected / power iteration - 1",
                  big["corrected"] / big["exact"] - 1,
                  note="how far power iteration got in this profile's iterations"),
            entry("conv1 shape at 228 px: printed / corrected", big["printed"] / big["corrected"],
                  note="1/4 expected: the stride")]


def table5_entries(rows: list[LayerNorms], what: str) -> list[dict]:
    """Table 5's cells with the paper's values (no tol: another network) and bound >= exact."""
    why = (f"{what}; the paper's is Krizhevsky et al.'s trained AlexNet (other filter counts, "
           "grouped convolutions, local response normalisation), so no equality is expected")
    out = []
    for r in rows:
        paper = PAPER[r.layer][2]
        out.append(entry(f"Table 5 {r.layer} corrected bound", r.bound, source=paper, note=why))
        out.append(entry(f"Table 5 {r.layer} printed formula", r.printed, source=paper, note=why))
        out.append(entry(f"Table 5 {r.layer} norm as applied", r.exact, note=why))
        out.append(invariant(f"Table 5 {r.layer} bound >= norm as applied", r.bound, op=">=",
                             value=r.exact, tol=1e-9 * r.exact,
                             note="the bound is at least the norm (a restriction of the "
                                  "circular convolution on bound_grid points; the SVD for a "
                                  "linear layer), and power iteration never overshoots the "
                                  "norm; tol: relative 1e-9 (float64 iterations and bound)"))
    return out


def sweep_entries(sweep: PaddingSweep) -> list[dict]:
    """The padding sweep: the n x n grid's failures (no tol) and the bound grid's (none)."""
    return [entry("zero padding: fraction below the exact norm on the n x n grid",
                  sweep.below_on_n / sweep.n_cases,
                  note=f"{sweep.n_cases} random small layers; the paper does not discuss padding"),
            entry("zero padding: worst shortfall on the n x n grid", sweep.worst_on_n,
                  unit="exact / formula - 1",
                  note=f"{sweep.n_cases} random small layers; the worst has padding "
                       f"{sweep.worst_padding}"),
            invariant("zero padding: fraction below the exact norm on the n + 2p grid",
                      sweep.below_on_grid / sweep.n_cases, op="==", value=0.0,
                      note="on n + 2p points the zero-padded layer is a restriction of the "
                           "circular convolution, whose norm the formula is")]


def cnn_entries(init: list[CNNNorms], trained: list[CNNNorms]) -> list[dict]:
    """The CNN's per-layer numbers; invariants: bound >= exact and bound >= every local value.
    (Its test error is among :func:`regulariser_entries`, as "plain CNN: test error".)"""
    out = []
    for i, t in zip(init, trained):
        out += [entry(f"CNN {t.layer} bound at init", i.bound, note="corrected formula"),
                entry(f"CNN {t.layer} bound trained", t.bound, note="corrected formula"),
                entry(f"CNN {t.layer} exact trained", t.exact, note="power iteration or SVD"),
                entry(f"CNN {t.layer} local mean", t.local_mean,
                      note="largest Jacobian singular value at test images"),
                invariant(f"CNN {t.layer} bound >= exact", t.bound, op=">=", value=t.exact,
                          tol=1e-9 * t.exact, note="power iteration never overshoots a norm "
                          "and the bound is at least the norm"),
                invariant(f"CNN {t.layer} bound >= local max", t.bound, op=">=",
                          value=t.local_max, tol=1e-9 * t.bound,
                          note="a Jacobian's norm never exceeds a Lipschitz bound (float64 "
                               "power iteration: relative 1e-9)")]
    return out


def sandwich_entries(name: str, sw: Sandwich) -> list[dict]:
    """The sandwich's medians, and the invariants certified <= attack and attack success."""
    s = sandwich_summary(sw)
    return [entry(f"{name}: median certified radius", s["certified"], unit="L2",
                  note="margin / (sqrt 2 L), L the product of the layer bounds"),
            entry(f"{name}: median L-BFGS distance", s["attack"], unit="L2",
                  note="chapter 4's attack, on correctly classified test images"),
            entry(f"{name}: median attack / certified", s["ratio"],
                  note="how far apart the two sides of the sandwich are"),
            invariant(f"{name}: fraction with certified radius <= attack distance",
                      s["consistent"], op="==", value=1.0,
                      note="a certified radius is a lower bound on every adversarial distance"),
            invariant(f"{name}: attack success rate", s["success"], op=">=", value=0.9,
                      unit="fraction", note="as c falls the attack minimises the loss alone, "
                                            "which reaches the target on an MNIST CNN; a capped "
                                            "solve may miss a few (chapter 4: 100%)")]


def regulariser_entries(name: str, net: dict, *, target: float | None) -> list[dict]:
    """Test error and bound of one network; a projected one's bound is at most target^4."""
    out = [entry(f"{name}: test error", net["test_error"], unit="fraction",
                 note="MNIST test set"),
           entry(f"{name}: bound L", net["bound"], note="product of the layer bounds"),
           entry(f"{name}: median logit margin", net["margin"],
                 note="top logit minus the runner-up, at the attacked images")]
    if target is not None:
        out.append(invariant(f"{name}: bound L <= target^4", net["bound"], op="<=",
                             value=target ** 4, tol=1e-6 * target ** 4,
                             note="every layer is scaled to a bound of at most the target "
                                  "after the last step"))
    return out
