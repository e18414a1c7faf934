import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from advtut.linear import LinearSoftmax
from advtut.minimal_move import exact_minimal_move, minimal_move_gd, pairwise_lower_bound

# w0 = 0, w1 = e1, w2 = e2, no bias: class 1 wins where x1 >= 0 and x1 >= x2.
HAND = LinearSoftmax(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), torch.zeros(3))


def test_hand_computed_moves():
    x = torch.tensor([[-1.0, -2.0], [-1.0, 1.0], [2.0, 1.0]], dtype=torch.float64)
    move = exact_minimal_move(HAND, x, torch.tensor([1, 1, 1]))
    # (-1,-2): straight to the x1 = 0 edge; (-1, 1): to the corner (0, 0); (2, 1): already class 1
    torch.testing.assert_close(move.x_new, torch.tensor([[0.0, -2.0], [0.0, 0.0], [2.0, 1.0]],
                                                        dtype=torch.float64))
    torch.testing.assert_close(move.distance, torch.tensor([1.0, math.sqrt(2.0), 0.0], dtype=torch.float64))
    assert move.active == ((0,), (0, 2), ())


def test_pairwise_bound_lands_in_the_wrong_region_where_a_third_class_is_in_the_way():
    x = torch.tensor([[-1.0, 1.0]], dtype=torch.float64)  # predicted class 2 (x2 largest)
    bound = pairwise_lower_bound(HAND, x, torch.tensor([1]))
    # tie line of classes 2 and 1 is x1 = x2: foot point (0, 0) is on the corner: feasible, equal
    assert float(bound.distance[0]) == pytest.approx(math.sqrt(2.0))
    y = torch.tensor([[-3.0, -1.0]], dtype=torch.float64)  # predicted class 0
    b2 = pairwise_lower_bound(HAND, y, torch.tensor([2]))  # tie 0|2 is x2 = 0: foot (-3, 0)
    torch.testing.assert_close(b2.x_new, torch.tensor([[-3.0, 0.0]], dtype=torch.float64))
    assert bool(b2.feasible[0])  # at (-3, 0) classes 0 and 2 tie at 0, class 1 scores -3
    e2 = exact_minimal_move(HAND, y, torch.tensor([2]))
    assert float(e2.distance[0]) == pytest.approx(1.0)
    # from (3, 4) (class 2) to class 0: the foot point on the tie 2|0 (x2 = 0) is (3, 0), where
    # class 1 wins; the true answer is the corner (0, 0) at distance 5
    z = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    b3 = pairwise_lower_bound(HAND, z, torch.tensor([0]))
    e3 = exact_minimal_move(HAND, z, torch.tensor([0]))
    assert not bool(b3.feasible[0]) and float(b3.distance[0]) == pytest.approx(4.0)
    assert float(e3.distance[0]) == pytest.approx(5.0) and e3.active == ((1, 2),)


def _scipy_projection(model, x, t):
    """Reference: min ||z - x||^2 s.t. z_t >= z_j for j != t, with SLSQP."""
    W, b = model.weight.numpy(), model.bias.numpy()
    cons = [{"type": "ineq", "fun": (lambda z, j=j: (W[t] - W[j]) @ z + b[t] - b[j]),
             "jac": (lambda z, j=j: W[t] - W[j])} for j in range(len(W)) if j != t]
    res = minimize(lambda z: 0.5 * np.sum((z - x) ** 2), x, jac=lambda z: z - x,
                   constraints=cons, method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
    return res.x


@pytest.mark.parametrize("k, d", [(3, 2), (4, 2), (5, 3), (4, 4)])
def test_exact_matches_scipy_on_random_models(k, d):
    g = torch.Generator().manual_seed(10 * k + d)
    model = LinearSoftmax(torch.randn(k, d, generator=g, dtype=torch.float64),
                          torch.randn(k, generator=g, dtype=torch.float64))
    x = 3 * torch.randn(40, d, generator=g, dtype=torch.float64)
    target = torch.randint(0, k, (40,), generator=g)
    move = exact_minimal_move(model, x, target)
    bound = pairwise_lower_bound(model, x, target)
    for i in range(40):
        ref = _scipy_projection(model, x[i].numpy(), int(target[i]))
        assert float(move.distance[i]) == pytest.approx(np.linalg.norm(ref - x[i].numpy()), abs=1e-6)
        # the answer is in the target's closed region and the bound is below it
        z = model.logits(move.x_new[i])[0]
        assert z[target[i]] >= z.max() - 1e-9
        assert bound.distance[i] <= move.distance[i] + 1e-12
        if bound.feasible[i]:  # a feasible foot point is optimal: the bound is tight
            assert float(bound.distance[i]) == pytest.approx(float(move.distance[i]), abs=1e-9)


@pytest.mark.parametrize("k, d, seed", [(6, 3, 0), (6, 3, 1), (5, 4, 2)])
def test_gradient_descent_agrees_with_exact_for_more_classes(k, d, seed):
    g = torch.Generator().manual_seed(seed)
    model = LinearSoftmax(torch.randn(k, d, generator=g, dtype=torch.float64),
                          torch.randn(k, generator=g, dtype=torch.float64))
    x = 2 * torch.randn(20, d, generator=g, dtype=torch.float64)
    target = (model.predict(x) + 1) % k
    exact = exact_minimal_move(model, x, target)
    gd = minimal_move_gd(model.logits, x, target, outer_steps=60, inner_steps=400)
    torch.testing.assert_close(gd.distance, exact.distance, atol=1e-7, rtol=0)
    assert gd.feasible.all()


def test_gradient_descent_agrees_with_exact():
    g = torch.Generator().manual_seed(3)
    model = LinearSoftmax(torch.randn(3, 2, generator=g, dtype=torch.float64),
                          torch.randn(3, generator=g, dtype=torch.float64))
    x = 2 * torch.randn(12, 2, generator=g, dtype=torch.float64)
    target = (model.predict(x) + 1) % 3
    exact = exact_minimal_move(model, x, target)
    gd = minimal_move_gd(model.logits, x, target, outer_steps=20, inner_steps=300)
    torch.testing.assert_close(gd.x_new, exact.x_new, atol=1e-8, rtol=0)
    assert gd.feasible.all()


def test_input_checks():
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\)"):
        exact_minimal_move(HAND, torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="target must be a class"):
        exact_minimal_move(HAND, torch.zeros(2, 2), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        pairwise_lower_bound(HAND, torch.zeros(2, 2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="rho"):
        minimal_move_gd(HAND.logits, torch.zeros(2, 2, dtype=torch.float64), torch.tensor([0, 1]), rho=0)
