"""Linear softmax classifiers straight from pixels, their templates, and how to fool them.

Chapter 2 (Karpathy, "Breaking Linear Classifiers on ImageNet", 2015). Images are float
``(N, 3, H, W)`` in [0, 1]; a :class:`PixelSoftmax` scores them as ``W (s x - mean) + b`` where
``s`` is the pixel scale (255 reproduces the source's Caffe setting, 1 works in [0, 1]) and
``mean`` the per-pixel training mean in that scale. Everything about fooling is stated in [0, 1]
pixel units: :meth:`PixelSoftmax.affine` gives the equivalent ``A x + c`` on [0, 1] pixels.

- :func:`train_softmax`: mini-batch training with Caffe's weight decay (``lambda/2 ||W||^2``).
- :func:`fooling_costs`: the template attack (:mod:`advtut.attacks.template`) beside the exact
  smallest L2 and L-infinity perturbations (:func:`advtut.minimal_move.exact_minimal_move_box`,
  :func:`~advtut.minimal_move.exact_minimal_move_linf_box`) and the two-class closed forms
  (:func:`advtut.minimal_move.two_class_bounds`), which are lower bounds.
- :func:`smoothness`: how noisy a template looks, as one number.

The chapter's experiments and the source's numbers are in :mod:`advtut.chapters.linear_imagenet.experiments`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

from advtut.linear import LinearSoftmax
from advtut.minimal_move import exact_minimal_move_box, exact_minimal_move_linf_box, two_class_bounds
from advtut.seeding import seeded
from advtut.training import TrainLog, train_minibatch

__all__ = ["PixelSoftmax", "to_unit", "pixel_mean", "initial_loss", "train_softmax",
           "train_pixel_softmax", "smoothness", "FoolingCosts", "fooling_costs",
           "resize", "channel_bias"]


class PixelSoftmax(nn.Module):
    """A linear softmax on raw pixels: ``(N, 3, H, W)`` in [0, 1] -> ``(N, K)`` logits.

    ``logits = W (scale * x - mean) + b``; ``mean``: ``(3 * H * W,)`` the training images' mean
    in the same scale (a buffer, not trained); ``scale``: 255 (the source's 0-255 pixels) or 1.
    """

    def __init__(self, n_inputs: int, n_classes: int, *, scale: float = 1.0,
                 mean: torch.Tensor | None = None, init_std: float = 1e-4):
        super().__init__()
        if scale <= 0 or init_std < 0:
            raise ValueError(f"need scale > 0 and init_std >= 0, got scale={scale}, init_std={init_std}")
        self.scale = float(scale)
        self.linear = nn.Linear(n_inputs, n_classes)
        nn.init.normal_(self.linear.weight, std=init_std)
        nn.init.zeros_(self.linear.bias)
        self.register_buffer("mean", torch.zeros(n_inputs) if mean is None else mean.flatten().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.scale * x.flatten(1) - self.mean)

    def affine(self) -> LinearSoftmax:
        """The same scores as ``A x + c`` on [0, 1] pixels (float64, on the CPU): ``A = scale W``,
        ``c = b - W mean``."""
        W = self.linear.weight.detach().double().cpu()
        b = self.linear.bias.detach().double().cpu()
        return LinearSoftmax(self.scale * W, b - W @ self.mean.double().cpu())

    def templates(self, shape: tuple[int, int, int]) -> torch.Tensor:
        """Each class's weights as an image, ``(K, *shape)``, in [0, 1]-pixel units (``A``)."""
        return (self.scale * self.linear.weight.detach()).reshape(-1, *shape)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Pixels as float in [0, 1]: uint8 (0-255, how ImageNet-sized data is kept) divided by 255."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def pixel_mean(x: torch.Tensor, *, scale: float = 1.0, batch_size: int = 4096) -> torch.Tensor:
    """The per-pixel mean image of ``x`` ``(N, 3, H, W)`` (float in [0, 1] or uint8), flattened to
    ``(3 H W,)`` float32, in the pixel ``scale`` (255: Caffe's mean image). Summed in chunks."""
    if len(x) == 0:
        raise ValueError("x is empty: the mean image needs at least one image")
    total = torch.zeros(x[0].numel(), dtype=torch.float64)
    for i in range(0, len(x), batch_size):
        total += to_unit(x[i:i + batch_size]).flatten(1).double().sum(0)
    return (scale * total / len(x)).float()


@torch.no_grad()
def initial_loss(x: torch.Tensor, y: torch.Tensor, *, n_classes: int, init_std: float,
                 scale: float = 255.0, mean: torch.Tensor | None = None, seed: int = 0) -> float:
    """The cross-entropy of a fresh :class:`PixelSoftmax` (weights ~ N(0, init_std^2), zero bias)
    on ``x``, ``y``: the number the source reads at the start of training. A small init gives
    about ``log(n_classes)``; a large one, scores of many units and a loss far above it."""
    with seeded(seed):  # seeded init; the caller's random state is kept
        model = PixelSoftmax(x[0].numel(), n_classes, scale=scale,
                             mean=pixel_mean(x, scale=scale) if mean is None else mean,
                             init_std=init_std)
    return float(F.cross_entropy(model(to_unit(x)), y))


def train_softmax(model: PixelSoftmax, x: torch.Tensor, y: torch.Tensor, *, lr: float,
                  weight_decay: float, epochs: int, batch_size: int = 256,
                  optimizer: str = "adam", momentum: float = 0.0, anneal: bool = False, seed: int = 0,
                  max_iter: int | None = None, progress: bool = True,
                  desc: str = "softmax") -> TrainLog:
    """Mini-batch training of ``model`` on ``x`` ``(N, 3, H, W)`` in [0, 1] (or uint8 0-255),
    ``y`` ``(N,)``, with :func:`advtut.training.train_minibatch`.

    Loss: mean cross-entropy + ``weight_decay / 2 * ||W||^2`` (Caffe's weight decay; the bias is
    not decayed). ``optimizer``: ``"adam"`` or ``"sgd"`` (with ``momentum``; Caffe's default is
    0.9). ``anneal``: the learning rate falls linearly to 0 over the run (so the last steps do
    not leave optimizer noise in the weights). Batches are drawn in a seeded order; runs on the
    model's device; stops early at ``max_iter`` or when the loss diverges. The log's
    ``step_losses`` hold the objective at every step; the caller's train/eval mode is restored.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")

    def caffe_decay(m, xb, yb, logits):
        return weight_decay / 2 * m.linear.weight.pow(2).sum()

    return train_minibatch(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                           optimizer=optimizer, momentum=momentum,
                           schedule="linear" if anneal else None, max_iter=max_iter,
                           extra_loss=caffe_decay, progress=progress, desc=desc)


def train_pixel_softmax(x: torch.Tensor, y: torch.Tensor, *, n_classes: int, weight_decay: float,
                        epochs: int, lr: float = 2e-4, init_std: float = 1e-4, batch_size: int = 256,
                        seed: int = 0, device: torch.device | str = "cpu",
                        progress: bool = True, desc: str = "softmax"
                        ) -> tuple[PixelSoftmax, TrainLog]:
    """The chapter's recipe in one call: a mean-subtracted :class:`PixelSoftmax` in [0, 1] units
    (``scale=1``, weights ~ N(0, init_std^2)) trained with Adam at ``lr``, annealed linearly to 0,
    with Caffe's ``weight_decay`` (in [0, 1] units: the source's ``lambda`` / 255^2).
    ``x``: ``(N, 3, H, W)`` float in [0, 1] or uint8; returns the model (on ``device``, eval
    mode) and its :class:`TrainLog`."""
    with seeded(seed):  # seeded init; the caller's random state is kept
        model = PixelSoftmax(x[0].numel(), n_classes, scale=1.0, mean=pixel_mean(x),
                             init_std=init_std).to(device)
    log = train_softmax(model, x, y, lr=lr, weight_decay=weight_decay, epochs=epochs,
                        batch_size=batch_size, anneal=True, seed=seed, progress=progress,
                        desc=desc)
    return model.eval(), log


def smoothness(templates: torch.Tensor) -> torch.Tensor:
    """How rough each template is: the mean squared difference of horizontally and vertically
    neighbouring pixels divided by twice the template's variance, ``(K,)``. About 1 for white
    noise, near 0 for a smooth image; independent of the template's scale."""
    t = templates.double()
    dx = (t[..., :, 1:] - t[..., :, :-1]).pow(2).flatten(1).mean(1)
    dy = (t[..., 1:, :] - t[..., :-1, :]).pow(2).flatten(1).mean(1)
    return (dx + dy) / 2 / (2 * t.flatten(1).var(1).clamp_min(1e-300))


