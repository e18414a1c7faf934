"""Chapter 6's experiments on a tiny CNN, against references computed by hand."""
import dataclasses

import pytest
import torch

import advtut.chapters.fooling.experiments as ch6
import advtut.chapters.fooling.plots as plots
import advtut.chapters.fooling.report as report
from advtut.attacks.backwork import reference_directions
from advtut.book.results import check_results
from advtut.chapters.fooling.source import SETTINGS
from advtut.models import MnistCNN


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    net = MnistCNN(widths=(4, 8), hidden=16).eval()
    with torch.no_grad():
        net.fc1.weight.mul_(5)
        net.fc2.weight.mul_(20)
    return net


@pytest.fixture(scope="module")
def digits():
    g = torch.Generator().manual_seed(1)
    return torch.rand(30, 1, 28, 28, generator=g), torch.randint(0, 10, (30,), generator=g)


def test_worst_training_are_the_lowest_own_label_probabilities(net, digits):
    x, y = digits
    worst = ch6.worst_training(net, x, y, n=4)
    idx, p = worst.index, worst.p
    own = torch.softmax(net(x).double(), 1).gather(1, y[:, None])[:, 0]
    assert torch.allclose(p, own.sort().values[:4].detach())
    assert torch.allclose(own[idx].detach(), p)


def test_rejection_copy_predicts_as_the_original_with_an_eleventh_output(net, digits):
    x, _ = digits
    new = ch6.with_rejection_class(net)
    out_old, out_new = net(x), new(x)
    assert out_new.shape == (30, 11)
    assert torch.allclose(out_new[:, :10], out_old)
    assert torch.equal(out_new.argmax(1), out_old.argmax(1))
    assert torch.allclose(out_new[:, 10], out_old.min(1).values.new_full((30,), 0)
                          + float(net.fc2.bias.min()) - 10)          # a constant, 10 below
    assert net.fc2.out_features == 10                                 # the original untouched


def test_noise_rates_and_transfer_count_what_they_say(net):
    rates = ch6.noise_rates(net, n=50, seed=0)
    assert rates.shape == (10,) and float(rates.sum()) == pytest.approx(1.0)
    ref = reference_directions(net, torch.rand(10, 1, 28, 28), layers=ch6.LAYERS)
    runs = ch6.run_labels(net, ref, labels=(2, 5), seed=0, progress=False, batch_size=3,
                          threshold=0.99, lr=0.05, max_iter=300)
    t = ch6.transfer(net, runs)                     # the same network: every image transfers
    assert {k: v[0] for k, v in t.items()} == {2: 1.0, 5: 1.0}
    assert all(v[1] >= 0.99 for v in t.values())
    ruler = reference_directions(net, torch.rand(10, 1, 28, 28), layers=("fc1",), center=True)
    row = ch6.summarise(1.0, runs, model=net, ruler=ruler)
    assert row.converged == 1.0 and row.steps == sum(r.n_iter for r in runs.values()) / 2
    by_hand = [ch6.measure(net, r.x, ruler).batch["fc1"] for r in runs.values()]
    assert row.batch_cost["fc1"] == pytest.approx(sum(by_hand) / 2)
    entries = report.labels_entries(runs, net, what="toy")
    doc = {"chapter": "06_fooling_from_noise", "profile": "quick", "seed": 0, "device": "cpu",
           "runtime_s": 1.0, "results": entries}
    assert len(check_results(doc)) == 1            # 0.99 < the source's 0.999: the gate fails
    doc["results"] = report.labels_entries(runs, net, what="toy", threshold=0.99)
    assert check_results(doc) == []
    # images that were not the ones measured (here: shifted after the run) fail the gate
    moved = {k: dataclasses.replace(r, x=(1 - r.x)) for k, r in runs.items()}
    doc["results"] = report.labels_entries(moved, net, what="toy", threshold=0.99)
    assert len(check_results(doc)) == 1
    assert len(report.settings_table().data) == len(SETTINGS)
    assert {w for _, _, w, _ in SETTINGS} == {"source", "ours"}


