"""Training under a Lipschitz budget: keep every layer's operator-norm bound at most a target.

Two ways to get there, each a :func:`advtut.training.train_minibatch` callback:

- :class:`ProjectToBound` (uniform rescaling): a layer whose bound exceeds the target is
  multiplied by ``target / bound``, which shrinks *every* singular value by that factor;
- :class:`ClipSingularValues` (Sedghi et al., 2019): only the singular values above the target
  are lowered to it. For a convolution this happens frequency by frequency on the circular
  grid (:func:`clip_conv_singular_values`), and the result, whose kernel fills the whole grid,
  is projected back onto the layer's ``k x k`` support, which can raise the bound again (the
  projected kernel's bound is what :func:`advtut.spectral.layer_bound` then reports).

Example::

    layers = lambda m: [("conv1", m.conv1, 28), ("fc1", m.fc1, None)]
    project = ProjectToBound(2.0, layers=layers, every=10, n_steps=n_steps)
    clip = ClipSingularValues(2.0, layers=layers, every=10, n_steps=n_steps)
    train_minibatch(model, x, y, epochs=5, seed=0, callback=clip)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from advtut.spectral import bound_grid, conv_frequency_norms, layer_bound

__all__ = ["ProjectToBound", "ClippedKernel", "clip_conv_singular_values",
           "clip_matrix_singular_values", "ClipSingularValues"]

#: ``layers(model)``: each layer to keep bounded as ``(name, module, input_size)``, where
#: ``input_size`` is the height and width of a convolution's input (``None`` for a linear layer).
Layers = Callable[[nn.Module], Iterable[tuple[str, nn.Module, "int | None"]]]


def _check_schedule(target: float, every: int, n_steps: int) -> None:
    if not target > 0:
        raise ValueError(f"target must be > 0, got {target}")
    if every < 1 or n_steps < 1:
        raise ValueError(f"every and n_steps must be >= 1, got {every} and {n_steps}")


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
        _check_schedule(target, every, n_steps)
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


def _clip_rows(a: torch.Tensor, target: float) -> torch.Tensor:
    """Each matrix of the batch ``a`` ``(..., m, n)`` with its singular values above ``target``
    set to ``target``: ``U min(S, target) V^H`` (a function of ``a`` alone, whatever the SVD's
    phases, so conjugate frequencies stay conjugate)."""
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    return (u * s.clamp_max(target).to(u.dtype).unsqueeze(-2)) @ vh


def clip_matrix_singular_values(weight: torch.Tensor, target: float) -> torch.Tensor:
    """A matrix ``(out, in)`` with every singular value above ``target`` lowered to it (float64
    SVD; returned in ``weight``'s dtype and device). The closest matrix in Frobenius norm whose
    operator norm is at most ``target``."""
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        raise ValueError("weight must be a matrix (out, in), got "
                         f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else weight!r}")
    if not target > 0:
        raise ValueError(f"target must be > 0, got {target}")
    w = weight.detach().to(torch.float64)
    return _clip_rows(w, float(target)).to(weight.dtype)


@dataclass(frozen=True)
class ClippedKernel:
    """A stride-1 convolution after :func:`clip_conv_singular_values`.

    ``full``: ``(D, C, n, n)`` float64, the clipped operator's kernel on the whole circular
    ``n x n`` grid (its singular values are ``min(s, target)`` of the original's);
    ``projected``: ``(D, C, k, k)`` in the weight's dtype, ``full`` restricted to the layer's
    support (Sedghi et al.'s projection); ``top_clipped``: the largest singular value over the
    frequencies of ``full``, recomputed from that real kernel by
    :func:`~advtut.spectral.conv_frequency_norms` (at most the target, up to rounding); ``imag``: the largest
    imaginary part the inverse DFT left (rounding; the clipped spectrum is conjugate-symmetric).
    """

    full: torch.Tensor
    projected: torch.Tensor
    top_clipped: float
    imag: float


def clip_conv_singular_values(weight: torch.Tensor, target: float,
                              grid: int) -> ClippedKernel:
    """Sedghi et al.'s clipping of a stride-1 convolution's singular values at ``target``.

    ``weight``: ``(D, C, k, k)``; ``grid``: ``n``, the side of the circular grid the operator is
    taken on (for a zero-padded layer, :func:`~advtut.spectral.bound_grid`, as for its bound).
    The operator is block-diagonal in the 2-D DFT: at each of the ``n^2`` frequencies a ``D x
    C`` matrix, whose singular values are the operator's. Each is clipped (``U min(S, t)
    V^H``), the result transformed back (a kernel filling the ``n x n`` grid) and cut down to
    the first ``k x k`` taps, where the original kernel lives (``torch.fft.fft2(weight, s=(n,
    n))`` pads at the end). In float64 on the CPU.
    """
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
        what = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a square conv2d weight (D, C, k, k), got {what}")
    if not target > 0:
        raise ValueError(f"target must be > 0, got {target}")
    k = weight.shape[-1]
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < k:
        raise ValueError(f"grid must be an integer at least the kernel size {k}, got {grid!r}")
    w = weight.detach().to(torch.float64).cpu()
    a = torch.fft.fft2(w, s=(grid, grid)).permute(2, 3, 0, 1)                # (n, n, D, C)
    clipped = _clip_rows(a, float(target))
    back = torch.fft.ifft2(clipped.permute(2, 3, 0, 1))                        # (D, C, n, n)
    full = back.real.contiguous()
    top = float(conv_frequency_norms(full, 1, grid).max())     # recomputed from the real kernel
    projected = full[:, :, :k, :k].to(weight.dtype).to(weight.device)
    return ClippedKernel(full, projected, top, float(back.imag.abs().max()))


class ClipSingularValues:
    """A training callback: Sedghi et al.'s clipping of every layer's singular values.

    Every ``every`` steps and at step ``n_steps`` (the last), each layer of ``layers(model)``
    has its singular values above ``target`` lowered to it: a linear layer exactly
    (:func:`clip_matrix_singular_values`), a stride-1 zero-padded convolution on its
    :func:`~advtut.spectral.bound_grid` followed by the projection onto its ``k x k`` support
    (:func:`clip_conv_singular_values`). ``clipped_tops`` keeps, per layer name, the largest
    singular value of the last clipped operator before the projection (a linear layer's
    after clipping).
    """

    def __init__(self, target: float, *, layers: Layers, every: int, n_steps: int):
        _check_schedule(target, every, n_steps)
        self.target, self.every, self.n_steps = float(target), int(every), int(n_steps)
        self.layers = layers
        self.clipped_tops: dict[str, float] = {}

    @torch.no_grad()
    def __call__(self, step: int, model: nn.Module) -> None:
        if step % self.every and step != self.n_steps:
            return
        for name, module, size in self.layers(model):
            if isinstance(module, nn.Linear):
                module.weight.copy_(clip_matrix_singular_values(module.weight, self.target))
                self.clipped_tops[name] = layer_bound(module)
                continue
            if (not isinstance(module, nn.Conv2d) or module.stride != (1, 1)
                    or isinstance(module.padding, str) or module.groups != 1
                    or module.dilation != (1, 1) or module.padding[0] != module.padding[1]):
                raise ValueError(f"ClipSingularValues handles nn.Linear and stride-1 square "
                                 f"zero-padded nn.Conv2d layers; {name!r} is {module}")
            grid = bound_grid(size, padding=module.padding[0], stride=1)
            out = clip_conv_singular_values(module.weight, self.target, grid)
            module.weight.copy_(out.projected)
            self.clipped_tops[name] = out.top_clipped
