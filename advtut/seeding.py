"""Seeded blocks that leave the caller's random state alone.

A network's initial weights (or a random draw) should depend on the seed it is given and on
nothing else, and drawing them should not move the generators the rest of a chapter uses:
otherwise a model loaded from a cache (no draw) and the same model trained afresh (a draw) would
leave different random states behind, and everything after would differ. :func:`seeded` runs a
block with torch's generators seeded, on the CPU and on every CUDA device, and restores them all
afterwards.

Example::

    with seeded(0):
        model = MnistCNN().to(device)        # the same weights for seed 0, on any run
"""
from __future__ import annotations

import numbers
from contextlib import contextmanager
from typing import Iterator

import torch

__all__ = ["seeded"]


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block with torch's CPU and CUDA generators seeded by ``seed`` (a non-negative
    integer), then restore the caller's generators. ``seed=None`` only forks: the block draws
    from the current state and the caller's state is still restored afterwards (for a model
    whose initial weights are overwritten at once)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(seed)
        yield
