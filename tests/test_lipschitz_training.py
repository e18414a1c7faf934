"""Sedghi et al.'s clipping against a dense SVD of a small circular convolution, and
Lipschitz-margin training's loss (cross-entropy at eps = 0; the margin it adds)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advtut.lipschitz_margin import LipschitzMargin, lipschitz_margin_logits, lipschitz_margin_loss
from advtut.projection import ClipSingularValues, clip_conv_singular_values, clip_matrix_singular_values
from advtut.spectral import bound_grid, conv_matrix, layer_bound, linear_norm


def _svals(m):
    return torch.linalg.svdvals(m)


@pytest.mark.parametrize("shape", [(4, 3, 3, 3), (2, 5, 5, 5), (6, 1, 3, 3)])
def test_clipping_sets_every_singular_value_above_the_target_to_it(shape):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    n = 8
    before = _svals(conv_matrix(w, 1, n, padding_mode="circular"))
    target = float(before[len(before) // 4])               # a quarter of them lie above it
    out = clip_conv_singular_values(w, target, n)
    after = _svals(conv_matrix(out.full, 1, n, padding_mode="circular"))
    assert torch.allclose(after, before.clamp_max(target), atol=1e-10)
    assert out.top_clipped <= target * (1 + 1e-6) and out.imag < 1e-10
    assert out.projected.shape == w.shape
    # the k x k projection is the full kernel's first taps, and it need not stay below target
    assert torch.equal(out.projected, out.full[:, :, :shape[2], :shape[3]])


def test_clipping_above_the_norm_changes_nothing():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    top = float(_svals(conv_matrix(w, 1, 8, padding_mode="circular"))[0])
    out = clip_conv_singular_values(w, 2 * top, 8)
    assert torch.allclose(out.projected, w, atol=1e-12)
    assert out.full[:, :, 3:, :].abs().max() < 1e-12


def test_matrix_clipping_is_exact():
    g = torch.Generator().manual_seed(2)
    w = torch.randn(7, 5, generator=g, dtype=torch.float64)
    s = _svals(w)
    out = clip_matrix_singular_values(w, float(s[2]))
    assert torch.allclose(_svals(out), s.clamp_max(s[2]), atol=1e-12)


def test_clip_callback_brings_every_layer_to_the_target_before_the_projection():
    torch.manual_seed(0)
    conv, lin = nn.Conv2d(2, 4, 3, padding=1), nn.Linear(16, 6)
    model = nn.ModuleDict({"conv": conv, "lin": lin})
    layers = lambda m: [("conv", m["conv"], 10), ("lin", m["lin"], None)]   # noqa: E731
    target = 0.5 * min(layer_bound(conv, 10), linear_norm(lin.weight))
    clip = ClipSingularValues(target, layers=layers, every=5, n_steps=7)
    clip(3, model)
    assert clip.clipped_tops == {}                                  # not a clipping step
    clip(5, model)
    assert clip.clipped_tops["conv"] <= target * (1 + 1e-6)
    assert linear_norm(lin.weight) <= target * (1 + 1e-6)
    assert bound_grid(10, padding=1, stride=1) == 12
    with pytest.raises(ValueError, match="stride-1"):
        ClipSingularValues(1.0, layers=lambda m: [("c", nn.Conv2d(1, 1, 3, stride=2), 8)],
                           every=1, n_steps=1)(1, model)


def test_margin_loss_is_cross_entropy_at_eps_zero_and_adds_sqrt2_L_eps_to_wrong_logits():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    assert torch.equal(lipschitz_margin_loss(z, y, lipschitz=7.0, eps=0.0), F.cross_entropy(z, y))
    shifted = lipschitz_margin_logits(z, y, lipschitz=3.0, eps=0.5)
    delta = shifted - z
    rows = torch.arange(6)
    assert torch.equal(delta[rows, y], torch.zeros(6, dtype=torch.float64))
    mask = torch.ones_like(delta, dtype=torch.bool)
    mask[rows, y] = False
    assert torch.allclose(delta[mask], torch.full((18,), math.sqrt(2) * 1.5, dtype=torch.float64))
    assert lipschitz_margin_loss(z, y, lipschitz=3.0, eps=0.5) > F.cross_entropy(z, y)


def test_margin_loss_power_estimate_approaches_the_product_of_norms_from_below():
    torch.manual_seed(0)
    conv, lin = nn.Conv2d(1, 3, 3, padding=1).double(), nn.Linear(5, 4).double()
    model = nn.ModuleDict({"conv": conv, "lin": lin})
    lmt = LipschitzMargin(0.1, layers=lambda m: [("conv", m["conv"], 6), ("lin", m["lin"], None)])
    for _ in range(200):
        est = lmt.lipschitz(model)
    assert est.requires_grad                                     # gradients reach the weights
    exact = float(_svals(conv_matrix(conv.weight, 1, 6, padding=1))[0]) * linear_norm(lin.weight)
    assert float(est.detach()) <= exact * (1 + 1e-9)
    assert float(est.detach()) == pytest.approx(exact, rel=1e-3)   # close top singular values
    z = torch.randn(3, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    zero = LipschitzMargin(0.0, layers=lmt.layers)
    assert torch.equal(zero(model, None, y, z), F.cross_entropy(z, y))
