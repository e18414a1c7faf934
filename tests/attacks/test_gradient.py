"""advtut.attacks.gradient against exact references and against foolbox's FGSM."""
import pytest
import torch
from torch import nn

from advtut.attacks.gradient import (
    fgsm,
    flip_curve,
    flip_rate,
    gradient_step,
    loss_gradient,
    random_signs,
    step_direction,
)


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).eval()


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    return torch.rand(16, 1, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g)


def test_loss_gradient_of_a_linear_model_is_exact():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).double().eval()
    x = torch.rand(5, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    p = torch.softmax(lin(x), 1).detach()
    w = lin[1].weight.detach()
    expected = (p - nn.functional.one_hot(y, 3)) @ w           # d CE / d x = (p - e_y) W
    assert torch.allclose(loss_gradient(lin, x, y), expected)
    assert torch.allclose(loss_gradient(lin, x[:1], y[:1]), expected[:1])   # per example


def test_fgsm_equals_foolbox(data):
    import foolbox as fb

    x, y = data
    net = _cnn()
    fmodel = fb.PyTorchModel(net, bounds=(0, 1), device=x.device)
    _, theirs, _ = fb.attacks.FGSM()(fmodel, x, y, epsilons=0.1)
    ours = fgsm(net, x, y, eps=0.1, bounds=(0, 1))
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert (ours - x).abs().max() <= 0.1 + 1e-6


def test_step_directions_have_the_stated_norms(data):
    x, y = data
    g = loss_gradient(_cnn(), x, y)
    for kind, norm in (("sign", lambda d: d.abs().amax(1)), ("l2", lambda d: d.norm(dim=1)),
                       ("linf_scaled", lambda d: d.abs().amax(1))):
        d = step_direction(g, kind=kind).flatten(1)
        assert torch.allclose(norm(d), torch.ones(16)), kind
    # the normalised steps point along the gradient itself
    norms = g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert torch.allclose(step_direction(g, kind="l2") * norms, g)
    assert step_direction(torch.zeros(2, 3), kind="l2").abs().max() == 0
    with pytest.raises(ValueError, match="kind must be one of"):
        step_direction(g, kind="l1")


def test_a_gradient_step_raises_the_loss_more_than_random_signs(data):
    x, y = data
    net = _cnn()
    ce = nn.functional.cross_entropy
    up = ce(net(fgsm(net, x, y, eps=0.05)), y, reduction="none")
    rand = ce(net(x + 0.05 * random_signs(x, seed=0)), y, reduction="none")
    assert float(up.mean()) > float(rand.mean())
    assert set(random_signs(x, seed=0).unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(random_signs(x, seed=3), random_signs(x, seed=3))


def test_flip_curve_matches_flip_rate(data):
    x, y = data
    net = _cnn()
    d = step_direction(loss_gradient(net, x, y), kind="sign")
    curve = flip_curve(net, x, d, [0.0, 0.3])
    assert curve[0] == 0
    assert curve[1] == pytest.approx(flip_rate(net, x, gradient_step(net, x, y, eps=0.3)))
    with pytest.raises(ValueError, match="eps must all be >= 0"):
        flip_curve(net, x, d, [-0.1])


def test_bad_inputs_say_what_is_wrong(data):
    x, y = data
    net = _cnn()
    with pytest.raises(ValueError, match=r"expected y to have shape \(16,\), got \(3,\)"):
        fgsm(net, x, y[:3], eps=0.1)
    with pytest.raises(ValueError, match="y must be a long tensor"):
        loss_gradient(net, x, y.float())
    with pytest.raises(ValueError, match=r"y must be a class in \[0, 3\)"):
        gradient_step(net, x, y + 3, eps=0.1, kind="l2")
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        fgsm(net, x + 1, y, eps=0.1, bounds=(0, 1))
    fgsm(net, x + 1, y, eps=0.1)                     # no bounds: any range
    with pytest.raises(ValueError, match="eval mode"):
        fgsm(net.train(), x, y, eps=0.1)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        fgsm(net.eval(), x, y, eps=-1.0)
