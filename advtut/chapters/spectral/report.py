"""Chapter 5's tables and results entries: each experiment of
:mod:`advtut.chapters.spectral.experiments` beside the paper's Table 5 as an HTML table
(:func:`advtut.book.tables.table`), written as results JSON rows (``*_entries``) and as
invariants that hold in any profile (``*_invariants``: the corrected formula is the circular
convolution's norm, every bound is above the norm it bounds, no certified radius exceeds a
distance the attack reached, ...).
"""
from __future__ import annotations

import math

import torch

from advtut.book.results import entry, invariant
from advtut.book.tables import table
from advtut.chapters.spectral.experiments import (
    Bracket,
    CNNNorms,
    LayerNorms,
    NetworkReport,
    PaddingSweep,
    Sandwich,
)
from advtut.chapters.spectral.source import PUBLISHED, TABLE5
from advtut.intervals import median_interval
from advtut.spectral import NormEstimate

__all__ = ["formula_table", "big_conv_table", "table5", "flowers_table", "flowers_entries",
           "sweep_table", "cnn_table",
           "bracket_table", "sandwich_summary", "sandwich_table", "check_table", "networks_table",
           "published_table", "formula_entries", "big_conv_entries", "table5_entries",
           "sweep_entries", "cnn_entries", "bracket_entries", "sandwich_entries",
           "network_entries", "rescale_invariant", "clip_entries", "margin_loss_invariant",
           "margin_check_entries", "matched_entries", "verdict_entry", "regulariser_checks"]

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


def flowers_table(init: list[LayerNorms], trained: list[LayerNorms], alex: list[LayerNorms], *,
                  alex_trained: bool = False):
    """The trained flowers CNN layer by layer (BatchNorm folded in): its bounds at
    initialisation and after training, their ratio, the norm as applied, with AlexNet's
    product of Table 5's bounds as the last row (in the trained column when ``alex_trained``:
    ImageNet weights were loaded)."""
    rows = [[t.layer, t.shape, i.bound, t.bound, t.bound / i.bound, t.exact]
            for i, t in zip(init, trained)]
    alex_bound = math.prod(r.bound for r in alex)
    rows.append(["AlexNet as loaded (Table 5's eight bounds)", "",
                 None if alex_trained else alex_bound, alex_bound if alex_trained else None,
                 None, math.prod(r.exact for r in alex)])
    return table(rows, ["layer", "shape", "bound at init", "bound, trained", "trained / init",
                        "as applied, trained"],
                 caption="A trained photo network: the book's flowers CNN, BatchNorm folded "
                         "into each convolution (network row: products of the layers'; the "
                         "last row: AlexNet's layers as loaded, without the poolings)")


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


def bracket_table(brackets: dict[str, "Bracket"]):
    """Per network: the bracket ``lower <= L <= upper`` and how loose the bound can be."""
    rows = [[name, b.at_test, b.search, b.lower, b.upper, b.gap] for name, b in brackets.items()]
    return table(rows, ["network", "largest ||J|| at test images", "largest found by the search",
                        "lower bound", "upper bound (product)", "upper / lower"],
                 caption="The network's Lipschitz constant lies between the two bounds "
                         "(L2 → L2, pixels in [0, 1])")


def sandwich_summary(sw: Sandwich) -> dict:
    """Medians (with order-statistic 95% intervals) over every attacked image, a failed
    attack counting as an infinite distance (the minimal distortion is beyond what it
    searched; dropping the image would bias the median down), the fraction certified <= found,
    and the second attack's agreement on the images it ran on."""
    ok = sw.success
    c, e, f = sw.certified, sw.first_order, sw.found
    ratio = f / c
    ran = ~torch.isnan(sw.check)
    out = {"n": len(ok), "success": float(ok.double().mean()),
           "margin": float(sw.margin.median()),
           "certified": float(c.median()), "certified_ci": median_interval(c),
           "first_order": float(e.median()), "first_order_ci": median_interval(e),
           "found": float(f.median()), "found_ci": median_interval(f),
           "ratio": float(ratio.median()), "ratio_ci": median_interval(ratio),
           "ratio_min": float(ratio.min()), "ratio_max": float(ratio[ok].max()) if ok.any()
           else float("inf"),
           "consistent": float((c <= f).double().mean()),
           "n_check": int(ran.sum()), "labels": sw.labels_tried}
    both = ran & ok
    if both.any():
        out["check_over_found"] = float((sw.check[both] / sw.found[both]).median())
        out["check_failed"] = int((ran & ~torch.isfinite(sw.check)).sum())
        out["found_le_check"] = float((sw.found[ran] <= sw.check[ran]).double().mean())
        out["check_consistent"] = float((sw.certified[ran] <= sw.check[ran]).double().mean())
    return out


