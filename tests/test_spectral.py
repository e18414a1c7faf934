"""advtut.spectral against exact references: dense matrices and their SVDs, explicit Jacobians."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advtut.spectral import (
    avg_pool_lipschitz,
    bound_grid,
    certified_radius,
    circular_conv,
    conv_frequency_norms,
    conv_matrix,
    conv_operator_norm_bound,
    fold_batchnorm,
    layer_bound,
    linear_norm,
    local_lipschitz,
    max_pool_lipschitz,
    operator_norm,
)


def _norm(m: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(m, ord=2))


@pytest.mark.parametrize("shape,stride,n", [
    ((5, 3, 3, 3), 1, 8),      # D <= C s^2: the D x D Gram matrix
    ((2, 3, 3, 3), 2, 8),
    ((20, 2, 3, 3), 2, 8),     # D > C s^2: the other Gram matrix
    ((4, 3, 5, 5), 4, 16),
    ((3, 2, 4, 4), 3, 9),
    ((6, 1, 1, 1), 1, 4),
])
def test_corrected_formula_is_the_circular_convolutions_norm(shape, stride, n):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.float64)
    exact = _norm(conv_matrix(w, stride, n, padding_mode="circular"))
    assert conv_operator_norm_bound(w, stride, n) == pytest.approx(exact, rel=1e-10)
    # the paper's printed scaling is short by exactly the stride
    assert conv_operator_norm_bound(w, stride, n, scaling="paper") == pytest.approx(exact / stride,
                                                                                   rel=1e-10)


def test_frequency_norms_have_the_folded_grids_shape_and_match_a_direct_dft():
    w = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    norms = conv_frequency_norms(w, 2, 8)
    assert norms.shape == (4, 4) and norms.dtype == torch.float64
    # xi = (1, 3): the D x (C * 4) matrix of DFT values at (1 + 4 l1, 3 + 4 l2), over 2
    u = torch.arange(3, dtype=torch.float64)
    cols = []
    for c in range(2):
        for l1 in range(2):
            for l2 in range(2):
                f1, f2 = 1 + 4 * l1, 3 + 4 * l2
                phase = torch.exp(-2j * math.pi * (u[:, None] * f1 + u[None, :] * f2) / 8)
                cols.append((w[:, c] * phase).sum(dim=(1, 2)))
    a = torch.stack(cols, dim=1) / 2
    assert float(norms[1, 3]) == pytest.approx(_norm(a), rel=1e-10)


def test_circular_conv_is_the_matrix_that_conv_matrix_writes_down():
    w = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    m = conv_matrix(w, 2, 6, padding_mode="circular")
    assert torch.allclose(circular_conv(w, 2)(x).flatten(), m @ x.flatten())


def test_zero_padding_needs_the_n_plus_2p_grid():
    """On the input's own grid the formula can fall below a zero-padded layer's norm; on
    bound_grid points it never does (every case checked by a dense SVD)."""
    below_on_n, below_on_grid = 0, 0
    for seed in range(30):
        g = torch.Generator().manual_seed(seed)
        for k, p, s, n in [(3, 2, 1, 5), (4, 3, 1, 5), (5, 4, 1, 6), (3, 2, 2, 4), (3, 1, 1, 6)]:
            w = torch.randn((2, 2, k, k), generator=g, dtype=torch.float64)
            exact = _norm(conv_matrix(w, s, n, padding=p))
            below_on_n += exact > conv_operator_norm_bound(w, s, n) * (1 + 1e-9)
            grid = bound_grid(n, padding=p, stride=s)
            below_on_grid += exact > conv_operator_norm_bound(w, s, grid) * (1 + 1e-9)
    assert below_on_n > 0
    assert below_on_grid == 0


def test_bound_grid_rounds_n_plus_2p_up_to_the_stride():
    assert bound_grid(224, padding=2, stride=4) == 228
    assert bound_grid(28, padding=2, stride=1) == 32
    assert bound_grid(5, padding=0, stride=2) == 6
    with pytest.raises(ValueError, match="padding"):
        bound_grid(5, padding=-1, stride=1)
    with pytest.raises(ValueError, match="stride"):
        bound_grid(5, padding=0, stride=0)


def test_bad_weights_and_grids_are_refused_with_what_to_do():
    w = torch.randn(2, 2, 3, 3)
    with pytest.raises(ValueError, match=r"weight must be a conv2d weight of shape \(D, C, k, k\)"):
        conv_operator_norm_bound(torch.randn(2, 3, 3), 1, 8)
    with pytest.raises(ValueError, match="multiple of the stride"):
        conv_operator_norm_bound(w, 2, 7)
    with pytest.raises(ValueError, match="larger than the grid"):
        conv_operator_norm_bound(w, 1, 2)
    with pytest.raises(ValueError, match="scaling must be one of"):
        conv_operator_norm_bound(w, 1, 8, scaling="paper2")
    with pytest.raises(ValueError, match="square kernels"):
        conv_operator_norm_bound(torch.randn(2, 2, 3, 2), 1, 8)


def test_operator_norm_of_a_padded_strided_conv_matches_the_dense_svd():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    exact = _norm(conv_matrix(conv.weight, 2, 8, padding=1))
    est = operator_norm(conv, (3, 8, 8), max_iter=5000, tol=1e-12)
    assert est.value == pytest.approx(exact, rel=1e-6)
    assert est.value <= exact * (1 + 1e-12)          # never above the norm
    assert layer_bound(conv, 8) >= exact             # and the bound is above both
    short = operator_norm(conv, (3, 8, 8), max_iter=2, tol=0.0)
    assert short.iterations == 2 and not short.converged and short.value <= exact
    assert conv.weight.dtype == torch.float32        # the module is not changed


def test_operator_norm_of_a_linear_layer_and_of_a_function():
    torch.manual_seed(1)
    lin = nn.Linear(30, 20)
    exact = _norm(lin.weight.detach().double())
    assert operator_norm(lin, (30,), max_iter=5000, tol=1e-13).value == pytest.approx(exact, rel=1e-6)
    a = torch.randn(5, 7, dtype=torch.float64)
    assert operator_norm(lambda x: x @ a.T, (7,), max_iter=5000, tol=1e-14).value == pytest.approx(
        _norm(a), rel=1e-6)
    with pytest.raises(ValueError, match="module must be an nn.Conv2d, an nn.Linear"):
        operator_norm(nn.ReLU(), (3,))
    with pytest.raises(ValueError, match="max_iter must be a positive integer"):
        operator_norm(lin, (30,), max_iter=0)


def test_linear_norm_dense_and_lanczos_agree_with_the_svd():
    g = torch.Generator().manual_seed(0)
    small = torch.randn(40, 90, generator=g)
    large = torch.randn(600, 700, generator=g, dtype=torch.float64)
    assert linear_norm(small) == pytest.approx(_norm(small.double()), rel=1e-10)
    assert linear_norm(large) == pytest.approx(_norm(large), rel=1e-9)
    with pytest.raises(ValueError, match=r"weight must be a matrix \(out, in\)"):
        linear_norm(torch.randn(3))


def test_layer_bound_refuses_what_the_formula_does_not_cover():
    with pytest.raises(ValueError, match="no groups"):
        layer_bound(nn.Conv2d(4, 4, 3, groups=2), 8)
    with pytest.raises(ValueError, match="input_size"):
        layer_bound(nn.Conv2d(1, 2, 3))
    with pytest.raises(ValueError, match="nn.Conv2d or an nn.Linear"):
        layer_bound(nn.ReLU())
    conv = nn.Conv2d(1, 2, 3, stride=2, padding=1)
    assert layer_bound(conv, 8, scaling="paper") == pytest.approx(layer_bound(conv, 8) / 2)


@pytest.mark.parametrize("k,s,expected", [(2, 2, 1.0), (3, 2, 2.0), (3, 1, 3.0), (2, 1, 2.0)])
def test_max_pool_lipschitz_is_attained_by_a_spike_and_never_exceeded(k, s, expected):
    assert max_pool_lipschitz(k, s) == expected
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    spike = x.clone()
    spike[0, 0, 4, 4] = 1.0
    moved = (F.max_pool2d(x + spike, k, s) - F.max_pool2d(x, k, s)).norm()
    assert float(moved) == pytest.approx(expected)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        a, b = torch.randn(2, 1, 1, 9, 9, generator=g, dtype=torch.float64)
        ratio = (F.max_pool2d(a, k, s) - F.max_pool2d(b, k, s)).norm() / (a - b).norm()
        assert float(ratio) <= expected + 1e-12


def test_local_lipschitz_is_the_jacobians_largest_singular_value():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    x = torch.randn(4, 1, 3, 4, dtype=torch.float64)
    got = local_lipschitz(net, x, max_iter=2000, tol=1e-14)
    for i in range(4):
        jac = torch.autograd.functional.jacobian(lambda v: net(v[None])[0], x[i]).reshape(3, 12)
        assert float(got[i]) == pytest.approx(_norm(jac), rel=1e-8)
    with pytest.raises(ValueError, match=r"x must be a floating-point batch"):
        local_lipschitz(net, torch.zeros(3, dtype=torch.long))


def test_certified_radius_is_below_a_linear_classifiers_exact_distance():
    """For a linear classifier the distance to the nearest other label is exact:
    min_j (z_top - z_j) / ||w_top - w_j||; the certified radius with L = ||W|| never exceeds it."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 10, generator=g, dtype=torch.float64)
    x = torch.randn(50, 10, generator=g, dtype=torch.float64)
    z = x @ w.T
    radius = certified_radius(z, _norm(w))
    top = z.argmax(1)
    for i in range(50):
        others = [j for j in range(5) if j != top[i]]
        exact = min(float((z[i, top[i]] - z[i, j]) / (w[top[i]] - w[j]).norm()) for j in others)
        assert float(radius[i]) <= exact + 1e-12
    top2 = z.topk(2, dim=1).values
    assert torch.allclose(radius, (top2[:, 0] - top2[:, 1]) / (math.sqrt(2) * _norm(w)))
    with pytest.raises(ValueError, match="lipschitz must be a positive finite number"):
        certified_radius(z, 0.0)
    with pytest.raises(ValueError, match=r"logits must have shape \(N, K\)"):
        certified_radius(z[:, :1], 1.0)


