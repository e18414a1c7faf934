"""The L-BFGS attack against exact references: the QP optimum on a linear model, scipy's
L-BFGS-B on the same objective and c for a small network (the reference in
tests/attacks/lbfgs_reference.py), the search over c on its own, and its invariants and errors.
(Fixtures: tests/attacks/conftest.py.)"""
import copy
import math

import pytest
import torch
from lbfgs_reference import lbfgs_attack_scipy  # tests/attacks/lbfgs_reference.py
from torch import nn

from advtut.attacks.base import random_wrong_labels
from advtut.attacks.lbfgs import (
    LBFGSSearch,
    SearchState,
    c_search_step,
    lbfgs_attack,
    refine_on_boundary,
)
from advtut.distances import rms
from advtut.linear import LinearSoftmax
from advtut.minimal_move import exact_minimal_move_box
from advtut.models import FC10


def _random_targets(model, x, seed=1):
    """A seeded wrong label for each example, other than the model's current one."""
    with torch.no_grad():
        pred = model(x).argmax(1)
    return random_wrong_labels(pred, seed=seed, n_classes=10)


def test_attack_is_near_the_exact_optimum_on_fc10(fc10, mnist_small):
    x = mnist_small[0][:50]
    target = _random_targets(fc10, x)
    result = lbfgs_attack(fc10, x, target)
    assert result.success.all()
    ratio = _exact_ratio(fc10, x, result, target)
    assert ratio.min() >= 1 - 1e-4  # nothing beats the optimum
    assert ratio.median() <= 1.02, f"median ratio {ratio.median():.4f}"


def _exact_ratio(model, x, result, target):
    lin = model[1]
    lin = LinearSoftmax(lin.weight.detach().double(), lin.bias.detach().double())
    exact = exact_minimal_move_box(lin, x.flatten(1).double(), target)
    assert exact.feasible.all()
    # exact: ||r||_2; ours: the RMS distance, ||r||_2 / sqrt(n)
    return result.distortion.double() / (exact.distance / math.sqrt(x[0].numel()))


def test_refinement_reaches_the_exact_optimum_on_fc10(fc10, mnist_small):
    model, x = copy.deepcopy(fc10).double(), mnist_small[0][:50].double()
    target = _random_targets(model, x, seed=5)
    faithful = lbfgs_attack(model, x, target)
    refined = refine_on_boundary(model, x, faithful, target)
    assert refined.success.all() and refined.x_adv.min() >= 0 and refined.x_adv.max() <= 1
    with torch.no_grad():
        assert (model(refined.x_adv).argmax(1) == target).all()
    assert (refined.distortion <= faithful.distortion).all()
    ratio = _exact_ratio(model, x, refined, target)
    assert ratio.min() >= 1 - 1e-6
    assert ratio.median() <= 1.003 and ratio.max() <= 1.01, (float(ratio.median()),
                                                             float(ratio.max()))
    # the option is the same computation
    torch.testing.assert_close(lbfgs_attack(model, x[:5], target[:5], refine=True).distortion,
                               refined.distortion[:5], rtol=1e-6, atol=0)


FINE = LBFGSSearch(c_rel_tol=1e-5, tol=1e-9)


def test_penalty_is_exact_for_two_classes_but_not_for_ten(fc10, mnist_small):
    """The paper: 'exact for convex losses'. True for a binary linear model (the cross-entropy is a
    function of the one margin), not for ten classes (softmax weights mix the ties differently
    from the QP's multipliers), however finely c is bisected."""
    x = mnist_small[0][:40].double()
    ten = copy.deepcopy(fc10).double()
    two = FC10(n_classes=2).double().eval()
    with torch.no_grad():  # 3 against 5, from the trained weights
        two[1].weight.copy_(ten[1].weight[[3, 5]])
        two[1].bias.copy_(ten[1].bias[[3, 5]])
    t2 = 1 - two(x).argmax(1)
    r2 = _exact_ratio(two, x, lbfgs_attack(two, x, t2, settings=FINE), t2)
    assert r2.max() <= 1.001, float(r2.max())
    t10 = _random_targets(ten, x, seed=6)
    r10 = _exact_ratio(ten, x, lbfgs_attack(ten, x, t10, settings=FINE), t10)
    assert r10.max() >= 1.01, float(r10.max())


