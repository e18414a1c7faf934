"""Chapter 4's experiments: Szegedy et al. (2014), section 4.2, Tables 1-4 and Figure 7, on MNIST.

The paper's models and numbers are in :mod:`advtut.chapters.blindspots.source`; the chapter's
tables and results entries in :mod:`advtut.chapters.blindspots.report`. The experiments:

- :func:`train_model` builds and trains one the paper's way (full-batch L-BFGS, weight decay
  ``lambda * sum(w^2) / k``; AE400-10: a sparse autoencoder, frozen, then a softmax);
  :func:`train_models` trains a list of them, each from its own seed.
- :func:`attack_models`: each model's adversarial set
  (:func:`advtut.attacks.sets.adversarial_set`), kept in a cache file when asked.
- :func:`exact_check`, :func:`penalty_exactness`, :func:`exact_optima`: the attack on the
  linear FC10 against the exact optimum (:func:`advtut.minimal_move.exact_minimal_move_box`).
- :func:`cross_model_errors` (Table 2) and :func:`transfer_errors` (Table 4).
- :func:`adversarial_training`: the paper's claim that mixing adversarial examples into
  training helps, at a scale a profile can afford.

Images are ``(N, 1, 28, 28)`` float in [0, 1]; labels long ``(N,)``; distortions are the
paper's ``sqrt(sum((x' - x)^2) / n)``, ``n = 784``: :func:`advtut.distances.rms`.
"""
from __future__ import annotations

import copy
import math
import sys
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from advtut.attacks.lbfgs import LBFGSSearch, lbfgs_attack
from advtut.attacks.sets import AdversarialSet, adversarial_set
from advtut.book.cache import cache_path, data_digest, load_or_compute
from advtut.chapters.blindspots.source import LINEAR, ModelSpec
from advtut.evaluation import error_rate
from advtut.linear import LinearSoftmax
from advtut.minimal_move import exact_minimal_move_box
from advtut.models import AE400, FC, FC10
from advtut.seeding import seeded
from advtut.training import train_lbfgs, train_sparse_autoencoder

__all__ = ["cache_namer", "MnistSubsets", "mnist_subsets", "build_model", "train_model",
           "train_models", "attack_models", "train_test_errors", "split_errors", "ExactCheck",
           "exact_check", "penalty_exactness", "exact_optima", "untargeted_distortions"]


# --- Caching ------------------------------------------------------------------------------------


def cache_namer(cache_dir, *, profile: str, seed: int, settings, device="cpu",
                data: tuple[torch.Tensor, ...] = ()) -> Callable[..., object]:
    """``kept(*parts, **inputs)``: the cache file for ``parts`` (None when ``cache_dir`` is None),
    also keyed by ``inputs`` (what the caller chose: a seed, the tensors attacked or trained on,
    digested), its name
    keyed by ``profile``, ``seed``, the profile's ``settings``, the ``device`` (a GPU's models
    differ from a CPU's in the last bits), a digest of the ``data`` tensors (another data root
    gives other files) and the source of the chapter's computing modules (this one and
    :mod:`~advtut.chapters.blindspots.adversarial`, whose training it also keeps) and of every
    ``advtut`` module they import, transitively (:func:`advtut.book.cache.cache_path`)."""
    import advtut.chapters.blindspots.adversarial as adversarial  # imported here: it imports us

    if cache_dir is None:
        return lambda *parts: None
    code = (sys.modules[__name__], adversarial)
    key = {**dict(settings), "device": str(device), "data": data_digest(*data)}

    def kept(*parts, **inputs):
        chosen = {f"input.{k}": data_digest(*v) if isinstance(v, tuple) and v
                  and all(isinstance(e, torch.Tensor) for e in v) else v
                  for k, v in inputs.items()}
        return cache_path(cache_dir, profile, seed, *parts, settings={**key, **chosen},
                          code=code)

    return kept


def _cached(path, compute, kind):
    """``kind(**load_or_compute(path, asdict(compute())))``, or ``compute()`` without a path."""
    if path is None:
        return compute()
    return kind(**load_or_compute(path, lambda: asdict(compute())))


# --- Data and models ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MnistSubsets:
    """The chapter's images: ``x_train``/``y_train`` (Tables 1, 2; ``n_train`` of them), the
    halves ``x_p1``/``y_p1`` and ``x_p2``/``y_p2`` (Tables 3, 4; ``n_split`` each) and the
    whole test set ``x_test``/``y_test``."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_p1: torch.Tensor
    y_p1: torch.Tensor
    x_p2: torch.Tensor
    y_p2: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_train: int
    n_split: int


def mnist_subsets(train, test, *, seed: int, n_train: int | None) -> MnistSubsets:
    """One seeded order of the 60,000 training images: the first ``n_train`` (all if None) for
    Tables 1-2; halves P1 and P2 (Tables 3-4), of which the first ``n_train`` each."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train), generator=g)
    n = n_train or len(train)
    half = len(train) // 2
    p1, p2 = order[:half], order[half:]
    n_split = min(n_train or half, half)
    return MnistSubsets(train.x[order[:n]], train.y[order[:n]],
                        train.x[p1[:n_split]], train.y[p1[:n_split]],
                        train.x[p2[:n_split]], train.y[p2[:n_split]],
                        test.x, test.y, n, n_split)


