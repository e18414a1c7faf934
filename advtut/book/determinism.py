"""Why a chapter's numbers could change between two runs with the same seed, checked in one run.

Same profile, seed and machine must give the same numbers. Running every chapter twice and
comparing would show it, at twice the cost; instead the causes are checked while the chapter
runs once, and in the source:

- **unseeded draws** (:func:`install`): while a chapter runs, the seeding entry points of
  Python's ``random``, NumPy and torch are wrapped; a call from ``advtut`` or from the chapter's
  own cells that takes fresh entropy (``np.random.default_rng()`` with no seed,
  ``random.seed()``, ``np.random.seed()``, ``torch.seed()``, ``torch.cuda.seed()``, ...) is
  recorded with its file and line;
- **cache order** is ruled out by construction: :func:`advtut.book.cache.load_or_compute` puts
  the global generators back after a computation it caches, so a run that loads a value from
  the cache (no draw) and a run that computes it (draws) go on from the same random state
  (tested with :func:`rng_digest`);
- **seeds from the clock or the system** (:func:`static_findings`): a seeding call whose
  argument reads a clock, a process id or an entropy source, and a generator built without a
  seed, found in the source of the package and the notebooks.

What was recorded goes into the results JSON as ``"determinism"`` and
:func:`advtut.book.results.check_results` fails a chapter with any finding. What this does not
see (said in the README): entropy drawn inside third-party code, non-deterministic GPU kernels
(``torch.use_deterministic_algorithms`` warns about those), control flow that depends on wall
time, and files read from outside the build.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

__all__ = ["install", "uninstall", "installed", "findings", "reset", "rng_digest",
           "static_findings", "notebook_code", "scan", "ENTROPY_SOURCES"]

_PACKAGE = str(Path(__file__).resolve().parents[1])
_FINDINGS: list[str] = []
_INSTALLED: dict[tuple[object, str], Callable] = {}


def _ours(filename: str) -> bool:
    """A frame of advtut's own code, a notebook cell (ipykernel) or the chapter as a script."""
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return (filename.startswith(_PACKAGE) and filename != __file__
            or "ipykernel_" in filename or filename.startswith("<ipython-input")
            or (main is not None and Path(filename).resolve() == Path(main).resolve()))


def _record(what: str, depth: int = 2) -> None:
    frame = sys._getframe(depth)
    if _ours(frame.f_code.co_filename):
        _FINDINGS.append(f"unseeded draw: {what} at {Path(frame.f_code.co_filename).name}:"
                         f"{frame.f_lineno}")


