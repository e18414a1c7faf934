"""Chapter 4's adversarial training: a network trained on with a pool of adversarial examples of
itself beside a control trained on as long without (Szegedy et al., 2014, section 4.2, input
layer only).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from advtut.attacks.sets import adversarial_set
from advtut.chapters.blindspots.experiments import _cached
from advtut.chapters.blindspots.source import ModelSpec
from advtut.evaluation import error_rate
from advtut.training import train_lbfgs

__all__ = ["AdversarialTraining", "adversarial_training"]


@dataclass(frozen=True)
class AdversarialTraining:
    """Test errors of the two continuations of one trained network: ``control`` (the training set
    alone) and ``adversarial`` (training set plus the pool); ``pool_size`` examples at the end;
    ``errors_control``/``errors_adversarial``: the test error after each round."""

    control: float
    adversarial: float
    pool_size: int
    errors_control: tuple[float, ...]
    errors_adversarial: tuple[float, ...]


def adversarial_training(model: nn.Module, spec: ModelSpec, x: torch.Tensor, y: torch.Tensor,
                         x_test: torch.Tensor, y_test: torch.Tensor, *, rounds: int,
                         per_round: int, max_iter: int, seed: int, pool_max: int | None = None,
                         cache=None, progress: bool = True) -> AdversarialTraining:
    """Continue training ``model`` with and without a pool of adversarial examples.

    Each round: attack ``per_round`` random training images of the current adversarially trained
    network (seeded random wrong targets, the faithful attack with a coarse ``c`` search, 10%),
    add them to the pool with their *true* labels (dropping random old ones beyond
    ``pool_max``), and run ``max_iter`` L-BFGS iterations on training set plus pool. The control
    copy runs the same iterations on the training set alone. Input-layer pools only: the paper's
    per-layer pools are not specified closely enough to reproduce. ``cache``: as in
    :func:`train_model`. ``model`` itself is not changed.
    """
    if rounds < 1 or per_round < 1 or max_iter < 1:
        raise ValueError(f"need rounds, per_round, max_iter >= 1; got {rounds}, {per_round}, "
                         f"{max_iter}")
    if cache is not None:
        return _cached(cache, lambda: adversarial_training(
            model, spec, x, y, x_test, y_test, rounds=rounds, per_round=per_round,
            max_iter=max_iter, seed=seed, pool_max=pool_max, progress=progress),
            AdversarialTraining)
    g = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    control, adv = copy.deepcopy(model), copy.deepcopy(model)
    x, y = x.cpu(), y.cpu()
    pool_x, pool_y = x[:0], y[:0]
    errs_c, errs_a = [], []
    for r in range(rounds):
        pick = torch.randperm(len(x), generator=g)[:per_round]
        aset = adversarial_set(adv, x[pick], y[pick], seed=seed + 1000 + r, c_rel_tol=0.1,
                               progress=progress, desc=f"attack pool, round {r + 1}")
        new = aset.success & (aset.distortion > 0)
        pool_x = torch.cat([pool_x, aset.x_adv[new]])
        pool_y = torch.cat([pool_y, aset.y[new]])
        if pool_max is not None and len(pool_x) > pool_max:
            keep = torch.randperm(len(pool_x), generator=g)[:pool_max]
            pool_x, pool_y = pool_x[keep], pool_y[keep]
        train_lbfgs(adv, torch.cat([x, pool_x]).to(dev), torch.cat([y, pool_y]).to(dev),
                    lambdas=spec.lambdas, max_iter=max_iter, progress=progress,
                    desc=f"L-BFGS round {r + 1}, with the pool")
        train_lbfgs(control, x.to(dev), y.to(dev), lambdas=spec.lambdas, max_iter=max_iter,
                    progress=progress, desc=f"L-BFGS round {r + 1}, control")
        errs_c.append(error_rate(control, x_test, y_test))
        errs_a.append(error_rate(adv, x_test, y_test))
    return AdversarialTraining(errs_c[-1], errs_a[-1], len(pool_x), tuple(errs_c),
                               tuple(errs_a))
