"""Check the book on a CUDA GPU: the CUDA-only tests, then every chapter's quick profile with
``device="cuda"`` as a plain Python script (no Jupyter, nbformat or papermill needed).

    python scripts/gpu_check.py                 # on a machine with CUDA (`make gpu-check`)
    python scripts/gpu_check.py --dry-run       # anywhere: what it would run, and what it skips
    python scripts/gpu_check.py --chapters 04_lbfgs_mnist 05_spectral --timeout 300

Each chapter is written by :func:`advtut.book.script.chapter_script` to ``<out>/<chapter>.py``
with ``profile="quick"``, ``device="cuda"``, ``results_path=<out>/<chapter>.json`` and, for a
chapter that takes one, ``cache_dir=<out>/cache`` (shared, so the MNIST CNN of chapters 3, 5 and
6 is trained once), and run in a fresh interpreter under ``--timeout`` seconds. A chapter whose
datasets are not under ``$ADVTUT_DATA`` is skipped with a line saying so. It prints each step's
seconds and a summary, and exits 1 when the tests or any chapter it ran failed, 2 when there is
no CUDA GPU (without ``--dry-run``). ``--budget`` (470 s) keeps the whole check under 8
minutes: a chapter that would start after it is reported as not run, and fails the check.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The data folders (under ``$ADVTUT_DATA``) each chapter's loaders read; Iris ships with
#: scikit-learn. Chapter 3 and 5 with ``alexnet_weights=None`` (the default) read no ImageNet.
CHAPTER_DATA = {
    "01_iris": (),
    "02_linear_imagenet": ("tiny-imagenet-200",),
    "03_units_directions": ("MNIST", "flower_photos"),
    "04_lbfgs_mnist": ("MNIST",),
    "05_spectral": ("MNIST",),
    "06_fooling_from_noise": ("MNIST",),
    "07_attribution": ("FashionMNIST", "flower_photos"),
}


def chapter_notebooks(root: Path = ROOT) -> list[tuple[str, Path]]:
    """``(chapter id, notebook path)`` in book order: ``_toc.yml`` through
    :func:`advtut.book.chapters`, or, where PyYAML is missing, ``notebooks/[0-9]*.ipynb``."""
    try:
        from advtut.book.toc import chapters

        return [(c.id, c.path) for c in chapters(root)]
    except ImportError:
        return [(p.stem, p) for p in sorted((root / "notebooks").glob("[0-9]*.ipynb"))]


def data_root() -> Path:
    """Where the chapters read their data: ``advtut.data.data_root()`` (``$ADVTUT_DATA``)."""
    from advtut.data import data_root as root

    return Path(root())


def missing_data(chapter: str, root: Path) -> list[str]:
    """The data folders ``chapter`` needs that are not under ``root`` (``[]``: it can run).
    Raises ``ValueError`` naming ``chapter`` for one this script does not know."""
    if chapter not in CHAPTER_DATA:
        raise ValueError(f"chapter {chapter!r} is not in scripts/gpu_check.py's CHAPTER_DATA; "
                         f"add the data folders it reads (known: {sorted(CHAPTER_DATA)})")
    return [d for d in CHAPTER_DATA[chapter] if not (root / d).is_dir()]


def write_chapter(chapter: str, notebook: Path, out: Path, *, device: str = "cuda",
                  profile: str = "quick") -> Path:
    """Write ``chapter`` as ``<out>/<chapter>.py`` with the check's parameters; returns it."""
    from advtut.book.script import chapter_script, parameter_names

    params: dict[str, object] = {"profile": profile, "device": device,
                                 "results_path": str(out / f"{chapter}.json")}
    if "cache_dir" in parameter_names(notebook):
        params["cache_dir"] = str(out / "cache")
    path = out / f"{chapter}.py"
    path.write_text(chapter_script(notebook, params))
    return path


def _run(cmd: list[str], *, timeout: float, log: Path, env: dict) -> tuple[str, float]:
    """Run ``cmd`` with its output in ``log``: ``("ok" | "FAILED (rc N)" | "TIMED OUT", s)``."""
    start = time.perf_counter()
    with log.open("w") as f:
        try:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env,
                                timeout=timeout).returncode
            status = "ok" if rc == 0 else f"FAILED (rc {rc})"
        except subprocess.TimeoutExpired:
            status = "TIMED OUT"
    return status, time.perf_counter() - start


