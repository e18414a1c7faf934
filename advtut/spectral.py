"""How much can a layer, or a whole network, stretch a small change of its input?

Szegedy et al. (2014, section 4.3) bound a network's instability by the product of its layers'
upper Lipschitz constants: a rectified layer ``max(0, W x + b)`` is at most ``||W||``-Lipschitz
(``||W||``: the largest singular value, the *operator norm*), ReLU and max-pooling with
non-overlapping windows are 1-Lipschitz, so ``||phi(x) - phi(x + r)|| <= prod_k ||W_k|| ||r||``.
Every norm here is the Euclidean (L2) one; the inputs' unit is whatever the layer receives.

- :func:`conv_operator_norm_bound`: the paper's formula (1) for a convolution of stride ``s``
  on a circular ``n x n`` grid: the largest over frequencies ``xi`` of the largest singular value
  of the ``D x (C s^2)`` matrix of the kernels' 2-D DFTs at the ``s^2`` frequencies that the
  stride folds onto ``xi``. With the scaling ``1/s`` (``scaling="corrected"``, the default) it
  *equals* the operator norm of the circularly padded convolution; the paper prints ``s^-2``
  (``scaling="paper"``), which is too small by a factor ``s``.
- :func:`bound_grid`: the grid on which the formula bounds a *zero-padded* layer as applied.
- :func:`conv_matrix`: the dense matrix of a small convolution (exact references, tests).
- :func:`operator_norm`: the norm of a layer as it is actually applied (its padding and stride,
  no bias) by power iteration with the layer and its adjoint.
- :func:`max_pool_lipschitz`: the L2 Lipschitz constant of max-pooling (1 without overlap);
  :func:`avg_pool_lipschitz`: that of global average pooling, ``1 / sqrt(h w)``.
- :func:`fold_batchnorm`: a convolution followed by BatchNorm in eval mode as one convolution,
  so that the pair's norm is bounded like any convolution's.
- :func:`local_lipschitz`: the largest singular value of a function's Jacobian at each input of
  a batch (power iteration on JVPs and VJPs): how much the network stretches there.
- :func:`certified_radius`: no perturbation with ``||r||_2 < margin / (sqrt(2) L)`` changes the
  prediction of a classifier whose logit map is ``L``-Lipschitz (Tsuzuku et al., 2018).

Example::

    conv = torch.nn.Conv2d(3, 96, 11, stride=4, padding=2)
    grid = bound_grid(224, padding=2, stride=4)                  # 228
    conv_operator_norm_bound(conv.weight, 4, grid)               # >= the layer's norm
    operator_norm(conv, (3, 224, 224), max_iter=500).value          # the layer's norm
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SCALINGS", "conv_frequency_norms", "conv_operator_norm_bound", "bound_grid",
           "linear_norm", "layer_bound", "circular_conv", "conv_matrix", "NormEstimate",
           "operator_norm", "max_pool_lipschitz", "avg_pool_lipschitz", "fold_batchnorm",
           "local_lipschitz", "certified_radius"]

SCALINGS = ("corrected", "paper")


def _check_conv(weight: torch.Tensor, stride: int, input_size: int) -> None:
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a conv2d weight of shape (D, C, k, k), got {shape}")
    if weight.shape[2] != weight.shape[3]:
        raise ValueError(f"weight must have square kernels (k, k), got {tuple(weight.shape[2:])}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise ValueError(f"input_size must be a positive integer, got {input_size!r}")
    if input_size % stride:
        raise ValueError(f"input_size must be a multiple of the stride ({stride}), got "
                         f"{input_size}: use bound_grid(...) or pad the grid up")
    if weight.shape[2] > input_size:
        raise ValueError(f"the kernel ({weight.shape[2]} px) is larger than the grid "
                         f"({input_size} px)")


def conv_frequency_norms(weight: torch.Tensor, stride: int, input_size: int, *,
                         scaling: str = "corrected") -> torch.Tensor:
    """``||A(xi)||`` at every frequency ``xi`` of the folded grid: ``(n/s, n/s)``, float64.

    ``weight``: ``(D, C, k, k)`` (out channels, in channels, kernel), as ``nn.Conv2d`` holds it;
    ``stride``: ``s``; ``input_size``: ``n``, the side of the circular grid the convolution
    runs on, a multiple of ``s``. ``A(xi)`` is the ``D x (C s^2)`` matrix of the kernels' DFTs
    on the ``n x n`` grid at the ``s^2`` frequencies ``xi + l n / s``, ``l`` in ``{0..s-1}^2``,
    scaled by ``1/s`` (``"corrected"``) or ``1/s^2`` (``"paper"``). Computed in float64 from
    ``torch.fft`` and the eigenvalues of the smaller Gram matrix of each ``A(xi)``.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    _check_conv(weight, stride, input_size)
    d, c = weight.shape[:2]
    s, m = stride, input_size // stride
    w_hat = torch.fft.fft2(weight.detach().to(torch.float64).cpu(), s=(input_size, input_size))
    # frequency (u, v) = (xi_1 + l_1 m, xi_2 + l_2 m): split each axis into (l, xi)
    a = w_hat.reshape(d, c, s, m, s, m).permute(3, 5, 0, 1, 2, 4).reshape(m, m, d, c * s * s)
    gram = a @ a.mH if d <= c * s * s else a.mH @ a
    top = torch.linalg.eigvalsh(gram)[..., -1].clamp_min(0).sqrt()
    return top / (s if scaling == "corrected" else s * s)