def _ci(value: float, ci: tuple[float, float], fmt: str = "{:.3g}") -> str:
    return f"{fmt.format(value)} [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def sandwich_table(sandwiches: dict[str, Sandwich]):
    """Per network: the three distances (medians, 95% intervals) and the fraction with
    certified <= found."""
    rows = []
    for name, sw in sandwiches.items():
        s = sandwich_summary(sw)
        rows.append([name, s["n"], s["success"], _ci(s["certified"], s["certified_ci"]),
                     _ci(s["first_order"], s["first_order_ci"]), _ci(s["found"], s["found_ci"]),
                     _ci(s["ratio"], s["ratio_ci"]), s["consistent"]])
    return table(rows, ["network", "images", "attack success", "certified radius",
                        "first-order estimate", "found (L-BFGS, refined)", "found / certified",
                        "certified ≤ found"],
                 caption="The untargeted sandwich: medians over the attacked test images, "
                         "95% intervals in brackets (L2, pixels in [0, 1])")


def check_table(sandwiches: dict[str, Sandwich]):
    """The second attack (foolbox's DDN) against the L-BFGS attack on the images both ran on."""
    rows = []
    for name, sw in sandwiches.items():
        s = sandwich_summary(sw)
        if "check_over_found" in s:
            rows.append([name, s["n_check"], s["check_failed"], s["check_over_found"],
                         s["found_le_check"], s["check_consistent"]])
    return table(rows, ["network", "images", "DDN failed", "median DDN / L-BFGS distance",
                        "L-BFGS ≤ DDN", "certified ≤ DDN"],
                 caption="A second, independent attack on the first images")


def networks_table(reports: list["NetworkReport"], *, at: tuple[float, ...]):
    """Per network: test error, the bound (and the bound it aimed at), the median margin,
    certified accuracy at the radii ``at`` (95% intervals) and the attack's median distance;
    the brackets are :func:`bracket_table`'s."""
    rows = []
    for r in reports:
        cert = r.certified
        cells = []
        for e in at:
            acc, lo, hi = cert.at(e)
            cells.append(_ci(acc, (lo, hi), "{:.1%}"))
        bound = f"{r.bracket.upper:.3g}" + ("" if r.matched is None
                                             else f" (aimed at {r.matched:.3g})")
        rows.append([r.name, r.test_error, bound, r.margin, *cells, _attack_cell(r)])
    return table(rows, ["network", "test error", "bound L", "median margin",
                        *[f"certified at ε = {e:g}" for e in at], "DDN distance (median)"],
                 caption="Does a smaller bound buy robustness? Certified accuracy over "
                         f"{reports[0].certified.n:,} test digits (Wilson 95% intervals); "
                         "the attack's distance "
                         "over the attacked images, a failure counting as infinite "
                         "(order-statistic 95% interval)")


def _attack_cell(r: NetworkReport) -> str:
    if r.attack is None:
        return "– (foolbox missing)"
    failed = int((~torch.isfinite(r.attack)).sum())
    cell = _ci(float(r.attack.median()), median_interval(r.attack))
    return cell + (f" ({failed} failed)" if failed else "")


def published_table(ours: list["NetworkReport"], *, eps: float):
    """The published MNIST certified accuracies beside ours at the same L2 radius (the
    published rows: :data:`advtut.chapters.spectral.source.PUBLISHED`)."""
    rows = [[p["method"], p["reported_by"], p["eps"], p["clean"], p["certified"], p["where"]]
            for p in PUBLISHED]
    first = min(r.seed for r in ours)
    for r in ours:
        if r.seed == first:
            rows.append([r.name, "this chapter", eps, 1 - r.test_error, r.certified.at(eps)[0],
                         "–"])
    return table(rows, ["method", "reported by", "L2 radius", "clean accuracy",
                        "certified accuracy", "where the number is printed"],
                 caption="Certified L2 robustness on MNIST: published numbers and ours")


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