def test_batched_attack_matches_scipy_on_a_small_network(small_net, mnist_small):
    net, x = small_net, mnist_small[0]
    xs = x[:20].double()
    target = _random_targets(net, xs, seed=7)
    ours = lbfgs_attack(net, xs, target)
    ref = lbfgs_attack_scipy(net, xs, target)
    assert ours.success.all() and ref.success.all()
    # the objective is not convex: a rounding difference (another CPU's kernels) can send one
    # solve to another local minimum and the search over c another way, so single examples
    # differ both ways (by up to a half here). What matters is that the batched solver is no
    # worse than the reference: on the median, on most examples and on average. (At a fixed c
    # the objective values agree to 1e-6: test_box_lbfgs_matches_scipy_on_a_small_network.)
    ratio = ours.distortion / ref.distortion
    assert float(ratio.median()) <= 1.01, ratio
    assert float(ratio.le(1.02).double().mean()) >= 0.6, ratio
    assert float(ours.distortion.mean() / ref.distortion.mean()) <= 1.02, ratio


def test_invariants(fc10, mnist_small):
    x = mnist_small[0][:8].clone()
    x_before = x.clone()
    grads_before = [None if p.grad is None else p.grad.clone() for p in fc10.parameters()]
    target = _random_targets(fc10, x, seed=2)
    result = lbfgs_attack(fc10, x, target, norm="l2_squared")
    assert result.x_adv.shape == x.shape and result.x_adv.dtype == x.dtype
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert torch.equal(x, x_before) and not fc10.training
    for p, before in zip(fc10.parameters(), grads_before):  # the model's .grad is untouched
        assert (p.grad is None and before is None) or torch.equal(p.grad, before)
    with torch.no_grad():
        labels = fc10(result.x_adv).argmax(1)
    assert torch.equal(labels == target, result.success)
    torch.testing.assert_close(result.distortion, rms(result.x_adv, x), rtol=0, atol=0)
    assert (result.c[result.success] > 0).all() and (result.n_solves >= 2).all()


@pytest.mark.parametrize("make, match", [
    (lambda x, t: (x + 0.5, t),
     r"x must lie in \[0, 1\]; got min .* for x of shape \(4, 1, 28, 28\)"),
    (lambda x, t: (x, t[:3]), r"expected target to have shape \(4,\), got \(3,\)"),
    (lambda x, t: (x, t.float()), "long tensor"),
    (lambda x, t: (x, torch.full_like(t, 10)), r"target must be a class in \[0, 10\)"),
    (lambda x, t: (x[0, 0, 0], t), "batch dimension"),
    (lambda x, t: (x[:0], t[:0]), "empty batch"),
    (lambda x, t: (torch.where(x > 0.5, torch.nan, x), t), "NaN"),
])
def test_bad_input_is_a_clear_value_error(fc10, mnist_small, make, match):
    x = mnist_small[0][:4]
    bad_x, bad_t = make(x, _random_targets(fc10, x))
    with pytest.raises(ValueError, match=match):
        lbfgs_attack(fc10, bad_x, bad_t)


def test_target_equal_to_current_label_is_refused(fc10, mnist_small):
    x = mnist_small[0][:4]
    with torch.no_grad():
        same = fc10(x).argmax(1)
    with pytest.raises(ValueError, match="current label"):
        lbfgs_attack(fc10, x, same)


