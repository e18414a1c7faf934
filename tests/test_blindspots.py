"""Chapter 4's experiment pieces: targets, noise, amplification, adversarial sets (against the
exact optimum on a linear model), the autoencoder model and the error tables."""
import copy

import pytest
import torch

from advtut.attacks.lbfgs import distortion
from advtut.blindspots import (TABLE1, ModelSpec, adversarial_set, adversarial_training, amplify,
                               error_matrix, error_rate, gaussian_noise, random_wrong_labels,
                               train_model)
from advtut.data import load_mnist
from advtut.linear import LinearSoftmax
from advtut.minimal_move import exact_minimal_move_box
from advtut.models import AE400
from advtut.training import train_sparse_autoencoder


@pytest.fixture(scope="module")
def digits(data_root):
    train = load_mnist("train", root=data_root, download=False)
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:2000]
    return train.x[idx], train.y[idx]


@pytest.fixture(scope="module")
def fc10(digits):
    torch.manual_seed(0)
    return train_model(TABLE1[0], *digits, max_iter=100, progress=False)


def test_random_wrong_labels_are_wrong_uniform_and_seeded():
    y = torch.arange(10).repeat(1000)
    t = random_wrong_labels(y, seed=3)
    assert (t != y).all() and torch.equal(t, random_wrong_labels(y, seed=3))
    counts = torch.bincount((t - y) % 10, minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 900  # each offset about 10000 / 9 times


def test_gaussian_noise_is_clipped_and_seeded():
    x = torch.full((50, 1, 28, 28), 0.5)
    a, b = gaussian_noise(x, 0.1, seed=1), gaussian_noise(x, 0.1, seed=1)
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    assert abs(float((a - x).std()) - 0.1) < 0.005
    assert torch.equal(gaussian_noise(x, 0.0, seed=1), x)
    with pytest.raises(ValueError, match="std must be >= 0"):
        gaussian_noise(x, -1.0, seed=1)


def test_amplify_scales_the_perturbation_to_the_asked_distortion():
    x = torch.full((3, 1, 28, 28), 0.5)
    r = torch.zeros_like(x)
    r[0, 0, 0, :10] = 0.01
    r[1] = 0.001 * torch.randn(1, 28, 28)
    x_adv = x + r
    out = amplify(x, x_adv, to=0.1)
    d = distortion(out, x)
    torch.testing.assert_close(d[1], torch.tensor(0.1), rtol=1e-5, atol=0)  # no clipping: exact
    assert d[0] < 0.1  # 10 pixels pushed past 1 are clipped
    assert torch.equal(out[2], x[2])  # r = 0 stays x
    direction = (out[1] - x[1]).flatten() / (out[1] - x[1]).norm()
    torch.testing.assert_close(direction, (x_adv[1] - x[1]).flatten() / (x_adv[1] - x[1]).norm(), rtol=1e-4, atol=1e-6)


def test_adversarial_set_reaches_zero_accuracy(fc10, digits):
    x, y = digits[0][:60], digits[1][:60].clone()
    y[:3] = (fc10(x[:3]).argmax(1) + 1) % 10  # three images the model "gets wrong"
    s = adversarial_set(fc10, "FC10", x, y, seed=1, batch_size=25, progress=False)
    assert s.success.all()
    assert error_rate(fc10, s.x_adv, y) == 1.0
    assert error_rate(fc10, s.x_refined, y) == 1.0  # stored in float32, still adversarial
    assert s.x_adv.dtype == s.x_refined.dtype == x.dtype
    wrong = torch.argmax(fc10(x), 1) != y
    assert wrong[:3].all()
    assert (s.distortion[wrong] == 0).all() and torch.equal(s.x_adv[wrong], x[wrong])
    assert (s.distortion[~wrong] > 0).all() and (s.distortion_refined <= s.distortion + 1e-7).all()
    assert (s.target[~wrong] != y[~wrong]).all()
    torch.testing.assert_close(s.distortion, distortion(s.x_adv.double(), x.double()).float(),
                               rtol=1e-5, atol=1e-7)


def test_untargeted_set_finds_the_nearest_label_on_a_linear_model(fc10, digits):
    x, y = digits[0][:20], digits[1][:20]
    right = torch.argmax(fc10(x), 1) == y
    x, y = x[right], y[right]
    s = adversarial_set(fc10, "FC10", x, y, seed=1, untargeted=True, progress=False)
    lin = LinearSoftmax(fc10[1].weight.detach().double(), fc10[1].bias.detach().double())
    nearest = torch.stack([exact_minimal_move_box(lin, x.flatten(1).double(), (y + k) % 10).distance
                           for k in range(1, 10)], 1).min(1).values / 28.0
    ratio = s.distortion_refined.double() / nearest
    assert ratio.min() >= 1 - 1e-4 and ratio.median() <= 1.003, ratio


def test_error_matrix_is_each_models_error_on_each_row(fc10, digits):
    x, y = digits[0][:100], digits[1][:100]
    other = copy.deepcopy(fc10)
    with torch.no_grad():
        other[1].bias += torch.arange(10.0)
    m = error_matrix({"a": fc10, "b": other}, {"clean": (x, y), "noisy": (gaussian_noise(x, 0.3, seed=0), y)})
    assert set(m) == {"clean", "noisy"} and set(m["clean"]) == {"a", "b"}
    assert m["clean"]["a"] == float((fc10(x).argmax(1) != y).float().mean())
    assert m["clean"]["b"] == error_rate(other, x, y)


def test_ae400_trains_its_encoder_then_only_the_softmax(digits):
    x, y = digits[0][:300], digits[1][:300]
    torch.manual_seed(0)
    spec = ModelSpec("AE", "ae", 1e-6, (20,))
    model = train_model(spec, x, y, max_iter=20, ae_max_iter=15, progress=False)
    assert isinstance(model, AE400) and not model.training
    assert not any(p.requires_grad for p in model.encoder.parameters())
    feats = model.features(x)
    assert feats.shape == (300, 20) and feats.min() > 0 and feats.max() < 1
    enc = AE400(hidden=20)
    def reconstruction_error():
        with torch.no_grad():
            return float((torch.sigmoid(enc.decoder(enc.features(x))) - x.flatten(1)).pow(2).sum(1).mean())

    before = reconstruction_error()
    train_sparse_autoencoder(enc.encoder, enc.decoder, x, max_iter=15, progress=False)
    assert reconstruction_error() < 0.5 * before
    with pytest.raises(ValueError, match="sparsity"):
        train_sparse_autoencoder(enc.encoder, enc.decoder, x, sparsity=1.5)
    with pytest.raises(ValueError, match="inputs"):
        train_sparse_autoencoder(enc.encoder, enc.decoder, x[:, :, :10])


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


def test_model_spec_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        ModelSpec("x", "cnn", 0.0)


def test_cache_resumes_training_and_attacks(digits, tmp_path):
    from advtut.blindspots import cache_path

    x, y = digits[0][:300], digits[1][:300]
    path = cache_path(tmp_path, "quick", 0, "FC10(1e-4)'")
    assert path.name == "quick-0-FC10_1e-4__.pt"
    torch.manual_seed(0)
    first = train_model(TABLE1[0], x, y, max_iter=20, cache=path, progress=False)
    assert path.is_file() and not list(tmp_path.glob("*.part"))
    torch.manual_seed(123)  # a different start: the cached weights must come back, not retrain
    again = train_model(TABLE1[0], x, y, max_iter=20, cache=path, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    set_path = cache_path(tmp_path, "set")
    s1 = adversarial_set(first, "FC10", x[:10], y[:10], seed=1, cache=set_path, progress=False)
    s2 = adversarial_set(first, "FC10", x[:10], y[:10], seed=1, cache=set_path, progress=False)
    assert torch.equal(s1.x_adv, s2.x_adv) and s1.seconds == s2.seconds  # the second was loaded
    assert cache_path(None, "x") is None
