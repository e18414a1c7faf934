"""advtut.certification: certified accuracy on constructed margins, the margin-wise first-order
estimate against a linear model's exact distances, and the input-space ascent against known
constants (a linear map, and a ReLU map whose steep region no start lies in)."""
import math

import pytest
import torch
from torch import nn

from advtut.certification import (
    certified_accuracy,
    first_order_radius,
    jacobian_climb,
    lipschitz_lower_bound,
)


def test_certified_accuracy_counts_correct_examples_whose_radius_exceeds_eps():
    # margins 0, sqrt2, 2 sqrt2, 4 sqrt2 with L = 1: radii 0, 1, 2, 4; the last one is wrong
    r2 = math.sqrt(2)
    logits = torch.tensor([[0.0, 0.0], [r2, 0.0], [2 * r2, 0.0], [0.0, 4 * r2]])
    y = torch.tensor([0, 0, 0, 0])
    out = certified_accuracy(logits, y, 1.0, eps=(0.0, 0.5, 1.0, 1.5, 3.0))
    assert out.accuracy.tolist() == [0.5, 0.5, 0.25, 0.25, 0.0]     # strict: radius > eps
    assert bool((out.low <= out.accuracy).all() and (out.accuracy <= out.high).all())
    assert out.at(1.0) == (0.25, float(out.low[2]), float(out.high[2]))
    with pytest.raises(ValueError, match="not among"):
        out.at(0.3)
    with pytest.raises(ValueError, match="eps"):
        certified_accuracy(logits, y, 1.0, eps=(-1.0,))
    with pytest.raises(ValueError, match="lipschitz"):
        certified_accuracy(logits, y, 0.0, eps=(0.0,))


def test_first_order_radius_is_the_exact_distance_for_a_linear_model():
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(6, 4).double()
    x = torch.randn(5, 6, generator=g, dtype=torch.float64)
    z = lin(x).detach()
    y = z.argmax(1)
    out = first_order_radius(lin, x, y)
    w = lin.weight.detach()
    for i in range(5):
        d = {j: float((z[i, y[i]] - z[i, j]) / (w[y[i]] - w[j]).norm())
             for j in range(4) if j != y[i]}
        assert out.estimate[i].item() == pytest.approx(min(d.values()), rel=1e-12)
        assert out.label[i].item() == min(d, key=d.get)
        assert out.ranked[i].tolist() == sorted(d, key=d.get)


def test_ascent_finds_a_linear_maps_norm():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(5, 20, generator=g, dtype=torch.float64)
    f = lambda x: x @ w.T                                  # noqa: E731
    x0 = torch.rand(4, 20, generator=g, dtype=torch.float64)
    out = lipschitz_lower_bound(f, x0, steps=200, lr=0.01, radius=0.1)
    norm = float(torch.linalg.matrix_norm(w, 2))
    assert out.value <= norm * (1 + 1e-9)
    assert out.pair >= 0.999 * norm                        # the pairs alone get there


def test_ascent_climbs_above_its_starts_on_a_relu_network_and_never_past_its_constant():
    # R^2 -> R^2 with 30 hidden ReLUs: the Jacobian is w2 diag(mask) w1, piecewise constant;
    # on a 400 x 400 grid of the box its largest norm is 29.5, at the 32 starts 25.2
    g = torch.Generator().manual_seed(2)
    w1 = 3 * torch.randn(30, 2, generator=g, dtype=torch.float64)
    b1 = torch.randn(30, generator=g, dtype=torch.float64)
    w2 = torch.randn(2, 30, generator=g, dtype=torch.float64)
    f = lambda x: torch.relu(x @ w1.T + b1) @ w2.T                     # noqa: E731
    s = torch.linspace(0, 1, 400, dtype=torch.float64)
    grid = torch.cartesian_prod(s, s)
    jac = torch.einsum("oh,nh,hi->noi", w2, (grid @ w1.T + b1 > 0).double(), w1)
    on_grid = float(torch.linalg.matrix_norm(jac, 2).max())
    x0 = torch.rand(32, 2, generator=g, dtype=torch.float64)
    out = lipschitz_lower_bound(f, x0, steps=300, lr=0.01, radius=0.05)
    assert out.value >= 1.1 * out.at_start                 # the ascent found steeper regions
    assert out.value >= 0.95 * on_grid
    assert out.value <= float(torch.linalg.matrix_norm(w2, 2) * torch.linalg.matrix_norm(w1, 2))


def test_climb_finds_the_steep_region_and_never_goes_down():
    # f(x) = x + 9 relu(x - 0.6) pixel by pixel: Jacobian norm 1 where every pixel is below 0.6,
    # 10 once any is above. From starts at 0.45 (norm 1) a search of sigma 0.1 must get there;
    # a search of sigma 1e-4 cannot (the kink is 1,500 sigmas away) and must stay at 1
    f = lambda x: x + 9 * torch.relu(x - 0.6)                          # noqa: E731
    x0 = torch.full((3, 4), 0.45, dtype=torch.float64)
    x, norms = jacobian_climb(f, x0, rounds=10, proposals=8, sigma=0.1, seed=0)
    assert torch.allclose(norms, torch.full((3,), 10.0, dtype=torch.float64), rtol=1e-6)
    assert bool((x > 0.6).any(dim=1).all()) and bool(((x >= 0) & (x <= 1)).all())
    _, stuck = jacobian_climb(f, x0, rounds=10, proposals=8, sigma=1e-4, seed=0)
    assert torch.allclose(stuck, torch.ones(3, dtype=torch.float64), rtol=1e-6)
    # through lipschitz_lower_bound: the climb's value is kept, and bounded by the constant 10
    out = lipschitz_lower_bound(f, x0, steps=0, radius=1e-3, climb_rounds=10, seed=0)
    assert out.climbed == pytest.approx(10.0, rel=1e-6) and out.value <= 10 * (1 + 1e-9)
    assert out.at_start == pytest.approx(1.0, rel=1e-6)


def test_climb_refuses_bad_settings():
    with pytest.raises(ValueError, match="rounds"):
        jacobian_climb(lambda x: x, torch.zeros(2, 3), rounds=-1)
    with pytest.raises(ValueError, match="sigma"):
        jacobian_climb(lambda x: x, torch.zeros(2, 3), rounds=1, sigma=0.0)
    with pytest.raises(ValueError, match="inside bounds"):
        jacobian_climb(lambda x: x, torch.full((2, 3), 2.0), rounds=1)


def test_ascent_refuses_starts_outside_the_box():
    with pytest.raises(ValueError, match="inside bounds"):
        lipschitz_lower_bound(lambda x: x, torch.full((2, 3), 2.0))
    with pytest.raises(ValueError, match="steps"):
        lipschitz_lower_bound(lambda x: x, torch.zeros(2, 3), steps=-1)
