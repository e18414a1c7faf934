"""Chapter 5 (spectral analysis of instability): the paper's Table 5, its networks' layers, and
the experiments the chapter runs. The mathematics lives in :mod:`advtut.spectral`.

Source: Szegedy et al. (2014), "Intriguing properties of neural networks", section 4.3 and
Table 5 ("Frame bounds of each rectified layer of the network from [9]", Krizhevsky et al.'s
AlexNet); https://arxiv.org/abs/1312.6199, bib key ``szegedy2014intriguing``. The paper's
numbers are in :mod:`advtut.chapters.spectral.source`, the tables and results entries in
:mod:`advtut.chapters.spectral.report`, the figures in :mod:`advtut.chapters.spectral.plots`.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advtut.attacks.base import random_wrong_labels
from advtut.attacks.lbfgs import LBFGSSearch, lbfgs_attack
from advtut.chapters.zoo import MNIST_CNN_TRAINING, BookCNN, mnist_cnn
from advtut.distances import l2
from advtut.evaluation import logits as model_logits
from advtut.models import MnistCNN
from advtut.projection import ProjectToBound
from advtut.spectral import (
    bound_grid,
    certified_radius,
    conv_matrix,
    conv_operator_norm_bound,
    layer_bound,
    local_lipschitz,
    max_pool_lipschitz,
    operator_norm,
)

#: torchvision's AlexNet: each rectified layer's module (``features`` or ``classifier`` index)
#: and the height and width of its input for 224 x 224 images (``None``: fully connected).
ALEXNET_LAYERS = (
    ("conv1", "features", 0, 224), ("conv2", "features", 3, 27), ("conv3", "features", 6, 13),
    ("conv4", "features", 8, 13), ("conv5", "features", 10, 13),
    ("fc1", "classifier", 1, None), ("fc2", "classifier", 4, None),
    ("fc3", "classifier", 6, None),
)


def _alexnet_module(model: nn.Module, part: str, index: int) -> nn.Module:
    return getattr(model, part)[index]


@dataclass(frozen=True)
class LayerNorms:
    """One rectified layer: the paper's printed formula, the corrected formula (an upper bound,
    exact for fully connected layers), and the norm as applied by power iteration with how far
    it was from converged (``rel_change``)."""

    layer: str
    shape: str
    stride: int | None
    printed: float
    bound: float
    exact: float
    rel_change: float
    iterations: int


def layer_norms(name: str, module: nn.Module, input_size: int | None, *, max_iter: int,
                tol: float, seed: int = 0, dtype: torch.dtype = torch.float64) -> LayerNorms:
    """:class:`LayerNorms` of a ``nn.Conv2d`` on ``input_size`` px or of a ``nn.Linear``.

    The bound: :func:`~advtut.spectral.layer_bound` (float64; the SVD for a linear layer); the
    norm as applied: :func:`~advtut.spectral.operator_norm` in ``dtype`` (power iteration on a
    ``dtype`` copy of the weights, for both kinds, so that ``bound >= norm`` compares two
    independent computations). ``dtype`` is float64 by default because the invariant
    ``bound >= norm`` holds to a relative 1e-9, far below float32's rounding (6e-8 per
    operation): float32 power iteration overshoots a float64 SVD by more than 1e-9 once the
    top singular value is separated (a trained layer), see ``tests/test_chapter_spectral.py``.
    Runs on the module's device; the module is not changed."""
    if isinstance(module, nn.Linear):
        shape, stride, in_shape = f"{module.in_features}×{module.out_features}", None, (
            module.in_features,)
    else:
        c_out, c_in, k, _ = module.weight.shape
        shape, stride, in_shape = f"{c_in}×{k}×{k}×{c_out}", module.stride[0], (
            c_in, input_size, input_size)
    est = operator_norm(module, in_shape, max_iter=max_iter, tol=tol, seed=seed, dtype=dtype)
    bound = layer_bound(module, input_size)
    # the printed formula differs from the corrected one only by its scaling: 1/stride^2
    # instead of 1/stride (scaling="paper" in advtut.spectral), so it is the bound / stride
    printed = bound if stride is None else bound / stride
    return LayerNorms(name, shape, stride, printed, bound, est.value, est.rel_change,
                      est.iterations)


def table5(model: nn.Module, *, max_iter: int, tol: float) -> list[LayerNorms]:
    """:func:`layer_norms` of every rectified layer of a torchvision AlexNet, Table 5's rows;
    the norms as applied by float64 power iteration (their invariant's tolerance is a relative
    1e-9, see :func:`layer_norms`)."""
    return [layer_norms(name, _alexnet_module(model, part, i), size, max_iter=max_iter, tol=tol,
                        dtype=torch.float64)
            for name, part, i, size in ALEXNET_LAYERS]