def test_sweep_reports_the_costs_off_difference_only_when_both_scales_run(net):
    ref = reference_directions(net, torch.rand(10, 1, 28, 28), layers=ch6.LAYERS)
    ruler = reference_directions(net, torch.rand(10, 1, 28, 28), layers=("fc1",), center=True)
    s = ch6.sweep(net, ref, scales=(0.0, 1.0), labels=(1,), max_iter=20,
                  seed=0, ruler=ruler, progress=False)
    rows, diff, runs = s.rows, s.diff, s.runs
    assert [r.scale for r in rows] == [0.0, 1.0] and set(runs) == {0.0, 1.0}
    assert diff == float((runs[0.0][1].x - runs[1.0][1].x).abs().max())
    assert s.diff_mean == pytest.approx(float((runs[0.0][1].x - runs[1.0][1].x).abs().mean()))
    assert len(plots.plot_sweep({"toy": rows}, baseline=0.5).axes) == 2
    none = ch6.sweep(net, ref, scales=(1.0,), labels=(1,), max_iter=5, seed=0,
                     ruler=ruler, progress=False).diff
    assert none is None


def test_sweep_scales_the_source_coefficients_unless_others_are_named(net):
    ref = reference_directions(net, torch.rand(10, 1, 28, 28), layers=ch6.LAYERS)
    ruler = reference_directions(net, torch.rand(10, 1, 28, 28), layers=("fc1",), center=True)
    by_default = ch6.sweep(net, ref, scales=(2.0,), labels=(1,), max_iter=3, seed=0,
                           ruler=ruler, progress=False)
    named = ch6.sweep(net, ref, scales=(1.0,), labels=(1,), max_iter=3, seed=0, ruler=ruler,
                      layer_coeffs=[2 * c for c in ch6.SOURCE_SETTINGS["layer_coeffs"]],
                      progress=False)
    assert torch.equal(by_default.runs[2.0][1].x, named.runs[1.0][1].x)
    with pytest.raises(ValueError, match="one coefficient per reference layer"):
        ch6.sweep(net, ref, scales=(1.0,), labels=(1,), max_iter=3, seed=0, ruler=ruler,
                  layer_coeffs=(1.0, 1.0), progress=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        by_default.diff = 0.0


def test_rejection_rounds_add_a_class_and_the_control_adds_no_images(net, digits):
    x, y = digits
    ref_fn = lambda m: reference_directions(m, x[:10], layers=ch6.LAYERS)   # noqa: E731
    kw = dict(rounds=1, labels=(1,), train_labels=(1,), budget=5, seed=0, settings={},
              n_noise=20, progress=False)
    rounds, last = ch6.rejection_rounds(net, ref_fn, x, y, x, y, repeat=2, **kw)
    assert [r.round for r in rounds] == [0, 1] and last.fc2.out_features == 11
    assert all(0 <= r.test_accuracy <= 1 and 0 <= r.noise_rejected <= 1 for r in rounds)
    assert rounds[0].noise_rejected == 0.0 and rounds[0].held_rejected is None
    assert rounds[1].held_rejected is None             # every label was trained on
    assert 0 <= rounds[1].trained_rejected <= 1
    control, c_last = ch6.rejection_rounds(net, ref_fn, x, y, x, y, repeat=0, **kw)
    assert control[0] == rounds[0]                    # round 0 is the same network
    # the control never saw class 10: its new output keeps the bias 10 below the others
    assert control[1].trained_rejected == 0.0 and control[1].noise_rejected == 0.0
    noisy, _ = ch6.rejection_rounds(net, ref_fn, x, y, x, y, repeat=2, class10="noise", **kw)
    assert noisy[0] == rounds[0] and noisy[1] != rounds[1]    # other class-10 images
    with pytest.raises(ValueError, match="class10"):
        ch6.rejection_rounds(net, ref_fn, x, y, x, y, repeat=2, class10="digits", **kw)
    mlp = ch6.train_mlp(x, y, epochs=1, seed=0, device="cpu")
    assert mlp(x).shape == (30, 10) and not mlp.training


def test_round_zero_from_longer_runs_is_the_budget_run(net, digits):
    x, y = digits
    ref = reference_directions(net, x[:10], layers=ch6.LAYERS)
    kw = dict(labels=(1, 6), seed=0, progress=False, threshold=0.9999, lr=0.002)
    long = ch6.run_labels(net, ref, max_iter=60, **kw)
    short = ch6.run_labels(net, ref, max_iter=7, **kw)
    for k in (1, 6):
        ok, steps, p = ch6.within_budget(long[k], 7, threshold=0.9999)
        assert (ok, steps) == (bool(short[k].success.all()), short[k].n_iter)
        assert p == pytest.approx(float(short[k].prob.min()), abs=1e-6)
    ref_fn = lambda m: reference_directions(m, x[:10], layers=ch6.LAYERS)   # noqa: E731
    first = ch6.run_labels(net, ref_fn(net), labels=range(10), seed=0, progress=False,
                           max_iter=40)
    rounds, _ = ch6.rejection_rounds(net, ref_fn, x, y, x, y, rounds=1, labels=(1,),
                                     train_labels=(1,), budget=40, repeat=3, seed=0,
                                     settings={}, n_noise=20, first=first, progress=False)
    assert 0 <= rounds[1].held_rejected <= 1              # the other nine labels, held out
    slow = {1: dataclasses.replace(first[1], n_iter=41)}
    with pytest.raises(ValueError, match="budget"):
        ch6.rejection_rounds(net, ref_fn, x, y, x, y, rounds=1, labels=(1,), train_labels=(1,),
                             budget=40, repeat=1, seed=0, settings={}, n_noise=5, first=slow)


def test_sweep_reuses_known_runs_only_where_the_cap_gives_the_same_run(net):
    ref = reference_directions(net, torch.rand(10, 1, 28, 28), layers=ch6.LAYERS)
    ruler = reference_directions(net, torch.rand(10, 1, 28, 28), layers=("fc1",), center=True)
    kw = dict(scales=(1.0,), labels=(1, 2), seed=0, ruler=ruler, progress=False)
    fresh = ch6.sweep(net, ref, max_iter=200, **kw)
    long = ch6.run_labels(net, ref, labels=(1, 2), seed=0, progress=False, max_iter=2_000)
    reused = ch6.sweep(net, ref, max_iter=200, known={1.0: long}, **kw)
    for k in (1, 2):
        assert torch.equal(fresh.runs[1.0][k].x, reused.runs[1.0][k].x)
    assert fresh.rows == reused.rows and len(fresh.rows[0].batch_fc1) == 2
    fake = {1: dataclasses.replace(long[1], n_iter=201)}      # beyond the cap: not reused
    again = ch6.sweep(net, ref, max_iter=200, known={1.0: fake}, **kw)
    assert torch.equal(again.runs[1.0][1].x, fresh.runs[1.0][1].x)


def test_curve_text_describes_every_point_and_the_shape():
    def row(scale, b):
        return ch6.SweepRow(scale, 1.0, 1.0, 0.0, {}, {"fc1": sum(b) / len(b)}, (1, 2), b)
    down = ch6.curve_text([row(0.0, (0.9, 0.7)), row(1.0, (0.5, 0.3))])
    assert "0.800 [0.700, 0.900] at 0" in down and "falls at every step" in down
    up = ch6.curve_text([row(0.0, (0.9, 0.9)), row(1.0, (0.1, 0.1)), row(10.0, (0.5, 0.5))])
    assert "rises from scale 1 to 10" in up and "lowest at scale 1" in up


def test_evolution_starts_from_the_gradient_searchs_noise_and_the_detector_controls(net):
    from advtut.attacks.evolve import evolve

    ref = reference_directions(net, torch.rand(10, 1, 28, 28), layers=ch6.LAYERS)
    ev = ch6.evolve_labels(net, labels=(2,), n_runs=2, seed=3, max_queries=3_000)
    # lr=0: one step that moves nothing returns the gradient search's starting noise
    start = ch6.run_labels(net, ref, labels=(2,), seed=3, progress=False, max_iter=1, lr=0.0)
    again = evolve(net, label=2, x0=start[2].x[1:2], seed=3 + 200 + 1, max_queries=3_000)
    assert torch.equal(again.x, ev[2][1].x) and again.queries == ev[2][1].queries
    assert len(ev[2]) == 2 and all(r.success for r in ev[2])
    assert report.evolve_table(ev, start) is not None
    doc = {"chapter": "06_fooling_from_noise", "profile": "quick", "seed": 0, "device": "cpu",
           "runtime_s": 1.0, "results": report.evolve_entries(ev, net, cap=3_000)}
    assert check_results(doc) == []
    lied = {2: [dataclasses.replace(ev[2][0], prob=0.5)]}      # a reported p that is not
    doc["results"] = report.evolve_entries(lied, net, cap=3_000)
    assert len(check_results(doc)) == 1
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 1, 28, 28, generator=g)
    rows = ch6.msp_detector(net, x[:100], {"same": x[100:],
                                           "fooling": ev[2][0].x.repeat(3, 1, 1, 1)})
    assert rows[0].auroc.low < 0.5 < rows[0].auroc.high      # the negative control
    assert rows[1].n == 3 and 0 <= rows[1].auroc.value <= 1
    assert len(report.detector_entries(rows)) == 4 and report.detector_table(rows) is not None
    assert rows[0].fpr95 >= 0.8 and 0 <= rows[1].fpr95 <= 1       # the same images: ~95% through
    assert ch6.share_confident(net, x[:100], threshold=0.5) == pytest.approx(
        float((torch.softmax(net(x[:100]).double(), 1).max(1).values >= 0.5).double().mean()))
    with pytest.raises(ValueError, match="n_runs"):
        ch6.evolve_labels(net, labels=(2,), n_runs=9, seed=0, max_queries=10)


