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

__all__ = ["TrainResult", "weight_decay_term", "train_lbfgs"]


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


def train_lbfgs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lambdas=0.0,
                max_iter: int = 500, data_loss: str = "mean", history: int = 20,
                progress: bool = True) -> TrainResult:
    """Full-batch L-BFGS (strong Wolfe line search) on ``CE(model(x), y) + weight decay``.

    ``x``: ``(N, ...)``, ``y``: ``(N,)``; ``max_iter``: L-BFGS iterations (run in chunks of 25
    for the progress bar; it stops early at convergence). Leaves the model in eval mode.
    """
    if data_loss not in ("mean", "sum"):
        raise ValueError(f"data_loss must be 'mean' or 'sum', got {data_loss!r}")
    model.train()
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=25, history_size=history,
                            tolerance_grad=1e-7, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")
    evals = 0

    def closure():
        nonlocal evals
        evals += 1
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y, reduction=data_loss) + weight_decay_term(model, lambdas)
        loss.backward()
        return loss

    losses = []
    with tqdm(total=max_iter, desc="L-BFGS", disable=not progress, mininterval=2.0) as bar:
        done = 0
        while done < max_iter:
            before = evals
            loss = float(opt.step(closure).detach())
            losses.append(loss)
            state = opt.state[opt._params[0]]
            step_iters = state.get("n_iter", 0) - done
            done = state.get("n_iter", done)
            bar.update(max(step_iters, 0))
            if evals - before <= 1:  # converged: the step did no work
                break
    model.eval()
    return TrainResult(tuple(losses), evals)
