"""Keep what a long run computed (trained weights, attacks) in files, never stale.

A cached value is worth reusing only if it was computed by the same code with the same
settings. :func:`cache_path` therefore puts both into the file name: the readable ``parts``
(profile, seed, model name) and a short hash of the ``settings`` and of the source of the
``code`` that computes the value (modules, functions or classes). After a change to a profile's
settings or to that code, a resumed run looks for another file, finds none, and recomputes.
:func:`load_or_compute` loads a file with ``torch.load(..., weights_only=True)`` (tensors,
numbers, strings and containers of them; no pickled code) and writes new ones atomically.

Example::

    path = cache_path("cache", "quick", 0, "FC10", settings=cfg, code=(advtut.training,))
    state = load_or_compute(path, lambda: train(...).state_dict())
"""
from __future__ import annotations

import hashlib
import inspect
import os
import re
import types
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch

__all__ = ["code_fingerprint", "data_digest", "cache_path", "load_or_compute"]


def _source(obj) -> bytes:
    """The source of a module (its file's bytes), a function or a class."""
    try:
        if isinstance(obj, types.ModuleType):
            return Path(inspect.getsourcefile(obj)).read_bytes()
        return inspect.getsource(obj).encode()
    except (TypeError, OSError) as err:
        raise ValueError(f"code must be modules, functions or classes with a source file; "
                         f"cannot read the source of {obj!r}: {err}") from None


def code_fingerprint(code: Iterable) -> str:
    """A hex SHA-256 of the sources of ``code`` (modules, functions, classes), in order."""
    h = hashlib.sha256()
    for obj in code:
        src = _source(obj)
        h.update(len(src).to_bytes(8, "little"))
        h.update(src)
    return h.hexdigest()


def data_digest(*tensors: torch.Tensor) -> str:
    """A hex SHA-256 of the tensors' dtypes, shapes and bytes: a cache key for a dataset."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(repr((t.dtype, tuple(t.shape))).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_path(cache_dir, *parts, settings: Mapping | None = None, code: Iterable = (),
               digits: int = 12) -> Path | None:
    """``cache_dir / "part1-part2-...-<hash>.pt"``, or None when ``cache_dir`` is None.

    ``parts``: what a reader needs to recognise the file (profile, seed, model), joined by
    ``-`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``_``. ``<hash>``: the
    first ``digits`` hex digits of a SHA-256 of ``parts``, ``settings`` (a mapping, written
    with sorted keys) and :func:`code_fingerprint` of ``code``, so that a change to any of them
    gives another name.
    """
    if cache_dir is None:
        return None
    if not parts:
        raise ValueError("cache_path needs at least one part to name the file")
    items = sorted((str(k), repr(v)) for k, v in dict(settings or {}).items())
    key = repr((tuple(map(str, parts)), items, code_fingerprint(code)))
    digest = hashlib.sha256(key.encode()).hexdigest()[:digits]
    name = re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(map(str, parts)))
    return Path(cache_dir) / f"{name}-{digest}.pt"


def load_or_compute(path, compute: Callable[[], object]):
    """``compute()``'s value (tensors, numbers, strings, and dicts, lists, tuples of them), kept
    at ``path`` when it is not None.

    An existing file is loaded with ``weights_only=True`` onto the CPU; otherwise the value is
    computed and written to a temporary file that is renamed into place, so an interrupted run
    leaves no half-written file behind.
    """
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