def build_model(spec: ModelSpec) -> nn.Module:
    """A freshly initialised model for ``spec`` (seed torch first for a reproducible start)."""
    if spec.kind == "fc10":
        return FC10()
    if spec.kind == "fc":
        return FC(spec.hidden)
    return AE400(hidden=spec.hidden[0] if spec.hidden else 400)


def train_model(spec: ModelSpec, x: torch.Tensor, y: torch.Tensor, *, max_iter: int,
                ae_max_iter: int = 400, ae_images: int | None = None, data_loss: str = "mean",
                device: torch.device | str | None = None, cache=None,
                progress: bool = True) -> nn.Module:
    """Build and train ``spec`` on ``x`` ``(N, 1, 28, 28)``, ``y`` ``(N,)``; returns it (eval mode).

    ``max_iter``: L-BFGS iterations (it stops earlier at convergence). For AE400-10 the sparse
    autoencoder gets ``ae_max_iter`` iterations on the first ``ae_images`` images (all if None),
    then the softmax alone is trained on the frozen features with ``max_iter``. Training (full
    batch) runs on ``device`` (default: ``x``'s), where the returned model lives. ``cache``: a
    file path (see :func:`cache_namer`); the trained weights are kept there and reused by the
    next call with the same path.
    """
    device = x.device if device is None else torch.device(device)
    if cache is not None:
        state = load_or_compute(cache, lambda: train_model(
            spec, x, y, max_iter=max_iter, ae_max_iter=ae_max_iter, ae_images=ae_images,
            data_loss=data_loss, device=device, progress=progress).state_dict())
        model = build_model(spec)
        model.load_state_dict(state)
        for p in model.parameters():
            p.requires_grad_(spec.kind != "ae" or p is model.classifier.weight
                             or p is model.classifier.bias)
        return model.to(device).eval()
    x, y = x.to(device), y.to(device)
    model = build_model(spec).to(device)
    if spec.kind != "ae":
        train_lbfgs(model, x, y, lambdas=spec.lambdas, max_iter=max_iter, data_loss=data_loss,
                    progress=progress, desc=f"L-BFGS {spec.name}")
        return model
    pre = x if ae_images is None else x[:ae_images]
    train_sparse_autoencoder(model.encoder, model.decoder, pre, max_iter=ae_max_iter,
                             progress=progress)
    for p in (*model.encoder.parameters(), *model.decoder.parameters()):
        p.requires_grad_(False)
    with torch.no_grad():
        feats = model.encode(x)
    train_lbfgs(model.classifier, feats, y, lambdas=spec.lambdas, max_iter=max_iter,
                data_loss=data_loss, progress=progress, desc=f"L-BFGS {spec.name} softmax")
    return model.eval()


def train_models(specs, data, *, seeds, kept=None, prefix: str = "model",
                 **train_kw) -> tuple[dict[str, nn.Module], dict[str, float]]:
    """Train each of ``specs`` with :func:`train_model`, its initialisation seeded by its
    ``seed`` (the caller's random state is left as it was).

    ``data``: one ``(x, y)`` pair per spec; ``seeds``: one int per spec; ``kept``: a
    :func:`cache_namer` (each model kept as ``(prefix, name)``); ``train_kw`` go to
    :func:`train_model`. Returns ``({name: model}, {name: seconds})``.
    """
    import time

    models, seconds = {}, {}
    for spec, (x, y), seed in zip(specs, data, seeds, strict=True):
        t0 = time.perf_counter()
        cache = kept(prefix, spec.name, seed=seed, data=(x, y), **train_kw) if kept else None
        with seeded(seed):
            models[spec.name] = train_model(spec, x, y, cache=cache, **train_kw)
        seconds[spec.name] = time.perf_counter() - t0
    return models, seconds


def attack_models(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, *, seed: int,
                  kept=None, prefix: str = "set", **kw) -> dict[str, AdversarialSet]:
    """``{name: adversarial_set(model, x, y, seed=seed, convex=name in LINEAR, **kw)}``,
    each kept as ``(prefix, name)`` when ``kept`` (a :func:`cache_namer`) is given."""
    def one(name, model):
        path = kept(prefix, name, seed=seed, data=(x, y), **kw) if kept else None
        return _cached(path, lambda: adversarial_set(
            model, x, y, seed=seed, convex=name in LINEAR, desc=f"attack {name}", **kw),
            AdversarialSet)

    return {name: one(name, m) for name, m in models.items()}


def train_test_errors(models, data: MnistSubsets) -> dict[str, tuple[float, float]]:
    """``{name: (training error, test error)}`` on ``data.x_train`` and ``data.x_test``."""
    return {name: (error_rate(m, data.x_train, data.y_train),
                   error_rate(m, data.x_test, data.y_test)) for name, m in models.items()}


