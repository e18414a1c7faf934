"""Which input pixels does a classifier's output depend on? One function per method.

Every function takes a model in eval mode that maps ``x`` ``(N, ...)`` to logits ``(N, K)``,
and returns a tensor of ``x``'s shape (or a frozen dataclass holding one): the attribution of
each input element to the logit of ``target`` (``(N,)`` class indices; default: the model's own
prediction, the top logit, as the source uses).

- :func:`gradient`: ``d logit_target / d x``.
- :func:`gradient_x_input`: the source's "gradient x input", ``|d logit / d x| * x``
  (``absolute=False``: ``d logit / d x * x``, captum's ``InputXGradient``).
- :func:`integrated_gradients`: ``(x - x0) * integral_0^1 grad f(x0 + a (x - x0)) da`` on the
  straight path from a baseline ``x0``, by a stated quadrature rule; also returns the
  completeness gap ``sum(attributions) - (f(x) - f(x0))``, which a good rule makes small.
- :func:`occlusion`: how much the logit drops when a patch around each pixel is set to a fill
  value (averaged over the patches that cover the pixel, as captum's ``Occlusion``).
- :class:`TrainingRecorder`: a training callback that follows fixed inputs' gradient x input
  after every update, and the source's own proposal: the input gradient of one fixed input
  integrated over the course of training.

To compare maps: :func:`max_normalise` (the source's display scaling), :func:`rank_correlation`
(Spearman, per example), :func:`edge_map` (Sobel edges of the input), and
:func:`cascading_randomisation` (Adebayo et al.'s sanity check: re-initialise the layers from
the top down).

Example::

    ig = integrated_gradients(model, x, steps=50)     # x: (N, 1, 28, 28) in [0, 1]
    ig.attributions.shape                             # (N, 1, 28, 28)
    ig.gap.abs().max()                                # completeness, in logit units
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from advtut.evaluation import eval_mode, require_eval_mode
from advtut.seeding import seeded

__all__ = ["RULES", "gradient", "gradient_x_input", "IntegratedGradients", "integrated_gradients",
           "quadrature", "occlusion", "max_normalise", "rank_correlation", "edge_map",
           "TrainingRecorder", "cascading_randomisation"]

RULES = ("gausslegendre", "trapezoid", "riemann_left", "riemann_right", "riemann_middle")


def _checked(model: nn.Module, x: torch.Tensor, target, what: str) -> torch.Tensor:
    require_eval_mode(model, what=what)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"x must be a floating-point batch (N, ...), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    with torch.no_grad():
        logits = model(x)
    if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"model must map x (N, ...) to logits (N, K), got {tuple(logits.shape)}")
    if target is None:
        return logits.argmax(1)
    target = torch.as_tensor(target, device=x.device)
    if target.shape != (x.shape[0],) or target.dtype != torch.long:
        raise ValueError(f"target must be long class indices of shape ({x.shape[0]},), got "
                         f"{target.dtype} {tuple(target.shape)}")
    if bool(((target < 0) | (target >= logits.shape[1])).any()):
        raise ValueError(f"target must lie in [0, {logits.shape[1]}), got {target.tolist()}")
    return target


def _grad(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    out = model(x).gather(1, target[:, None]).sum()
    (g,) = torch.autograd.grad(out, x)
    return g


def gradient(model: nn.Module, x: torch.Tensor, *, target=None) -> torch.Tensor:
    """``d logit_target / d x`` per example: ``x``'s shape, in logit units per input unit."""
    return _grad(model, x, _checked(model, x, target, "gradient"))


def gradient_x_input(model: nn.Module, x: torch.Tensor, *, target=None,
                     absolute: bool = True) -> torch.Tensor:
    """The source's gradient x input, ``|d logit_target / d x| * x`` (``x``'s shape); with
    ``absolute=False`` the signed ``d logit / d x * x`` (captum's ``InputXGradient``)."""
    g = _grad(model, x, _checked(model, x, target, "gradient_x_input"))
    return (g.abs() if absolute else g) * x.detach()


