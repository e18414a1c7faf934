"""Fixtures of the attack tests: a seeded MNIST subset, FC10 trained on it, a small sigmoid MLP."""
import pytest
import torch

from advtut.data import load_mnist
from advtut.models import FC, FC10
from advtut.training import train_lbfgs


@pytest.fixture(scope="module")
def mnist_small(data_root):
    train = load_mnist("train", root=data_root, download=False)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(train), generator=g)[:3000]
    return train.x[idx], train.y[idx]


@pytest.fixture(scope="module")
def fc10(mnist_small):
    """FC10(1e-4) after 150 L-BFGS iterations on the 3,000 images (float32, eval mode)."""
    torch.manual_seed(0)
    x, y = mnist_small
    model = FC10()
    train_lbfgs(model, x, y, lambdas=1e-4, max_iter=150, progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def small_net(mnist_small):
    """A sigmoid MLP 784-16-10 (float64): non-convex, small enough for scipy per example."""
    torch.manual_seed(0)
    x, y = mnist_small
    net = FC((16,))
    train_lbfgs(net, x[:1000], y[:1000], lambdas=1e-4, max_iter=60, progress=False)
    return net.double().eval()
