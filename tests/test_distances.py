import math

import pytest
import torch

from advtut.distances import l2, linf, rms


def test_distances_by_hand():
    a = torch.tensor([[[3.0, 0.0], [0.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]])   # (2, 2, 2)
    b = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [1.0, 1.0]]])
    torch.testing.assert_close(l2(a, b), torch.tensor([5.0, math.sqrt(2)]))
    torch.testing.assert_close(rms(a, b), torch.tensor([5.0 / 2, math.sqrt(2) / 2]))  # n = 4
    torch.testing.assert_close(linf(a, b), torch.tensor([4.0, 1.0]))
    torch.testing.assert_close(l2(b, a), l2(a, b))


def test_rms_is_l2_over_28_for_mnist_and_the_papers_distortion():
    x = torch.rand(5, 1, 28, 28, dtype=torch.float64)
    x_adv = torch.rand(5, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(rms(x_adv, x), l2(x_adv, x) / 28)
    torch.testing.assert_close(rms(x_adv, x), (x_adv - x).pow(2).mean((1, 2, 3)).sqrt())


def test_dtype_is_kept_and_any_trailing_dims_work():
    a64 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)               # (N,): one element each
    assert l2(a64, torch.zeros(3, dtype=torch.float64)).dtype == torch.float64
    torch.testing.assert_close(linf(a64, torch.zeros_like(a64)), a64.abs())
    torch.testing.assert_close(rms(a64, torch.zeros_like(a64)), a64.abs())
    a32 = torch.ones(2, 3, 4, 5, 6)
    assert rms(a32, torch.zeros_like(a32)).dtype == torch.float32
    torch.testing.assert_close(l2(a32, torch.zeros_like(a32)), torch.full((2,), math.sqrt(360)))
    assert l2(torch.zeros(0, 3), torch.zeros(0, 3)).shape == (0,)


@pytest.mark.parametrize("a, b, match", [
    (torch.zeros(2, 3), torch.zeros(2, 4), r"a and b must have the same shape, got \(2, 3\) and \(2, 4\)"),
    (torch.zeros(()), torch.zeros(()), "batch dimension"),
    (torch.zeros(2, 3, dtype=torch.uint8), torch.zeros(2, 3, dtype=torch.uint8), "floating point"),
    (torch.zeros(2, 0), torch.zeros(2, 0), "at least one element"),
])
def test_distance_errors(a, b, match):
    for f in (l2, rms, linf):
        with pytest.raises(ValueError, match=match):
            f(a, b)
