"""The batched box-constrained L-BFGS solver against scipy's L-BFGS-B and a closed form.
(Fixtures: tests/attacks/conftest.py.)"""
import torch
from scipy.optimize import minimize

from advtut.attacks.base import random_wrong_labels
from advtut.attacks.box_lbfgs import box_lbfgs
from advtut.attacks.lbfgs import penalty_objective


def _random_targets(model, x, seed=1):
    with torch.no_grad():
        pred = model(x).argmax(1)
    return random_wrong_labels(pred, seed=seed, n_classes=10)


def test_box_lbfgs_matches_scipy_on_a_small_network(small_net, mnist_small):
    net, x = small_net, mnist_small[0]
    x0 = x[:4].double().flatten(1)
    target = _random_targets(net, x[:4].double(), seed=3)
    c = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    fun = penalty_objective(net, x0, target, c)
    z, f, _ = box_lbfgs(fun, x0, max_iter=1000, tol=1e-7)
    for i in range(4):
        one = penalty_objective(net, x0[i:i + 1], target[i:i + 1], c[i:i + 1])

        def f_np(v):
            t = torch.tensor(v, dtype=torch.float64).view(1, -1).requires_grad_(True)
            val = one(t).sum()
            val.backward()
            return float(val.detach()), t.grad.numpy().ravel()

        # scipy starts a hair inside the box (the L2 norm is not differentiable at r = 0)
        start = (x0[i] + 1e-6 * torch.sign(0.5 - x0[i])).numpy()
        ref = minimize(f_np, start, jac=True, method="L-BFGS-B", bounds=[(0, 1)] * 784,
                       options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10})
        assert float(f[i]) <= ref.fun + 1e-6 * max(1.0, abs(ref.fun)), (i, float(f[i]), ref.fun)


def test_box_lbfgs_solves_a_box_constrained_quadratic_exactly():
    # minimize ||z - a||^2 over [0, 1]^m: the answer is clip(a, 0, 1)
    a = torch.tensor([[-0.5, 0.3, 1.7, 0.9], [2.0, -1.0, 0.5, 0.0]], dtype=torch.float64)
    z, f, n_iter = box_lbfgs(lambda z, rows: (z - a[rows]).pow(2).sum(1), torch.full_like(a, 0.5), tol=1e-12)
    torch.testing.assert_close(z, a.clamp(0, 1), atol=1e-10, rtol=0)

