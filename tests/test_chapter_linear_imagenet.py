"""Chapter 2's report functions on constructed inputs: which entries they write, with which
source numbers and tolerances, and what a fooling pair that was not reached records. (That they
write what the notebook wrote before they moved here was checked on the whole chapter: its
results file is identical entry by entry.)"""
from types import SimpleNamespace

import numpy as np
import torch

import advtut.chapters.linear_imagenet.experiments as ch
import advtut.chapters.linear_imagenet.report as report
import advtut.chapters.linear_imagenet.source as source
from advtut.book.results import check_results

DATA_NOTE = "Tiny ImageNet, 100,000 training / 10,000 validation images (the whole set)"


def _gate(rows):
    return check_results({"chapter": "02_linear_imagenet", "results": rows})


def test_the_toy_example_matches_the_source_within_its_rounding():
    rows = report.toy_entries(ch.toy_example(0.5))
    assert [r["name"] for r in rows] == ["toy score", "toy P(class 1)", "toy score after x + 0.5w",
                                         "toy P(class 1) after x + 0.5w"]
    assert [r["source"] for r in rows] == [source.SOURCE_TOY[k]
                                           for k in ("score", "p", "score_ad", "p_ad")]
    assert all(r["tol"] is not None and r["note"] for r in rows) and _gate(rows) == []
    wrong = report.toy_entries(SimpleNamespace(score=-3.0, p=0.5, score_ad=2.0, p_ad=0.88))
    assert len(_gate(wrong)) == 1 and "toy P(class 1)" in _gate(wrong)[0]


def test_lesson_and_accuracy_entries_carry_the_sources_numbers_and_no_tolerance():
    init = {(1e-4, 200): 5.3, (1e-4, 1000): 6.95, (1e-2, 200): 61.0, (1e-2, 1000): 75.5}
    loss = report.initial_loss_entries(init, data_note=DATA_NOTE)
    assert [(r["ours"], r["source"]) for r in loss] == [(6.95, source.SOURCE_INIT_LOSS[1e-4]),
                                                        (75.5, source.SOURCE_INIT_LOSS[1e-2])]
    (lr,) = report.learning_rate_entries(1e-7, rates=(1e-6, 1e-7), steps=40, data_note=DATA_NOTE)
    assert lr["source"] == source.SOURCE_LR and "40 steps" in lr["note"]
    accs = {1.0: {1: 0.11, 5: 0.3}, 10.0: {1: 0.14, 5: 0.33}}
    acc = report.accuracy_entries(accs, best=10.0, n_classes=200, data_note=DATA_NOTE)
    assert [(r["ours"], r["source"]) for r in acc] == [(0.14, source.SOURCE_ACCURACY[1]),
                                                       (0.33, source.SOURCE_ACCURACY[5])]
    assert all(r.get("tol") is None for r in loss + [lr] + acc)  # another dataset: no equality


def test_fooling_entries_leave_unreached_pairs_empty_and_check_the_reached_ones():
    names = ["cat", "goldfish", "school bus"]
    starts = ["photo of a cat", "photo of a dog", "uniform noise"]
    pairs = [(s, t) for s in range(3) for t in (1, 2)]
    fool = SimpleNamespace(alpha=torch.tensor([0.01, 0.02, 1.0, 0.03, 0.5, 0.04]),
                           p_target=torch.tensor([0.99, 0.995, 0.4, 0.999, 0.7, 0.991]))
    rows = report.fooling_entries(pairs, fool, fool.p_target >= 0.99, starts, names, best=10.0)
    alphas = [r["ours"] for r in rows[:-1]]
    assert alphas == [float(a) if p >= 0.99 else None for a, p in zip(fool.alpha, fool.p_target)]
    assert rows[0]["name"] == "fooling α, photo of a cat to goldfish"
    assert rows[-1]["ours"] == float(fool.p_target[fool.p_target >= 0.99].min()) and not _gate(rows)
    none = report.fooling_entries(pairs, fool, torch.zeros(6, dtype=torch.bool), starts, names,
                                  best=10.0)
    assert all(r["ours"] is None for r in none[:-1]) and none[-1]["ours"] == 1.0
    below = report.fooling_entries(pairs, fool, torch.ones(6, dtype=torch.bool), starts, names,
                                   best=10.0)
    assert len(_gate(below)) == 1  # a reported α below 0.99 breaks the invariant


def test_resolution_sweep_entries_one_row_set_per_size_and_two_slopes():
    sizes = (16, 32, 64)
    r = ch.Resolution(sizes, np.array([3 * s * s for s in sizes]), (0.05, 0.09, 0.12),
                      (0.2, 0.7, 2.5), (0.02, 0.008, 0.003), (0.004, 0.002, 0.001), -1.1, 0.9)
    rows = report.resolution_sweep_entries(r, best=10.0, n_exact=20, data_note=DATA_NOTE)
    assert len(rows) == 3 * len(sizes) + 2
    assert [x["ours"] for x in rows[-2:]] == [-1.1, 0.9]
    assert len({x["name"] for x in rows}) == len(rows)
