"""Training under a Lipschitz budget: keep every layer's operator-norm bound at most a target.

Example (a :func:`advtut.training.train_minibatch` callback)::

    project = ProjectToBound(2.0, layers=lambda m: [("conv1", m.conv1, 28), ("fc1", m.fc1, None)],
                             every=10, n_steps=n_steps)
    train_minibatch(model, x, y, epochs=5, seed=0, callback=project)
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from advtut.spectral import layer_bound

__all__ = ["ProjectToBound"]

#: ``layers(model)``: each layer to keep bounded as ``(name, module, input_size)``, where
#: ``input_size`` is the height and width of a convolution's input (``None`` for a linear layer).
Layers = Callable[[nn.Module], Iterable[tuple[str, nn.Module, "int | None"]]]


class ProjectToBound:
    """A training callback that keeps every rectified layer's bound at most ``target``.

    Every ``every`` steps and at step ``n_steps`` (the last) each layer of ``layers(model)``
    whose :func:`~advtut.spectral.layer_bound` exceeds ``target`` has its weight scaled down to
    it: a network of L such layers (and 1-Lipschitz activations and pools) keeps a Lipschitz
    bound of at most ``target ** L``. A hard version of the
    paper's suggestion to penalise the bounds (spectral normalisation scales the same way, by
    the reshaped kernel's norm instead of the convolution's).
    """

    def __init__(self, target: float, *, layers: Layers, every: int, n_steps: int):
        if not target > 0:
            raise ValueError(f"target must be > 0, got {target}")
        if every < 1 or n_steps < 1:
            raise ValueError(f"every and n_steps must be >= 1, got {every} and {n_steps}")
        self.target, self.every, self.n_steps = float(target), int(every), int(n_steps)
        self.layers = layers

    @torch.no_grad()
    def __call__(self, step: int, model: nn.Module) -> None:
        if step % self.every and step != self.n_steps:
            return
        for _, module, size in self.layers(model):
            b = layer_bound(module, size)
            if b > self.target:
                module.weight.mul_(self.target / b)