def _wrap(owner, name: str, unseeded: Callable[..., bool], what: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if unseeded(*args, **kwargs):
            _record(what)
        return original(*args, **kwargs)

    _INSTALLED[(owner, name)] = original
    setattr(owner, name, wrapper)


def _no_seed(*args, **kwargs) -> bool:
    """No seed given: no first argument, whatever its name (``seed``, ``a``), or None."""
    return (args[0] if args else next(iter(kwargs.values()), None)) is None


def install() -> None:
    """Wrap the seeding entry points (once per process; :func:`reset` clears the findings)."""
    if _INSTALLED:
        return
    always = lambda *a, **k: True  # noqa: E731
    _wrap(np.random, "default_rng", _no_seed, "numpy.random.default_rng() without a seed")
    _wrap(np.random, "seed", _no_seed, "numpy.random.seed() without a seed")
    _wrap(random, "seed", _no_seed, "random.seed() without a seed")
    _wrap(torch, "seed", always, "torch.seed() (a seed from the system's entropy)")
    _wrap(torch.random, "seed", always, "torch.random.seed() (a seed from the system's entropy)")
    _wrap(torch.cuda, "seed", always, "torch.cuda.seed() (a seed from the system's entropy)")
    _wrap(torch.cuda, "seed_all", always, "torch.cuda.seed_all() (seeds from the system's entropy)")
    _wrap(torch.cuda.random, "seed", always, "torch.cuda.seed() (a seed from the system's entropy)")
    _wrap(torch.cuda.random, "seed_all", always,
          "torch.cuda.seed_all() (seeds from the system's entropy)")


def uninstall() -> None:
    """Put the original seeding entry points back and clear the findings."""
    for (owner, name), original in _INSTALLED.items():
        setattr(owner, name, original)
    _INSTALLED.clear()
    reset()


def installed() -> bool:
    """Whether :func:`install` has run in this process (a chapter is being checked)."""
    return bool(_INSTALLED)


def findings() -> list[str]:
    """What was recorded since the last :func:`reset`, in order."""
    return list(_FINDINGS)


def reset() -> None:
    _FINDINGS.clear()


def rng_digest() -> str:
    """A short hash of the global generators' states: Python's ``random``, NumPy's global
    generator, torch's CPU generator and, once CUDA is initialised, every CUDA generator."""
    h = hashlib.sha256()
    h.update(repr(random.getstate()).encode())
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    h.update(keys.tobytes() + repr((kind, pos, has_gauss, gauss)).encode())
    h.update(torch.random.get_rng_state().cpu().numpy().tobytes())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for state in torch.cuda.get_rng_state_all():
            h.update(state.cpu().numpy().tobytes())
    return h.hexdigest()[:16]


# --- the source --------------------------------------------------------------------------------

#: Modules whose calls give a different value on each run: a seed must not be computed from them.
ENTROPY_SOURCES = ("time", "datetime", "os", "uuid", "secrets", "random")

#: Seeding calls (by their last attribute) and generators that take a seed as first argument.
_SEEDING = {"manual_seed", "manual_seed_all", "seed", "default_rng", "RandomState", "Random",
            "SeedSequence", "Generator", "PCG64", "Philox", "MT19937"}
#: Calls that take their seed from the system's entropy when given none.
_NEEDS_SEED = {"seed", "default_rng", "RandomState", "Random", "SeedSequence", "PCG64", "Philox",
               "MT19937"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _called(node: ast.Call) -> str:
    return _dotted(node.func).rsplit(".", 1)[-1]


def _entropy_reads(node: ast.AST) -> list[str]:
    return [_dotted(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)
            and _dotted(n.func).split(".")[0] in ENTROPY_SOURCES]


def static_findings(source: str, *, where: str) -> list[str]:
    """The seeding calls in ``source`` (Python) that make a run depend on more than its seed:
    a seed computed from a clock, a process id or an entropy source (``manual_seed(int(
    time.time()))``), and a NumPy or Python generator built without a seed
    (``np.random.default_rng()``, ``random.Random()``). ``where`` names the file in the messages.
    ``torch.Generator()`` starts from a fixed default seed and is not reported."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or _called(node) not in _SEEDING:
            continue
        name = _dotted(node.func)
        args = [*node.args, *(k.value for k in node.keywords)]
        reads = [r for a in args for r in _entropy_reads(a)]
        if reads:
            out.append(f"{where}:{node.lineno}: {name}(...) seeded from {', '.join(reads)}")
        elif _called(node) in _NEEDS_SEED and not args:
            out.append(f"{where}:{node.lineno}: {name}() without a seed")
    return out


def notebook_code(path: str | Path) -> str:
    """A notebook's code cells as one Python source (IPython ``%``/``!`` lines become ``pass``)."""
    cells = json.loads(Path(path).read_text())["cells"]
    lines = [line if not line.lstrip().startswith(("%", "!"))
             else line[:len(line) - len(line.lstrip())] + "pass"
             for c in cells if c["cell_type"] == "code"
             for line in "".join(c["source"]).splitlines()]
    return "\n".join(lines)


def scan(paths: Iterable[str | Path]) -> list[str]:
    """:func:`static_findings` over Python files and notebooks."""
    out = []
    for path in map(Path, paths):
        source = notebook_code(path) if path.suffix == ".ipynb" else path.read_text()
        out += static_findings(source, where=path.name)
    return out
