"""Training loops: full-batch L-BFGS with the paper's weight decay, and a mini-batch loop.

Szegedy et al. (2014) train every MNIST model "with L-BFGS until convergence" and add
``lambda * sum(w^2) / k`` per layer to the loss, ``k`` the number of units in the layer (here:
the layer's output units). The data loss is the mean cross-entropy over the training set (the
paper does not say mean or sum; ``data_loss="sum"`` gives the other reading).

The later chapters' CNNs train with :func:`train_minibatch`: SGD with momentum or Adam, seeded
shuffling, an optional learning-rate schedule (:func:`lr_schedule`), an optional extra loss term
(a Parseval or spectral penalty) and a per-step callback (attribution snapshots).

Every trainer returns a :class:`TrainLog`.

Example::

    log = train_minibatch(model, x, y, epochs=2, batch_size=128, lr=0.05, seed=0)
    log.losses          # mean training loss of each epoch
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

from advtut.evaluation import model_mode

__all__ = ["TrainLog", "weight_decay_term", "train_lbfgs", "train_sparse_autoencoder",
           "OPTIMIZERS", "SCHEDULES", "lr_schedule", "train_minibatch"]


@dataclass(frozen=True)
class TrainLog:
    """What a training run did.

    ``losses``: the training objective, one float per epoch for :func:`train_minibatch` (the
    mean over the epoch's examples of cross-entropy plus ``extra_loss``, as the weights moved
    during the epoch), one per L-BFGS outer step (of up to 25 iterations) for the L-BFGS
    trainers; ``n_steps``: optimizer steps (L-BFGS iterations); ``n_evals``: evaluations of the
    loss and its gradient (equal to ``n_steps`` for mini-batch training); ``seconds``: wall time.
    :func:`train_minibatch` also records ``step_losses`` (the batch loss of every step),
    ``initial_loss`` (the cross-entropy of the first batch, before any step) and ``diverged``
    (a batch loss became NaN or infinite and training stopped there).
    """

    losses: tuple[float, ...]
    n_steps: int
    n_evals: int
    seconds: float
    step_losses: tuple[float, ...] = ()
    initial_loss: float | None = None
    diverged: bool = False


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def weight_decay_term(model: nn.Module, lambdas) -> torch.Tensor:
    """``sum_layers lambda_l * sum(W_l^2) / k_l`` over the model's ``nn.Linear`` layers in order.

    ``lambdas``: one value for all layers or one per layer (the paper gives
    ``1e-5, 1e-5, 1e-6`` for its three-layer networks). Biases are not decayed.
    """
    layers = _linears(model)
    lambdas = [float(lambdas)] * len(layers) if isinstance(lambdas, (int, float)) else list(lambdas)
    if len(lambdas) != len(layers):
        raise ValueError(f"lambdas needs one value per linear layer ({len(layers)}), got {len(lambdas)}")
    return sum(lam * layer.weight.pow(2).sum() / layer.out_features
               for lam, layer in zip(lambdas, layers))


def _run_lbfgs(params, loss_fn, *, max_iter: int, history: int, progress: bool,
               desc: str) -> TrainLog:
    """Full-batch L-BFGS (strong Wolfe) on ``loss_fn()`` over ``params``, in chunks of 25 steps."""
    start = time.perf_counter()
    params = list(params)
    opt = torch.optim.LBFGS(params, lr=1, max_iter=25, history_size=history,
                            tolerance_grad=1e-7, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")
    evals = 0

    def closure():
        nonlocal evals
        evals += 1
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    losses = []
    with tqdm(total=max_iter, desc=desc, disable=not progress, mininterval=2.0) as bar:
        done = 0
        while done < max_iter:
            opt.param_groups[0]["max_iter"] = min(25, max_iter - done)
            before = evals
            loss = float(opt.step(closure).detach())
            losses.append(loss)
            state = opt.state[opt._params[0]]
            step_iters = state.get("n_iter", 0) - done
            done = state.get("n_iter", done)
            bar.update(max(step_iters, 0))
            if evals - before <= 1:  # converged: the step did no work
                break
    return TrainLog(losses=tuple(losses), n_steps=done, n_evals=evals,
                    seconds=time.perf_counter() - start)


def train_lbfgs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lambdas=0.0,
                max_iter: int = 500, data_loss: str = "mean", history: int = 20,
                progress: bool = True, desc: str = "L-BFGS") -> TrainLog:
    """Full-batch L-BFGS (strong Wolfe line search) on ``CE(model(x), y) + weight decay``.

    ``x``: ``(N, ...)``, ``y``: ``(N,)``; ``max_iter``: L-BFGS iterations (run in chunks of 25
    for the progress bar, labelled ``desc``; it stops early at convergence). Leaves the model in
    eval mode.
    """
    if data_loss not in ("mean", "sum"):
        raise ValueError(f"data_loss must be 'mean' or 'sum', got {data_loss!r}")
    if len(x) != len(y):
        raise ValueError(f"x and y must hold the same number of examples, got {len(x)} and {len(y)}")
    model.train()
    result = _run_lbfgs(
        model.parameters(),
        lambda: F.cross_entropy(model(x), y, reduction=data_loss) + weight_decay_term(model, lambdas),
        max_iter=max_iter, history=history, progress=progress, desc=desc)
    model.eval()
    return result


def train_sparse_autoencoder(encoder: nn.Linear, decoder: nn.Linear, x: torch.Tensor, *,
                             sparsity: float = 0.1, beta: float = 3.0, weight_decay: float = 3e-3,
                             max_iter: int = 400, progress: bool = True) -> TrainLog:
    """A sparse sigmoid autoencoder (UFLDL's), trained with full-batch L-BFGS.

    ``x``: ``(N, ...)`` in [0, 1], flattened to ``(N, m)``; ``encoder``: ``Linear(m, h)``,
    ``decoder``: ``Linear(h, m)``, both followed by a sigmoid. The loss is

        1/(2N) sum ||x_hat - x||^2 + weight_decay/2 (||W_enc||^2 + ||W_dec||^2)
        + beta * sum_j KL(sparsity || mean activation of unit j)

    with the defaults of the UFLDL tutorial's MNIST exercise (``sparsity=0.1``, ``beta=3``,
    ``weight_decay=3e-3``, 400 L-BFGS iterations); Szegedy et al. do not give theirs.
    """
    if not 0 < sparsity < 1 or beta < 0 or weight_decay < 0:
        raise ValueError(f"need 0 < sparsity < 1, beta >= 0, weight_decay >= 0; got sparsity={sparsity}, "
                         f"beta={beta}, weight_decay={weight_decay}")
    flat = x.flatten(1)
    if flat.shape[1] != encoder.in_features or decoder.out_features != encoder.in_features:
        raise ValueError(f"x has {flat.shape[1]} inputs, the encoder takes {encoder.in_features} and "
                         f"the decoder gives {decoder.out_features}")

    def loss():
        a = torch.sigmoid(encoder(flat))
        x_hat = torch.sigmoid(decoder(a))
        rho_hat = a.mean(0).clamp(1e-6, 1 - 1e-6)
        kl = (sparsity * torch.log(sparsity / rho_hat)
              + (1 - sparsity) * torch.log((1 - sparsity) / (1 - rho_hat))).sum()
        decay = encoder.weight.pow(2).sum() + decoder.weight.pow(2).sum()
        return 0.5 * (x_hat - flat).pow(2).sum(1).mean() + weight_decay / 2 * decay + beta * kl

    return _run_lbfgs([*encoder.parameters(), *decoder.parameters()], loss, max_iter=max_iter,
                      history=20, progress=progress, desc="autoencoder L-BFGS")


OPTIMIZERS = ("sgd", "adam")
SCHEDULES = (None, "linear", "cosine", "step")


def lr_schedule(lr: float, *, schedule: str | None, epochs: int, steps_per_epoch: int,
                step_epochs: int | None = None, gamma: float = 0.1,
                max_iter: int | None = None) -> tuple[float, ...]:
    """The learning rate of each of the ``T = epochs * steps_per_epoch`` optimizer steps (at most
    ``max_iter``).

    ``schedule``: ``None``, constant ``lr``; ``"linear"``, ``lr * (1 - t / T)``, annealed to 0
    over the run (Caffe's "poly" with power 1; the last steps leave no optimizer noise);
    ``"cosine"``, ``lr * (1 + cos(pi * t / T)) / 2`` at
    step ``t = 0, ..., T - 1`` of ``T`` (from ``lr`` down towards 0, without restarts);
    ``"step"``, ``lr * gamma ** (epoch // step_epochs)``, the rate multiplied by ``gamma`` every
    ``step_epochs`` epochs (default: a third of the epochs, at least 1).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"epochs and steps_per_epoch must be >= 1, got {epochs} and {steps_per_epoch}")
    if max_iter is not None and max_iter < 1:
        raise ValueError(f"max_iter must be >= 1 or None, got {max_iter}")
    total = epochs * steps_per_epoch
    total = total if max_iter is None else min(total, max_iter)
    if schedule is None:
        return (float(lr),) * total
    if schedule == "linear":
        return tuple(lr * max(0.0, 1 - t / total) for t in range(total))
    if schedule == "cosine":
        return tuple(lr * (1 + math.cos(math.pi * t / total)) / 2 for t in range(total))
    step_epochs = max(1, epochs // 3) if step_epochs is None else step_epochs
    if step_epochs < 1 or not gamma > 0:
        raise ValueError(f"the step schedule needs step_epochs >= 1 and gamma > 0, got "
                         f"step_epochs={step_epochs}, gamma={gamma}")
    return tuple(lr * gamma ** (t // steps_per_epoch // step_epochs) for t in range(total))


def train_minibatch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
                    batch_size: int, lr: float, seed: int, optimizer: str = "sgd",
                    momentum: float = 0.9, weight_decay: float = 0.0, schedule: str | None = None,
                    step_epochs: int | None = None, gamma: float = 0.1,
                    max_iter: int | None = None,
                    extra_loss: Callable[..., torch.Tensor] | None = None,
                    loss: Callable[..., torch.Tensor] | None = None,
                    callback: Callable[[int, nn.Module], None] | None = None,
                    progress: bool = True, desc: str = "train") -> TrainLog:
    """Mini-batch training on the mean cross-entropy of ``model(x_batch)`` (or ``loss``),
    plus ``extra_loss``.

    ``x``: ``(N, ...)`` in the model's input range, ``y``: long ``(N,)`` class indices; both may
    stay on the CPU: each batch is moved to the model's device and ``x`` cast to its dtype
    (uint8 images are pixels 0-255, scaled to [0, 1], as in :mod:`advtut.evaluation`). Each
    epoch visits every example once in an order drawn from a local ``torch.Generator`` seeded with
    ``seed`` (the last batch
    may be smaller); the global RNG is not touched (random layers such as dropout still draw
    from it). ``optimizer``: ``"sgd"`` (with ``momentum``) or ``"adam"`` (``momentum`` unused);
    ``weight_decay``: the optimizer's L2 decay on every trainable parameter; ``schedule``,
    ``step_epochs``, ``gamma``: the learning rate per step, see :func:`lr_schedule`;
    ``max_iter``: stop after that many steps. Training stops early, with ``diverged`` set, when
    a batch loss is NaN or infinite (that step is not taken).

    ``loss(model, x_batch, y_batch, logits)``: a scalar tensor that replaces the cross-entropy
    (e.g. :class:`advtut.lipschitz_margin.LipschitzMargin`); ``initial_loss`` is then its first
    value. ``extra_loss(model, x_batch, y_batch, logits)``: a scalar tensor added to the batch loss;
    ``callback(step, model)``: called after optimizer step ``step = 1, 2, ..., n_steps``, with
    the model in train mode. The model is in train mode while training; every module's mode is
    restored afterwards. Parameters with ``requires_grad=False`` are left alone.

    Example::

        log = train_minibatch(MnistCNN(), x, y, epochs=2, batch_size=128, lr=0.05, seed=0)
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if momentum < 0 or weight_decay < 0:
        raise ValueError(f"momentum and weight_decay must be >= 0, got {momentum} and {weight_decay}")
    if y.ndim != 1:
        raise ValueError(f"y must have shape (N,), got {tuple(y.shape)}")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must hold the same, non-zero number of examples, got {len(x)} "
                         f"and {len(y)}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no parameters with requires_grad=True to train")
    n = len(x)
    steps_per_epoch = math.ceil(n / batch_size)
    lrs = lr_schedule(lr, schedule=schedule, epochs=epochs, steps_per_epoch=steps_per_epoch,
                      step_epochs=step_epochs, gamma=gamma, max_iter=max_iter)
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    device, dtype = params[0].device, params[0].dtype
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    losses: list[float] = []
    step_losses: list[float] = []
    initial, diverged, step = None, False, 0
    with model_mode(model, training=True), tqdm(total=len(lrs), desc=desc, unit="step",
                                                disable=not progress, mininterval=2.0) as bar:
        for _ in range(epochs):
            order = torch.randperm(n, generator=g)
            total = torch.zeros((), device=device, dtype=dtype)   # summed batch losses
            seen = 0
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                xb = _as_input(x[idx.to(x.device)].to(device), dtype)
                yb = y[idx.to(y.device)].to(device)
                for group in opt.param_groups:
                    group["lr"] = lrs[step]
                logits = model(xb)                                   # (B, K)
                batch_loss = (F.cross_entropy(logits, yb) if loss is None
                              else _checked_extra(loss(model, xb, yb, logits), "loss"))
                if initial is None:
                    initial = float(batch_loss.detach())
                if extra_loss is not None:
                    batch_loss = batch_loss + _checked_extra(extra_loss(model, xb, yb, logits))
                if not torch.isfinite(batch_loss):
                    diverged = True
                    break
                opt.zero_grad(set_to_none=True)
                batch_loss.backward()
                opt.step()
                step += 1
                step_losses.append(float(batch_loss.detach()))
                total = total + batch_loss.detach() * len(idx)
                seen += len(idx)
                if callback is not None:
                    callback(step, model)
                bar.update()
                if step == len(lrs):
                    break
            if seen:  # the mean over the examples this epoch trained on
                losses.append(float(total) / seen)
                bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
            if diverged or step == len(lrs):
                break
    return TrainLog(losses=tuple(losses), n_steps=step, n_evals=step,
                    seconds=time.perf_counter() - start, step_losses=tuple(step_losses),
                    initial_loss=initial, diverged=diverged)


def _as_input(xb: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A batch in the model's dtype; uint8 images (pixels 0-255) scaled to [0, 1]."""
    return (xb.float().div_(255.0) if xb.dtype == torch.uint8 else xb).to(dtype)


def _checked_extra(extra, name: str = "extra_loss") -> torch.Tensor:
    if not isinstance(extra, torch.Tensor) or extra.ndim != 0:
        what = tuple(extra.shape) if isinstance(extra, torch.Tensor) else type(extra).__name__
        raise ValueError(f"{name} must return a scalar tensor, got {what}")
    return extra
