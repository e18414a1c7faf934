import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advtut.models import FC, FC10
from advtut.training import TrainLog, lr_schedule, train_lbfgs, train_minibatch, weight_decay_term


def test_weight_decay_is_lambda_sum_w2_over_units():
    torch.manual_seed(0)
    net = FC((5, 4), n_inputs=6, n_classes=3)
    lams = (1e-1, 1e-2, 1e-3)
    layers = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    expected = sum(lam * m.weight.pow(2).sum() / m.out_features for lam, m in zip(lams, layers))
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


# --- mini-batch training ------------------------------------------------------------------------


def _toy(n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return x, (x[:, 0] > 0).long()


def _linear(seed=1):
    torch.manual_seed(seed)
    return nn.Linear(3, 2).double()


def test_lr_schedule_by_hand():
    assert lr_schedule(0.1, schedule=None, epochs=2, steps_per_epoch=2) == (0.1,) * 4
    cos = lr_schedule(1.0, schedule="cosine", epochs=2, steps_per_epoch=2)
    assert cos == pytest.approx([1.0, (1 + math.sqrt(0.5)) / 2, 0.5, (1 - math.sqrt(0.5)) / 2])
    step = lr_schedule(1.0, schedule="step", epochs=4, steps_per_epoch=2, step_epochs=2, gamma=0.5)
    assert step == (1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5)
    assert lr_schedule(1.0, schedule="step", epochs=6, steps_per_epoch=1) == (
        1, 1, .1, .1, pytest.approx(.01), pytest.approx(.01))


def test_minibatch_sgd_equals_the_update_written_out():
    # momentum SGD with weight decay and a cosine schedule, batches in the order of a generator
    # seeded like the trainer's: w <- w - lr_t * buf, buf <- mu * buf + grad + wd * w
    x, y = _toy()
    model, ref = _linear(), _linear()
    log = train_minibatch(model, x, y, epochs=2, batch_size=4, lr=0.3, seed=7, momentum=0.9,
                          weight_decay=0.01, schedule="cosine", progress=False)
    lrs = lr_schedule(0.3, schedule="cosine", epochs=2, steps_per_epoch=3)
    g = torch.Generator().manual_seed(7)
    params = list(ref.parameters())
    bufs = [None] * len(params)
    t, losses = 0, []
    for _ in range(2):
        order, total = torch.randperm(10, generator=g), 0.0
        for i in range(0, 10, 4):
            idx = order[i:i + 4]
            loss = F.cross_entropy(ref(x[idx]), y[idx])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for j, (p, gr) in enumerate(zip(params, grads)):
                    d = gr + 0.01 * p
                    bufs[j] = d.clone() if bufs[j] is None else 0.9 * bufs[j] + d
                    p -= lrs[t] * bufs[j]
            t += 1
            total += float(loss.detach()) * len(idx)
        losses.append(total / 10)
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q)
    assert log.losses == pytest.approx(losses)
    assert (log.n_steps, log.n_evals) == (6, 6) and log.seconds >= 0


def test_first_adam_step_moves_each_weight_by_lr():
    x, y = _toy()
    model, ref = _linear(), _linear()
    grads = torch.autograd.grad(F.cross_entropy(ref(x), y), list(ref.parameters()))
    train_minibatch(model, x, y, epochs=1, batch_size=10, lr=0.01, seed=0, optimizer="adam",
                    progress=False)
    for p, q, gr in zip(model.parameters(), ref.parameters(), grads):
        torch.testing.assert_close(p - q, -0.01 * gr / (gr.abs() + 1e-8))


