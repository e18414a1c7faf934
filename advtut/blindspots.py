"""Chapter 4's experiments: Szegedy et al. (2014), section 4.2, Tables 1-4 and Figure 7, on MNIST.

The pieces, each usable on its own:

- :data:`TABLE1` and :data:`SPLIT`: the paper's models as :class:`ModelSpec` rows;
  :func:`train_model` builds and trains one the paper's way (full-batch L-BFGS, weight decay
  ``lambda * sum(w^2) / k``; AE400-10: a sparse autoencoder, frozen, then a softmax).
- :func:`adversarial_set`: the minimally distorted copy of a set of images, every example pushed
  to a seeded random wrong label with :func:`advtut.attacks.lbfgs.lbfgs_attack` (the faithful
  attack, and its boundary refinement beside it), so that the model's accuracy on it is 0%.
- :func:`error_matrix`, :func:`gaussian_noise`, :func:`amplify`: the cross-model tables.
- :func:`adversarial_training`: the paper's claim that mixing adversarial examples into training
  helps, at a scale a profile can afford.

Images are ``(N, 1, 28, 28)`` float in [0, 1]; labels long ``(N,)``; distortions are the paper's
``sqrt(sum((x' - x)^2) / n)``, ``n = 784``.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.std import tqdm

from advtut.attacks.lbfgs import distortion, lbfgs_attack, refine_on_boundary
from advtut.models import AE400, FC, FC10
from advtut.training import train_lbfgs, train_sparse_autoencoder

__all__ = ["ModelSpec", "TABLE1", "SPLIT", "build_model", "train_model", "error_rate", "cache_path",
           "random_wrong_labels", "AdversarialSet", "adversarial_set", "error_matrix",
           "gaussian_noise", "amplify", "AdversarialTraining", "adversarial_training"]

KINDS = ("fc10", "fc", "ae")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the paper's tables: ``name`` as printed there, ``kind`` (``"fc10"``, ``"fc"``,
    ``"ae"``), ``lambdas`` (one weight decay, or one per linear layer), ``hidden`` widths for
    ``"fc"`` (and ``(400,)`` for ``"ae"``), the paper's ``description``."""

    name: str
    kind: str
    lambdas: float | tuple[float, ...]
    hidden: tuple[int, ...] = ()
    description: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


_NET_DECAY = (1e-5, 1e-5, 1e-6)
TABLE1 = (
    ModelSpec("FC10(1e-4)", "fc10", 1e-4, description="Softmax with λ=1e-4"),
    ModelSpec("FC10(1e-2)", "fc10", 1e-2, description="Softmax with λ=1e-2"),
    ModelSpec("FC10(1)", "fc10", 1.0, description="Softmax with λ=1"),
    ModelSpec("FC100-100-10", "fc", _NET_DECAY, (100, 100), "Sigmoid network λ=1e-5, 1e-5, 1e-6"),
    ModelSpec("FC200-200-10", "fc", _NET_DECAY, (200, 200), "Sigmoid network λ=1e-5, 1e-5, 1e-6"),
    ModelSpec("AE400-10", "ae", 1e-6, (400,), "Autoencoder with Softmax λ=1e-6"),
)
SPLIT = (
    ModelSpec("FC100-100-10", "fc", _NET_DECAY, (100, 100), "100-100-10 trained on P1"),
    ModelSpec("FC123-456-10", "fc", _NET_DECAY, (123, 456), "123-456-10 trained on P1"),
    ModelSpec("FC100-100-10'", "fc", _NET_DECAY, (100, 100), "100-100-10 trained on P2"),
)