def test_fold_batchnorm_is_the_pair_in_eval_mode_and_its_bound_bounds_the_pair():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
    bn = torch.nn.BatchNorm2d(4)
    bn.train()
    for _ in range(3):                       # running statistics away from (0, 1)
        bn(conv(2 + 3 * torch.randn(8, 3, 6, 6)))
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, -2.0, 3.0, 1.0]))
        bn.bias.copy_(torch.tensor([0.1, 0.2, -0.3, 0.0]))
    bn.eval()
    folded = fold_batchnorm(conv, bn)
    x = torch.randn(5, 3, 6, 6, dtype=torch.float64)
    pair = bn.double()(conv.double()(x))
    assert torch.allclose(folded(x), pair, rtol=1e-12, atol=1e-12)
    # the pair is affine: its linear part's exact norm (dense SVD) is at most the folded bound
    dense = conv_matrix(folded.weight.detach(), 1, 6, padding=1)
    exact = float(torch.linalg.matrix_norm(dense, 2))
    assert exact <= layer_bound(folded, 6) * (1 + 1e-9)
    with pytest.raises(ValueError, match="channels"):
        fold_batchnorm(conv, torch.nn.BatchNorm2d(5))
    with pytest.raises(ValueError, match="running statistics"):
        fold_batchnorm(conv, torch.nn.BatchNorm2d(4, track_running_stats=False))


def test_avg_pool_lipschitz_is_the_averaging_matrixs_norm():
    h, w, c = 3, 5, 2
    avg = torch.nn.AdaptiveAvgPool2d(1)
    eye = torch.eye(c * h * w, dtype=torch.float64).view(-1, c, h, w)
    dense = avg(eye).view(c * h * w, c).T                 # (c, c h w)
    assert float(torch.linalg.matrix_norm(dense, 2)) == pytest.approx(
        avg_pool_lipschitz(h, w), rel=1e-12)
    with pytest.raises(ValueError, match="height"):
        avg_pool_lipschitz(0, 3)