def test_minibatch_leaves_the_global_rng_alone_and_repeats_itself():
    x, y = _toy(n=20)
    a, b, c = _linear(), _linear(), _linear()
    state = torch.get_rng_state()
    log_a = train_minibatch(a, x, y, epochs=3, batch_size=3, lr=0.1, seed=5, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    log_b = train_minibatch(b, x, y, epochs=3, batch_size=3, lr=0.1, seed=5, progress=False)
    train_minibatch(c, x, y, epochs=3, batch_size=3, lr=0.1, seed=6, progress=False)
    assert log_a.losses == log_b.losses
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_callback_extra_loss_and_modes():
    x, y = _toy()
    steps, modes = [], []
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.0), nn.Linear(4, 2)).double().eval()
    model[0].train()                                      # a mixed mode must come back as it was
    base = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.0), nn.Linear(4, 2)).double()
    base.load_state_dict(model.state_dict())

    def callback(step, m):
        steps.append(step)
        modes.append(all(k.training for k in m.modules()))

    log = train_minibatch(model, x, y, epochs=2, batch_size=3, lr=0.1, seed=0, progress=False,
                          callback=callback, extra_loss=lambda m, xb, yb, out: torch.tensor(5.0))
    assert steps == list(range(1, 9)) and log.n_steps == 8 and all(modes)
    assert [m.training for m in model] == [True, False, False]
    ref = train_minibatch(base, x, y, epochs=2, batch_size=3, lr=0.1, seed=0, progress=False)
    assert log.losses == pytest.approx([v + 5.0 for v in ref.losses])   # constant offset, same path
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), base.parameters()))
    with pytest.raises(ValueError, match=r"extra_loss must return a scalar tensor, got \(2,\)"):
        train_minibatch(base, x, y, epochs=1, batch_size=3, lr=0.1, seed=0, progress=False,
                        extra_loss=lambda m, xb, yb, out: torch.ones(2))


def test_minibatch_learns_a_separable_problem():
    x, y = _toy(n=64)
    model = _linear()
    log = train_minibatch(model, x, y, epochs=20, batch_size=16, lr=0.5, seed=0, progress=False)
    assert log.losses[-1] < 0.5 * log.losses[0]
    assert float((model(x).argmax(1) == y).double().mean()) > 0.95


def test_lbfgs_returns_a_train_log():
    x, y = _toy(n=30)
    log = train_lbfgs(_linear(), x, y, lambdas=1e-2, max_iter=30, progress=False)
    assert isinstance(log, TrainLog) and log.diverged is False and log.initial_loss is None
    assert 1 <= log.n_steps <= 30 and log.n_evals >= log.n_steps and len(log.losses) >= 1


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs must be >= 1, got 0"),
    ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
    ({"lr": 0.0}, "lr must be > 0, got 0.0"),
    ({"optimizer": "rmsprop"}, r"optimizer must be one of \('sgd', 'adam'\), got 'rmsprop'"),
    ({"schedule": "exp"}, r"schedule must be one of \(None, 'linear', 'cosine', 'step'\), got 'exp'"),
    ({"momentum": -1.0}, "momentum and weight_decay must be >= 0"),
    ({"y": torch.zeros(9, dtype=torch.long)}, "same, non-zero number of examples, got 10 and 9"),
    ({"y": torch.zeros(10, 1, dtype=torch.long)}, r"y must have shape \(N,\), got \(10, 1\)"),
    ({"schedule": "step", "step_epochs": 0}, "step_epochs >= 1"),
])
def test_minibatch_errors(kwargs, match):
    x, y = _toy()
    settings = {"y": y, "epochs": 1, "batch_size": 4, "lr": 0.1, "seed": 0, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        train_minibatch(_linear(), x, settings.pop("y"), **settings)


def test_linear_schedule_max_steps_and_divergence():
    assert lr_schedule(1.0, schedule="linear", epochs=2, steps_per_epoch=2) == (1.0, 0.75, 0.5, 0.25)
    assert lr_schedule(1.0, schedule="linear", epochs=5, steps_per_epoch=2, max_iter=4) == \
        (1.0, 0.75, 0.5, 0.25)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    model = nn.Linear(3, 2)
    log = train_minibatch(model, x, y, epochs=10, batch_size=8, lr=0.1, seed=0, max_iter=7,
                          progress=False)
    assert log.n_steps == 7 and len(log.step_losses) == 7 and len(log.losses) == 2
    assert log.initial_loss is not None and not log.diverged
    blow_up = lambda m, xb, yb, logits: torch.tensor(float("inf"))  # noqa: E731
    log = train_minibatch(nn.Linear(3, 2), x, y, epochs=2, batch_size=8, lr=0.1, seed=0,
                          extra_loss=blow_up, progress=False)
    assert log.diverged and log.n_steps == 0 and log.step_losses == ()


def test_uint8_images_train_as_pixels_in_the_unit_interval():
    g = torch.Generator().manual_seed(1)
    u8 = torch.randint(0, 256, (30, 4), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 2, (30,), generator=g)
    a, b = nn.Linear(4, 2), nn.Linear(4, 2)
    b.load_state_dict(a.state_dict())
    train_minibatch(a, u8, y, epochs=2, batch_size=8, lr=0.1, seed=0, progress=False)
    train_minibatch(b, u8.float() / 255, y, epochs=2, batch_size=8, lr=0.1, seed=0, progress=False)
    torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=0)