def quadrature(rule: str, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``a`` in [0, 1] and weights (summing to 1) of an integration rule on [0, 1].

    ``"gausslegendre"``: exact for polynomials of degree ``2 steps - 1`` (captum's default);
    ``"trapezoid"``: the textbook rule on ``steps`` equally spaced points including both ends
    (weights 1/(2(n-1)) at the ends, 1/(n-1) inside); ``"riemann_left"``, ``"riemann_right"``,
    ``"riemann_middle"``: ``steps`` equal weights ``1/steps``. float64.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < (2 if rule == "trapezoid" else 1):
        raise ValueError(f"steps must be an integer >= {2 if rule == 'trapezoid' else 1}, got {steps!r}")
    n = steps
    if rule == "gausslegendre":
        t, w = np.polynomial.legendre.leggauss(n)
        return torch.from_numpy((t + 1) / 2), torch.from_numpy(w / 2)
    if rule == "trapezoid":
        a = torch.linspace(0, 1, n, dtype=torch.float64)
        w = torch.full((n,), 1 / (n - 1), dtype=torch.float64)
        w[0] = w[-1] = 1 / (2 * (n - 1))
        return a, w
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]
    a = (torch.arange(n, dtype=torch.float64) + offset) / n
    return a, torch.full((n,), 1 / n, dtype=torch.float64)


@dataclass(frozen=True)
class IntegratedGradients:
    """``attributions``: ``x``'s shape; ``gap``: ``(N,)``, ``attributions.sum() - (f(x) -
    f(baseline))`` per example in logit units (0 for an exact integral); ``rule``, ``steps``."""

    attributions: torch.Tensor
    gap: torch.Tensor
    rule: str
    steps: int


def integrated_gradients(model: nn.Module, x: torch.Tensor, *, baseline: torch.Tensor | None = None,
                         target=None, steps: int = 50, rule: str = "gausslegendre",
                         batch_size: int = 1024) -> IntegratedGradients:
    """Integrated gradients (Sundararajan et al., 2017) of ``target``'s logit at ``x`` ``(N, ...)``
    from ``baseline`` (``x``'s shape; default: zeros, a black image), with the quadrature
    ``rule`` on ``steps`` nodes (:func:`quadrature`). The ``N * steps`` path points are
    evaluated in batches of at most ``batch_size``."""
    target = _checked(model, x, target, "integrated_gradients")
    x = x.detach()
    x0 = torch.zeros_like(x) if baseline is None else baseline.detach().to(x)
    if x0.shape != x.shape:
        raise ValueError(f"baseline must have x's shape {tuple(x.shape)}, got {tuple(x0.shape)}")
    nodes, weights = quadrature(rule, steps)
    nodes, weights = nodes.to(x.device, x.dtype), weights.to(x.device, x.dtype)
    shape = (1,) * x.ndim                                 # a node broadcast over (N, ...)
    total = torch.zeros_like(x)
    per = max(1, batch_size // max(1, len(x)))          # nodes per batch
    for i in range(0, steps, per):
        a, w = nodes[i:i + per], weights[i:i + per]
        points = x0[None] + a.view(-1, *shape) * (x - x0)[None]           # (s, N, ...)
        g = _grad(model, points.flatten(0, 1), target.repeat(len(a)))
        total += (w.view(-1, *shape) * g.view(len(a), *x.shape)).sum(0)
    attributions = (x - x0) * total
    with torch.no_grad():
        f = model(x).gather(1, target[:, None])[:, 0] - model(x0).gather(1, target[:, None])[:, 0]
    gap = attributions.flatten(1).sum(1) - f
    return IntegratedGradients(attributions, gap, rule, steps)


def occlusion(model: nn.Module, x: torch.Tensor, *, patch: int, stride: int, target=None,
              fill: float = 0.0) -> torch.Tensor:
    """Occlusion of images ``x`` ``(N, C, H, W)``: for every position of a ``patch x patch``
    window (all channels) moved by ``stride`` until the image is covered (the last one cut at
    the border), set it to ``fill`` and record how much ``target``'s logit falls; a pixel's
    attribution is the mean over the windows that cover it. Returns ``x``'s shape, in logit
    units."""
    target = _checked(model, x, target, "occlusion")
    if x.ndim != 4:
        raise ValueError(f"x must be images (N, C, H, W), got {tuple(x.shape)}")
    h, w = x.shape[2:]
    for name, v in (("patch", patch), ("stride", stride)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if patch > min(h, w):
        raise ValueError(f"patch ({patch}) must fit in the images ({h} x {w})")
    if stride > patch:
        raise ValueError(f"stride ({stride}) must be at most patch ({patch}), or the pixels "
                         "between windows would get no attribution")
    x = x.detach()
    with torch.no_grad():
        base = model(x).gather(1, target[:, None])[:, 0]
        total = torch.zeros_like(x[:, :1])
        count = torch.zeros_like(x[:, :1])
        # window starts every `stride` pixels until the image is covered; the last window is
        # cut at the border (as captum's Occlusion does), so every pixel is covered
        tops = [i * stride for i in range(-(-(h - patch) // stride) + 1)]
        lefts = [i * stride for i in range(-(-(w - patch) // stride) + 1)]
        for top in tops:
            for left in lefts:
                xo = x.clone()
                xo[:, :, top:top + patch, left:left + patch] = fill
                drop = base - model(xo).gather(1, target[:, None])[:, 0]
                total[:, :, top:top + patch, left:left + patch] += drop.view(-1, 1, 1, 1)
                count[:, :, top:top + patch, left:left + patch] += 1
    return (total / count.clamp_min(1)).expand_as(x).clone()


def max_normalise(a: torch.Tensor) -> torch.Tensor:
    """Each example of ``a`` ``(N, ...)`` divided by its largest absolute value (the source's
    display scaling; an all-zero map stays zero). Same shape; values in [-1, 1]."""
    peak = a.detach().abs().flatten(1).amax(1).clamp_min(torch.finfo(a.dtype).tiny)
    return a.detach() / peak.view(-1, *(1,) * (a.ndim - 1))


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 1..D along dim 1 of ``v`` ``(N, D)``, tied values sharing their mean rank."""
    from scipy.stats import rankdata

    return torch.from_numpy(rankdata(v.detach().cpu().double().numpy(), axis=1))


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of each example's map in ``a`` with the same example's in
    ``b`` (both ``(N, ...)``, same shape): ``(N,)`` float64 on the CPU, in [-1, 1]; 1 when the
    maps order the elements alike. Tied values (a black background's zeros) share their mean
    rank, as in ``scipy.stats.spearmanr``; a constant map gives ``nan``."""
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"a and b must be batches (N, ...) of the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    ra, rb = _ranks(a.flatten(1)), _ranks(b.flatten(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))


def edge_map(x: torch.Tensor) -> torch.Tensor:
    """The edges of images ``x`` ``(N, C, H, W)``: the Sobel gradient magnitude of each channel
    (zero padding), summed over channels. Returns ``(N, 1, H, W)``, in input units per pixel."""
    if x.ndim != 4:
        raise ValueError(f"x must be images (N, C, H, W), got {tuple(x.shape)}")
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                         dtype=x.dtype, device=x.device) / 8
    kernels = torch.stack([sobel, sobel.T])[:, None]                 # (2, 1, 3, 3)
    flat = x.detach().flatten(0, 1)[:, None]                         # (N C, 1, H, W)
    g = torch.nn.functional.conv2d(flat, kernels, padding=1)         # (N C, 2, H, W)
    return g.norm(dim=1).view(x.shape).sum(1, keepdim=True)


class TrainingRecorder:
    """A training callback (``callback(step, model)`` of :func:`advtut.training.train_minibatch`)
    that follows fixed inputs through training.

    ``x`` ``(N, ...)``: the inputs, on the model's device; ``target`` ``(N,)``: the class whose
    logit the integral follows (their true labels); ``every``: keep a frame every that many
    updates. Call ``recorder.start(model)`` before training (step 0). After each update it
    computes, with the model briefly in eval mode (BatchNorm statistics untouched):

    - ``frames``: ``(T, N, ...)`` float32 on the CPU, the source's gradient x input
      ``|d top logit / d x| * x``, max-normalised per example, at ``frame_steps`` (step 0,
      every ``every``-th update and the last one);
    - ``changes``: a list of ``n_steps`` floats, how much each update moved the gradient x input:
      ``||a_t - a_{t-1}|| / ||a_{t-1}||`` (L2 over each input's map), averaged over the inputs;
    - :attr:`integrated`: the source's proposal, ``x * mean_t d logit_target / d x`` over the
      models after every update (step 0 excluded): the input gradient of one fixed input
      integrated over training, as integrated gradients integrates it over a path of inputs.
    """

    def __init__(self, x: torch.Tensor, target: torch.Tensor, *, every: int):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if target.shape != (len(x),):
            raise ValueError(f"target must have shape ({len(x)},), got {tuple(target.shape)}")
        self.x, self.target, self.every = x.detach(), target.to(x.device), every
        self.frames: list[torch.Tensor] = []
        self.frame_steps: list[int] = []
        self.changes: list[float] = []
        self._sum = torch.zeros_like(self.x, dtype=torch.float64)
        self._n = 0
        self._last: torch.Tensor | None = None
        self._pending: int | None = None     # an update whose frame was not kept

    def _maps(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """The source's gradient x input (top logit) and the target logit's gradient, from one
        forward and one backward pass over the inputs stacked twice."""
        n = len(self.x)
        with eval_mode(model):
            x2 = torch.cat([self.x, self.x]).requires_grad_(True)
            out = model(x2)
            which = torch.cat([out[:n].detach().argmax(1), self.target])
            (g,) = torch.autograd.grad(out.gather(1, which[:, None]).sum(), x2)
        return g[:n].abs() * self.x, g[n:]

    def start(self, model: nn.Module) -> None:
        """Record step 0 (the initial weights)."""
        top, _ = self._maps(model)
        self._keep(0, top)

    def _keep(self, step: int, top: torch.Tensor) -> None:
        self.frames.append(max_normalise(top).float().cpu())
        self.frame_steps.append(step)
        self._last, self._pending = top, None

    def __call__(self, step: int, model: nn.Module) -> None:
        if self._last is None:
            raise RuntimeError("call recorder.start(model) before training")
        top, along = self._maps(model)
        moved = (top - self._last).flatten(1).norm(dim=1)
        self.changes.append(float((moved / self._last.flatten(1).norm(dim=1).clamp_min(
            torch.finfo(top.dtype).tiny)).mean()))
        self._sum += along.double()
        self._n += 1
        if step % self.every == 0:
            self._keep(step, top)
        else:
            self._last, self._pending = top, step

    def finish(self) -> None:
        """Keep the last update's frame if it was not kept already."""
        if self._pending is not None:
            self._keep(self._pending, self._last)

    @property
    def integrated(self) -> torch.Tensor:
        """``x * mean_t d logit_target / d x`` over the recorded updates (``x``'s shape)."""
        if self._n == 0:
            raise RuntimeError("no update recorded yet: train with this recorder as callback")
        return (self.x.double() * self._sum / self._n).to(self.x.dtype)


def cascading_randomisation(model: nn.Module, layers: Sequence, *, seed: int
                            ) -> list[tuple[str, nn.Module]]:
    """Adebayo et al.'s (2018) cascading randomisation: copies of ``model`` with its layers
    re-initialised from the top down.

    ``layers``: module names (``model.get_submodule``), top layer first; an entry may be a
    tuple of names re-initialised together (a convolution and its BatchNorm). Returns one
    ``(name, copy)`` per entry, in eval mode, the ``k``-th copy with the first ``k`` entries
    re-initialised by their own ``reset_parameters`` under ``torch.manual_seed(seed + k)``
    (the caller's random state is kept). ``model`` itself is not changed.
    """
    out, current = [], copy.deepcopy(model)
    for k, entry in enumerate(layers, start=1):
        names = (entry,) if isinstance(entry, str) else tuple(entry)
        current = copy.deepcopy(current)
        with seeded(seed + k):      # CPU and CUDA generators restored afterwards
            for name in names:
                try:
                    module = current.get_submodule(name)
                except AttributeError:
                    raise ValueError(f"layers: model has no module {name!r}") from None
                if not hasattr(module, "reset_parameters"):
                    raise ValueError(f"layers: module {name!r} ({type(module).__name__}) has no "
                                     "parameters to re-initialise")
                module.reset_parameters()
        out.append(("+".join(names), current.eval()))
    return out