def flowers_entries(init: list[LayerNorms], trained: list[LayerNorms], local: float) -> list[dict]:
    """The flowers CNN's bounds before and after training (entries), bound >= norm as applied
    per layer and the network's bound >= ``local``, the largest Jacobian norm measured at
    held-out photos (invariants)."""
    out = []
    for i, t in zip(init, trained):
        out.append(entry(f"flowers CNN {t.layer}: bound, trained", t.bound,
                         note="BatchNorm folded into the convolution"))
        out.append(entry(f"flowers CNN {t.layer}: bound, trained / at init", t.bound / i.bound,
                         note="how far training moved the bound from the same seed's "
                              "initialisation"))
        out.append(invariant(f"flowers CNN {t.layer}: bound >= norm as applied", t.bound,
                             op=">=", value=t.exact, tol=1e-9 * t.exact,
                             note="float64 bound and power iteration, as for Table 5"))
    net = trained[-1]
    out.append(entry("flowers CNN: largest ||J|| at held-out photos", local,
                     note="a lower bound on the network's constant"))
    out.append(invariant("flowers CNN: network bound >= largest ||J|| at held-out photos",
                         net.bound, op=">=", value=local, tol=1e-5 * local,
                         note="every Jacobian norm is at most the constant, itself at most the "
                              "product; the Jacobian in float32 (relative 1e-5)"))
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
    (Its test error is among :func:`network_entries`, as "plain CNN: test error".)"""
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


def bracket_entries(name: str, b: Bracket) -> list[dict]:
    """The bracket's two ends, its gap, and the invariant lower <= upper."""
    return [entry(f"{name}: lower bound on L", b.lower,
                  note="the larger of the test images' largest ||J|| and the search's"),
            entry(f"{name}: largest ||J|| at the test images", b.at_test,
                  note="the local constants alone"),
            entry(f"{name}: largest stretch found by the search", b.search,
                  note=f"pair ascent and local search from {b.n_starts} starts (the steepest "
                       "test images and uniform noise)"),
            entry(f"{name}: upper bound / lower bound", b.gap,
                  note="the bound is at most this many times the true constant"),
            invariant(f"{name}: lower bound <= upper bound", b.lower, op="<=", value=b.upper,
                      tol=1e-5 * b.upper,
                      note="every stretch the ascent reaches is attained in the box, so at most "
                           "the constant, itself at most the product of the layer bounds; "
                           "the stretches in float32 (relative 1e-5)")]


def sandwich_entries(name: str, sw: Sandwich) -> list[dict]:
    """The sandwich's medians; the invariant certified <= found for every image (and for the
    second attack's)."""
    s = sandwich_summary(sw)
    out = [entry(f"{name}: median certified radius", s["certified"], unit="L2",
                 note="margin / (sqrt 2 L), L the product of the layer bounds"),
           entry(f"{name}: median first-order estimate", s["first_order"], unit="L2",
                 note="min_j (z_y - z_j) / ||grad (z_y - z_j)||"),
           entry(f"{name}: median distance found", s["found"], unit="L2",
                 note=f"L-BFGS refined on the boundary, the {s['labels']} labels of smallest "
                      "first-order estimate"),
           entry(f"{name}: median found / certified", s["ratio"],
                 note="how far apart the two sides of the sandwich are, per image"),
           entry(f"{name}: attack success rate", s["success"], unit="fraction",
                 note="correctly classified test images the attack moved to a wrong label"),
           invariant(f"{name}: fraction with certified radius <= distance found",
                     s["consistent"], op="==", value=1.0,
                     note="a certified radius is a lower bound on every adversarial distance")]
    if "check_over_found" in s:
        out += [entry(f"{name}: median DDN / L-BFGS distance", s["check_over_found"],
                      note=f"foolbox's untargeted DDN on the first {s['n_check']} images"),
                invariant(f"{name}: fraction with certified radius <= DDN distance",
                          s["check_consistent"], op="==", value=1.0,
                          note="the second attack's points are adversarial too")]
    return out


