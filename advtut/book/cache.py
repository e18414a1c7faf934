"""Keep what a long run computed (trained weights, attacks) in files, never stale.

A cached value is worth reusing only if it was computed by the same code with the same
settings. :func:`cache_path` therefore puts both into the file name: the readable ``parts``
(profile, seed, model name) and a short hash of the ``settings`` and of the code that computes
the value. The code is named by the producing function (or module, or class), and its
fingerprint covers the source of every ``advtut`` module that it imports, followed
transitively (:func:`module_closure`): editing ``advtut.evaluation``, which ``advtut.training``
imports, changes the key of a model that ``advtut.chapters.zoo`` trains, with no list of
dependencies kept by hand. After a change to a profile's settings or to that code, a resumed
run looks for another file, finds none, and recomputes. :func:`load_or_compute` loads a file
with ``torch.load(..., weights_only=True)`` (tensors, numbers, strings and containers of them;
no pickled code) and writes new ones atomically.

Example::

    path = cache_path("cache", "quick", 0, "FC10", settings=cfg, code=(train_model,))
    state = load_or_compute(path, lambda: train_model(...).state_dict())
"""
from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import inspect
import os
import random
import re
import sys
import types
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
import torch

__all__ = ["module_closure", "code_fingerprint", "data_digest", "cache_path", "kept_random_state",
           "load_or_compute"]


def _module_of(obj) -> types.ModuleType:
    """The module ``obj`` is (a module) or is defined in (a function or class)."""
    if isinstance(obj, types.ModuleType):
        module = obj
    else:
        module = sys.modules.get(getattr(obj, "__module__", None) or "")
    if module is None or not getattr(module, "__file__", None):
        raise ValueError(f"code must be modules, functions or classes with a source file; "
                         f"cannot read the source of {obj!r}")
    return module


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _imported(name: str, path: Path, package: str) -> set[str]:
    """The ``package`` modules that module ``name`` (file ``path``) imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import, resolved against the importing module
                parts = name.split(".")
                keep = parts[:len(parts) - node.level + (1 if path.name == "__init__.py" else 0)]
                base = ".".join(keep + ([base] if base else []))
            found.add(base)
            if base == package or base.startswith(package + "."):  # no imports of other packages
                found |= {f"{base}.{a.name}" for a in node.names
                          if _is_module(f"{base}.{a.name}")}
    found = {m for m in found if m == package or m.startswith(package + ".")}
    # importing a.b.c runs a/__init__.py and a/b/__init__.py too
    return {".".join(m.split(".")[:k]) for m in found for k in range(1, m.count(".") + 2)}


def module_closure(code: Iterable, *, package: str = "advtut") -> dict[str, Path]:
    """``{module name: source file}`` of the modules that ``code`` (modules, functions, classes)
    is defined in and of every ``package`` module they import, followed transitively; sorted by
    name. Imports are read from the source (also those inside functions), not from what has
    been imported so far."""
    todo = [_module_of(obj).__name__ for obj in code]
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None) if module else None
        if file is None:
            spec = importlib.util.find_spec(name)
            file = spec.origin if spec is not None else None
        if file is None or not file.endswith(".py"):
            raise ValueError(f"code: cannot find the source file of module {name!r}")
        seen[name] = Path(file)
        if name == package or name.startswith(package + "."):
            todo += sorted(_imported(name, Path(file), package) - set(seen))
    return dict(sorted(seen.items()))


def code_fingerprint(code: Iterable, *, package: str = "advtut") -> str:
    """A hex SHA-256 of the sources of :func:`module_closure` of ``code``: the modules the
    functions, classes or modules are defined in and every ``advtut`` module those import,
    transitively, each hashed with its name."""
    code = list(code)
    h = hashlib.sha256()
    for obj in code:  # the objects themselves, so two functions of one module differ
        if not isinstance(obj, types.ModuleType):
            try:
                src = inspect.getsource(obj).encode()
            except (TypeError, OSError) as err:
                raise ValueError(f"code must be modules, functions or classes with a source "
                                 f"file; cannot read the source of {obj!r}: {err}") from None
            h.update(len(src).to_bytes(8, "little") + src)
    for name, path in module_closure(code, package=package).items():
        src = path.read_bytes()
        h.update(name.encode() + b"\0" + len(src).to_bytes(8, "little"))
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
    with sorted keys) and :func:`code_fingerprint` of ``code`` (the producing function, say:
    its module and everything that imports), so that a change to any of them gives another name.
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


@contextlib.contextmanager
def kept_random_state():
    """Run a block and then put every global generator back as it was: Python's ``random``,
    NumPy's global generator, torch's CPU generator and every CUDA device's."""
    py, npy = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def load_or_compute(path, compute: Callable[[], object]):
    """``compute()``'s value (tensors, numbers, strings, and dicts, lists, tuples of them), kept
    at ``path`` when it is not None.

    An existing file is loaded with ``weights_only=True`` onto the CPU; otherwise the value is
    computed and written to a temporary file that is renamed into place, so an interrupted run
    leaves no half-written file behind. The computation draws from the global generators as it
    finds them but leaves them as it found them (:func:`kept_random_state`): a run that loads the
    value and a run that computes it go on from the same random state, so a warm cache and a
    cold one give the same numbers afterwards.
    """
    if path is None:
        return compute()
    path = Path(path)
    if path.is_file():
        return torch.load(path, weights_only=True, map_location="cpu")
    with kept_random_state():
        value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(value, tmp)
    os.replace(tmp, path)
    return value
