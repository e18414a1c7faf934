"""Per-example distances between two batches of the same shape ``(N, ...)``.

Each quantity has one name and one unit; ``n`` is the number of elements of one example
(784 for a 28 x 28 grey image, ``3 * H * W`` for an RGB one), ``r = a - b`` flattened per example.

============  ==============================  ==================================================
function      quantity                        unit
============  ==============================  ==================================================
``l2``        ``sqrt(sum r^2)``               the inputs' unit; grows as sqrt(n) with size
``rms``       ``sqrt(sum r^2 / n)``           the inputs' unit per element: ``l2 / sqrt(n)``
``linf``      ``max |r|``                     the inputs' unit: the largest single change
============  ==============================  ==================================================

``rms`` is what Szegedy et al. (2014, Table 1) and the Szegedy chapter call *distortion*: for
MNIST in [0, 1], ``rms = l2 / 28``. Every function returns ``(N,)`` in the inputs' (promoted)
floating dtype: float64 stays float64. Integer inputs (uint8 pixels) are refused, since their
difference wraps around; convert (and scale) them first.

Example::

    rms(x_adv, x)      # (N,) Szegedy et al.'s distortion of each adversarial example
"""
from __future__ import annotations

import math

import torch

__all__ = ["l2", "rms", "linf"]


def _diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a - b`` flattened per example: ``(N, n)``."""
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim == 0:
        raise ValueError("a and b must have a batch dimension (N, ...), got scalars")
    if not (a.is_floating_point() and b.is_floating_point()):
        raise ValueError(f"a and b must be floating point, got {a.dtype} and {b.dtype}: convert "
                         "integer pixels first (their difference would wrap around)")
    n = math.prod(a.shape[1:])
    if n == 0:
        raise ValueError(f"each example must hold at least one element, got shape {tuple(a.shape)}")
    return (a - b).reshape(a.shape[0], n)


def l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sqrt(sum((a - b)^2))`` over each example: ``(N,)``, for ``a``, ``b`` of shape ``(N, ...)``."""
    return torch.linalg.vector_norm(_diff(a, b), dim=1)


def rms(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sqrt(sum((a - b)^2) / n)`` per example, ``n`` its number of elements: ``(N,)``.

    Szegedy et al.'s distortion; equal to ``l2(a, b) / sqrt(n)``.
    """
    d = _diff(a, b)
    return torch.linalg.vector_norm(d, dim=1) / math.sqrt(d.shape[1])


def linf(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``max |a - b|`` over each example: ``(N,)``."""
    return _diff(a, b).abs().amax(dim=1)
