"""Linear softmax classifiers straight from pixels, their templates, and how to fool them.

Chapter 2 (Karpathy, "Breaking Linear Classifiers on ImageNet", 2015). Images are float
``(N, 3, H, W)`` in [0, 1]; a :class:`PixelSoftmax` scores them as ``W (s x - mean) + b`` where
``s`` is the pixel scale (255 reproduces the source's Caffe setting, 1 works in [0, 1]) and
``mean`` the per-pixel training mean in that scale. Everything about fooling is stated in [0, 1]
pixel units: :meth:`PixelSoftmax.affine` gives the equivalent ``A x + c`` on [0, 1] pixels.

- :func:`toy_example`: the source's ten-dimensional logistic regression, exactly.
- :func:`train_softmax`: mini-batch training with Caffe's weight decay (``lambda/2 ||W||^2``).
- :func:`fool_with_template`: the source's fooling, ``clip(x + alpha * w_t / max|w_t|)`` with the
  smallest ``alpha`` that makes the target's probability reach a confidence.
- :func:`min_perturbation_linf` (an LP) and :func:`two_class_bounds`, beside the exact L2
  optimum :func:`advtut.minimal_move.exact_minimal_move_box`.
- :func:`smoothness`: how noisy a template looks, as one number.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.std import tqdm

from advtut.linear import LinearSoftmax

__all__ = ["ToyExample", "toy_example", "PixelSoftmax", "TrainLog", "train_softmax",
           "topk_accuracy", "smoothness", "FoolResult", "fool_with_template",
           "min_perturbation_linf", "two_class_bounds", "resize", "channel_bias", "show_templates"]


@dataclass(frozen=True)
class ToyExample:
    """The source's binary logistic regression: score ``w.x`` (no bias), ``P(class 1)``, and
    the same after the step ``x_ad = x + eps * w``."""

    x: np.ndarray
    w: np.ndarray
    eps: float
    score: float
    p: float
    x_ad: np.ndarray
    score_ad: float
    p_ad: float


def toy_example(eps: float = 0.5) -> ToyExample:
    """The source's numbers: ``x``, ``w`` in 10 dimensions, score -3 (P = 0.0474), and with
    ``x + 0.5 w`` score 2 (P = 0.88): every dimension gains ``eps |w_i|``, ``eps ||w||_1`` in all."""
    x = np.array([2, -1, 3, -2, 2, 2, 1, -4, 5, 1], dtype=float)
    w = np.array([-1, -1, 1, -1, 1, -1, 1, 1, -1, 1], dtype=float)
    sig = lambda s: 1.0 / (1.0 + math.exp(-s))  # noqa: E731
    x_ad = x + eps * w
    return ToyExample(x, w, eps, float(w @ x), sig(float(w @ x)), x_ad, float(w @ x_ad),
                      sig(float(w @ x_ad)))


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
        """The same scores as ``A x + c`` on [0, 1] pixels (float64): ``A = scale W``,
        ``c = b - W mean``."""
        W = self.linear.weight.detach().double()
        b = self.linear.bias.detach().double()
        return LinearSoftmax(self.scale * W, b - W @ self.mean.double())

    def templates(self, shape: tuple[int, int, int]) -> torch.Tensor:
        """Each class's weights as an image, ``(K, *shape)``, in [0, 1]-pixel units (``A``)."""
        return (self.scale * self.linear.weight.detach()).reshape(-1, *shape)


@dataclass(frozen=True)
class TrainLog:
    """``losses``: the mini-batch objective (data loss + weight decay) at each step;
    ``initial_loss``: the data loss on the first batch before any step; ``diverged``: the loss
    became NaN or infinite (training stopped there)."""

    losses: tuple[float, ...]
    initial_loss: float
    diverged: bool


