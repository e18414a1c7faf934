"""Chapter 4's experiment pieces: the paper's constants, the data split, the models (AE400-10's
frozen encoder), the cache, the cross-model tables, adversarial training and the invariants."""
import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import advtut.chapters.blindspots.experiments as ch4
import advtut.chapters.blindspots.report as report
import advtut.chapters.blindspots.transfer as transfer
from advtut.book.results import check_results
from advtut.chapters.blindspots.adversarial import adversarial_training
from advtut.chapters.blindspots.experiments import train_model
from advtut.chapters.blindspots.source import (
    PAPER_TABLE1,
    PAPER_TABLE2,
    PAPER_TABLE2_DISTORTION,
    PAPER_TABLE3,
    PAPER_TABLE4,
    SPLIT,
    TABLE1,
    ModelSpec,
)
from advtut.data import load_mnist
from advtut.evaluation import error_rate
from advtut.models import AE400
from advtut.training import train_sparse_autoencoder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits(data_root):
    train = load_mnist("train", root=data_root, download=False)
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:2000]
    return train.x[idx], train.y[idx]


@pytest.fixture(scope="module")
def fc10(digits):
    torch.manual_seed(0)
    return train_model(TABLE1[0], *digits, max_iter=100, progress=False)


def test_the_papers_numbers_cover_every_model_and_cell():
    names, split = [s.name for s in TABLE1], [s.name for s in SPLIT]
    assert list(PAPER_TABLE1) == names and list(PAPER_TABLE3) == split
    assert list(PAPER_TABLE2)[:6] == names and list(PAPER_TABLE2) == list(PAPER_TABLE2_DISTORTION)
    assert all(list(row) == names for row in PAPER_TABLE2.values())
    assert all(list(row) == split for row in PAPER_TABLE4.values())
    assert all(PAPER_TABLE2[n][n] == 1.0 for n in names)  # 100% on the diagonal
    assert all(PAPER_TABLE4[f"Distorted for {n}"][n] == 1.0 for n in split)
    cells = [v for t in (PAPER_TABLE1, PAPER_TABLE3) for row in t.values() for v in row.values()]
    cells += [v for t in (PAPER_TABLE2, PAPER_TABLE4) for row in t.values() for v in row.values()]
    assert all(0 <= v <= 1 for v in cells)
    assert PAPER_TABLE1["FC10(1e-4)"] == dict(train_error=0.067, test_error=0.074, distortion=0.062)


def test_mnist_subsets_are_seeded_and_the_halves_disjoint():
    class Split(SimpleNamespace):
        def __len__(self):
            return len(self.y)

    x = torch.arange(100.0).view(100, 1, 1, 1)
    train = Split(x=x, y=torch.arange(100))
    test = Split(x=x[:10], y=torch.arange(10))
    d = ch4.mnist_subsets(train, test, seed=0, n_train=20)
    assert d.n_train == 20 and d.n_split == 20 and len(d.x_p1) == len(d.x_p2) == 20
    assert not set(d.y_p1.tolist()) & set(d.y_p2.tolist())
    assert torch.equal(d.y_train, ch4.mnist_subsets(train, test, seed=0, n_train=20).y_train)
    assert torch.equal(d.x_train[:, 0, 0, 0].long(), d.y_train)  # images follow their labels
    full = ch4.mnist_subsets(train, test, seed=0, n_train=None)
    assert full.n_train == 100 and full.n_split == 50
    assert torch.equal(full.y_train[:20], d.y_train)  # one seeded order for every profile


def test_model_spec_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        ModelSpec("x", "cnn", 0.0)


def test_ae400_trains_its_encoder_then_only_the_softmax(digits):
    x, y = digits[0][:300], digits[1][:300]
    torch.manual_seed(0)
    spec = ModelSpec("AE", "ae", 1e-6, (20,))
    model = train_model(spec, x, y, max_iter=20, ae_max_iter=15, progress=False)
    assert isinstance(model, AE400) and not model.training
    assert not any(p.requires_grad for p in model.encoder.parameters())
    feats = model.encode(x)
    assert feats.shape == (300, 20) and feats.min() > 0 and feats.max() < 1
    enc = AE400(hidden=20)

    def reconstruction_error():
        with torch.no_grad():
            out = torch.sigmoid(enc.decoder(enc.encode(x)))
            return float((out - x.flatten(1)).pow(2).sum(1).mean())

    before = reconstruction_error()
    train_sparse_autoencoder(enc.encoder, enc.decoder, x, max_iter=15, progress=False)
    assert reconstruction_error() < 0.5 * before


def test_adversarial_training_continues_both_copies(fc10, digits, data_root):
    x, y = digits
    test = load_mnist("test", root=data_root, download=False)
    spec = ModelSpec("FC10", "fc10", 1e-4)
    before = {k: v.clone() for k, v in fc10.state_dict().items()}
    out = adversarial_training(fc10, spec, x[:500], y[:500], test.x[:500], test.y[:500], rounds=2,
                               per_round=10, max_iter=5, seed=0, progress=False)
    assert all(torch.equal(v, fc10.state_dict()[k]) for k, v in before.items())  # input untouched
    assert len(out.errors_control) == len(out.errors_adversarial) == 2
    assert 0 < out.pool_size <= 20
    # both copies trained on: their test errors moved away from the starting model's
    start = error_rate(fc10, test.x[:500], test.y[:500])
    assert out.errors_control[-1] != start or out.errors_adversarial[-1] != start
    assert out.errors_control != out.errors_adversarial  # the pool made a difference
    with pytest.raises(ValueError, match="rounds"):
        adversarial_training(fc10, spec, x, y, x, y, rounds=0, per_round=1, max_iter=1, seed=0)