def network_entries(r: NetworkReport, *, eps_keys: tuple[float, ...]) -> list[dict]:
    """One network's test error, bound, margin, certified accuracies and attack distance;
    the invariant certified radius <= DDN distance at every attacked image."""
    out = [entry(f"{r.name}: test error", r.test_error, unit="fraction",
                 note=f"over the {r.certified.n} MNIST test digits it is certified on"),
           entry(f"{r.name}: bound L", r.bracket.upper, note="product of the layer bounds"),
           entry(f"{r.name}: median logit margin", r.margin,
                 note="top logit minus the runner-up over the test set")]
    if r.attack is not None:
        ok = torch.isfinite(r.attack)
        out += [entry(f"{r.name}: median DDN distance", float(r.attack.median()), unit="L2",
                      note=f"foolbox's DDN, untargeted; it succeeded at {int(ok.sum())} of "
                           f"{len(ok)} images (a failure counts as infinite)"),
                invariant(f"{r.name}: fraction with certified radius <= DDN distance",
                          float((r.certified_at_attack <= r.attack).double().mean()),
                          op="==", value=1.0,
                          note="a certified radius is a lower bound on every adversarial "
                               "distance")]
    for e in eps_keys:
        acc, lo, hi = r.certified.at(e)
        out.append(entry(f"{r.name}: certified accuracy at eps = {e:g}", acc, unit="fraction",
                         note=f"over {r.certified.n} test digits; Wilson 95% "
                              f"[{lo:.4f}, {hi:.4f}]"))
    return out


def rescale_invariant(name: str, bound: float, *, target: float) -> dict:
    """A rescaled network's bound is at most target^4 (four rectified layers)."""
    return invariant(f"{name}: bound L <= target^4", bound, op="<=", value=target ** 4,
                     tol=1e-6 * target ** 4,
                     note="every layer is scaled to a bound of at most the target after the "
                          "last step (a check that the last projection ran)")


def clip_entries(name: str, tops: dict[str, float], bounds: dict[str, float], *,
                 target: float) -> list[dict]:
    """Clipping: every layer's clipped operator at most the target before the projection (an
    invariant), and each projected convolution's bound (an entry)."""
    out = []
    for layer, top in tops.items():
        out.append(invariant(f"{name}: {layer} re-clipped at the target, largest singular value",
                             top,
                             op="<=", value=target, tol=1e-6 * target,
                             note="a check of the clipping operator on the trained weights: "
                                  "every frequency at most the target before the projection "
                                  "onto the 5 x 5 support (recomputed from the real kernel)"))
        out.append(entry(f"{name}: {layer} bound after the projection", bounds[layer],
                         note="what the network keeps; the projection can raise it"))
    return out


def margin_loss_invariant(gap: float) -> dict:
    """Lipschitz-margin training's loss at eps = 0 is the cross-entropy."""
    return invariant("Lipschitz-margin loss at eps = 0 minus cross-entropy", gap, op="<=",
                     value=0.0, tol=0.0, note="the margin sqrt(2) L eps vanishes at eps = 0: "
                                              "the two losses are the same tensor (an "
                                              "implementation check; see the eps > 0 one)")


def margin_check_entries(name: str, check, *, eps: float) -> list[dict]:
    """The margin loss at ``eps > 0`` against cross-entropy on logits shifted by hand, and
    its power-iteration ``L`` at most the product of the layer bounds (invariants)."""
    return [invariant(f"{name}: margin loss at eps = {eps:g} minus cross-entropy of the "
                      "hand-shifted logits", check.gap, op="<=", value=0.0, tol=1e-12,
                      note="float64; every wrong logit + sqrt(2) L eps, L the loss's own "
                           "estimate"),
            invariant(f"{name}: the margin loss's L <= the product of the layer bounds",
                      check.estimate, op="<=", value=check.bound, tol=1e-9 * check.bound,
                      note=f"power iteration ({check.steps} steps per layer) approaches each "
                           "layer's norm from below, and each norm is at most its bound")]


def matched_entries(r) -> list[dict]:
    """A matched regulariser's bound reached over the bound it aimed at (an entry: the
    target is a cap, layers below it stay below)."""
    from advtut.chapters.spectral.experiments import global_bound

    return [entry(f"{r.name}: bound reached / bound aimed at", global_bound(r.model) / r.matched,
                  note="per-layer target t = B^(1/4) caps each layer; layers below t stay "
                       "below, so the product can fall short of B")]