def conv_operator_norm_bound(weight: torch.Tensor, stride: int, input_size: int, *,
                             scaling: str = "corrected") -> float:
    """Szegedy et al.'s formula (1): ``sup_xi ||A(xi)||`` for a convolution with ``weight``
    ``(D, C, k, k)`` of stride ``stride`` on a circular ``input_size x input_size`` grid.

    With ``scaling="corrected"`` this *is* the operator norm (largest singular value) of the
    circularly padded convolution; ``scaling="paper"`` divides by ``stride^2`` as the paper
    prints it, ``stride`` times too little. For a zero-padded layer (padding ``p`` on an
    ``n x n`` input) evaluate it on ``bound_grid(n, padding=p, stride=s)`` points: on that grid
    the layer is a restriction of the circular convolution, so the value bounds the layer's
    norm; on the bare ``n x n`` grid it need not. See :func:`conv_frequency_norms`.
    """
    return float(conv_frequency_norms(weight, stride, input_size, scaling=scaling).max())


def bound_grid(input_size: int, *, padding: int, stride: int) -> int:
    """The smallest multiple of ``stride`` that is at least ``input_size + 2 padding``: the
    circular grid on which :func:`conv_operator_norm_bound` bounds a zero-padded layer.

    A zero-padded input fits in ``n + 2p`` points with nothing wrapping around, so the layer's
    outputs are a subset of the circular convolution's outputs on any larger grid.
    """
    for name, v in (("input_size", input_size), ("stride", stride)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
    return -(-(input_size + 2 * padding) // stride) * stride


def linear_norm(weight: torch.Tensor, *, tol: float = 1e-10, seed: int = 0) -> float:
    """The largest singular value of a matrix ``(out, in)`` (a fully connected layer's norm).

    Small matrices (the smaller side at most 512) by a dense SVD; larger ones by Lanczos
    (scipy's ``svds``, ARPACK) in float64 from a seeded start, to relative accuracy ``tol``:
    seconds for AlexNet's 4096 x 9216, where a dense SVD takes half a minute on two cores.
    """
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        raise ValueError("weight must be a matrix (out, in), got "
                         f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else weight!r}")
    w = weight.detach().to(torch.float64).cpu()
    if min(w.shape) <= 512:
        return float(torch.linalg.matrix_norm(w, ord=2))
    import numpy as np
    from scipy.sparse.linalg import svds

    v0 = np.random.default_rng(seed).standard_normal(min(w.shape))
    return float(svds(w.cpu().numpy(), k=1, v0=v0, tol=tol, return_singular_vectors=False)[0])


def layer_bound(module: nn.Module, input_size: int | None = None, *,
                scaling: str = "corrected") -> float:
    """An upper bound on the operator norm of a layer as it is applied (bias left out).

    ``nn.Linear``: its largest singular value (:func:`linear_norm`), exact. ``nn.Conv2d``
    (square kernel and stride, zero padding, no groups or dilation) on ``input_size x
    input_size`` inputs: :func:`conv_operator_norm_bound` on :func:`bound_grid` points, an
    upper bound (exact for the circular convolution on that grid); ``scaling="paper"`` gives
    the paper's printed formula instead, which is no bound (too small by the stride).
    """
    if isinstance(module, nn.Linear):
        return linear_norm(module.weight)
    if not isinstance(module, nn.Conv2d):
        raise ValueError(f"module must be an nn.Conv2d or an nn.Linear, got {type(module).__name__}")
    stride, padding = module.stride, module.padding
    if (isinstance(padding, str) or module.groups != 1 or module.dilation != (1, 1)
            or module.padding_mode != "zeros" or stride[0] != stride[1] or padding[0] != padding[1]):
        raise ValueError("layer_bound supports square convolutions with equal strides, numeric "
                         "zero padding, no groups and no dilation; got stride "
                         f"{stride}, padding {padding!r}, groups {module.groups}, dilation "
                         f"{module.dilation}, padding_mode {module.padding_mode!r}")
    if input_size is None:
        raise ValueError("input_size (the height and width the convolution receives) is needed "
                         "for a convolution")
    grid = bound_grid(input_size, padding=padding[0], stride=stride[0])
    return conv_operator_norm_bound(module.weight, stride[0], grid, scaling=scaling)


def _apply_conv(weight, x, *, stride, padding, padding_mode):
    if padding_mode == "circular":   # wrap the right and bottom edges: outputs at 0, s, 2s, ...
        k = weight.shape[-1]
        x = F.pad(x, (0, k - 1, 0, k - 1), mode="circular")
        return F.conv2d(x, weight, stride=stride)
    return F.conv2d(x, weight, stride=stride, padding=padding)


def circular_conv(weight: torch.Tensor, stride: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The (bias-free) convolution with ``weight`` ``(D, C, k, k)`` and ``stride`` on a circular
    grid, as a function of ``(N, C, n, n)`` inputs (``n`` a multiple of ``stride``): the
    operator whose norm :func:`conv_operator_norm_bound` computes. For :func:`operator_norm`."""
    w = weight.detach()
    return lambda x: _apply_conv(w.to(x.dtype), x, stride=stride, padding=0,
                                 padding_mode="circular")


def conv_matrix(weight: torch.Tensor, stride: int, input_size: int, *, padding: int = 0,
                padding_mode: str = "zeros") -> torch.Tensor:
    """The dense matrix of the (bias-free) convolution, ``(outputs, C n^2)``, float64.

    ``padding_mode="zeros"``: ``torch.nn.functional.conv2d`` with ``padding`` on an ``n x n``
    input; ``"circular"``: the convolution on a circular ``n x n`` grid (``n`` a multiple of
    ``stride``), whose norm :func:`conv_operator_norm_bound` gives exactly. Meant for small
    layers (exact references): the matrix has ``C n^2`` columns.
    """
    if padding_mode not in ("zeros", "circular"):
        raise ValueError(f"padding_mode must be 'zeros' or 'circular', got {padding_mode!r}")
    if padding_mode == "circular":
        _check_conv(weight, stride, input_size)
    c = weight.shape[1]
    basis = torch.eye(c * input_size ** 2, dtype=torch.float64).reshape(-1, c, input_size, input_size)
    out = _apply_conv(weight.detach().to(torch.float64).cpu(), basis, stride=stride,
                      padding=padding, padding_mode=padding_mode)
    return out.flatten(1).T


@dataclass(frozen=True)
class NormEstimate:
    """A power-iteration estimate of an operator norm.

    ``value``: ``||f v||`` for the final unit vector ``v``, never above the true norm (up to
    rounding); ``iterations``: how many were run; ``rel_change``: the relative change of the
    estimate over the last iteration (how far from converged; below ``tol`` when it stopped on
    its own); ``converged``: ``rel_change <= tol``.
    """

    value: float
    iterations: int
    rel_change: float
    converged: bool


def _linear_part(module, dtype: torch.dtype) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                        torch.device]:
    """The bias-free map of ``module`` in ``dtype`` (detached weights), and its device."""
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise ValueError("operator_norm supports Conv2d with zero padding given as numbers, "
                             f"got padding={module.padding!r}, padding_mode={module.padding_mode!r}")
        w = module.weight.detach().to(dtype)
        return (lambda x: F.conv2d(x, w, stride=module.stride, padding=module.padding,
                                   dilation=module.dilation, groups=module.groups)), w.device
    if isinstance(module, nn.Linear):
        w = module.weight.detach().to(dtype)
        return (lambda x: F.linear(x, w)), w.device
    if callable(module) and not isinstance(module, nn.Module):
        return module, torch.device("cpu")
    raise ValueError(f"module must be an nn.Conv2d, an nn.Linear or a linear function, "
                     f"got {type(module).__name__}")


def operator_norm(module, input_shape: tuple[int, ...], *, max_iter: int = 1000, tol: float = 1e-6,
                  seed: int = 0, dtype: torch.dtype = torch.float64) -> NormEstimate:
    """The operator norm of a layer as it is applied, by power iteration on ``f^T f``.

    ``module``: an ``nn.Conv2d`` (its stride, zero padding, dilation and groups; the bias is
    left out: it moves every output alike and stretches nothing), an ``nn.Linear`` (its
    weight), or a linear function of one tensor (run on the CPU); ``input_shape``: one input
    without the batch dimension, e.g. ``(3, 224, 224)`` or ``(9216,)``. The adjoint comes from
    autograd. Starts from a seeded Gaussian vector and stops after ``max_iter`` iterations or
    when the estimate changes by at most ``tol`` (relative). Runs in ``dtype`` on the
    module's device; the module is not changed. Power iteration converges slowly when the two
    largest singular values are close: read ``rel_change``.
    """
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    f, device = _linear_part(module, dtype)
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn((1, *input_shape), generator=gen, dtype=dtype).to(device)
    v = v / v.norm()
    value, rel, it = 0.0, math.inf, 0
    for it in range(1, max_iter + 1):
        v.requires_grad_(True)
        out = f(v)
        (w,) = torch.autograd.grad(out, v, grad_outputs=out)     # f^T f v
        new = out.detach().norm().item()
        rel = abs(new - value) / max(new, 1e-300)
        value = new
        norm = w.norm()
        if norm == 0 or rel <= tol:
            break
        v = (w / norm).detach()
    return NormEstimate(value, it, rel, rel <= tol)


def max_pool_lipschitz(kernel_size: int, stride: int | None = None) -> float:
    """The L2 Lipschitz constant of 2-D max-pooling: ``ceil(kernel / stride)``.

    A pixel lies in at most ``ceil(k/s)`` windows along each axis, so a change of it can move
    up to ``ceil(k/s)^2`` outputs by as much: the constant is ``sqrt(ceil(k/s)^2)``, attained by
    a single spike (on an input large enough to hold a pixel in that many windows; no padding,
    dilation or ``ceil_mode``). 1 for non-overlapping windows (LeNet's 2 x 2, stride 2); 2 for
    AlexNet's 3 x 3 windows at stride 2, which the paper calls contractive.
    """
    stride = kernel_size if stride is None else stride
    for name, v in (("kernel_size", kernel_size), ("stride", stride)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return float(-(-kernel_size // stride))


def avg_pool_lipschitz(height: int, width: int) -> float:
    """The L2 Lipschitz constant of global average pooling over an ``height x width`` map,
    channel by channel: ``1 / sqrt(height * width)``. Each output is the mean of ``h w``
    inputs, a row of ``h w`` entries ``1 / (h w)`` per channel, whose norm is ``1/sqrt(h w)``;
    the channels' rows do not overlap, so that is the operator norm."""
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return 1.0 / math.sqrt(height * width)


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """``bn(conv(x))`` with ``bn`` in eval mode, as one ``nn.Conv2d`` (a new module, float64).

    Eval-mode BatchNorm is ``gamma (h - mu) / sqrt(var + eps) + beta`` per output channel, an
    affine map: the kernels of channel ``d`` are scaled by ``gamma_d / sqrt(var_d + eps)`` and
    the bias becomes ``beta_d + (b_d - mu_d) gamma_d / sqrt(var_d + eps)``. The folded layer's
    operator norm is the pair's, so :func:`layer_bound` bounds conv + BatchNorm together
    (BatchNorm alone can stretch by ``max_d |gamma_d| / sqrt(var_d + eps)``). The running
    statistics are used, as in eval mode; a BatchNorm without them is refused."""
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise ValueError(f"need an nn.Conv2d and an nn.BatchNorm2d, got {type(conv).__name__} "
                         f"and {type(bn).__name__}")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"bn has {bn.num_features} channels but conv has {conv.out_channels} "
                         "outputs")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("bn keeps no running statistics (track_running_stats=False): its eval "
                         "mode depends on the batch and it is no fixed affine map")
    w, dev = conv.weight.detach().double(), conv.weight.device
    ones = torch.ones(bn.num_features, dtype=torch.float64, device=dev)
    gamma = bn.weight.detach().double() if bn.affine else ones
    scale = gamma / (bn.running_var.double() + bn.eps).sqrt()
    shift = bn.bias.detach().double() if bn.affine else torch.zeros_like(scale)
    b = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(scale)
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                    bias=True, padding_mode=conv.padding_mode).to(dev, torch.float64)
    with torch.no_grad():
        out.weight.copy_(w * scale[:, None, None, None])
        out.bias.copy_(shift + (b - bn.running_mean.double()) * scale)
    return out


def local_lipschitz(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *,
                    max_iter: int = 100, tol: float = 1e-6, seed: int = 0) -> torch.Tensor:
    """The largest singular value of the Jacobian of ``f`` at each example of ``x``: ``(N,)``.

    ``f``: maps a batch ``(N, ...)`` to ``(N, ...)`` example by example (a model in eval mode,
    or one of its layers); ``x``: ``(N, ...)``. Power iteration on ``J^T J`` per example, with
    ``J v`` from a forward-mode JVP and ``J^T u`` from a VJP, from a seeded Gaussian start,
    until every example's estimate changes by at most ``tol`` (relative) or after ``max_iter``.
    Each value is a lower bound on ``f``'s Lipschitz constant (L2 in, L2 out); for a ReLU
    network it is the exact stretch in a neighbourhood of the example.
    """
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or not x.is_floating_point():
        raise ValueError("x must be a floating-point batch (N, ...), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    x = x.detach()
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)

    def unit(t):
        return t / t.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *[1] * (t.ndim - 1))

    v = unit(v)
    with warnings.catch_warnings():   # torch's own first use of forward-mode AD warns about
        warnings.filterwarnings(      # torch.jit.script internally; nothing the caller can fix
            "ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
        return _power_iterate_jacobian(f, x, v, unit, max_iter=max_iter, tol=tol)


def _power_iterate_jacobian(f, x, v, unit, *, max_iter, tol):
    """:func:`local_lipschitz`'s loop: ``v <- J^T J v`` per example from the unit start ``v``."""
    _, vjp = torch.func.vjp(f, x)
    value = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    for _ in range(max_iter):
        _, jv = torch.func.jvp(f, (x,), (v,))
        new = jv.flatten(1).norm(dim=1)
        rel = (new - value).abs() / new.clamp_min(1e-30)
        value = new
        (w,) = vjp(jv)
        if bool((rel <= tol).all()):
            break
        v = unit(w)
    return value.detach()


def certified_radius(logits: torch.Tensor, lipschitz: float) -> torch.Tensor:
    """The L2 radius around each input within which the predicted label cannot change: ``(N,)``.

    ``logits``: ``(N, K)`` at the inputs; ``lipschitz``: an upper bound ``L`` on the L2
    Lipschitz constant of the logit map (e.g. the product of the layers' bounds). The margin
    ``m`` between the top two logits can shrink by at most ``sqrt(2) L ||r||``, since the
    difference of two logits is ``sqrt(2) L``-Lipschitz; the radius is ``m / (sqrt(2) L)``
    (Tsuzuku et al., 2018, Lipschitz-margin training).
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError("logits must have shape (N, K) with K >= 2, got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else logits!r}")
    try:
        lip = float(lipschitz) if not isinstance(lipschitz, bool) else math.nan
    except (TypeError, ValueError):
        lip = math.nan
    if not (math.isfinite(lip) and lip > 0):
        raise ValueError(f"lipschitz must be a positive finite number, got {lipschitz!r}")
    top2 = logits.detach().double().topk(2, dim=1).values
    return (top2[:, 0] - top2[:, 1]) / (math.sqrt(2) * lip)
