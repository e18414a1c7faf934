"""Tensors to NumPy from any device: the one place where a tensor may be on the GPU and NumPy
needs it on the CPU.

``np.asarray(t)`` and ``t.numpy()`` both fail for a tensor on ``cuda:0`` (and ``.numpy()`` for
one that requires grad); :func:`to_numpy` detaches and copies it to the CPU first, and passes
anything else (lists, floats, NumPy arrays, PIL images) to ``np.asarray`` unchanged. On the CPU
the values are the same as ``np.asarray``'s. ``tests/test_gpu_ready.py`` keeps ``advtut/`` free
of bare ``.numpy()`` and ``np.asarray(tensor)`` calls.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["to_numpy"]


def to_numpy(x, dtype=None) -> np.ndarray:
    """``x`` as a NumPy array of the same shape: a tensor (any device, with or without grad)
    through ``.detach().cpu().numpy()``, anything else through ``np.asarray``; then cast to
    ``dtype`` when given (``None`` keeps the dtype). A list or tuple that holds tensors is
    stacked with ``torch.stack`` first (so a list of CUDA scalars works too)."""
    if isinstance(x, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in x):
        x = torch.stack([torch.as_tensor(v).detach().cpu() for v in x])
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)  # numpy input