def formula_check(*, seed: int, shape=(8, 3, 5, 5), size: int = 16,
                  strides=(1, 2, 4)) -> list[dict]:
    """The formula against the exact norm of the circular convolution (a dense SVD), for one
    seeded random kernel of ``shape`` per stride on a ``size x size`` grid."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for s in strides:
        w = torch.randn(shape, generator=gen, dtype=torch.float64)
        exact = float(torch.linalg.matrix_norm(conv_matrix(w, s, size, padding_mode="circular"), 2))
        rows.append({"stride": s, "printed": conv_operator_norm_bound(w, s, size, scaling="paper"),
                     "corrected": conv_operator_norm_bound(w, s, size), "exact": exact})
    return rows


@dataclass(frozen=True)
class PaddingSweep:
    """Zero-padded random convolutions: how often the formula on the bare ``n x n`` grid falls
    below the layer's exact norm, and on :func:`~advtut.spectral.bound_grid` points."""

    n_cases: int
    below_on_n: int
    worst_on_n: float          # largest exact / formula - 1 on the n x n grid
    worst_padding: str         # that case's padding relative to the kernel
    below_on_grid: int
    worst_on_grid: float       # largest exact / formula - 1 on the bound grid (<= 0 expected)


def padding_sweep(*, n_cases: int, seed: int) -> PaddingSweep:
    """Random small zero-padded convolutions (1-6 output and 1-4 input channels, kernels of
    1-5 px, strides 1-3, inputs up to 12 px, padding 0 to k-1), each checked by a dense SVD."""
    gen = torch.Generator().manual_seed(seed)

    def draw(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=gen))

    below_n = below_g = 0
    worst_n, worst_g, worst_pad = -math.inf, -math.inf, ""
    for _ in range(n_cases):
        k, s = draw(1, 5), draw(1, 3)
        p = draw(0, k - 1)
        n = s * draw(max(1, -(-k // s)), 12 // s)
        w = torch.randn((draw(1, 6), draw(1, 4), k, k), generator=gen, dtype=torch.float64)
        exact = float(torch.linalg.matrix_norm(conv_matrix(w, s, n, padding=p), 2))
        on_n = exact / conv_operator_norm_bound(w, s, n) - 1
        on_g = exact / conv_operator_norm_bound(w, s, bound_grid(n, padding=p, stride=s)) - 1
        below_n += on_n > 1e-9
        below_g += on_g > 1e-9
        if on_n > worst_n:
            worst_n, worst_pad = on_n, ("k-1" if p == k - 1 else f"{p} (k={k})")
        worst_g = max(worst_g, on_g)
    return PaddingSweep(n_cases, below_n, worst_n, worst_pad, below_g, worst_g)


# --- the book's MNIST CNN ---------------------------------------------------------------------

def cnn_layers(model: MnistCNN) -> list[tuple[str, nn.Module, int | None]]:
    """The rectified layers of a :class:`~advtut.models.MnistCNN`: ``(name, module, input
    size)``; the max-poolings between them (2 x 2, stride 2) are 1-Lipschitz."""
    s = model.image_size
    return [("conv1", model.conv1, s), ("conv2", model.conv2, s // 2),
            ("fc1", model.fc1, None), ("fc2", model.fc2, None)]


def _blocks(model: MnistCNN, x: torch.Tensor):
    """Each rectified layer as a function of its own input, and that input at ``x``."""
    a = model.activations(x)
    return [(lambda h: F.relu(model.conv1(h)), x),
            (lambda h: F.relu(model.conv2(h)), a["pool1"]),
            (lambda h: F.relu(model.fc1(h)), a["pool2"].flatten(1)),
            (model.fc2, a["relu3"])]


def correctly_labelled(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The indices ``(M,)`` of the examples of ``x`` ``(N, ...)`` that ``model`` labels ``y``."""
    from advtut.evaluation import predict

    return (predict(model, x) == y.to(torch.long)).nonzero().squeeze(1)


def global_bound(model: MnistCNN) -> float:
    """The product of the layers' upper bounds: an L2 Lipschitz constant of the logit map."""
    pools = max_pool_lipschitz(2) ** 2        # 1: non-overlapping windows
    return pools * math.prod(layer_bound(m, size) for _, m, size in cnn_layers(model))


@dataclass(frozen=True)
class CNNNorms:
    """A CNN's per-layer norms and the whole network's (``layer == "network"``): the paper's
    printed formula, the corrected bound, the exact norm as applied, and the local Lipschitz
    constants (largest Jacobian singular value) at test images, mean and max."""

    layer: str
    printed: float
    bound: float
    exact: float
    local_mean: float
    local_max: float


def cnn_norms(model: MnistCNN, x: torch.Tensor | None, *, max_iter: int,
              tol: float) -> list[CNNNorms]:
    """:class:`CNNNorms` for each rectified layer of ``model`` and for the network, with the
    local constants at the test images ``x`` ``(N, 1, 28, 28)`` (NaN when ``x`` is None); the
    network's row multiplies the layers' columns (the 2 x 2 max-poolings contribute 1), except
    the local constants, which are the whole network's Jacobian's. Computed on a float64 copy
    of ``model``."""
    nan = float("nan")
    rows = []
    model = copy.deepcopy(model).double().eval()      # float64: the invariants are tight
    x = None if x is None else x.double()
    with torch.no_grad():
        blocks = _blocks(model, x) if x is not None else [(None, None)] * 4
    for (name, module, size), (f, h) in zip(cnn_layers(model), blocks):
        n = layer_norms(name, module, size, max_iter=max_iter, tol=tol, dtype=torch.float64)
        local = local_lipschitz(f, h, max_iter=max_iter, tol=tol) if x is not None else None
        rows.append(CNNNorms(name, n.printed, n.bound, n.exact,
                             nan if local is None else float(local.mean()),
                             nan if local is None else float(local.max())))
    local = local_lipschitz(model, x, max_iter=max_iter, tol=tol) if x is not None else None
    pools = max_pool_lipschitz(2) ** 2
    rows.append(CNNNorms("network", pools * math.prod(r.printed for r in rows),
                         pools * math.prod(r.bound for r in rows),
                         pools * math.prod(r.exact for r in rows),
                         nan if local is None else float(local.mean()),
                         nan if local is None else float(local.max())))
    return rows


def train_projected(book: BookCNN, target: float, *, every: int, seed: int, device="cpu",
                    cache_dir=None) -> MnistCNN:
    """The book's CNN trained again, on the same digits with the same seed and schedule, with
    :class:`ProjectToBound` keeping every layer's bound at most ``target`` (kept in
    ``cache_dir`` like the plain one). Returns the model in eval mode."""
    n_steps = book.epochs * math.ceil(len(book.x_train) / MNIST_CNN_TRAINING["batch_size"])
    project = ProjectToBound(target, layers=cnn_layers, every=every, n_steps=n_steps)
    model, _ = mnist_cnn(book.x_train, book.y_train, epochs=book.epochs, seed=seed,
                         device=device, cache_dir=cache_dir, variant=f"bound{target:g}",
                         callback=project, callback_settings={"target": target, "every": every},
                         code=(train_projected,))
    return model


# --- the sandwich ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sandwich:
    """Per attacked test image ``(N,)``: the logit ``margin`` (top minus runner-up), the
    certified radius ``margin / (sqrt(2) lipschitz)`` (no label change closer), the first-order
    estimate ``margin / (sqrt(2) local Lipschitz)`` (not a bound), and the L2 distance of the
    closest adversarial image the L-BFGS attack found (``success``: found)."""

    margin: torch.Tensor
    certified: torch.Tensor
    local_estimate: torch.Tensor
    attack_l2: torch.Tensor
    success: torch.Tensor
    lipschitz: float


def sandwich(model: MnistCNN, x: torch.Tensor, *, seed: int, untargeted: bool, max_iter: int,
             c_rel_tol: float, power_max_iter: int = 100) -> Sandwich:
    """Certified radius <= minimal distortion <= the L-BFGS attack's distortion, at the images
    ``x`` ``(N, 1, 28, 28)`` (attacked towards a seeded wrong label, or every wrong label with
    ``untargeted=True``, keeping the closest). ``max_iter``: the attack's L-BFGS iterations;
    ``power_max_iter``: the local constants' power iterations."""
    lip = global_bound(model)
    z = model_logits(model, x).cpu()
    margin = z.topk(2, dim=1).values
    margin = (margin[:, 0] - margin[:, 1]).double()
    local = local_lipschitz(model, x, max_iter=power_max_iter).double().cpu()
    pred = z.argmax(1)
    targets = ([(pred + k) % z.shape[1] for k in range(1, z.shape[1])] if untargeted
               else [random_wrong_labels(pred, seed=seed, n_classes=z.shape[1])])
    best = torch.full((len(x),), math.inf, dtype=torch.float64)
    for t in targets:
        r = lbfgs_attack(model, x, t.to(x.device),
                         settings=LBFGSSearch(max_iter=max_iter, c_rel_tol=c_rel_tol))
        d = l2(r.x_adv.double(), x.double()).cpu()
        best = torch.minimum(best, torch.where(r.success.cpu(), d, math.inf))
    return Sandwich(margin, certified_radius(z, lip), margin / (math.sqrt(2) * local), best,
                    torch.isfinite(best), lip)
