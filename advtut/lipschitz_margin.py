"""Lipschitz-margin training (Tsuzuku, Sato and Sugiyama, 2018): ask for a margin that grows
with the network's Lipschitz constant, so that training enlarges the certified radius itself.

A network whose logit map is ``L``-Lipschitz keeps its label within ``margin / (sqrt 2 L)``
(:func:`advtut.spectral.certified_radius`). To certify a radius ``eps`` the margin must exceed
``sqrt 2 L eps``; Lipschitz-margin training adds exactly that to every wrong logit before the
cross-entropy (:func:`lipschitz_margin_logits`), with ``L`` the product of the layers' norms
estimated by one power-iteration step per training step and back-propagated through
(:class:`LipschitzMargin`), so that the loss can be lowered by a larger margin *or* a smaller
constant. At ``eps = 0`` it is the plain cross-entropy.

Example (a :func:`advtut.training.train_minibatch` loss)::

    lmt = LipschitzMargin(0.5, layers=cnn_layers)         # eps = 0.5 in L2, pixels in [0, 1]
    train_minibatch(model, x, y, epochs=2, batch_size=128, lr=0.05, seed=0, loss=lmt)
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["lipschitz_margin_logits", "lipschitz_margin_loss", "LipschitzMargin"]


def lipschitz_margin_logits(logits: torch.Tensor, y: torch.Tensor, *, lipschitz, eps: float
                            ) -> torch.Tensor:
    """``logits`` ``(N, K)`` with ``sqrt 2 * lipschitz * eps`` added to every logit but the
    true one (``y`` ``(N,)``): the logits of the worst case the certificate must survive.
    ``lipschitz``: a float or a scalar tensor (gradients flow through it); ``eps >= 0``."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise ValueError("logits must have shape (N, K), got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else logits!r}")
    if not isinstance(y, torch.Tensor) or y.shape != (len(logits),):
        raise ValueError(f"y must have shape ({len(logits)},), got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    wrong = 1.0 - F.one_hot(y.long(), logits.shape[1]).to(logits.dtype)
    shift = math.sqrt(2.0) * lipschitz * eps
    return logits + shift * wrong


def lipschitz_margin_loss(logits: torch.Tensor, y: torch.Tensor, *, lipschitz,
                          eps: float) -> torch.Tensor:
    """The mean cross-entropy of :func:`lipschitz_margin_logits`: a scalar tensor."""
    return F.cross_entropy(lipschitz_margin_logits(logits, y, lipschitz=lipschitz, eps=eps), y)


#: ``layers(model)``: the layers whose norms multiply to the constant, as ``(name, module,
#: input_size)`` (``input_size``: a convolution's input height and width, ``None`` if linear).
Layers = Callable[[nn.Module], Iterable[tuple[str, nn.Module, "int | None"]]]


class LipschitzMargin:
    """A :func:`~advtut.training.train_minibatch` loss: Lipschitz-margin training at ``eps``.

    ``layers(model)``: the rectified layers (activations and pools between them 1-Lipschitz).
    Each call runs one power-iteration step per layer from a vector kept between calls (the
    bias-free layer as applied, with its padding and stride; the adjoint from autograd) and
    takes ``sigma = ||A v||`` for the unit vector ``v``, with gradients through the weights;
    ``L = prod sigma`` enters :func:`lipschitz_margin_loss`. The request scales with the
    network (scaling every weight scales the margin and ``L`` alike), so an ``eps`` far above
    the radii the network can reach makes training shrink every logit instead. The estimate
    approaches each
    layer's norm from below as training proceeds, so it is no certificate: certify with
    :func:`advtut.spectral.layer_bound`. ``last_lipschitz`` holds the latest ``L`` (a float).
    """

    def __init__(self, eps: float, *, layers: Layers, seed: int = 0):
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.eps, self.layers, self.seed = float(eps), layers, int(seed)
        self._v: dict[str, torch.Tensor] = {}
        self.last_lipschitz = math.nan

    @staticmethod
    def _linear_map(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        if isinstance(module, nn.Conv2d):
            return lambda v: F.conv2d(v, module.weight, stride=module.stride,
                                      padding=module.padding, dilation=module.dilation,
                                      groups=module.groups)
        if isinstance(module, nn.Linear):
            return lambda v: F.linear(v, module.weight)
        raise ValueError(f"LipschitzMargin handles nn.Conv2d and nn.Linear, got "
                         f"{type(module).__name__}")

    def _start(self, name: str, module: nn.Module, size: int | None) -> torch.Tensor:
        w = module.weight
        shape = (1, module.in_features) if isinstance(module, nn.Linear) else (
            1, module.in_channels, size, size)
        gen = torch.Generator().manual_seed(self.seed + len(self._v))
        v = torch.randn(shape, generator=gen, dtype=w.dtype).to(w.device)
        return v / v.norm()

    def lipschitz(self, model: nn.Module) -> torch.Tensor:
        """One power step per layer; the product of the norm estimates (a scalar tensor)."""
        total = None
        for name, module, size in self.layers(model):
            f = self._linear_map(module)
            v = self._v.get(name)
            if v is None:
                v = self._start(name, module, size)
            with torch.enable_grad():                         # v <- A^T A v / ||A^T A v||
                vv = v.detach().requires_grad_(True)
                out = f(vv)
                (g,) = torch.autograd.grad(out, vv, grad_outputs=out.detach())
            v = (g / g.norm().clamp_min(1e-30)).detach()
            self._v[name] = v
            sigma = f(v).norm()
            total = sigma if total is None else total * sigma
        if total is None:
            raise ValueError("layers(model) gave no layers")
        self.last_lipschitz = float(total.detach())
        return total

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 logits: torch.Tensor) -> torch.Tensor:
        lip = self.lipschitz(model) if self.eps > 0 else 0.0
        return lipschitz_margin_loss(logits, y, lipschitz=lip, eps=self.eps)
