import pytest
import torch
import torch.nn.functional as F

from advtut.models import FC, FC10
from advtut.training import train_lbfgs, weight_decay_term


def test_weight_decay_is_lambda_sum_w2_over_units():
    torch.manual_seed(0)
    net = FC((5, 4), n_inputs=6, n_classes=3)
    lams = (1e-1, 1e-2, 1e-3)
    layers = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    expected = sum(l * m.weight.pow(2).sum() / m.out_features for l, m in zip(lams, layers))
    torch.testing.assert_close(weight_decay_term(net, lams), expected)
    with pytest.raises(ValueError, match="one value per linear layer"):
        weight_decay_term(net, (1.0, 2.0))


def test_lbfgs_reaches_the_convex_optimum_of_softmax_regression():
    # a separable-free toy problem: the regularized objective is strictly convex, so the
    # gradient at the end must vanish
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, 2, 2, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (200,), generator=g)
    model = FC10(n_inputs=4, n_classes=3).double()
    train_lbfgs(model, x, y, lambdas=1e-2, max_iter=300, progress=False)
    loss = F.cross_entropy(model(x), y) + weight_decay_term(model, 1e-2)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    assert max(float(gr.abs().max()) for gr in grads) < 1e-6
    assert not model.training


def test_fc_rejects_empty_hidden():
    with pytest.raises(ValueError, match="hidden"):
        FC(())