def train_softmax(model: PixelSoftmax, x: torch.Tensor, y: torch.Tensor, *, lr: float,
                  weight_decay: float, epochs: int, batch_size: int = 256,
                  optimizer: str = "adam", momentum: float = 0.0, anneal: bool = False, seed: int = 0,
                  max_steps: int | None = None, progress: bool = True) -> TrainLog:
    """Mini-batch training of ``model`` on ``x`` ``(N, 3, H, W)`` in [0, 1], ``y`` ``(N,)``.

    Loss: mean cross-entropy + ``weight_decay / 2 * ||W||^2`` (Caffe's weight decay; the bias is
    not decayed). ``optimizer``: ``"adam"`` or ``"sgd"`` (with ``momentum``; Caffe's default is
0.9; 0 for the plain steps of the source's lessons). ``anneal``: the learning rate falls
linearly to 0 over the run (so the last steps do not leave optimizer noise in the weights).
    Batches are drawn in a seeded order; runs on the model's device; stops early at
    ``max_steps`` or when the loss diverges. Leaves the model in eval mode.
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, got {len(x)} and {len(y)}")
    if lr <= 0 or weight_decay < 0 or epochs < 1 or batch_size < 1:
        raise ValueError(f"need lr > 0, weight_decay >= 0, epochs >= 1, batch_size >= 1; got lr={lr}, "
                         f"weight_decay={weight_decay}, epochs={epochs}, batch_size={batch_size}")
    dev = model.mean.device
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    total = epochs * math.ceil(len(x) / batch_size)
    total = total if max_steps is None else min(total, max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: max(0.0, 1 - k / total) if anneal else 1.0)
    g = torch.Generator().manual_seed(seed)
    losses, initial, diverged = [], None, False
    model.train()
    steps = 0
    with tqdm(total=total, desc="softmax",
              disable=not progress, mininterval=2.0) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), batch_size):
                idx = order[i:i + batch_size]
                xb, yb = x[idx].to(dev), y[idx].to(dev)
                data = F.cross_entropy(model(xb), yb)
                if initial is None:
                    initial = float(data.detach())
                loss = data + weight_decay / 2 * model.linear.weight.pow(2).sum()
                if not torch.isfinite(loss):
                    diverged = True
                    break
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                steps += 1
                bar.update(1)
                if max_steps is not None and steps >= max_steps:
                    break
            if diverged or (max_steps is not None and steps >= max_steps):
                break
    model.eval()
    return TrainLog(tuple(losses), float(initial), diverged)


@torch.no_grad()
def topk_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, ks=(1, 5),
                  batch_size: int = 2048) -> dict[int, float]:
    """``{k: fraction of x whose label is among the model's k highest scores}``."""
    dev = next(model.parameters()).device
    hits = {k: 0 for k in ks}
    for i in range(0, len(x), batch_size):
        top = model(x[i:i + batch_size].to(dev)).topk(max(ks), dim=1).indices.cpu()
        for k in ks:
            hits[k] += int((top[:, :k] == y[i:i + batch_size, None].cpu()).any(1).sum())
    return {k: hits[k] / len(x) for k in ks}


def smoothness(templates: torch.Tensor) -> torch.Tensor:
    """How rough each template is: the mean squared difference of horizontally and vertically
    neighbouring pixels divided by twice the template's variance, ``(K,)``. About 1 for white
    noise, near 0 for a smooth image; independent of the template's scale."""
    t = templates.double()
    dx = (t[..., :, 1:] - t[..., :, :-1]).pow(2).flatten(1).mean(1)
    dy = (t[..., 1:, :] - t[..., :-1, :]).pow(2).flatten(1).mean(1)
    return (dx + dy) / 2 / (2 * t.flatten(1).var(1).clamp_min(1e-300))


@dataclass(frozen=True)
class FoolResult:
    """Per example: ``alpha`` the smallest step found (NaN where not reached), ``x_adv`` the
    fooled image (``x`` where not reached), ``p_target`` its target probability, ``reached``,
    and the perturbation's ``rms`` (root mean square over pixels) and ``linf``, in [0, 1] units."""

    alpha: torch.Tensor
    x_adv: torch.Tensor
    p_target: torch.Tensor
    reached: torch.Tensor
    rms: torch.Tensor
    linf: torch.Tensor


@torch.no_grad()
def fool_with_template(model: PixelSoftmax, x: torch.Tensor, target: torch.Tensor, *,
                       confidence: float = 0.99, alpha_max: float = 1.0, grid: int = 64,
                       bisections: int = 30) -> FoolResult:
    """The source's fooling: ``x(alpha) = clip(x + alpha * a_t / max|a_t|, 0, 1)``, ``a_t`` the
    target's template in [0, 1] units, with the smallest ``alpha`` in ``(0, alpha_max]`` at which
    the target's probability reaches ``confidence``.

    ``alpha`` is the largest change of any pixel before clipping. A geometric grid of ``grid``
    values from ``alpha_max / 1e4`` finds the first that reaches the confidence, then bisection
    narrows it (the probability need not be monotone once pixels clip, so it is the first
    crossing on the grid). Not reached within ``alpha_max``: ``reached`` False.
    """
    if not 0 < confidence < 1 or alpha_max <= 0:
        raise ValueError(f"need 0 < confidence < 1 and alpha_max > 0, got {confidence}, {alpha_max}")
    if x.ndim != 4 or target.shape != (len(x),):
        raise ValueError(f"x must be (N, 3, H, W) and target (N,), got {tuple(x.shape)}, {tuple(target.shape)}")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("x must lie in [0, 1]")
    dev = model.mean.device
    x = x.to(dev)
    A = model.templates(tuple(x.shape[1:]))
    direction = A[target.to(dev)]
    direction = direction / direction.flatten(1).abs().amax(1).view(-1, 1, 1, 1)

    def p_at(alpha):  # alpha (N,) -> (N,) target probabilities
        xa = (x + alpha.view(-1, 1, 1, 1) * direction).clamp(0, 1)
        return model(xa).softmax(1).gather(1, target.to(dev)[:, None]).squeeze(1)

    alphas = torch.logspace(math.log10(alpha_max) - 4, math.log10(alpha_max), grid, device=dev)
    n = len(x)
    first = torch.full((n,), -1, dtype=torch.long, device=dev)
    for i, a in enumerate(alphas):
        ok = (p_at(a.expand(n)) >= confidence) & (first < 0)
        first[ok] = i
    reached = first >= 0
    hi = torch.where(reached, alphas[first.clamp_min(0)], torch.full((n,), math.nan, device=dev))
    lo = torch.where(first > 0, alphas[(first - 1).clamp_min(0)], torch.zeros(n, device=dev))
    for _ in range(bisections):
        mid = (lo + hi) / 2
        ok = p_at(torch.nan_to_num(mid)) >= confidence
        hi = torch.where(reached & ok, mid, hi)
        lo = torch.where(reached & ~ok, mid, lo)
    alpha = hi
    x_adv = torch.where(reached.view(-1, 1, 1, 1),
                        (x + torch.nan_to_num(alpha).view(-1, 1, 1, 1) * direction).clamp(0, 1), x)
    r = (x_adv - x).flatten(1)
    return FoolResult(alpha.cpu(), x_adv.cpu(), p_at(torch.nan_to_num(alpha)).cpu(), reached.cpu(),
                      r.pow(2).mean(1).sqrt().cpu(), r.abs().amax(1).cpu())


def min_perturbation_linf(model: LinearSoftmax, x: torch.Tensor, target: torch.Tensor, *,
                          margin: float = 0.0) -> torch.Tensor:
    """The exact smallest L-infinity perturbation that makes ``target`` win inside [0, 1]^d.

    ``model``: the affine scores on [0, 1] pixels (:meth:`PixelSoftmax.affine`); ``x``:
    ``(N, d)`` in [0, 1]; ``target`` ``(N,)``. Per example the LP

        min t  s.t.  (a_t - a_j).(x + r) + c_t - c_j >= margin (j != t),  |r_i| <= t,  0 <= x + r <= 1

    is solved with scipy's HiGHS. Returns ``t`` ``(N,)`` (inf where the box forbids it). Exact but
    slow in this form for large problems: at 12,288 pixels and 200 classes one example takes
    minutes (the ``2d`` rows for ``|r_i| <= t``), so chapter 2 needs a faster formulation.
    """
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, hstack, identity, vstack

    if x.ndim != 2 or target.shape != (len(x),):
        raise ValueError(f"x must be (N, d) and target (N,), got {tuple(x.shape)}, {tuple(target.shape)}")
    A = model.weight.detach().double().cpu().numpy()
    c = model.bias.detach().double().cpu().numpy()
    d = A.shape[1]
    eye, ones = identity(d, format="csr"), csr_matrix(np.ones((d, 1)))
    box_rows = vstack([hstack([eye, -ones]), hstack([-eye, -ones])])  # r - t <= 0, -r - t <= 0
    cost = np.zeros(d + 1)
    cost[-1] = 1.0
    out = []
    for xn, t in zip(x.detach().double().cpu().numpy(), target.tolist()):
        others = [j for j in range(len(A)) if j != t]
        D, e = A[t] - A[others], c[t] - c[others]
        # variables (r, t): the target beats every other class: -D r <= D x + e - margin
        rows = vstack([hstack([csr_matrix(-D), csr_matrix((len(D), 1))]), box_rows]).tocsr()
        rhs = np.concatenate([D @ xn + e - margin, np.zeros(2 * d)])
        bounds = [(-xi, 1 - xi) for xi in xn] + [(0, None)]
        res = linprog(cost, A_ub=rows, b_ub=rhs, bounds=bounds, method="highs")
        if res.status == 2:  # infeasible: the box forbids the target
            out.append(math.inf)
        elif res.status == 0:
            out.append(res.x[-1])
        else:
            raise RuntimeError(f"linprog did not solve the L-infinity problem: {res.message}")
    return torch.tensor(out, dtype=torch.float64)


def two_class_bounds(model: LinearSoftmax, x: torch.Tensor, target: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The two-class closed forms against the currently winning class ``k``: the margin
    ``s_k - s_t`` over ``||a_t - a_k||_2`` (L2) and over ``||a_t - a_k||_1`` (L-infinity).

    They ignore the other classes and the box, so they are lower bounds of the exact optima.
    ``x``: ``(N, d)``; returns ``(l2, linf)``, each ``(N,)``.
    """
    x = x.double().to(model.weight.device)
    target = target.to(model.weight.device)
    s = x @ model.weight.double().T + model.bias.double()
    k = s.argmax(1)
    diff = model.weight.double()[target] - model.weight.double()[k]
    gap = (s.gather(1, k[:, None]) - s.gather(1, target[:, None])).squeeze(1).clamp_min(0)
    return gap / diff.norm(dim=1).clamp_min(1e-300), gap / diff.abs().sum(1).clamp_min(1e-300)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images ``(N, 3, H, W)`` in [0, 1] resized to ``size`` x ``size`` by area averaging
    (antialiased; exact block means when ``size`` divides ``H``)."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return F.interpolate(x, size=(size, size), mode="area").clamp(0, 1)


def channel_bias(templates: torch.Tensor) -> torch.Tensor:
    """How much each template favours each colour: the mean weight of each channel minus the mean
    of the other two, ``(K, 3)`` (positive green and negative red and blue: "counts green")."""
    m = templates.double().mean((2, 3))               # (K, 3)
    return m - (m.sum(1, keepdim=True) - m) / 2


def show_templates(ax, templates: torch.Tensor, *, title: str = "") -> None:
    """One template as an RGB image, each min-max scaled to [0, 1] (the source's rendering)."""
    t = templates.double()
    t = (t - t.min()) / (t.max() - t.min()).clamp_min(1e-300)
    ax.imshow(t.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
