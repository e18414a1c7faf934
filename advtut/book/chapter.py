"""The first cell after a chapter's parameters: check them, seed everything, pick the device.

Example (the cell right after the papermill ``parameters`` cell)::

    run = start_chapter("01_iris", profile=profile, seed=seed, device=device,
                        results_path=results_path)
    run.settings["grid_points"]      # this profile's settings (advtut.book.profiles)
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import torch

from advtut.book import determinism
from advtut.book.profiles import settings as profile_settings

__all__ = ["ChapterRun", "start_chapter", "resolve_device", "seed_everything"]

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``; ``"cuda"`` (must be available)."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but this machine has no usable CUDA GPU; "
                         "use device='auto' or 'cpu'")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA), and make
    CUDA runs repeatable and full precision: cuDNN picks deterministic algorithms (no
    benchmarking), cuBLAS gets a fixed workspace, torch uses deterministic algorithms where it
    has them (warning, not failing, for the few operations that have none), and TF32 is off for
    both matrix products and cuDNN convolutions (``torch.backends.cuda.matmul.allow_tf32`` and
    ``torch.backends.cudnn.allow_tf32`` False, float32 matmul precision ``"highest"``).

    TF32 keeps 10 of float32's 23 mantissa bits (relative rounding about 5e-4, against 6e-8):
    on an Ampere or later GPU, cuDNN's convolutions use it by default, which would break the
    chapters' invariants that compare float32 results at relative tolerances near float32's
    precision (an attack's distortion against the exact optimum, a bound against a norm, a
    projected layer's bound against its target). On the CPU these flags change nothing."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before the first cuBLAS call
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cuda.matmul.allow_tf32 = False   # float32 products in float32, not TF32
    torch.backends.cudnn.allow_tf32 = False          # cuDNN's default is True
    torch.set_float32_matmul_precision("highest")


def _figure_style() -> None:
    """White, labelled, readable figures in both of the book's themes.

    Inside a Jupyter kernel it also selects the inline backend, so that an ``MPLBACKEND``
    setting inherited from the environment (``Agg`` in many CI setups) cannot hide the figures.
    """
    import matplotlib

    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    if shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell":
        shell.run_line_magic("matplotlib", "inline")

    matplotlib.rcParams.update({
        "figure.facecolor": "white", "axes.facecolor": "white", "savefig.facecolor": "white",
        "figure.dpi": 100, "savefig.dpi": 100, "font.size": 11, "axes.titlesize": 12,
        "axes.grid": False, "figure.autolayout": False, "image.cmap": "viridis",
    })


@dataclass(frozen=True)
class ChapterRun:
    """A chapter's checked parameters and its profile's settings (read-only)."""

    chapter: str
    profile: str
    seed: int
    device: torch.device
    results_path: str | None
    settings: MappingProxyType
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Seconds since :func:`start_chapter`."""
        return time.perf_counter() - self.started

    def summary(self):
        """This run's parameters and its profile's settings as a table (a cell's output)."""
        from advtut.book.tables import table

        def text(v):
            return ", ".join(map(str, v)) if isinstance(v, (tuple, list)) else str(v)

        rows = [["profile", self.profile], ["seed", str(self.seed)], ["device", str(self.device)]]
        rows += [[k, text(v)] for k, v in self.settings.items()]
        return table(rows, ["setting", "value"], caption="This run")


def start_chapter(chapter: str, *, profile: str, seed: int, device: str = "auto",
                  results_path: str | None = None) -> ChapterRun:
    """Validate a chapter's papermill parameters, seed the generators and resolve the device.

    From here on, draws that would make a second run differ are recorded
    (:mod:`advtut.book.determinism`) and written with the results. Raises ``ValueError`` with the
    accepted values for an unknown ``profile`` or ``device``, a negative or non-integer
    ``seed``, or a ``results_path`` that is not a string or None.
    """
    cfg = profile_settings(chapter, profile)
    dev = resolve_device(device)
    determinism.install()  # from here on, unseeded draws are recorded for the results JSON
    determinism.reset()
    seed_everything(seed)
    if results_path is not None and not isinstance(results_path, (str, os.PathLike)):
        raise ValueError(f"results_path must be a file path or None, got {results_path!r}")
    _figure_style()
    return ChapterRun(chapter, profile, int(seed), dev,
                      None if results_path is None else str(results_path), cfg)


def glue(name: str, value, *, display: bool = False) -> None:
    """Store ``value`` for the prose (``{glue:text}`name:.3f```) in the rendered book.

    Uses myst-nb's ``glue``; where myst-nb is not installed (a bare Colab runtime) it does nothing.
    """
    try:
        from myst_nb import glue as _glue
    except ImportError:
        return
    if hasattr(value, "item"):
        value = value.item()
    _glue(name, value, display=display)
