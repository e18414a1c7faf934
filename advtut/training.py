"""Training loops: full-batch L-BFGS with the paper's weight decay.

Szegedy et al. (2014) train every MNIST model "with L-BFGS until convergence" and add
``lambda * sum(w^2) / k`` per layer to the loss, ``k`` the number of units in the layer (here:
the layer's output units). The data loss is the mean cross-entropy over the training set (the
paper does not say mean or sum; ``data_loss="sum"`` gives the other reading).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

__all__ = ["TrainResult", "weight_decay_term", "train_lbfgs", "train_sparse_autoencoder"]


@dataclass(frozen=True)
class TrainResult:
    """``losses``: the objective after each L-BFGS outer step; ``n_evals``: function evaluations."""

    losses: tuple[float, ...]
    n_evals: int


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
               desc: str) -> TrainResult:
    """Full-batch L-BFGS (strong Wolfe) on ``loss_fn()`` over ``params``, in chunks of 25 steps."""
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
    return TrainResult(tuple(losses), evals)


def train_lbfgs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lambdas=0.0,
                max_iter: int = 500, data_loss: str = "mean", history: int = 20,
                progress: bool = True) -> TrainResult:
    """Full-batch L-BFGS (strong Wolfe line search) on ``CE(model(x), y) + weight decay``.

    ``x``: ``(N, ...)``, ``y``: ``(N,)``; ``max_iter``: L-BFGS iterations (run in chunks of 25
    for the progress bar; it stops early at convergence). Leaves the model in eval mode.
    """
    if data_loss not in ("mean", "sum"):
        raise ValueError(f"data_loss must be 'mean' or 'sum', got {data_loss!r}")
    if len(x) != len(y):
        raise ValueError(f"x and y must hold the same number of examples, got {len(x)} and {len(y)}")
    model.train()
    result = _run_lbfgs(
        model.parameters(),
        lambda: F.cross_entropy(model(x), y, reduction=data_loss) + weight_decay_term(model, lambdas),
        max_iter=max_iter, history=history, progress=progress, desc="L-BFGS")
    model.eval()
    return result


def train_sparse_autoencoder(encoder: nn.Linear, decoder: nn.Linear, x: torch.Tensor, *,
                             sparsity: float = 0.1, beta: float = 3.0, weight_decay: float = 3e-3,
                             max_iter: int = 400, progress: bool = True) -> TrainResult:
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
