"""Batched evaluation of a classifier: logits, labels, error rates, top-k accuracy.

Every function runs under ``torch.no_grad()`` with the model in eval mode (:func:`eval_mode`),
and puts every module's train/eval flag back as it found it: evaluating a model that is in the
middle of training neither changes its BatchNorm running statistics nor leaves it in eval mode.
Inputs ``x``: ``(N, ...)``, anywhere; batches of ``batch_size`` (:data:`BATCH_SIZE` by default)
are moved to the model's device and cast to its dtype (that of its first parameter). uint8
images are pixels 0-255 and are scaled to [0, 1] (as :func:`advtut.training.train_minibatch`
does); other dtypes are taken as given. Labels ``y``: long ``(N,)``. Results are on the CPU.

Attacks that must not run a model in train mode call :func:`require_eval_mode`.

Example::

    error_rate(model, x_test, y_test)            # a float in [0, 1]
    topk_accuracy(model, x_test, y_test)         # {1: 0.93, 5: 0.998}
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

#: The default batch: on a CPU a batch of 10,000 digits through a small CNN takes twice as long
#: as the same digits in batches of 512 (the activations no longer fit the caches); on a GPU 512
#: is already past the point where larger batches help a small model much.
BATCH_SIZE = 512

__all__ = ["BATCH_SIZE", "model_mode", "eval_mode", "require_eval_mode", "logits", "predict", "error_rate",
           "topk_accuracy", "error_matrix"]


@contextmanager
def model_mode(model: nn.Module, *, training: bool) -> Iterator[nn.Module]:
    """Inside the block, ``model`` (every submodule) is in train (``training=True``) or eval mode;
    afterwards each submodule's own flag is restored, even after an exception."""
    saved = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for m, flag in saved:
            m.training = flag


def eval_mode(model: nn.Module):
    """``with eval_mode(model):`` the model in eval mode inside, each module's mode restored after."""
    return model_mode(model, training=False)


def require_eval_mode(model: nn.Module, *, what: str) -> None:
    """Raise a ``ValueError`` naming ``what`` when ``model`` or any submodule is in train mode."""
    if any(m.training for m in model.modules()):
        raise ValueError(f"{what} needs the model in eval mode (call model.eval()); it is in train "
                         "mode, which would change BatchNorm statistics and dropout")


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype | None]:
    """The first parameter's (or buffer's) device and dtype; the CPU and no cast without either."""
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), None


def _check(x: torch.Tensor, y: torch.Tensor | None, batch_size: int) -> None:
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"x must hold at least one example, got shape {tuple(x.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if y is not None:
        if y.ndim != 1:
            raise ValueError(f"y must have shape (N,), got {tuple(y.shape)}")
        if len(y) != len(x):
            raise ValueError(f"x and y must hold the same number of examples, got {len(x)} and {len(y)}")


def _batches(model: nn.Module, x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """The model's output ``(B, K)`` for each batch of ``x``, on the model's device. Callers
    iterate inside ``with eval_mode(model), torch.no_grad():``."""
    device, dtype = _device_dtype(model)
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        if xb.dtype == torch.uint8:  # images kept as pixels 0-255
            xb = xb.float().div_(255.0)
        yield model(xb.to(dtype))


def logits(model: nn.Module, x: torch.Tensor, *, batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """The model's logits for ``x``: ``(N, K)`` on the CPU, in the model's floating dtype."""
    _check(x, None, batch_size)
    with eval_mode(model), torch.no_grad():
        return torch.cat([out.cpu() for out in _batches(model, x, batch_size)])


def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """The model's labels for ``x``: long ``(N,)`` on the CPU, the argmax of the logits."""
    _check(x, None, batch_size)
    with eval_mode(model), torch.no_grad():
        return torch.cat([out.argmax(1).cpu() for out in _batches(model, x, batch_size)])


def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = BATCH_SIZE) -> float:
    """The fraction of ``x`` that ``model`` labels differently from ``y``, in [0, 1]."""
    _check(x, y, batch_size)
    return float((predict(model, x, batch_size=batch_size) != y.cpu()).double().mean())


def topk_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, ks: Sequence[int] = (1, 5),
                  batch_size: int = BATCH_SIZE) -> dict[int, float]:
    """``{k: fraction of examples whose label is among the k largest logits}``, each in [0, 1].

    ``ks``: positive ints, each at most the number of classes ``K``. Ties between logits are
    broken as ``torch.topk`` breaks them.
    """
    _check(x, y, batch_size)
    ks = tuple(ks) if not isinstance(ks, int) else (ks,)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks}")
    hits = torch.zeros(max(ks), dtype=torch.long)            # hits[j]: label at rank j + 1
    start = 0
    with eval_mode(model), torch.no_grad():
        for out in _batches(model, x, batch_size):
            if max(ks) > out.shape[1]:
                raise ValueError(f"ks must be at most the number of classes {out.shape[1]}, got {ks}")
            yb = y[start:start + len(out)].to(out.device)
            top = out.topk(max(ks), dim=1).indices             # (B, max(ks))
            hits += (top == yb[:, None]).sum(0).cpu()
            start += len(out)
    cum = hits.cumsum(0)
    return {k: float(cum[k - 1]) / len(x) for k in ks}


def error_matrix(models: dict[str, nn.Module], inputs: dict[str, tuple[torch.Tensor, torch.Tensor]],
                 *, batch_size: int = BATCH_SIZE) -> dict[str, dict[str, float]]:
    """``{row: {model: error}}``: each model's :func:`error_rate` on each row's ``(x, y)``."""
    return {row: {name: error_rate(m, xr, yr, batch_size=batch_size) for name, m in models.items()}
            for row, (xr, yr) in inputs.items()}