def verdict_entry(reports: list[NetworkReport], *, eps: float) -> dict:
    """Does any regulariser raise certified accuracy at ``eps``, and at what test error?

    ``reports[0]``'s group is the plain network (one report per seed), every other group a
    regulariser. The regulariser of highest mean certified accuracy is paired, seed by seed,
    with the plain network of the same seed: "yes" when its Wilson interval lies above the
    plain one's in every seed, "no" when every regularised network's lies below in every
    seed, otherwise not resolved. With several seeds the paired differences (mean, smallest,
    largest) are the network-to-network spread; with one, the intervals are over test digits
    of one trained network each, and the entry says so."""
    plain_group = reports[0].group
    plain = {r.seed: r for r in reports if r.group == plain_group}
    groups: dict[str, list[NetworkReport]] = {}
    for r in reports:
        if r.group != plain_group:
            groups.setdefault(r.group, []).append(r)
    if not groups:
        raise ValueError("reports must hold the plain network first and at least one other")
    for rs in groups.values():
        missing = sorted({r.seed for r in rs} - set(plain))
        if missing:
            raise ValueError(f"no plain network for seeds {missing}: report one per seed")

    def acc(r):
        return r.certified.at(eps)

    def mean(values):
        values = list(values)
        return sum(values) / len(values)

    best_group = max(groups, key=lambda g: mean(acc(r)[0] for r in groups[g]))
    best = groups[best_group]
    n = len(best)
    seeds = "" if n == 1 else f" in each of {n} seeds"
    diffs = [acc(b)[0] - acc(plain[b.seed])[0] for b in best]
    spread = ("" if n == 1 else f"; paired difference {mean(diffs):+.1%} (from "
              f"{min(diffs):+.1%} to {max(diffs):+.1%})")
    b_acc, p_acc = mean(acc(r)[0] for r in best), mean(acc(plain[r.seed])[0] for r in best)
    if all(acc(r)[0] == 0 for rs in (*groups.values(), list(plain.values())) for r in rs):
        verdict = f"no network certifies a single test digit at eps = {eps:g}"
    elif all(acc(b)[1] > acc(plain[b.seed])[2] for b in best):
        verdict = (f"yes: {best_group} (L = {mean(r.bracket.upper for r in best):.3g}) "
                   f"certifies {b_acc:.1%} at eps = {eps:g} against {p_acc:.1%} (L = "
                   f"{mean(plain[r.seed].bracket.upper for r in best):.3g}){seeds}, at a test "
                   f"error of {mean(r.test_error for r in best):.1%} (plain "
                   f"{mean(plain[r.seed].test_error for r in best):.1%}){spread}")
    elif all(acc(r)[2] < acc(plain[r.seed])[1] for rs in groups.values() for r in rs):
        verdict = (f"no: every regularised network certifies less than the plain one at "
                   f"eps = {eps:g}{seeds}")
    else:
        verdict = (f"not resolved at eps = {eps:g}: the intervals overlap{' in some seed' if n > 1 else ''}"
                   f"{spread}")
    note = ("Wilson intervals over the test digits, one network each; no spread over training "
            "seeds" if n == 1 else f"Wilson intervals over the test digits, paired by seed over "
            f"{n} training seeds")
    return entry(f"verdict: does a regulariser raise certified accuracy at eps = {eps:g}?",
                 verdict, note=note)


def regulariser_checks(regularised: list, x, y, plain) -> list[dict]:
    """The regularisers' invariants: each rescaled network's bound at most ``t^4``, each
    clipped one's operators at most ``t`` before the projection (with the projected bounds as
    entries) and its linear layers' bounds at most ``t`` as trained (no projection there),
    each margin network's loss against a hand computation and its ``L`` below the bound, the
    margin loss equal to the cross-entropy at ``eps = 0`` (on ``plain``'s logits at ``x``,
    ``y``), and each matched network's bound reached over its aim. ``regularised``:
    :class:`~advtut.chapters.spectral.experiments.Regularised` networks."""
    from advtut.chapters.spectral.experiments import (
        clip_check,
        global_bound,
        margin_check,
        margin_loss_gap,
    )

    out = [margin_loss_invariant(margin_loss_gap(plain, x, y))]
    for r in regularised:
        if r.matched is not None:
            out += matched_entries(r)
        if r.method == "rescale":
            out.append(rescale_invariant(r.name, global_bound(r.model), target=r.strength))
        elif r.method == "clip":
            tops, bounds = clip_check(r.model, r.strength)
            out += clip_entries(r.name, tops, bounds, target=r.strength)
            for layer in ("fc1", "fc2"):
                out.append(invariant(f"{r.name}: {layer} bound as trained <= the target",
                                     bounds[layer], op="<=", value=r.strength,
                                     tol=1e-6 * r.strength,
                                     note="a linear layer is clipped exactly after the last "
                                          "step, with no projection after it"))
        else:
            out += margin_check_entries(r.name, margin_check(r.model, x, y, eps=r.strength),
                                        eps=r.strength)
    return out