def test_confusion_and_digit_distances_count_what_they_say(net):
    ref = reference_directions(net, torch.rand(10, 1, 28, 28), layers=ch6.LAYERS)
    runs = ch6.run_labels(net, ref, labels=(2, 5), seed=0, progress=False, batch_size=3,
                          threshold=0.99, lr=0.05, max_iter=300)
    m = ch6.confusion(net, runs)
    assert m.shape == (2, 10) and m[0, 2] == 3 and m[1, 5] == 3 and int(m.sum()) == 6
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, 1, 28, 28, generator=g)
    y = torch.arange(40) % 10
    # a fooling image that is a training digit lies at distance 0 from it
    runs[2] = dataclasses.replace(runs[2], x=torch.cat([x[2:3], runs[2].x[1:]]))
    d = ch6.digit_distances(runs, x, y, x[:10] + 0.01, y[:10], n_pairs=50, n_noise=50, seed=0)
    assert d.fooling.shape == (6,) and d.fooling_own.shape == (6,)
    assert float(d.fooling[0]) == pytest.approx(0.0, abs=1e-9)
    assert int(d.fooling_nearest_label[0]) == 2 and d.target.tolist() == [2] * 3 + [5] * 3
    assert 1 / 6 <= d.nearest_is_target <= 1 and 0.1 <= d.noise_favourite <= 1
    assert (d.fooling <= d.fooling_own + 1e-9).all()         # the nearest of all <= of one label
    assert torch.allclose(d.held_out, torch.full((10,), 0.01 * 28, dtype=torch.float64),
                          atol=1e-5)
    by_hand = torch.cdist(x.flatten(1).double(), x.flatten(1).double())
    same = (y[:, None] == y[None]) & ~torch.eye(40, dtype=torch.bool)
    assert d.within_label.min() >= by_hand[same].min() - 1e-9
    assert d.within_label.max() <= by_hand[same].max() + 1e-9 and len(d.noise) == 50