def _load_or_compute(path, compute):
    """``compute()``'s dict of tensors, numbers and strings, kept at ``path`` (when not None):
    loaded with ``weights_only=True`` when the file exists, else computed and written through a
    temporary file renamed into place (an interrupted run leaves no half-written file)."""
    import os
    from pathlib import Path

    if path is None:
        return compute()
    path = Path(path)
    if path.is_file():
        return torch.load(path, weights_only=True, map_location="cpu")
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(value, tmp)
    os.replace(tmp, path)
    return value


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
    """Build and train ``spec`` on ``x`` ``(N, 1, 28, 28)``, ``y`` ``(N,)``; returns it in eval mode.

    ``max_iter``: L-BFGS iterations (it stops earlier at convergence). For AE400-10 the sparse
    autoencoder gets ``ae_max_iter`` iterations on the first ``ae_images`` images (all if None),
    then the softmax alone is trained on the frozen features with ``max_iter``. Training (full
    batch) runs on ``device`` (default: ``x``'s), where the returned model lives. ``cache``: a
    file path; the trained weights are kept there and reused by the next call with the same path
    (a long run split into time-limited commands resumes from it; the caller keys the name by
    everything that matters: profile, seed, model).
    """
    device = x.device if device is None else torch.device(device)
    if cache is not None:
        state = _load_or_compute(cache, lambda: train_model(
            spec, x, y, max_iter=max_iter, ae_max_iter=ae_max_iter, ae_images=ae_images,
            data_loss=data_loss, device=device, progress=progress).state_dict())
        model = build_model(spec)
        model.load_state_dict(state)
        for p in model.parameters():
            p.requires_grad_(spec.kind != "ae" or p is model.classifier.weight or p is model.classifier.bias)
        return model.to(device).eval()
    x, y = x.to(device), y.to(device)
    model = build_model(spec).to(device)
    if spec.kind != "ae":
        train_lbfgs(model, x, y, lambdas=spec.lambdas, max_iter=max_iter, data_loss=data_loss,
                    progress=progress)
        return model
    pre = x if ae_images is None else x[:ae_images]
    train_sparse_autoencoder(model.encoder, model.decoder, pre, max_iter=ae_max_iter,
                             progress=progress)
    for p in (*model.encoder.parameters(), *model.decoder.parameters()):
        p.requires_grad_(False)
    with torch.no_grad():
        feats = model.features(x)
    train_lbfgs(model.classifier, feats, y, lambdas=spec.lambdas, max_iter=max_iter,
                data_loss=data_loss, progress=progress)
    return model.eval()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 10_000) -> torch.Tensor:
    """The model's labels for ``x``, ``(N,)`` long, computed in batches on the model's device."""
    dev = next(model.parameters()).device
    dt = next(model.parameters()).dtype
    return torch.cat([model(x[i:i + batch_size].to(dev, dt)).argmax(1).cpu()
                      for i in range(0, len(x), batch_size)])