@dataclass(frozen=True)
class FoolingCosts:
    """How much perturbation makes a linear model predict a target, per example ``(N,)`` float64,
    in [0, 1] pixel units; ``*_rms`` is the L2 norm over ``sqrt(d)`` (the root mean square
    change per pixel value), ``*_linf`` the largest change.

    ``template_*``: the source's template fooling until the target is the top class (NaN where
    not reached); ``exact_*``: the smallest perturbations inside the pixel box (a QP and an LP);
    ``bound_*``: the two-class closed forms, lower bounds of the exact ones; ``feasible``: the box
    allows the target at all.
    """

    template_rms: torch.Tensor
    template_linf: torch.Tensor
    exact_rms: torch.Tensor
    exact_linf: torch.Tensor
    bound_rms: torch.Tensor
    bound_linf: torch.Tensor
    feasible: torch.Tensor


def fooling_costs(model: PixelSoftmax, x: torch.Tensor, target: torch.Tensor, *,
                  progress: bool = True, desc: str = "exact optima") -> FoolingCosts:
    """The template heuristic, the exact optima and the two-class bounds for the same images and
    targets: ``x`` ``(N, 3, H, W)`` in [0, 1], ``target`` ``(N,)``. The exact solvers run on the
    CPU in float64, about a second per 64x64 image with 200 classes; every field of the result
    is on the CPU (the template step's too, wherever ``x`` is), so that they compare."""
    from advtut.attacks.template import fool_with_template

    heur = fool_with_template(model, x, target, confidence=None)
    aff = model.affine()
    flat, d = x.flatten(1).double().cpu(), x[0].numel()
    l2, linf = [], []
    for i in tqdm(range(len(x)), desc=desc, disable=not progress, mininterval=2.0):
        l2.append(exact_minimal_move_box(aff, flat[i:i + 1], target[i:i + 1].cpu()))
        linf.append(exact_minimal_move_linf_box(aff, flat[i:i + 1], target[i:i + 1].cpu()))
    b2, binf = two_class_bounds(aff, flat, target.cpu())
    l2_dist = torch.cat([m.distance for m in l2])
    ok = torch.cat([m.feasible for m in l2]) & torch.cat([m.feasible for m in linf])
    nan = torch.tensor(math.nan, dtype=torch.float64)
    return FoolingCosts(
        template_rms=torch.where(heur.success.cpu(), heur.distortion.double().cpu(), nan),
        template_linf=torch.where(heur.success.cpu(), heur.linf.double().cpu(), nan),
        exact_rms=torch.where(ok, l2_dist / math.sqrt(d), math.inf),
        exact_linf=torch.where(ok, torch.cat([m.distance for m in linf]), math.inf),
        bound_rms=b2.cpu() / math.sqrt(d), bound_linf=binf.cpu(), feasible=ok)


def resize(x: torch.Tensor, size: int, *, batch_size: int = 8192) -> torch.Tensor:
    """Images ``(N, 3, H, W)`` in [0, 1] (or uint8, kept uint8) resized to ``size`` x ``size`` by
    area averaging (antialiased; exact block means when ``size`` divides ``H``), in chunks."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    out = []
    for i in range(0, len(x), batch_size):
        small = F.interpolate(to_unit(x[i:i + batch_size]), size=(size, size), mode="area").clamp(0, 1)
        out.append(small.mul(255).round().to(torch.uint8) if x.dtype == torch.uint8 else small)
    return torch.cat(out) if out else x[:, :, :size, :size]


def channel_bias(templates: torch.Tensor) -> torch.Tensor:
    """How much each template favours each colour: the mean weight of each channel minus the mean
    of the other two, ``(K, 3)`` (positive green and negative red and blue: "counts green")."""
    m = templates.double().mean((2, 3))               # (K, 3)
    return m - (m.sum(1, keepdim=True) - m) / 2