def test_readings_share_the_costs_off_run_and_score_with_their_own_cost(net):
    g = torch.Generator().manual_seed(2)
    x_ref, x_dig = torch.rand(12, 1, 28, 28, generator=g), torch.rand(6, 1, 28, 28, generator=g)
    ruler = reference_directions(net, x_ref, layers=("conv2", "fc1"), center=True)
    rows = ch6.readings(net, x_ref, x_dig, label=4, scales=(0.0, 1.0), max_iter=30, seed=0,
                        ruler=ruler, n_nearest=12)
    assert [(r.activations, r.similarity) for r in rows[::2]] == [
        (a, s) for a in ch6.ACTIVATIONS for s in ("mean", "nearest")]
    assert all(r.diff == 0.0 and r.on == r.off for r in rows if r.scale == 0.0)
    assert len({r.batch_off for r in rows}) == 1              # one costs-off run for all four
    nearest = [r for r in rows if r.similarity == "nearest"]
    mean = [r for r in rows if r.similarity == "mean" and r.activations == nearest[0].activations]
    assert nearest[0].digits >= mean[0].digits - 1e-6        # the largest cosine >= the mean one


def test_first_crossing_reads_each_image_from_the_trace():
    trace = torch.tensor([[0.1, 0.2, 0.3], [0.9995, 0.5, 0.3], [0.998, 0.9991, 0.3]])
    r = ch6.BackworkResult(torch.zeros(3, 1, 2, 2), trace[-1], 1, trace[-1] >= 0.999, 2, 0,
                           {}, {}, torch.zeros(3, dtype=torch.long), trace)
    assert ch6.first_crossing(r).tolist() == [1, 2, -1]
