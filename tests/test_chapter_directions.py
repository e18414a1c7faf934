"""Chapter 3 (advtut.chapters.directions.experiments, its report and plots) on constructed
layers with known answers, small networks and the results gate."""
import pytest
import torch

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
    assert isinstance(c.tests[("purity", "random")], Comparison)
    assert ch3.top_k_exact(feats, c.units, c.top["units"]) == 1.0
    assert ch3.purity_position(c, "class means") == pytest.approx(1.0)
    # deterministic for a seed
    again = ch3.coherence(feats, feats, y, layer="toy", k=5, n_units=4, n_random=40, seed=0)
    assert torch.equal(again.top["random"], c.top["random"])


def test_top_k_exact_catches_a_wrong_selection():
    feats, y = _indicator_layer()
    c = ch3.coherence(feats, feats, y, layer="toy", k=5, n_units=2, n_random=5, seed=1)
    wrong = c.top["units"].clone()
    wrong[0, 0] = int(feats[:, int(c.units[0])].argmin())
    assert ch3.top_k_exact(feats, c.units, wrong) == 0.5


def test_verdict_reads_the_interval():
    def c(p, low, high):
        return Comparison(p, low, high, 0.0, 0.01, 200, 200)
    assert ch3.verdict(c(0.52, 0.47, 0.555)) == "no distinction"
    assert ch3.verdict(c(0.56, 0.50, 0.62)) == "inconclusive"
    assert ch3.verdict(c(0.60, 0.53, 0.66)) == "units more coherent (small)"
    assert ch3.verdict(c(0.30, 0.24, 0.37)) == "random directions more coherent (medium)"
    assert ch3.verdict(c(0.40, 0.34, 0.47), other="random images") == \
        "random images more coherent (small)"
    assert [ch3.effect_size(e) for e in (0.05, 0.1, 0.2, 0.3)] == \
        ["negligible", "small", "medium", "large"]
    assert report.agreement(["no distinction"] * 2) == "yes"
    assert report.agreement(["no distinction", "inconclusive"]) == "in part"
    assert report.agreement(["no distinction", "units more coherent (small)"]) == \
        "nearly (small differences)"
    assert report.agreement(["inconclusive", "units more coherent (large)"]) == "no"
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
    res = report.entries("toy net", layers, {"toy": feats})
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
    assert report.largest_edge(layers) <= 0.5
    assert len(report.verdict_table({"toy": layers}).data) == 1
