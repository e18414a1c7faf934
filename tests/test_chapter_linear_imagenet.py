"""Chapter 2's report: the entries its functions build equal, entry by entry, those the notebook
built inline before they moved to :mod:`advtut.chapters.linear_imagenet.report` (the old cell
code is copied below as the reference)."""
from types import SimpleNamespace

import numpy as np
import torch

import advtut.chapters.linear_imagenet.experiments as ch
import advtut.chapters.linear_imagenet.report as report
import advtut.chapters.linear_imagenet.source as source
from advtut.book.results import entry, invariant

DATA_NOTE = "Tiny ImageNet, 100,000 training / 10,000 validation images (the whole set)"


def test_toy_entries_equal_the_old_cell():
    toy, src = ch.toy_example(0.5), source.SOURCE_TOY
    exact = "the source's x and w; exact arithmetic"
    old = [
        entry("toy score", toy.score, source=src["score"], tol=1e-12,
              note=exact),
        entry("toy P(class 1)", toy.p, source=src["p"], tol=5e-5,
              unit="probability", note="source rounds to 4 places"),
        entry("toy score after x + 0.5w", toy.score_ad, source=src["score_ad"],
              tol=1e-12, note="exact arithmetic"),
        entry("toy P(class 1) after x + 0.5w", toy.p_ad, source=src["p_ad"],
              tol=5e-3, unit="probability", note="source rounds to 2 places"),
    ]
    assert report.toy_entries(toy) == old


def test_lesson_entries_equal_the_old_cells():
    data_note = DATA_NOTE
    init = {(1e-4, 200): 5.3, (1e-4, 1000): 6.95, (1e-2, 200): 61.0, (1e-2, 1000): 75.5}
    src = source.SOURCE_INIT_LOSS
    old = [
        entry("initial loss, init std 1e-4, 1000 classes", init[(1e-4, 1000)],
              source=src[1e-4], unit="nats",
              note=f"random labels on {data_note}; source: 'ballpark 7.0' "
                   "(-log(1/1000) = 6.91) on ImageNet"),
        entry("initial loss, init std 0.01, 1000 classes", init[(1e-2, 1000)],
              source=src[1e-2], unit="nats",
              note="random labels; grows with the image's contrast (our images' "
                   "length in 0-255 units), which the source's 80 does not "
                   "state"),
    ]
    assert report.initial_loss_entries(init, data_note=data_note) == old

    rates, cfg, largest_stable = (1e-5, 1e-6, 1e-7, 1e-8), {"lr_steps": 40}, 1e-7
    old = [entry(
        "largest stable SGD learning rate (0-255 pixels)", largest_stable,
        source=source.SOURCE_LR, unit="learning rate",
        note=f"of {list(rates)}, {cfg['lr_steps']} steps of batch 256 on "
             f"{data_note}; source: 'about 1e-7' on ImageNet")]
    assert report.learning_rate_entries(largest_stable, rates=rates, steps=cfg["lr_steps"],
                                        data_note=data_note) == old


def test_accuracy_entries_equal_the_old_cell():
    data_note, n_classes, best = DATA_NOTE, 200, 10.0
    accs = {1.0: {1: 0.11, 5: 0.3}, 10.0: {1: 0.14, 5: 0.33}, 100.0: {1: 0.12, 5: 0.31}}
    old = [
        entry("best top-1 validation accuracy", accs[best][1],
              source=source.SOURCE_ACCURACY[1], unit="fraction",
              note=f"{data_note}, {n_classes} classes, best of the weight "
                   "decays on the validation set; source: ImageNet-1k, 1000 "
                   "classes; not expected to match"),
        entry("best top-5 validation accuracy", accs[best][5],
              source=source.SOURCE_ACCURACY[5], unit="fraction",
              note=f"{data_note}; source: ImageNet-1k; not expected to match"),
    ]
    assert report.accuracy_entries(accs, best=best, n_classes=n_classes,
                                   data_note=data_note) == old


def _fooling_reference(pairs, fool, reached, start_names, names, best):
    results = []
    for i, (s, t) in enumerate(pairs):
        results.append(entry(
            f"fooling α, {start_names[s]} to {names[t]}",
            float(fool.alpha[i]) if reached[i] else None,
            unit="fraction of the pixel range",
            note=f"λ = {best:g} model; smallest α with p >= 0.99 (null: not "
                 "reached); the source shows images, no α"))
    p_reached = fool.p_target[reached]
    results.append(invariant(
        "template fooling: lowest target probability where reached",
        float(p_reached.min()) if reached.any() else 1.0, op=">=", value=0.99,
        unit="probability",
        note="a reported α must reach the 0.99 it was searched for"))
    return results


def test_fooling_entries_equal_the_old_cell():
    names = ["cat", "goldfish", "school bus"]
    start_names = ["photo of a cat", "photo of a dog", "uniform noise"]
    pairs = [(s, t) for s in range(3) for t in (1, 2)]
    fool = SimpleNamespace(alpha=torch.tensor([0.01, 0.02, 1.0, 0.03, 0.5, 0.04]),
                           p_target=torch.tensor([0.99, 0.995, 0.4, 0.999, 0.7, 0.991]))
    for reached in (fool.p_target >= 0.99, torch.zeros(6, dtype=torch.bool)):
        new = report.fooling_entries(pairs, fool, reached, start_names, names, best=10.0)
        assert new == _fooling_reference(pairs, fool, reached, start_names, names, 10.0)
    assert new[0]["ours"] is None and new[-1]["ours"] == 1.0


def test_resolution_sweep_entries_equal_the_old_cell():
    sizes = (16, 32, 64)
    d = np.array([3 * s * s for s in sizes])
    r = ch.Resolution(sizes, d, (0.05, 0.09, 0.12), (0.2, 0.7, 2.5), (0.02, 0.008, 0.003),
                      (0.004, 0.002, 0.001), -1.1, 0.9)
    best, n_exact, data_note = 10.0, 20, DATA_NOTE
    results = []
    for i, s in enumerate(r.sizes):
        results += report.resolution_entries(s, r.top1[i], r.exact_linf[i],
                                             r.exact_rms[i], best=best,
                                             n_exact=n_exact, data_note=data_note)
    results += [
        entry("exponent of exact L-infinity vs d", r.linf_slope,
              unit="log-log slope",
              note="-1 if the needed change fell as 1/d; beyond the source"),
        entry("exponent of the sign-step gain vs d", r.gain_slope,
              unit="log-log slope",
              note="+1 if weights kept their size as d grows (the toy "
                   "argument); beyond the source"),
    ]
    assert report.resolution_sweep_entries(r, best=best, n_exact=n_exact,
                                           data_note=data_note) == results
    assert len(results) == 3 * len(sizes) + 2
