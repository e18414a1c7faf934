"""Chapter 3 (advtut.chapters.directions.experiments, its report and plots) on constructed
layers with known answers, small networks and the results gate."""
import pytest
import torch

import advtut.chapters.directions.bases as bases
import advtut.chapters.directions.experiments as ch3
import advtut.chapters.directions.plots as plots
import advtut.chapters.directions.report as report
from advtut.alexnet import imagenet_transform
from advtut.book.results import check_results
from advtut.chapters.zoo import flowers_cnn
from advtut.directions import Comparison
from advtut.features import layer_features
from advtut.models import ImageCNN, MnistCNN


def _indicator_layer(n_per_class=30, n_classes=4, noise=0.05, seed=0):
    """A layer whose first n_classes units each fire on one class: those units' top rows are
    pure, and the class-mean directions find their class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n_classes).repeat_interleave(n_per_class)
    feats = noise * torch.rand(len(y), n_classes + 6, generator=g)
    feats[torch.arange(len(y)), y] += 1.0 + torch.rand(len(y), generator=g)
    return feats, y


def test_coherence_scores_indicator_units_as_pure():
    feats, y = _indicator_layer()
    c = ch3.coherence(feats, feats, y, layer="toy", k=5, n_units=4, n_random=40, seed=0)
    assert c.width == 10 and c.live == 10 and c.k == 5
    pure = [i for i, u in enumerate(c.units.tolist()) if u < 4]
    assert pure and all(float(c.purity["units"][i]) == 1.0 for i in pure)
    assert c.purity["class means"].tolist() == [1.0] * 4
    assert float(c.purity["random images"].mean()) < 0.7
    assert set(c.top) == set(ch3.FAMILIES) and all(t.shape[1] == 5 for t in c.top.values())
    assert isinstance(c.tests[("purity", "random images")], Comparison)
    assert set(c.tests) == {("purity", "random images"), ("cosine", "random images")}
    assert ch3.purity_position(c, "class means") == pytest.approx(1.0)
    # deterministic for a seed
    again = ch3.coherence(feats, feats, y, layer="toy", k=5, n_units=4, n_random=40, seed=0)
    assert torch.equal(again.top["random"], c.top["random"])


def test_verdict_reads_the_interval():
    def c(p, low, high):
        return Comparison(p, low, high, 0.0, 0.01, 200, 200)
    assert ch3.verdict(c(0.52, 0.47, 0.555)) == "no distinction"
    assert ch3.verdict(c(0.56, 0.50, 0.62)) == "inconclusive"
    assert ch3.verdict(c(0.60, 0.53, 0.66)) == "units higher (small)"
    assert ch3.verdict(c(0.30, 0.24, 0.37)) == "random directions higher (medium)"
    assert ch3.verdict(c(0.40, 0.34, 0.47), other="random images") == \
        "random images higher (small)"
    assert [ch3.effect_size(e) for e in (0.05, 0.1, 0.2, 0.3)] == \
        ["negligible", "small", "medium", "large"]
    assert report.agreement(["no distinction"] * 2) == "yes"
    assert report.agreement(["no distinction", "inconclusive"]) == "in part"
    assert report.agreement(["no distinction", "units higher (small)"]) == \
        "nearly (small differences)"
    assert report.agreement(["inconclusive", "units higher (large)"]) == "no"
    assert report.agreement(["inconclusive"] * 2) == "not settled"


def test_holm_adjusts_step_down():
    # sorted p: 0.01 * 3, 0.02 * 2, 0.04 * 1 -> 0.03, 0.04, 0.04 (kept monotone)
    assert report.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert report.holm([0.9, 0.8]) == [1.0, 1.0]


def test_coherence_refuses_bad_settings():
    feats, y = _indicator_layer()
    with pytest.raises(ValueError, match="n_units must be an integer of at least 2"):
        ch3.coherence(feats, feats, y, layer="toy", k=5, n_units=1, n_random=5, seed=0)
    silent = torch.zeros_like(feats)
    silent[0, 0] = 1.0
    with pytest.raises(ValueError, match="only 0 of its 10 units fire"):
        ch3.coherence(silent, feats, y, layer="toy", k=5, n_units=4, n_random=5, seed=0)
    with pytest.raises(ValueError, match="same 120 images"):
        ch3.coherence(feats, feats[:10], y, layer="toy", k=5, n_units=4, n_random=5, seed=0)


def test_layer_features_match_the_networks_activations():
    torch.manual_seed(0)
    cnn = MnistCNN(widths=(4, 8), hidden=16)
    x = torch.rand(7, 1, 28, 28)
    f = layer_features(cnn, x, ["relu3", "pool2"], batch_size=3)
    assert f["relu3"].shape == (7, 16) and f["pool2"].shape == (7, 8 * 7 * 7)
    with torch.no_grad():
        assert torch.allclose(f["pool2"], cnn.activations(x)["pool2"].flatten(1))
    cnn.train()                                            # the caller's mode is kept
    layer_features(cnn, x, ["relu3"])
    assert cnn.training
    with pytest.raises(ValueError, match=r"layers \['fc9'\] are not among"):
        layer_features(cnn, x, ["fc9"])


def test_alexnet_layers_read_by_hooks():
    from torchvision.models import alexnet
    torch.manual_seed(0)
    model = alexnet(weights=None).eval()
    x = torch.rand(2, 3, 64, 64)
    f = layer_features(model, x, {**ch3.ALEXNET_LAYERS, "judge": ch3.ALEXNET_JUDGE},
                           transform=imagenet_transform)
    assert f["fc7"].shape == (2, 4096) and f["pool5"].shape == (2, 256 * 6 * 6)
    assert f["judge"].shape == (2, 64 * 27 * 27)
    assert float(f["fc7"].min()) >= 0                      # after fc7's ReLU
    with torch.no_grad():                                  # pool5 is what features() returns
        assert torch.allclose(f["pool5"], model.features(imagenet_transform(x)).flatten(1))
    assert not model._forward_hooks and not model.features[12]._forward_hooks
    with pytest.raises(ValueError, match=r"map names to \(part, index\)"):
        layer_features(model, x, {"fc9": ("classifier", 99)})


def test_flowers_cnn_is_cached_and_reloaded(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(16, 3, 16, 16, generator=g), torch.arange(16) % 5
    a, info_a = flowers_cnn(x, y, widths=(4, 8), epochs=1, seed=0, cache_dir=tmp_path,
                                progress=False)
    b, info_b = flowers_cnn(x, y, widths=(4, 8), epochs=1, seed=0, cache_dir=tmp_path,
                                progress=False)
    assert isinstance(a, ImageCNN) and not info_a["cached"] and info_b["cached"]
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                 b.state_dict().values()))


def test_report_entries_pass_the_gate_and_figures_draw():
    feats, y = _indicator_layer()
    layers = {"toy": ch3.coherence(feats, feats, y, layer="toy", k=5, n_units=6, n_random=30,
                                   seed=0)}
    res = report.entries("toy net", layers)
    doc = {"chapter": "03_units_directions", "profile": "quick", "seed": 0, "device": "cpu",
           "runtime_s": 1.0, "results": res}
    assert check_results(doc) == []
    names = [r["name"] for r in res]
    assert len(names) == len(set(names))
    images = torch.rand(len(y), 1, 8, 8)
    fig = plots.rows_figure(images, y, layers["toy"], "units", [str(i) for i in range(4)],
                             n_rows=3)
    assert len(fig.axes) == 3 * 5
    with pytest.raises(ValueError, match="family must be"):
        plots.rows_figure(images, y, layers["toy"], "class means", "0123", n_rows=2)


def _tiny_mnist_cnn(seed=0):
    torch.manual_seed(seed)
    return MnistCNN(widths=(4, 8), hidden=16).eval()


def test_readouts_rebuild_the_network_above_each_layer():
    x = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    cnn = _tiny_mnist_cnn()
    f = layer_features(cnn, x, ["relu3", "pool2"])
    with torch.no_grad():
        logits = cnn(x).double()
    y = logits.argmax(1)
    for name in ("relu3", "pool2"):
        layer = bases.mnist_layer(cnn, f, name)
        assert torch.allclose(layer.readout.rest(layer.readout.pre), logits, atol=1e-5)
        assert bases.ablation_check(cnn, x, y, layer) < 1e-5
    assert bases.mnist_layer(cnn, f, "pool2").positions == 49
    torch.manual_seed(0)
    img = ImageCNN(widths=(4, 8, 8), n_classes=3).eval()
    xi = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    fi = layer_features(img, xi, ["avgpool", "pool1", "pool2"])
    with torch.no_grad():
        li = img(xi).double()
    for name in ("avgpool", "pool1", "pool2"):
        layer = bases.Layer(name, fi[name], bases.readout(img, name, fi[name]))
        assert torch.allclose(layer.readout.rest(layer.readout.pre), li, atol=1e-5)
        assert bases.ablation_check(img, xi, li.argmax(1), layer) < 1e-5
    with pytest.raises(ValueError, match="readout knows"):
        bases.readout(img, "pool3", fi["pool2"])


def _toy_relu3(n=600, seed=0):
    """A 'relu3' of 24 ReLU units over 600 images of 4 classes, with a linear readout."""
    from advtut.basis import Readout
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(4).repeat(n // 4)
    centres = torch.randn(4, 24, generator=g, dtype=torch.float64)
    feats = (centres[y] + torch.randn(n, 24, generator=g, dtype=torch.float64)).relu()
    w = torch.randn(4, 24, generator=g, dtype=torch.float64)
    ro = Readout(feats @ w.T, lambda v: v @ w.T, lambda z: z)
    judge = feats + 0.1 * torch.randn(n, 24, generator=g, dtype=torch.float64)
    return bases.Layer("relu3", feats.float(), ro), judge.float(), y


_OPTS = dict(ks=(4, 8), n_units=24, n_random=120, n_ablate=24, ablate_images=None)


def test_basis_test_separates_an_aligned_code_and_not_its_rotation():
    from advtut.basis import aligned_code, random_rotation, rotate
    y = torch.arange(4).repeat(150)
    code, ro = aligned_code(y, dim=24, seed=0)
    judge = torch.rand(600, 5, generator=torch.Generator().manual_seed(0))
    yes = bases.basis_test(bases.Layer("code", code, ro), judge, y, seed=0, **_OPTS)
    assert set(yes.tests) == {"label purity (k=4)", "judge cosine (k=4)", "label purity (k=8)",
                              "judge cosine (k=8)", *bases.BASIS_SCORES}
    for score in bases.BASIS_SCORES:
        assert yes.tests[score].low > 0.56 and bases.sees_basis(yes.tests[score])
    r = rotate(code, ro, random_rotation(24, seed=1))
    no = bases.basis_test(bases.Layer("turned", r.features, r.readout), judge, y, seed=0,
                          **_OPTS)
    for score in bases.BASIS_SCORES:
        assert not bases.sees_basis(no.tests[score])
    # channels: the bootstrap resamples them and the units say which they belong to
    conv = bases.basis_test(bases.Layer("code", code, ro, positions=4), judge, y, seed=0,
                            **_OPTS)
    assert conv.n_groups == 6 and conv.tests["kurtosis"].n_groups == 6
    assert torch.equal(conv.groups, conv.units // 4)
    # no readout: no ablation
    plain = bases.basis_test(bases.Layer("code", code), judge, y, seed=0, **_OPTS)
    assert "ablation" not in plain.tests


def test_controls_report_and_gate():
    relu3, judge, y = _toy_relu3()
    ctrl, facts = bases.controls(relu3, judge, y, code_dim=24, ica_components=8, ica_fit=None,
                                 seed=0, **_OPTS)
    assert list(ctrl) == [name for name, _ in bases.CONTROLS]
    assert all(v <= 1e-12 for v in facts["gram"].values())
    sees = bases.control_verdicts(ctrl)
    assert set(sees) == set(ctrl["sparse aligned code"].tests)
    assert all(v in ("sees the basis", "blind") or v.startswith("misses ") for v in sees.values())
    assert sees["kurtosis"] != "blind"
    facts["ablation_check"] = {"relu3": 1e-9}
    real = {"relu3": bases.basis_test(relu3, judge, y, seed=0, **_OPTS)}
    res = [*report.control_entries(ctrl, sees, facts), *report.layer_entries("toy", real)]
    doc = {"chapter": "03_units_directions", "profile": "quick", "seed": 0, "device": "cpu",
           "runtime_s": 1.0, "results": res}
    assert check_results(doc) == []
    names = [r["name"] for r in res]
    assert len(names) == len(set(names))
    assert any(n.startswith("positive control: ") for n in names)
    assert any(n.startswith("negative control: ") for n in names)
    bad, total = report.false_alarms(ctrl)
    assert 0 <= bad <= total == 4 * 7
    for shown in (report.controls_table(ctrl, sees), report.negative_table(ctrl),
                  report.layers_table(real, sees, "toy"), report.verdict_table(real, sees),
                  report.networks_table([real, real], [0, 1]),
                  report.power_table(real["relu3"], 120)):
        assert len(shown.data) >= 7
    answer = report.claim(real, sees)
    assert set(answer) == {"holds", "nearly", "fails", "open"}
    assert len(plots.plot_intervals(ctrl).axes) == 1


def test_claim_and_reading_follow_the_verdicts():
    def t(p, low, high):
        return Comparison(p, low, high, 0.0, 0.01, 200, 200)
    layer = bases.BasisTest("x", torch.arange(3), None,
                            {}, {"kurtosis": t(0.8, 0.75, 0.85), "ablation": t(0.5, 0.47, 0.53),
                                 "label purity (k=8)": t(0.52, 0.40, 0.64)})
    sees = {"kurtosis": "sees the basis", "ablation": "misses clustered aligned code",
            "label purity (k=8)": "blind"}
    answer = report.claim({"x": layer}, sees)
    assert answer == {"holds": "ablation", "nearly": "none", "fails": "kurtosis",
                      "open": "label purity (k=8)"}
    assert "not random directions" in report.reading(layer.tests["kurtosis"], sees["kurtosis"])
    assert report.reading(layer.tests["ablation"], sees["ablation"]).endswith(
        "but the clustered aligned code")
    assert "no evidence" in report.reading(layer.tests["label purity (k=8)"], "blind")
    assert [report.key(s) for s in ("label purity (k=8)", "judge cosine (k=32)", "kurtosis",
                                    "class selectivity", "ablation")] == \
        ["purity8", "cosine32", "kurtosis", "selectivity", "ablation"]