def _tail(log: Path, n: int = 15) -> str:
    lines = log.read_text(errors="replace").splitlines()[-n:]
    return "\n".join("      " + ln for ln in lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true",
                    help="list what would run and what is skipped; needs no GPU")
    ap.add_argument("--out", default=str(ROOT / "_build" / "gpu-check"),
                    help="folder for the scripts, logs, results and cache")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per chapter")
    ap.add_argument("--budget", type=float, default=470.0,
                    help="seconds for the whole check; a chapter that would start after it is "
                         "spent is reported as not run (a failure)")
    ap.add_argument("--chapters", nargs="*", default=None, help="chapter ids (default: all)")
    ap.add_argument("--no-tests", action="store_true", help="skip the CUDA-only tests")
    args = ap.parse_args(argv)
    for name in ("timeout", "budget"):
        if not getattr(args, name) > 0:
            ap.error(f"--{name} must be > 0, got {getattr(args, name)}")

    out = Path(args.out).resolve()
    root = data_root()
    notebooks = chapter_notebooks()
    if args.chapters:
        known = {c for c, _ in notebooks}
        unknown = sorted(set(args.chapters) - known)
        if unknown:
            ap.error(f"unknown chapter(s) {unknown}; the chapters: {sorted(known)}")
        notebooks = [(c, p) for c, p in notebooks if c in args.chapters]
    plan = [(c, p, missing_data(c, root)) for c, p in notebooks]

    if args.dry_run:
        print(f"[gpu-check] dry run; data root {root}; output {out}")
        if not args.no_tests:
            print("[gpu-check] would run: python -m pytest -q -m cuda tests")
        for c, _, missing in plan:
            if missing:
                print(f"[gpu-check] {c}: would skip: no {', '.join(missing)} under {root}")
            else:
                print(f"[gpu-check] {c}: would run {out / (c + '.py')} "
                      f"(profile=quick, device=cuda, timeout {args.timeout:g} s)")
        return 0

    import torch

    if not torch.cuda.is_available():
        print("[gpu-check] no CUDA GPU on this machine (torch.cuda.is_available() is False); "
              "nothing to check. Use --dry-run to see what would run.", file=sys.stderr)
        return 2
    print(f"[gpu-check] {torch.cuda.get_device_name(0)}, torch {torch.__version__}; "
          f"data root {root}; output {out}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "ADVTUT_DATA": str(root), "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    summary: list[tuple[str, str, float]] = []
    total = time.perf_counter()
    if not args.no_tests:
        log = out / "pytest-cuda.log"
        status, secs = _run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests"],
                            timeout=max(args.timeout, 120.0), log=log, env=env)
        print(f"[gpu-check] CUDA tests: {status} in {secs:.1f} s", flush=True)
        if status != "ok":
            print(_tail(log))
        summary.append(("CUDA tests", status, secs))
    for c, nb, missing in plan:
        if missing:
            print(f"[gpu-check] {c}: skipped: no {', '.join(missing)} under {root}", flush=True)
            summary.append((c, "skipped (no data)", 0.0))
            continue
        left = args.budget - (time.perf_counter() - total)
        if left < 10:
            print(f"[gpu-check] {c}: not run: the {args.budget:g} s budget is spent", flush=True)
            summary.append((c, "NOT RUN (budget)", 0.0))
            continue
        script = write_chapter(c, nb, out)
        log = out / f"{c}.log"
        status, secs = _run([sys.executable, str(script)], timeout=min(args.timeout, left),
                            log=log, env=env)
        print(f"[gpu-check] {c}: {status} in {secs:.1f} s (log {log})", flush=True)
        if status != "ok":
            print(_tail(log))
        summary.append((c, status, secs))
    print(f"[gpu-check] summary ({time.perf_counter() - total:.1f} s in all):")
    for name, status, secs in summary:
        print(f"    {name:<24} {status:<20} {secs:8.1f} s")
    failed = [name for name, status, _ in summary
              if status != "ok" and not status.startswith("skipped")]
    if failed:
        print(f"[gpu-check] failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