def test_c_search_stays_inside_its_bounds(fc10, mnist_small):
    x = mnist_small[0][:6]
    target = _random_targets(fc10, x, seed=4)
    free = lbfgs_attack(fc10, x, target)
    assert (free.c[free.success] > 2.0).all()  # unbounded, every example settles above 2 ...
    capped = lbfgs_attack(fc10, x, target, settings=LBFGSSearch(c_init=1.0, c_max=2.0))
    assert capped.success.all() and torch.equal(capped.c, torch.full_like(capped.c, 2.0))
    assert (capped.distortion >= free.distortion - 1e-6).all()  # ... so the cap costs distortion
    floor = float(free.c.max()) * 20  # above every example's largest successful c: all miss
    none = lbfgs_attack(fc10, x, target,
                        settings=LBFGSSearch(c_init=floor, c_min=floor, c_max=floor * 10))
    assert not none.success.any() and torch.isnan(none.c).all()
    assert torch.equal(none.x_adv, x) and (none.distortion == 0).all()
    with pytest.raises(ValueError, match="history >= 1"):
        LBFGSSearch(history=0)
    with pytest.raises(ValueError, match="c_min <= c_init"):
        LBFGSSearch(c_init=10.0, c_max=2.0)
    with pytest.raises(ValueError, match="settings must be an LBFGSSearch"):
        lbfgs_attack(fc10, x, target, settings=dict(c_rel_tol=0.1))


def test_the_convex_shortcut_changes_nothing_on_a_linear_model(fc10, mnist_small):
    model, x = copy.deepcopy(fc10).double(), mnist_small[0][:10].double()
    target = _random_targets(model, x, seed=9)
    plain = lbfgs_attack(model, x, target)
    fast = lbfgs_attack(model, x, target, convex=True)
    torch.testing.assert_close(fast.distortion, plain.distortion, rtol=1e-4, atol=0)
    assert fast.n_iter.sum() <= plain.n_iter.sum()


def test_works_under_no_grad(fc10, mnist_small):
    x = mnist_small[0][:3]
    target = _random_targets(fc10, x, seed=10)
    with torch.no_grad():
        result = lbfgs_attack(fc10, x, target, refine=True)
    assert result.success.all()
    with torch.inference_mode(), pytest.raises(ValueError, match="outside torch.inference_mode"):
        lbfgs_attack(fc10, x, target)


def test_unknown_norm(fc10, mnist_small):
    x = mnist_small[0][:2]
    with pytest.raises(ValueError, match="norm must be one of"):
        lbfgs_attack(fc10, x, _random_targets(fc10, x), norm="linf")


def test_each_example_is_its_own_problem(fc10, mnist_small):
    """Batched (with restarts mid-batch as each search over c moves on) or alone: the same
    answer on a convex model, so no example's solve leaks into another's."""
    model, x = copy.deepcopy(fc10).double(), mnist_small[0][:8].double()
    target = _random_targets(model, x, seed=8)
    together = lbfgs_attack(model, x, target)
    alone = [lbfgs_attack(model, x[i:i + 1], target[i:i + 1]) for i in range(8)]
    torch.testing.assert_close(together.distortion, torch.cat([a.distortion for a in alone]),
                               rtol=2e-3, atol=0)
    assert torch.equal(together.n_solves, torch.cat([a.n_solves for a in alone]))


def _search(c_star, *, c_min=1e-6, c_max=1e6, c_rel_tol=0.01, c_init=1.0):
    """Run c_search_step against a known threshold: the target is reached iff c <= c_star."""
    c_star = torch.as_tensor(c_star, dtype=torch.float64)
    c = torch.full_like(c_star, c_init)
    c_ok, c_fail = torch.zeros_like(c), torch.full_like(c, math.inf)
    done, tried = torch.zeros_like(c, dtype=torch.bool), []
    for _ in range(100):
        tried.append(c.clone())
        step = c_search_step(c, c <= c_star, c_ok, c_fail, c_min=c_min, c_max=c_max,
                             c_rel_tol=c_rel_tol)
        keep = done.clone()
        c_ok = torch.where(keep, c_ok, step.c_ok)
        c_fail = torch.where(keep, c_fail, step.c_fail)
        c = torch.where(keep, c, step.c_next)
        done |= step.done
        if done.all():
            return c_ok, c_fail, tried
    raise AssertionError("the search over c did not end")