def split_errors(models, sets, data: MnistSubsets) -> dict[str, tuple[float, ...]]:
    """Table 3: ``{name: (error on P1, error on P2, test error, mean distortion)}``."""
    return {name: (error_rate(m, data.x_p1, data.y_p1), error_rate(m, data.x_p2, data.y_p2),
                   error_rate(m, data.x_test, data.y_test), float(sets[name].distortion.mean()))
            for name, m in models.items()}


# --- The attack against the exact optimum (linear FC10) -----------------------------------------
def _linear(model: nn.Module) -> LinearSoftmax:
    """An FC10 model's softmax layer as a float64 :class:`~advtut.linear.LinearSoftmax`."""
    return LinearSoftmax(model[1].weight.detach().double().cpu(),
                         model[1].bias.detach().double().cpu())


def _exact_distortion(lin: LinearSoftmax, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The exact optimum's distortion ``(M,)`` for ``x`` ``(M, ...)``: its L2 distance divided by
    ``sqrt(n)``, ``n`` the pixels of one image, i.e. :func:`advtut.distances.rms`."""
    return exact_minimal_move_box(lin, x.flatten(1), target).distance / math.sqrt(x[0].numel())


@dataclass(frozen=True)
class ExactCheck:
    """The attacked images of a linear model's set beside the exact optimum: ``index`` ``(M,)``
    into the set, ``x`` float64 ``(M, 1, 28, 28)``, ``target``, ``y``, the model as ``linear``,
    ``exact`` ``(M,)`` the optimum's distortion, and the attack's distortion divided by it,
    ``faithful`` and ``refined`` (NumPy ``(M,)``)."""

    index: torch.Tensor
    x: torch.Tensor
    target: torch.Tensor
    y: torch.Tensor
    linear: LinearSoftmax
    exact: torch.Tensor
    faithful: np.ndarray
    refined: np.ndarray


def exact_check(model: nn.Module, s: AdversarialSet) -> ExactCheck:
    """For every image the attack moved in ``s`` (distortion > 0), the exact optimum towards the
    same target on the FC10 ``model``, and the attack's distortion over the optimum's."""
    att = (s.distortion > 0).nonzero().squeeze(1)
    x, t, y = s.x[att].double(), s.target[att], s.y[att]
    lin = _linear(model)
    exact = _exact_distortion(lin, x, t)
    return ExactCheck(att, x, t, y, lin, exact,
                      (s.distortion[att].double() / exact).cpu().numpy(),
                      (s.distortion_refined[att].double() / exact).cpu().numpy())


def penalty_exactness(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
                      classes: tuple[int, int] = (3, 5)) -> dict[str, torch.Tensor]:
    """The attack with ``c`` bisected to 1e-5 over the exact optimum, per image, for the FC10
    ``model`` (ten classes, towards ``target``) and for a two-class model of its rows
    ``classes`` (towards the other of the two). ``x``: float64 ``(M, 1, 28, 28)``. Returns
    ``{"ten classes": (M,), "two classes (3, 5)": (M,)}`` ratios (>= 1 up to the solver's
    precision)."""
    lin = _linear(model)
    rows = list(classes)
    two = FC10(x[0].numel(), 2).double().eval()
    with torch.no_grad():
        two[1].weight.copy_(lin.weight[rows])
        two[1].bias.copy_(lin.bias[rows])
    t2 = 1 - two(x).argmax(1)
    lin2 = LinearSoftmax(lin.weight[rows], lin.bias[rows])
    ten = copy.deepcopy(model).double().cpu()
    out = {}
    for label, net, tgt, ref in [("ten classes", ten, target, lin),
                                 (f"two classes {tuple(classes)}", two, t2, lin2)]:
        res = lbfgs_attack(net, x, tgt, settings=LBFGSSearch(c_rel_tol=1e-5, tol=1e-9),
                           convex=True)
        out[label] = res.distortion / _exact_distortion(ref, x, tgt)
    return out


def exact_optima(check: ExactCheck, n: int) -> dict[str, torch.Tensor]:
    """The exact optimum's distortion ``(n,)`` for the first ``n`` images of ``check``, towards
    the nearest, the (seeded) random and the farthest wrong label."""
    lin, x, y = check.linear, check.x[:n], check.y[:n]
    k = lin.weight.shape[0]
    d_all = torch.stack([_exact_distortion(lin, x, (y + j) % k) for j in range(1, k)], dim=1)
    return {"nearest wrong label": d_all.min(1).values, "random wrong label": check.exact[:n],
            "farthest wrong label": d_all.max(1).values}


def untargeted_distortions(models, sets, names, x, y, *, seed: int, kept=None,
                           **kw) -> dict[str, tuple[float, float]]:
    """``{name: (mean distortion to the nearest of the nine wrong labels, mean distortion to the
    random label of sets[name])}`` over ``x`` (the first images of the sets)."""
    out = {}
    for name in names:
        path = kept("untargeted", name, seed=seed, data=(x, y), **kw) if kept else None
        u = _cached(path, lambda: adversarial_set(
            models[name], x, y, seed=seed, untargeted=True, convex=name in LINEAR,
            desc=f"attack {name}", **kw), AdversarialSet)
        out[name] = (float(u.distortion.mean()), float(sets[name].distortion[:len(x)].mean()))
    return out
