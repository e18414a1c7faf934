"""advtut.attacks.evolve: separable CMA-ES from noise on a tiny CNN and on a linear model."""
import pytest
import torch
from torch import nn

from advtut.attacks.evolve import evolve
from advtut.models import MnistCNN


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    net = MnistCNN(widths=(4, 8), hidden=16).eval()
    with torch.no_grad():              # larger weights: logits that respond to the input
        net.fc1.weight.mul_(5)
        net.fc2.weight.mul_(20)
    return net


def test_reaches_the_threshold_and_the_image_is_what_was_scored(net):
    out = evolve(net, label=3, seed=0, max_queries=5_000)
    assert out.success and out.stop == "threshold" and out.queries <= 5_000 + 30
    assert out.x.shape == (1, 1, 28, 28) and 0 <= out.x.min() and out.x.max() <= 1
    with torch.no_grad():
        p = torch.softmax(net(out.x).double(), 1)[0, 3]
    assert abs(float(p) - out.prob) < 1e-7 and out.prob >= 0.999


def test_deterministic_and_seeded(net):
    a, b = evolve(net, label=1, seed=4), evolve(net, label=1, seed=4)
    c = evolve(net, label=1, seed=5)
    assert torch.equal(a.x, b.x) and a.queries == b.queries
    assert not torch.equal(a.x, c.x)


def test_query_cap_is_kept_and_failure_reported():
    # a linear model whose label 1 can never win: its logit is at least 19 below label 0's
    lin = nn.Sequential(nn.Flatten(), nn.Linear(784, 2)).eval()
    with torch.no_grad():
        lin[1].weight.fill_(0.0).sub_(torch.tensor([[0.0], [1e-3]]))
        lin[1].bias.copy_(torch.tensor([10.0, -10.0]))
    out = evolve(lin, label=1, seed=0, max_queries=200, popsize=10)
    assert not out.success and out.stop == "query cap"
    assert 200 <= out.queries < 210 and out.generations == out.queries // 10


def test_bad_arguments_are_named(net):
    with pytest.raises(ValueError, match="threshold"):
        evolve(net, label=3, threshold=1.0)
    with pytest.raises(ValueError, match="max_queries"):
        evolve(net, label=3, max_queries=0)
    with pytest.raises(ValueError, match="sigma0"):
        evolve(net, label=3, sigma0=0)
    with pytest.raises(ValueError, match="target"):
        evolve(net, label=12)
    with pytest.raises(ValueError, match="seed"):
        evolve(net, label=3, seed=-1)


def test_numpys_global_generator_is_left_alone(net):
    import numpy as np

    np.random.seed(7)
    expected = np.random.rand()
    np.random.seed(7)
    evolve(net, label=2, seed=0, max_queries=100)
    assert np.random.rand() == expected
