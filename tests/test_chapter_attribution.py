"""Chapter 7's experiments on tiny models, against references computed by hand."""
import pytest
import torch
from torch import nn

import advtut.chapters.attribution.experiments as ch7
import advtut.chapters.attribution.report as report
from advtut.attacks.gradient import fgsm
from advtut.book.results import check_results
from advtut.plotting.images import mosaic


def _net(seed=0, channels=1, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, classes)).eval()


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(2)
    return torch.rand(24, 1, 8, 8, generator=g), torch.randint(0, 3, (24,), generator=g)


def test_networks_have_the_stated_sizes():
    fashion = ch7.network("fashion")
    assert sum(p.numel() for p in fashion.parameters()) == 215_370
    assert ch7.network("flowers", n_classes=2)(torch.rand(2, 3, 32, 32)).shape == (2, 2)
    with pytest.raises(ValueError, match="dataset must be"):
        ch7.network("cifar")


def test_pick_per_class_and_mosaic():
    y = torch.tensor([2, 0, 1, 0, 2, 1, 1])
    assert ch7.pick_per_class(y, per_class=2, n_classes=3).tolist() == [1, 3, 2, 5, 0, 4]
    with pytest.raises(ValueError, match="fewer than 3"):
        ch7.pick_per_class(y, per_class=3, n_classes=3)
    tiles = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 1, 2, 2)
    m = mosaic(tiles, n_cols=3, pad=1)
    assert m.shape == (1, 5, 8)
    assert m[0, 0, 0] == 0 and m[0, 0, 3] == 1 and m[0, 3, 3] == 4 and m[0, 3, 6] == 1


def test_training_keeps_frames_and_reports_accuracy(data):
    x, y = data
    x = x.expand(-1, 1, -1, -1).repeat(1, 1, 4, 4)[:, :, :28, :28]     # 28 x 28 images
    t = ch7.train("fashion", x, y, x, y, epochs=2, seed=0, device="cpu", n_classes=10,
                  watch=(x[:2], y[:2]), every=2, progress=False)
    assert t.steps == 2 and t.recorder.frame_steps == [0, 2]
    assert not t.model.training and not t.initial.training
    assert 0 <= t.accuracy <= 1 and 0 <= t.initial_accuracy <= 1
    again = ch7.train("fashion", x, y, x, y, epochs=2, seed=0, device="cpu", n_classes=10,
                      progress=False)
    assert all(torch.equal(a, b) for a, b in zip(t.model.state_dict().values(),
                                                 again.model.state_dict().values()))


def test_sign_step_stats_count_what_they_say(data):
    x, y = data
    net = _net()
    s = ch7.sign_step_stats(net, x, y, eps=0.3, seed=0, batch_size=7)
    flipped = float((net(fgsm(net, x, y, eps=0.3)).argmax(1) != net(x).argmax(1)).double().mean())
    assert s.flipped == pytest.approx(flipped) and s.resist == pytest.approx(1 - flipped)
    assert s.n == 24 and 0 <= s.random_flipped <= 1 and 0 < s.alone_confidence <= 1
    ex = ch7.sign_step_examples(net, x[:3], y[:3], eps=0.3, seed=0)
    assert torch.allclose(ex["perturbation"].abs(), torch.full_like(x[:3], 0.3))


def test_flip_curves_agree_with_the_sign_step_stats(data):
    x, y = data
    net = _net()
    c = ch7.flip_curves(net, x, y, (0.0, 0.3), seed=0, normalised=True)
    s = ch7.sign_step_stats(net, x, y, eps=0.3, seed=0)
    assert c.sign[0] == 0 and float(c.sign[1]) == pytest.approx(s.flipped)
    assert float(c.l2[1]) == pytest.approx(0.3 * 8, rel=1e-6)          # 64 non-zero pixels
    assert report.at_eps(c, 0.3, "l2_equal") == float(c.l2_equal[1])
    with pytest.raises(ValueError, match="not on the curve's grid"):
        report.at_eps(c, 0.2)


def test_sanity_check_starts_at_one_and_changes(data):
    x, y = data
    net, other = _net(0), _net(1)
    rows = ch7.sanity_check(net, other, ("4", "0"), x[:5], y[:5], seed=0, ig_steps=8)
    assert [r["state"] for r in rows] == ["trained", "+ 4", "+ 0", "untrained"]
    for m in ch7.METHODS:
        assert rows[0][f"{m} vs trained"] == pytest.approx(1.0)
        assert rows[2][f"{m} vs trained"] < 1.0


def test_completeness_rows_and_the_report_entries_check(data):
    x, y = data
    net = _net()
    rows = ch7.completeness(net, x[:6], rules=("gausslegendre", "riemann_right"), steps=20)
    assert [r["rule"] for r in rows] == ["gausslegendre", "riemann_right"]
    assert rows[0]["mean |gap|"] <= rows[0]["max |gap|"]
    doc = {"chapter": "07_attribution", "profile": "quick", "seed": 0, "device": "cpu",
           "runtime_s": 1.0, "results": report.completeness_entries({"toy": rows})}
    assert check_results(doc) == []        # a 20-node rule on a tiny net meets the 2% bound
    doc["results"][0]["ours"] = 0.5        # a gap of half the change breaks it
    assert len(check_results(doc)) == 1


def test_fgsm_matches_foolbox_in_the_chapter(data):
    x, y = data
    assert ch7.fgsm_matches_foolbox(_net(), x, y, eps=0.1) == 0.0


def test_all_maps_and_their_agreement(data):
    x, y = data
    x = x.repeat(1, 1, 4, 4)[:, :, :28, :28]
    t = ch7.train("fashion", x, y, x, y, epochs=1, seed=0, device="cpu", n_classes=10,
                  watch=(x[:3], y[:3]), every=1, progress=False)
    maps = ch7.all_maps(t, x[:3], y[:3], patch=4, ig_steps=8)
    assert list(maps) == [*ch7.METHODS, "occlusion", "over training"]
    assert all(m.shape == x[:3].shape and m.min() >= 0 for m in maps.values())
    same = ch7.map_agreement(maps, "gradient", ("gradient", "occlusion"))
    assert same[0] == pytest.approx(1.0) and -1 <= same[1] < 1