def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 10_000) -> float:
    """The fraction of ``x`` that ``model`` labels differently from ``y``, in [0, 1]."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, got {len(x)} and {len(y)}")
    return float((predict(model, x, batch_size=batch_size) != y.cpu()).float().mean())


def cache_path(cache_dir, *parts) -> "Path | None":
    """``cache_dir / "part1-part2-....pt"`` with every character outside ``[A-Za-z0-9._-]``
    replaced by ``_``; None when ``cache_dir`` is None."""
    import re
    from pathlib import Path

    if cache_dir is None:
        return None
    return Path(cache_dir) / (re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(map(str, parts))) + ".pt")


def random_wrong_labels(y: torch.Tensor, *, seed: int, n_classes: int = 10) -> torch.Tensor:
    """A seeded label for each example, uniform over the ``n_classes - 1`` labels other than ``y``."""
    g = torch.Generator().manual_seed(seed)
    return (y.cpu() + torch.randint(1, n_classes, (len(y),), generator=g)) % n_classes


@dataclass(frozen=True)
class AdversarialSet:
    """Adversarial copies of ``x`` for one model (all tensors on the CPU).

    ``target``: the label each example was pushed to (for ``untargeted`` sets, the one of the
    nine that needed the least distortion); ``x_adv``/``distortion``: the faithful attack;
    ``x_refined``/``distortion_refined``: after :func:`refine_on_boundary`. Examples the model
    already got wrong are left as they are (distortion 0: they need none to be misclassified).
    ``success``: the model labels ``x_adv`` as ``target`` (or already got ``x`` wrong).
    """

    model: str
    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor
    x_adv: torch.Tensor
    distortion: torch.Tensor
    x_refined: torch.Tensor
    distortion_refined: torch.Tensor
    success: torch.Tensor
    seconds: float


def _attack_batches(model, x, target, *, batch_size, c_rel_tol, convex, progress, desc):
    """Faithful and refined attacks over ``x`` in batches; returns (x_adv, x_ref, success)."""
    dev = next(model.parameters()).device
    dt = next(model.parameters()).dtype
    adv, ref, ok = [], [], []
    starts = range(0, len(x), batch_size)
    for i in tqdm(starts, desc=desc, disable=not progress, mininterval=2.0):
        xb, tb = x[i:i + batch_size].to(dev, dt), target[i:i + batch_size].to(dev)
        res = lbfgs_attack(model, xb, tb, c_rel_tol=c_rel_tol, convex=convex)
        refd = refine_on_boundary(model, xb, res, tb)
        adv.append(res.x_adv.cpu())
        ref.append(refd.x_adv.cpu())
        ok.append(res.success.cpu())
    return torch.cat(adv), torch.cat(ref), torch.cat(ok)


def _stored(model, x, z, target, ok):
    """``z`` (float64, ``(M, ...)``) cast to ``x``'s dtype so that ``model``, in its own dtype,
    still labels it ``target``: points a hair from the boundary can flip when cast, so those are
    pushed further along ``r = z - x`` (by 0.01% up to 10%) until they hold. Returns the points
    and where they hold."""
    out = z.to(x.dtype)
    bad = ok & (predict(model, out) != target)
    for scale in (1.0001, 1.001, 1.01, 1.1):
        if not bad.any():
            break
        xb = x[bad].double()
        out[bad] = (xb + scale * (z[bad].double() - xb)).clamp(0, 1).to(x.dtype)
        bad = ok & (predict(model, out) != target)
    return out, ok & ~bad


def adversarial_set(model: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor, *, seed: int,
                    untargeted: bool = False, batch_size: int = 500, c_rel_tol: float = 0.01,
                    float64: bool = True, convex: bool = False, cache=None,
                    progress: bool = True) -> AdversarialSet:
    """Push every correctly classified image of ``x`` to a wrong label with the L-BFGS attack.

    ``x``: ``(N, 1, 28, 28)`` in [0, 1] on the CPU, ``y`` ``(N,)``. The target is
    :func:`random_wrong_labels` (``seed``), or with ``untargeted=True`` each of the nine wrong
    labels in turn, keeping the closest (nine times the work). ``float64`` attacks a float64
    copy of the model (the refinement needs the precision; the model itself is not changed);
    the images are stored in ``x``'s dtype and checked against ``model`` itself (see
    :func:`_stored`). ``convex``: the model is linear (passed on to :func:`lbfgs_attack`).
    Attacks run on the model's device in batches of ``batch_size``. ``cache``: a file path where
    the set is kept and reused (see :func:`train_model`).
    """
    if cache is not None:
        from dataclasses import asdict

        kept = _load_or_compute(cache, lambda: asdict(adversarial_set(
            model, name, x, y, seed=seed, untargeted=untargeted, batch_size=batch_size,
            c_rel_tol=c_rel_tol, float64=float64, convex=convex, progress=progress)))
        return AdversarialSet(**kept)
    import time

    start = time.perf_counter()
    net = copy.deepcopy(model).double() if float64 else model
    net.eval()
    x, y = x.cpu(), y.cpu()
    pred = predict(model, x)
    right = pred == y
    if not untargeted:
        choices = [random_wrong_labels(y, seed=seed)]
    else:
        choices = [(y + k) % 10 for k in range(1, 10)]
    best_adv, best_ref = x.clone(), x.clone()
    best_d = torch.where(right, torch.full((len(x),), math.inf, dtype=torch.float64), 0.0)
    best_dr = best_d.clone()
    best_t = torch.where(right, choices[0], pred)
    success = ~right
    idx = right.nonzero().squeeze(1)
    for k, target in enumerate(choices):
        if len(idx) == 0:
            break
        desc = f"attack {name}" + (f" (target +{k + 1})" if untargeted else "")
        adv, ref, ok = _attack_batches(net, x[idx].double() if float64 else x[idx], target[idx],
                                       batch_size=batch_size, c_rel_tol=c_rel_tol, convex=convex,
                                       progress=progress, desc=desc)
        adv, ok = _stored(model, x[idx], adv, target[idx], ok)
        ref, ok_ref = _stored(model, x[idx], ref, target[idx], ok)
        ref = torch.where(ok_ref.view(-1, *[1] * (x.ndim - 1)), ref, adv)  # else the faithful one
        d = torch.where(ok, distortion(adv.double(), x[idx].double()), math.inf)
        dr = torch.where(ok, distortion(ref.double(), x[idx].double()), math.inf)
        better = d < best_d[idx]
        rows = idx[better]
        best_adv[rows], best_d[rows], best_t[rows] = adv[better], d[better], target[idx][better]
        best_ref[rows], best_dr[rows] = ref[better], dr[better]
        success[idx[ok]] = True
    failed = ~success
    best_d[failed], best_dr[failed] = 0.0, 0.0  # left as x: reported through success
    return AdversarialSet(name, x, y, best_t, best_adv, best_d.float(), best_ref, best_dr.float(),
                          success, time.perf_counter() - start)


def error_matrix(models: dict[str, nn.Module], inputs: dict[str, tuple[torch.Tensor, torch.Tensor]]
                 ) -> dict[str, dict[str, float]]:
    """``{row: {model: error}}``: each model's error rate on each row's ``(x, y)``."""
    return {row: {name: error_rate(m, xr, yr) for name, m in models.items()}
            for row, (xr, yr) in inputs.items()}


def gaussian_noise(x: torch.Tensor, std: float, *, seed: int) -> torch.Tensor:
    """``clip(x + N(0, std^2), 0, 1)`` elementwise, seeded; same shape as ``x``."""
    if not std >= 0:
        raise ValueError(f"std must be >= 0, got {std}")
    g = torch.Generator().manual_seed(seed)
    return (x + std * torch.randn(x.shape, generator=g, dtype=x.dtype)).clamp(0, 1)


def amplify(x: torch.Tensor, x_adv: torch.Tensor, *, to: float = 0.1) -> torch.Tensor:
    """Szegedy et al.'s amplified examples: ``clip(x + to * r / d(r), 0, 1)``, ``r = x_adv - x``.

    ``d`` is the paper's distortion measure ``sqrt(sum(r^2) / n)``, so the result has distortion
    ``to`` before clipping (the paper writes ``x + 0.1 (x' - x) / ||x' - x||_2``; with the plain L2
    norm that would shrink every perturbation to ``0.1 / 28 = 0.0036``, not magnify it by 40% to
    the stddev 0.1 its Table 4 reports). Rows with ``r = 0`` stay ``x``.
    """
    r = (x_adv - x).double()
    d = r.flatten(1).pow(2).mean(1).sqrt()
    scale = torch.where(d > 0, to / d.clamp_min(1e-300), 0.0).view(-1, *([1] * (x.ndim - 1)))
    return (x.double() + scale * r).clamp(0, 1).to(x.dtype)


@dataclass(frozen=True)
class AdversarialTraining:
    """Test errors of the two continuations of one trained network: ``control`` (the training set
    alone) and ``adversarial`` (training set plus the pool); ``pool_size`` examples at the end;
    ``errors_control``/``errors_adversarial``: the test error after each round."""

    control: float
    adversarial: float
    pool_size: int
    errors_control: tuple[float, ...]
    errors_adversarial: tuple[float, ...]


def adversarial_training(model: nn.Module, spec: ModelSpec, x: torch.Tensor, y: torch.Tensor,
                         x_test: torch.Tensor, y_test: torch.Tensor, *, rounds: int,
                         per_round: int, max_iter: int, seed: int, pool_max: int | None = None,
                         cache=None, progress: bool = True) -> AdversarialTraining:
    """Continue training ``model`` with and without a pool of adversarial examples.

    Each round: attack ``per_round`` random training images of the current adversarially trained
    network (seeded random wrong targets, the faithful attack with a coarse ``c`` search, 10%),
    add them to the pool with their *true* labels (dropping random old ones beyond
    ``pool_max``), and run ``max_iter`` L-BFGS iterations on training set plus pool. The control
    copy runs the same iterations on the training set alone. Input-layer pools only: the paper's
    per-layer pools are not specified closely enough to reproduce. ``cache``: as in
    :func:`train_model`.
    """
    if cache is not None:
        from dataclasses import asdict

        kept = _load_or_compute(cache, lambda: asdict(adversarial_training(
            model, spec, x, y, x_test, y_test, rounds=rounds, per_round=per_round,
            max_iter=max_iter, seed=seed, pool_max=pool_max, progress=progress)))
        return AdversarialTraining(**kept)
    if rounds < 1 or per_round < 1 or max_iter < 1:
        raise ValueError(f"need rounds, per_round, max_iter >= 1; got {rounds}, {per_round}, {max_iter}")
    g = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    control, adv = copy.deepcopy(model), copy.deepcopy(model)
    x, y = x.cpu(), y.cpu()
    pool_x, pool_y = x[:0], y[:0]
    errs_c, errs_a = [], []
    for r in range(rounds):
        pick = torch.randperm(len(x), generator=g)[:per_round]
        aset = adversarial_set(adv, "pool", x[pick], y[pick], seed=seed + 1000 + r,
                               c_rel_tol=0.1, progress=progress)
        new = aset.success & (aset.distortion > 0)
        pool_x = torch.cat([pool_x, aset.x_adv[new]])
        pool_y = torch.cat([pool_y, aset.y[new]])
        if pool_max is not None and len(pool_x) > pool_max:
            keep = torch.randperm(len(pool_x), generator=g)[:pool_max]
            pool_x, pool_y = pool_x[keep], pool_y[keep]
        train_lbfgs(adv, torch.cat([x, pool_x]).to(dev), torch.cat([y, pool_y]).to(dev),
                    lambdas=spec.lambdas, max_iter=max_iter, progress=progress)
        train_lbfgs(control, x.to(dev), y.to(dev), lambdas=spec.lambdas, max_iter=max_iter,
                    progress=progress)
        errs_c.append(error_rate(control, x_test, y_test))
        errs_a.append(error_rate(adv, x_test, y_test))
    return AdversarialTraining(errs_c[-1], errs_a[-1], len(pool_x), tuple(errs_c), tuple(errs_a))