def test_c_search_brackets_by_tens_then_bisects_geometrically():
    # by hand, threshold 5: 1 hits, 10 misses, then sqrt(1 * 10), ...
    c_ok, c_fail, tried = _search([5.0])
    torch.testing.assert_close(torch.cat(tried[:3]),
                               torch.tensor([1.0, 10.0, math.sqrt(10.0)], dtype=torch.float64))
    # threshold 0.5: 1 misses, 0.1 hits, then sqrt(0.1 * 1)
    _, _, tried = _search([0.5])
    torch.testing.assert_close(torch.cat(tried[:3]),
                               torch.tensor([1.0, 0.1, math.sqrt(0.1)], dtype=torch.float64))
    c_star = torch.tensor([5.0, 0.5, 3e-4, 7e3, 1.0])
    c_ok, c_fail, _ = _search(c_star)
    assert (c_ok <= c_star).all() and (c_star < c_fail).all()
    assert (c_fail / c_ok - 1 <= 0.01).all()


def test_c_search_gives_up_at_its_bounds():
    c_ok, c_fail, tried = _search([1e-9, 1e9], c_min=1e-3, c_max=1e3)
    assert c_ok[0] == 0 and c_fail[0] == pytest.approx(1e-3)      # missed even at c_min
    assert c_ok[1] == pytest.approx(1e3) and math.isinf(c_fail[1])  # reached even at c_max
    assert all(((t >= 1e-3 * (1 - 1e-12)) & (t <= 1e3 * (1 + 1e-12))).all() for t in tried)


def _batchnorm_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.BatchNorm1d(10)).double()


def test_a_model_in_train_mode_is_refused(mnist_small):
    net, x = _batchnorm_net(), mnist_small[0][:8].double()
    stats = net[2].running_mean.clone(), net[2].num_batches_tracked.clone()
    target = torch.zeros(8, dtype=torch.long)
    with pytest.raises(ValueError, match="lbfgs_attack needs the model in eval mode"):
        lbfgs_attack(net, x, target)
    # refused before any forward pass: the BatchNorm statistics are untouched
    assert torch.equal(net[2].running_mean, stats[0])
    assert torch.equal(net[2].num_batches_tracked, stats[1])
    net.eval()
    target = _random_targets(net, x, seed=12)
    res = lbfgs_attack(net, x, target)
    assert res.success.all() and not net.training
    net.train()
    with pytest.raises(ValueError, match="refine_on_boundary needs the model in eval mode"):
        refine_on_boundary(net, x, res, target)


def test_search_state_books_a_solve_by_hand():
    """Two examples, logits = the input itself: one solve reaches the target, one misses."""
    flat = torch.tensor([[0.9, 0.1], [0.9, 0.1]], dtype=torch.float64)
    state = SearchState(lambda z: z, flat, torch.tensor([1, 1]), LBFGSSearch())
    z = torch.tensor([[0.2, 0.8], [0.9, 0.1]], dtype=torch.float64)
    done = state.record(torch.tensor([0, 1]), z, torch.tensor([5, 0]))
    assert not done.any() and state.todo.all()
    assert torch.equal(state.c, torch.tensor([10.0, 0.1], dtype=torch.float64))  # up, down by 10
    assert torch.equal(state.c_ok, torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert torch.equal(state.c_fail, torch.tensor([math.inf, 1.0], dtype=torch.float64))
    assert state.n_iter.tolist() == [5, 0] and state.n_solves.tolist() == [1, 1]
    res = state.result(flat.view(2, 1, 2))
    assert res.success.tolist() == [True, False] and res.c[0] == 1 and torch.isnan(res.c[1])
    assert torch.equal(res.x_adv[0, 0], z[0]) and torch.equal(res.x_adv[1, 0], flat[1])
    torch.testing.assert_close(res.distortion, torch.tensor([0.7, 0.0], dtype=torch.float64))


def test_progress_is_a_tqdm_bar_not_prints(fc10, mnist_small, capsys):
    x = mnist_small[0][:3]
    target = _random_targets(fc10, x, seed=11)
    quiet = lbfgs_attack(fc10, x, target)
    loud = lbfgs_attack(fc10, x, target, progress=True)
    out = capsys.readouterr()
    assert out.out == "" and "lbfgs_attack" in out.err
    assert torch.equal(quiet.x_adv, loud.x_adv)
