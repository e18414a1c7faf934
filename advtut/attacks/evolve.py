"""Fooling images grown from noise without gradients: an evolution strategy on the pixels.

Nguyen et al.'s fooling images come from evolution, not from gradient descent: the search
only queries the network's output. Here the search is separable CMA-ES (Ros and Hansen 2008:
CMA-ES with a diagonal covariance, linear in the number of pixels per generation, so it suits
784 of them), from the ``cma`` package, minimising ``-log p(label)`` (in float64) over images
in [0, 1] (``cma``'s bound handling keeps every candidate inside the box). It starts from one
uniform-noise image and stops when the best candidate's probability of ``label`` reaches
``threshold`` or after ``max_queries`` forward passes (one per candidate image; the
generation that crosses the cap finishes, so at most ``popsize - 1`` more).

Like :func:`~advtut.attacks.backwork.backwork`, not a minimal-perturbation attack: there is no
original, so :class:`EvolveResult` has ``success`` and ``queries`` and no ``distortion``.

Example::

    out = evolve(model, label=3, seed=0)
    out.x.shape, out.prob, out.queries       # (1, 1, 28, 28), >= 0.999 where out.success
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from advtut.attacks.base import check_attack_inputs
from advtut.evaluation import require_eval_mode

__all__ = ["EvolveResult", "evolve"]


@dataclass(frozen=True)
class EvolveResult:
    """One image evolved from noise. ``x``: ``(1, C, H, W)`` in [0, 1], the best candidate
    found (on the model's device); ``prob``: its probability of ``label`` (float64);
    ``success``: ``prob >= threshold``; ``queries``: forward passes spent (candidate images
    scored); ``generations``: CMA-ES iterations; ``stop``: why the search ended,
    ``"threshold"``, ``"query cap"`` or the ``cma`` termination criteria that fired."""

    x: torch.Tensor
    prob: float
    label: int
    success: bool
    queries: int
    generations: int
    stop: str


@torch.no_grad()
def evolve(model: nn.Module, *, label: int, image_shape: tuple[int, ...] = (1, 28, 28),
           threshold: float = 0.999, max_queries: int = 20_000, popsize: int | None = None,
           sigma0: float = 0.1, seed: int = 0, x0: torch.Tensor | None = None
           ) -> EvolveResult:
    """Separable CMA-ES from ``x0`` ``(1, *image_shape)`` in [0, 1] (None: one uniform-noise
    image seeded by ``seed``; the search itself is seeded by ``seed`` too)
    towards ``model``'s ``label`` with probability at least ``threshold``, within about
    ``max_queries`` forward passes; ``popsize``: candidates per generation (None: ``cma``'s
    default, ``4 + 3 ln(pixels)``, 23 for 784 pixels); ``sigma0``: the initial step size, in
    pixel units. ``model`` must be in eval mode and map ``(N, *image_shape)`` to logits."""
    import cma

    require_eval_mode(model, what="evolve")
    device = next(model.parameters()).device
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be a probability in (0, 1), got {threshold}")
    for name, v in (("max_queries", max_queries), ("popsize", popsize or 2)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            raise ValueError(f"{name} must be an integer of at least 2, got {v!r}")
    if not sigma0 > 0:
        raise ValueError(f"sigma0 must be a positive step size, got {sigma0!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (cma reads seed 0 as 'from the "
                         f"clock'; the search uses seed + 1), got {seed!r}")
    if x0 is None:
        x0 = torch.rand(1, *image_shape, generator=torch.Generator().manual_seed(seed))
    elif tuple(x0.shape) != (1, *image_shape) or not 0 <= float(x0.min()) <= float(x0.max()) <= 1:
        raise ValueError(f"x0 must be one image (1, {', '.join(map(str, image_shape))}) in "
                         f"[0, 1], got {tuple(x0.shape)}")
    x0 = x0.detach().cpu()
    check_attack_inputs(model, x0.to(device), torch.tensor([label], device=device),
                        targeted=True, allow_current=True)

    def score(xs: list) -> tuple[torch.Tensor, torch.Tensor]:
        xs = np.asarray(xs)                     # numpy input: cma's candidates
        x = torch.as_tensor(xs, dtype=torch.float32).reshape(-1, *image_shape)
        x = x.clamp(0, 1).to(device)                    # the bounds hold; clamp rounding
        logp = torch.log_softmax(model(x).double(), 1)[:, label].cpu()
        return x, logp

    options = {"CMA_diagonal": True, "bounds": [0, 1], "seed": seed + 1, "verbose": -9,
               "tolfun": 0, "tolflatfitness": 10**9}
    if popsize is not None:
        options["popsize"] = popsize
    saved = np.random.get_state()       # cma seeds NumPy's global generator: put it back
    try:
        return _search(cma.CMAEvolutionStrategy(x0.flatten().double().cpu().numpy(), sigma0,
                                                options), score, x0.to(device), label,
                       threshold, max_queries)
    finally:
        np.random.set_state(saved)


def _search(es, score, x0: torch.Tensor, label: int, threshold: float, max_queries: int
            ) -> EvolveResult:
    """The ask-score-tell loop of :func:`evolve`."""
    best_x, best_logp, queries, generations = x0, -float("inf"), 0, 0
    while not es.stop():
        xs = es.ask()
        x, logp = score(xs)
        queries += len(xs)
        generations += 1
        i = int(logp.argmax())
        if float(logp[i]) > best_logp:
            best_x, best_logp = x[i:i + 1].clone(), float(logp[i])
        if np.exp(best_logp) >= threshold:
            break
        es.tell(xs, (-logp).tolist())
        if queries >= max_queries:
            break
    prob = float(np.exp(best_logp))
    stop = ("threshold" if prob >= threshold else "query cap" if queries >= max_queries
            else ", ".join(sorted(es.stop())))
    return EvolveResult(best_x, prob, int(label), prob >= threshold, queries, generations, stop)
