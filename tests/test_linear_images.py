"""Chapter 2's pieces against exact references: the source's toy numbers, the affine form of the
pixel softmax, the L-infinity optimum against the direct LP and the two-class closed form,
template fooling, smoothness."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from scipy.sparse import csr_matrix, hstack, identity, vstack

from advtut.attacks.template import fool_with_template
from advtut.chapters.linear_imagenet.experiments import toy_example
from advtut.evaluation import topk_accuracy
from advtut.linear import LinearSoftmax
from advtut.linear_images import (
    PixelSoftmax,
    fooling_costs,
    initial_loss,
    pixel_mean,
    resize,
    smoothness,
    to_unit,
    train_pixel_softmax,
    train_softmax,
)
from advtut.minimal_move import exact_minimal_move_box, exact_minimal_move_linf_box, two_class_bounds


def direct_linf_lp(model: LinearSoftmax, x: np.ndarray, t: int) -> float:
    """The reference: ``min s  s.t.  ties >= 0, |r_i| <= s, 0 <= x + r <= 1`` as one HiGHS LP
    (inf where infeasible); exact, and slow beyond small problems."""
    A, c = model.weight.numpy(), model.bias.numpy()
    d = A.shape[1]
    others = [j for j in range(len(A)) if j != t]
    D, e = A[t] - A[others], c[t] - c[others]
    eye, ones = identity(d, format="csr"), csr_matrix(np.ones((d, 1)))
    rows = vstack([hstack([csr_matrix(-D), csr_matrix((len(D), 1))]),
                   hstack([eye, -ones]), hstack([-eye, -ones])]).tocsr()
    rhs = np.concatenate([D @ x + e, np.zeros(2 * d)])
    cost = np.zeros(d + 1)
    cost[-1] = 1.0
    res = linprog(cost, A_ub=rows, b_ub=rhs, bounds=[(-xi, 1 - xi) for xi in x] + [(0, None)],
                  method="highs")
    assert res.status in (0, 2), res.message
    return math.inf if res.status == 2 else res.x[-1]


def test_toy_example_is_the_sources():
    toy = toy_example()
    assert toy.score == -3 and toy.score_ad == 2
    assert round(toy.p, 4) == 0.0474 and round(toy.p_ad, 2) == 0.88
    assert toy.x_ad.tolist() == [1.5, -1.5, 3.5, -2.5, 2.5, 1.5, 1.5, -3.5, 4.5, 1.5]
    assert toy.score_ad - toy.score == 0.5 * abs(toy.w).sum()


def _model(k=5, shape=(3, 4, 4), scale=255.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = math.prod(shape)
    m = PixelSoftmax(d, k, scale=scale, mean=torch.rand(d, generator=g) * scale, init_std=0.0)
    with torch.no_grad():
        m.linear.weight.copy_(torch.randn(k, d, generator=g) * 1e-3)
        m.linear.bias.copy_(torch.randn(k, generator=g))
    return m.double()


def test_affine_form_gives_the_same_scores():
    m = _model()
    x = torch.rand(7, 3, 4, 4, dtype=torch.float64)
    aff = m.affine()
    torch.testing.assert_close(x.flatten(1) @ aff.weight.T + aff.bias, m(x))
    assert m.templates((3, 4, 4)).shape == (5, 3, 4, 4)


def test_linf_lp_equals_the_closed_form_for_two_classes_inside_the_box():
    g = torch.Generator().manual_seed(1)
    d = 40
    model = LinearSoftmax(torch.randn(2, d, generator=g, dtype=torch.float64),
                          torch.tensor([0.3, 0.0], dtype=torch.float64))
    x = 0.4 + 0.2 * torch.rand(6, d, generator=g, dtype=torch.float64)  # far from the box's faces
    scores = x @ model.weight.T + model.bias
    target = 1 - scores.argmax(1)
    t = exact_minimal_move_linf_box(model, x, target).distance
    l2, linf = two_class_bounds(model, x, target)
    assert (linf < 0.4).all()  # so the box never binds and the closed form is exact
    torch.testing.assert_close(t, linf, rtol=1e-6, atol=1e-9)
    exact = exact_minimal_move_box(model, x, target)
    torch.testing.assert_close(exact.distance, l2, rtol=1e-5, atol=1e-8)


def test_linf_lp_with_many_classes_is_feasible_and_above_the_bound():
    g = torch.Generator().manual_seed(2)
    d, k = 30, 6
    model = LinearSoftmax(torch.randn(k, d, generator=g, dtype=torch.float64),
                          torch.randn(k, generator=g, dtype=torch.float64))
    x = torch.rand(5, d, generator=g, dtype=torch.float64)
    pred = (x @ model.weight.T + model.bias).argmax(1)
    target = (pred + 1) % k
    move = exact_minimal_move_linf_box(model, x, target)
    t = move.distance
    _, bound = two_class_bounds(model, x, target)
    assert (t >= bound - 1e-9).all()
    # any feasible perturbation bounds the optimum from above: the exact L2 optimum is one
    l2 = exact_minimal_move_box(model, x, target)
    assert l2.feasible.all()
    assert (t <= l2.r.abs().amax(1) + 1e-7).all() and (t > 0).all()
    assert move.feasible.all() and (move.x_new >= 0).all() and (move.x_new <= 1).all()
    torch.testing.assert_close(move.r.abs().amax(1), t)
    z = move.x_new @ model.weight.T + model.bias
    assert (z.gather(1, target[:, None]) >= z.max(1, keepdim=True).values - 1e-9).all()
    with pytest.raises(ValueError, match=r"x must have shape"):
        exact_minimal_move_linf_box(model, x[:, :-1], target)
    with pytest.raises(ValueError, match=r"x must lie in"):
        exact_minimal_move_linf_box(model, x + 1, target)


def test_linf_optimum_equals_the_direct_lp():
    rng = np.random.default_rng(0)
    infeasible = 0
    for _ in range(25):
        d, k = int(rng.integers(2, 120)), int(rng.integers(2, 25))
        model = LinearSoftmax(torch.tensor(rng.normal(size=(k, d))),
                              torch.tensor(rng.normal(size=k) * rng.uniform(0, 8)))
        x = rng.uniform(size=d)
        t = int(rng.integers(k))
        ref = direct_linf_lp(model, x, t)
        move = exact_minimal_move_linf_box(model, torch.tensor(x)[None], [t])
        if math.isinf(ref):
            infeasible += 1
            assert not move.feasible[0] and math.isinf(move.distance[0])
        else:
            assert move.feasible[0]
            assert abs(float(move.distance[0]) - ref) <= 1e-9 * max(1.0, ref)
    assert 0 < infeasible < 25  # both kinds of problem were met


def test_template_fooling_reaches_the_confidence_at_the_smallest_step():
    m = _model(k=4, scale=1.0)
    with torch.no_grad():
        m.linear.weight.mul_(500)
    x = torch.rand(6, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    pred = m(x).argmax(1)
    target = (pred + 1) % 4
    res = fool_with_template(m, x, target, confidence=0.9, alpha_max=1.0)
    assert res.success.any()
    ok = res.success
    assert (res.p_target[ok] >= 0.9).all()
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    # a hair less step does not reach it
    again = fool_with_template(m, x[ok], target[ok], confidence=0.9, alpha_max=1.0)
    torch.testing.assert_close(again.alpha, res.alpha[ok])
    a = m.templates((3, 4, 4))[target[ok]]
    a = a / a.flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    below = (x[ok] + 0.999 * res.alpha[ok].view(-1, 1, 1, 1) * a).clamp(0, 1)
    assert (m(below).softmax(1).gather(1, target[ok, None]).squeeze(1) < 0.9).all()
    torch.testing.assert_close(res.linf[ok], (res.x_adv[ok] - x[ok]).flatten(1).abs().amax(1))


def test_smoothness_is_one_for_noise_and_small_for_smooth_images():
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(3, 3, 32, 32, generator=g)
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(3, 3, 32, 32)
    assert ((smoothness(noise) - 1).abs() < 0.05).all()
    assert (smoothness(ramp) < 0.01).all()
    torch.testing.assert_close(smoothness(7 * noise), smoothness(noise))


def test_training_lowers_the_loss_and_a_huge_rate_diverges():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(200, 3, 8, 8, generator=g)
    y = (x[:, 1].mean((1, 2)) > x[:, 0].mean((1, 2))).long()  # "green" images
    m = PixelSoftmax(192, 2, scale=255.0, mean=255 * x.flatten(1).mean(0), init_std=1e-4)
    log = train_softmax(m, x, y, lr=1e-4, weight_decay=0.0, epochs=20, batch_size=50, progress=False)
    assert abs(log.initial_loss - math.log(2)) < 0.05 and not log.diverged
    assert topk_accuracy(m, x, y, ks=(1,))[1] > 0.9
    bad = PixelSoftmax(192, 2, scale=255.0, mean=255 * x.flatten(1).mean(0), init_std=1e-4)
    log = train_softmax(bad, x, y, lr=1e3, weight_decay=0.0, epochs=5, optimizer="sgd", progress=False)
    assert log.diverged or max(log.step_losses) > 1e3
    with pytest.raises(ValueError, match="optimizer"):
        train_softmax(m, x, y, lr=1e-3, weight_decay=0, epochs=1, optimizer="lbfgs")


def test_resize_averages_blocks():
    x = torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(resize(x, 4), x.unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2)))


def test_template_fooling_to_the_top_class_and_the_costs_bracket():
    m = _model(k=4, scale=1.0)
    with torch.no_grad():
        m.linear.weight.mul_(300)
    x = torch.rand(5, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    target = (m(x).argmax(1) + 1) % 4
    top = fool_with_template(m, x, target, confidence=None)
    assert top.success.all()
    assert (m(top.x_adv).argmax(1) == target).all()
    costs = fooling_costs(m, x, target, progress=False)
    assert costs.feasible.all()
    # bound <= exact optimum <= the heuristic, in both norms
    assert (costs.bound_linf <= costs.exact_linf + 1e-9).all()
    assert (costs.exact_linf <= costs.template_linf + 1e-6).all()
    assert (costs.bound_rms <= costs.exact_rms + 1e-9).all()
    assert (costs.exact_rms <= costs.template_rms + 1e-6).all()
    with pytest.raises(ValueError, match=r"target must be a class in \[0, 4\)"):
        fool_with_template(m, x, target + 4)


def test_initial_loss_is_log_k_for_a_small_init_and_large_for_a_big_one():
    x = torch.rand(300, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    y = torch.randint(0, 50, (300,), generator=torch.Generator().manual_seed(8))
    assert abs(initial_loss(x, y, n_classes=50, init_std=1e-6) - math.log(50)) < 1e-3
    assert initial_loss(x, y, n_classes=50, init_std=1e-2) > 3 * math.log(50)
    u8 = (x * 255).round().to(torch.uint8)
    torch.testing.assert_close(pixel_mean(u8, scale=255.0), 255 * pixel_mean(u8.float() / 255),
                               rtol=1e-6, atol=1e-4)
    with pytest.raises(ValueError, match="empty"):
        pixel_mean(x[:0])


def test_train_pixel_softmax_is_seeded_and_takes_uint8():
    g = torch.Generator().manual_seed(9)
    x = torch.rand(120, 3, 8, 8, generator=g)
    y = (x[:, 1].mean((1, 2)) > x[:, 0].mean((1, 2))).long()
    u8 = (x * 255).round().to(torch.uint8)
    a, _ = train_pixel_softmax(u8, y, n_classes=2, weight_decay=1e-3, epochs=3, lr=1e-3, progress=False)
    b, _ = train_pixel_softmax(u8, y, n_classes=2, weight_decay=1e-3, epochs=3, lr=1e-3, progress=False)
    c, _ = train_pixel_softmax(u8.float() / 255, y, n_classes=2, weight_decay=1e-3, epochs=3, lr=1e-3,
                               progress=False)
    torch.testing.assert_close(a.linear.weight, b.linear.weight, rtol=0, atol=0)
    torch.testing.assert_close(a.linear.weight, c.linear.weight)
    assert topk_accuracy(a, to_unit(u8), y, ks=(1,)) == topk_accuracy(a, u8.float() / 255, y, ks=(1,))


def test_seeded_inits_leave_the_callers_random_state_alone():
    x = torch.rand(40, 3, 4, 4, generator=torch.Generator().manual_seed(10))
    y = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(11))
    before = torch.get_rng_state()
    initial_loss(x, y, n_classes=3, init_std=1e-2, seed=5)
    train_pixel_softmax(x, y, n_classes=3, weight_decay=0.0, epochs=1, seed=5, progress=False)
    assert torch.equal(torch.get_rng_state(), before)


def test_chapter_2_runs_on_an_imagenet_folder(tmp_path):
    """The ``imagenet_root`` path of the chapter (uint8 ImageFolder data, named classes) end to end
    on a tiny fake ImageNet: 10 classes of flat-coloured noise, written as a plain script."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    from advtut.book import chapter_script

    rng = np.random.default_rng(0)
    root = tmp_path / "imagenet"
    for split, n in (("train", 8), ("val", 3)):
        for k in range(10):
            (root / split / f"n{k:08d}").mkdir(parents=True)
            for i in range(n):
                a = rng.uniform(size=(60, 80, 3)) * 60 + np.array([20 * k, 100, 200 - 15 * k])
                image = Image.fromarray(a.clip(0, 255).astype(np.uint8))
                image.save(root / split / f"n{k:08d}" / f"{i}.JPEG")
    (root / "LOC_synset_mapping.txt").write_text("\n".join(
        f"n{k:08d} " + {3: "goldfish", 5: "school bus"}.get(k, f"class {k}") for k in range(10)))
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "02_linear_imagenet.ipynb"
    script = tmp_path / "ch2.py"
    out = tmp_path / "ch2.json"
    script.write_text(chapter_script(notebook, {"imagenet_root": str(root), "results_path": str(out),
                                                "device": "cpu"}))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    by_name = {r["name"]: r for r in doc["results"]}
    note = by_name["best top-1 validation accuracy"]["note"]
    assert "ImageNet-1k at 64x64, 80 training / 30 validation" in note
    assert any(name.startswith("fooling α") and "goldfish" in name for name in by_name)


def test_template_attack_runs_the_model_in_eval_mode_and_restores_it():
    m = _model(k=3, scale=1.0).float()
    m.add_module("drop", torch.nn.Dropout(0.5))  # would make a train-mode attack random
    seen = []
    m.register_forward_pre_hook(lambda mod, args: seen.append(mod.training))
    fool_with_template(m.train(), torch.rand(2, 3, 4, 4), torch.tensor([0, 1]))
    assert seen and not any(seen) and m.training and m.drop.training