def test_cache_resumes_training_and_attacks_and_is_keyed_by_the_settings(digits, tmp_path,
                                                                        monkeypatch):
    x, y = digits[0][:300], digits[1][:300]
    kept = ch4.cache_namer(tmp_path, profile="quick", seed=0, settings={"max_iter": 20})
    assert ch4.cache_namer(None, profile="quick", seed=0, settings={})("model") is None
    models, _ = ch4.train_models(TABLE1[:1], [(x, y)], seeds=[0], kept=kept, max_iter=20,
                                 progress=False)
    first = models["FC10(1e-4)"]
    assert len(list(tmp_path.glob("quick-0-model-FC10_1e-4_-*.pt"))) == 1
    assert not list(tmp_path.glob("*.part"))
    # the same call again: the cached weights come back, nothing is trained
    with monkeypatch.context() as m:
        m.setattr(ch4, "train_lbfgs", lambda *a, **k: pytest.fail("retrained a cached model"))
        again, _ = ch4.train_models(TABLE1[:1], [(x, y)], seeds=[0], kept=kept, max_iter=20,
                                    progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 again["FC10(1e-4)"].state_dict().values()))
    # what the caller chose is in the key too: another seed or other images, another file
    ch4.train_models(TABLE1[:1], [(x, y)], seeds=[123], kept=kept, max_iter=20, progress=False)
    ch4.train_models(TABLE1[:1], [(x[:200], y[:200])], seeds=[0], kept=kept, max_iter=20,
                     progress=False)
    assert len(list(tmp_path.glob("quick-0-model-FC10_1e-4_-*.pt"))) == 3
    # other settings: another file, a fresh model
    other = ch4.cache_namer(tmp_path, profile="quick", seed=0, settings={"max_iter": 21})
    assert other("model", "FC10(1e-4)") != kept("model", "FC10(1e-4)")
    # another device or other data: another file
    for kw in (dict(device="cuda"), dict(data=(x,)), dict(data=(x + 1e-6,))):
        moved = ch4.cache_namer(tmp_path, profile="quick", seed=0, settings={"max_iter": 20}, **kw)
        assert moved("model", "FC10(1e-4)") != kept("model", "FC10(1e-4)")
    assert (ch4.cache_namer(tmp_path, profile="quick", seed=0, settings={}, data=(x,))("m")
            != ch4.cache_namer(tmp_path, profile="quick", seed=0, settings={},
                               data=(x + 1e-6,))("m"))
    s1 = ch4.attack_models(models, x[:10], y[:10], seed=1, kept=kept, progress=False)
    s2 = ch4.attack_models(models, x[:10], y[:10], seed=1, kept=kept, progress=False)
    name = "FC10(1e-4)"
    assert torch.equal(s1[name].x_adv, s2[name].x_adv)
    assert s1[name].seconds == s2[name].seconds  # the second was loaded


def test_cross_model_errors_have_a_full_diagonal_and_measured_noise(fc10, digits):
    x, y = digits[0][:40], digits[1][:40]
    other = copy.deepcopy(fc10)
    with torch.no_grad():
        other[1].bias += torch.linspace(0, 1, 10)
    models = {"FC10(1e-4)": fc10, "FC10(1e-2)": other}
    sets = ch4.attack_models(models, x, y, seed=0, progress=False)
    t = transfer.cross_model_errors(models, sets, x, y, seed=10)
    assert list(t.errors) == [*models, "Gaussian noise, stddev=0.1", "Gaussian noise, stddev=0.3"]
    assert t.errors["FC10(1e-4)"]["FC10(1e-4)"] == t.errors["FC10(1e-2)"]["FC10(1e-2)"] == 1.0
    assert abs(t.distortion["Gaussian noise, stddev=0.3"] - 0.3) < 0.1  # clipped: a bit less
    assert t.distortion["FC10(1e-4)"] == float(sets["FC10(1e-4)"].distortion.mean())
    inv = report.diagonal_invariants(t, list(models), table_name="Table 2")
    inv += report.attack_invariants(models, sets, table_name="Table 1")
    assert check_results({"chapter": "04", "results": inv}) == []
    # an off-diagonal mean by hand
    errs = {"a": {"a": 1.0, "b": 0.2}, "b": {"a": 0.4, "b": 1.0}}
    assert transfer.off_diagonal_mean(errs, ["a", "b"]) == pytest.approx(0.3)


def test_the_invariants_can_fail():
    t = transfer.CrossErrors({"m": {"m": 0.99}}, {"m": 0.05})
    (inv,) = report.diagonal_invariants(t, ["m"], table_name="Table 2")
    assert check_results({"chapter": "04", "results": [inv]})  # 99% on the diagonal: a failure
