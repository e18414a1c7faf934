"""Adversarial sets, noise and amplification: zero accuracy, the nearest label against the exact
optimum on a linear model, any number of classes. (Fixtures: tests/attacks/conftest.py.)"""
import math

import pytest
import torch
from torch import nn

from advtut.attacks.sets import adversarial_set, amplify, gaussian_noise
from advtut.distances import rms
from advtut.evaluation import error_rate
from advtut.linear import LinearSoftmax
from advtut.minimal_move import exact_minimal_move_box
from advtut.training import train_lbfgs


def test_gaussian_noise_is_clipped_and_seeded():
    x = torch.full((50, 1, 28, 28), 0.5)
    a, b = gaussian_noise(x, 0.1, seed=1), gaussian_noise(x, 0.1, seed=1)
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and a.dtype == x.dtype
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
    d = rms(out, x)
    torch.testing.assert_close(d[1], torch.tensor(0.1), rtol=1e-5, atol=0)  # no clipping: exact
    assert d[0] < 0.1  # 10 pixels pushed past 1 are clipped
    assert torch.equal(out[2], x[2])  # r = 0 stays x
    direction = (out[1] - x[1]).flatten() / (out[1] - x[1]).norm()
    torch.testing.assert_close(direction, (x_adv[1] - x[1]).flatten() / (x_adv[1] - x[1]).norm(),
                               rtol=1e-4, atol=1e-6)


def test_adversarial_set_reaches_zero_accuracy(fc10, mnist_small):
    x, y = mnist_small[0][:60], mnist_small[1][:60].clone()
    y[:3] = (fc10(x[:3]).argmax(1) + 1) % 10  # three images the model "gets wrong"
    s = adversarial_set(fc10, x, y, seed=1, batch_size=25, progress=False)
    assert s.success.all()
    assert error_rate(fc10, s.x_adv, y) == 1.0
    assert error_rate(fc10, s.x_refined, y) == 1.0  # stored in float32, still adversarial
    assert s.x_adv.dtype == s.x_refined.dtype == x.dtype
    wrong = torch.argmax(fc10(x), 1) != y
    assert wrong[:3].all()
    assert (s.distortion[wrong] == 0).all() and torch.equal(s.x_adv[wrong], x[wrong])
    assert (s.distortion[~wrong] > 0).all() and (s.distortion_refined <= s.distortion + 1e-7).all()
    assert (s.target[~wrong] != y[~wrong]).all()
    torch.testing.assert_close(s.distortion, rms(s.x_adv.double(), x.double()).float(),
                               rtol=1e-5, atol=1e-7)


def test_untargeted_set_finds_the_nearest_label_on_a_linear_model(fc10, mnist_small):
    x, y = mnist_small[0][:20], mnist_small[1][:20]
    right = torch.argmax(fc10(x), 1) == y
    x, y = x[right], y[right]
    s = adversarial_set(fc10, x, y, seed=1, untargeted=True, progress=False)
    lin = LinearSoftmax(fc10[1].weight.detach().double(), fc10[1].bias.detach().double())
    nearest = torch.stack([exact_minimal_move_box(lin, x.flatten(1).double(), (y + k) % 10).distance
                           for k in range(1, 10)], 1).min(1).values / math.sqrt(784)
    ratio = s.distortion_refined.double() / nearest
    assert ratio.min() >= 1 - 1e-4 and ratio.median() <= 1.003, ratio


def test_the_number_of_classes_comes_from_the_model(mnist_small):
    """A three-class model (digits 0, 1, 2): targets stay among its three labels."""
    x, y = mnist_small
    keep = y < 3
    x, y = x[keep][:400], y[keep][:400]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 3))
    train_lbfgs(model, x, y, lambdas=1e-4, max_iter=30, progress=False)
    s = adversarial_set(model.eval(), x[:12], y[:12], seed=0, progress=False)
    assert s.success.all() and ((s.target >= 0) & (s.target < 3)).all()
    u = adversarial_set(model, x[:6], y[:6], seed=0, untargeted=True, progress=False)
    assert u.success.all() and ((u.target >= 0) & (u.target < 3)).all()
    assert (u.distortion <= s.distortion[:6] * 1.01 + 1e-6).all()  # the nearer of the two


def test_a_model_in_train_mode_is_refused(fc10, mnist_small):
    fc10.train()
    try:
        with pytest.raises(ValueError, match="adversarial_set needs the model in eval mode"):
            adversarial_set(fc10, mnist_small[0][:2], mnist_small[1][:2], seed=0)
    finally:
        fc10.eval()


def test_bad_labels_are_a_clear_value_error(fc10, mnist_small):
    x, y = mnist_small[0][:4], mnist_small[1][:4]
    with pytest.raises(ValueError, match=r"expected y to have shape \(4,\), got \(3,\)"):
        adversarial_set(fc10, x, y[:3], seed=0, progress=False)
    with pytest.raises(ValueError, match=r"y must be a class in \[0, 10\)"):
        adversarial_set(fc10, x, y + 10, seed=0, progress=False)
