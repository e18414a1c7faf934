"""Execute one chapter with papermill into ``_build/executed/<profile>/<chapter>.ipynb``.

Its results JSON goes to ``_build/results/<profile>/<chapter>.json``; a chapter with a
``cache_dir`` parameter gets ``_build/cache/<profile>``, shared by the build's chapters (the MNIST
CNN is trained once). Papermill's injected-parameters cell is tagged ``remove-cell``, progress
bars collapse (and leave the page), saved widget state is dropped (it cannot render offline),
and the kernel runs with :data:`HEADLESS` set, so that no live widget is built.
A chapter that fails raises :class:`ChapterFailed` with its name, the cell's index and the
error. With ``reuse=True`` an executed copy is reused when its fingerprint (notebook, package
sources, profile, seed, device) matches, so the tests check the same run the book shows.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

from advtut.book.toc import Chapter, find_root

__all__ = ["HEADLESS", "ChapterFailed", "auto_profile", "fingerprint", "executed_paths", "without_progress",
           "final_lines", "execute_chapter"]


#: The environment variable a book build sets for its kernels. Code that would display an
#: ipywidgets widget checks it (chapter 1's explorer reads it under the same name, which
#: ``tests/test_explorer.py`` checks) and builds none: nobody can move a slider in a headless
#: run, and nbclient can wait forever on a widget's messages (a cell that never finishes, seen
#: about once in three runs of chapter 1 under pytest).
HEADLESS = "ADVTUT_HEADLESS"


class ChapterFailed(RuntimeError):
    """A chapter notebook raised; the message names the chapter, the cell and the error."""



def auto_profile() -> str:
    """``"full"`` when a CUDA GPU is available, else ``"quick"``."""
    import torch

    return "full" if torch.cuda.is_available() else "quick"


def fingerprint(chapter: Chapter, root: Path, **params) -> str:
    """SHA-256 over the notebook, every ``advtut/*.py`` file and the parameters."""
    h = hashlib.sha256(chapter.path.read_bytes())
    for py in sorted((root / "advtut").rglob("*.py")):
        h.update(py.relative_to(root).as_posix().encode())
        h.update(py.read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()


def executed_paths(chapter: Chapter, build_dir: Path, profile: str) -> tuple[Path, Path]:
    return (build_dir / "executed" / profile / f"{chapter.id}.ipynb",
            build_dir / "results" / profile / f"{chapter.id}.json")


#: A text progress bar's line, as tqdm draws it: "desc:  45%|████▌     | 9/20 [00:01<00:02, ...]".
PROGRESS_LINE = re.compile(r"^.*?\d{1,3}%\|.*\|\s*[\d.]+[kMGT]?/[\d.]+[kMGT]?\s*\[.*$")


def without_progress(text: str) -> str:
    """``text`` less its progress-bar lines (after :func:`final_lines`): the built book shows
    what a loop computed, not how it got there; a live notebook still shows the bars."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not PROGRESS_LINE.match(line.rstrip("\n")))


def final_lines(text: str) -> str:
    """``text`` as a terminal shows it once done: each line keeps only what follows its last
    carriage return. A text progress bar redraws itself with ``\\r`` and is saved with every
    redraw; this leaves its final state, one line per loop."""
    out = []
    for line in text.split("\n"):
        parts = [p for p in line.split("\r") if p]
        out.append(parts[-1] if parts else "")
    return "\n".join(out)


def _postprocess(path: Path, fp: str, seconds: float) -> None:
    """Tag papermill's injected cell ``remove-cell``, drop the progress bars (each loop's
    redraws collapse to one line, and that line goes too), drop widget state, record the
    fingerprint."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        cell_outputs = []
        for output in cell.get("outputs", []):  # a text bar's redraws arrive as many outputs
            last = cell_outputs[-1] if cell_outputs else None
            if (output.get("output_type") == "stream" and last is not None
                    and last.get("output_type") == "stream" and last["name"] == output["name"]):
                last["text"] += output["text"]
            else:
                cell_outputs.append(output)
        for output in cell_outputs:
            if output.get("output_type") == "stream":
                output["text"] = without_progress(final_lines(output["text"]))
        if "outputs" in cell:
            cell["outputs"] = [o for o in cell_outputs
                               if o.get("output_type") != "stream" or o["text"].strip()]
    nb.metadata.pop("widgets", None)
    nb.metadata["advtut"] = {"fingerprint": fp, "execution_s": round(seconds, 1)}
    nbformat.write(nb, path)


def _cache_parameter(chapter: Chapter, build_dir: Path, profile: str) -> dict:
    """``{"cache_dir": <build_dir>/cache/<profile>}`` for a chapter whose parameters cell has a
    ``cache_dir``: the chapters of one build share what they train (the MNIST CNN of chapters
    3, 5 and 6) through it; the cache's file names keep it from ever serving a stale model."""
    import nbformat

    nb = nbformat.read(chapter.path, as_version=4)
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None or not re.search(r"^cache_dir\s*=", cell.source, flags=re.M):
        return {}
    return {"cache_dir": str((build_dir / "cache" / profile).resolve())}


def execute_chapter(chapter: Chapter, *, profile: str, seed: int = 0, device: str = "auto",
                    build_dir: str | os.PathLike | None = None, reuse: bool = False,
                    root: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Execute one chapter with papermill; returns ``(executed notebook, results JSON)``.

    Raises :class:`ChapterFailed` naming the chapter and the failing cell.
    """
    import nbformat
    import papermill

    root = find_root(root or chapter.path.parent)
    build_dir = Path(build_dir or root / "_build")
    out, res = executed_paths(chapter, build_dir, profile)
    params = {"profile": profile, "seed": seed, "device": device}
    fp = fingerprint(chapter, root, **params)
    if reuse and out.is_file() and res.is_file():
        meta = nbformat.read(out, as_version=4).metadata.get("advtut", {})
        if meta.get("fingerprint") == fp:
            print(f"[book] {chapter.id}: reusing {out.relative_to(root)} (same sources and parameters)")
            return out, res
    out.parent.mkdir(parents=True, exist_ok=True)
    res.unlink(missing_ok=True)
    print(f"[book] {chapter.id}: executing ({profile} profile, seed {seed}) ...", flush=True)
    t0 = time.perf_counter()
    headless = os.environ.get(HEADLESS)
    os.environ[HEADLESS] = "1"          # the kernel inherits it: no live widgets (see HEADLESS)
    try:
        papermill.execute_notebook(
            str(chapter.path), str(out), kernel_name="python3", cwd=str(chapter.path.parent),
            parameters={**params, "results_path": str(res.resolve()),
                        **_cache_parameter(chapter, build_dir, profile)},
            progress_bar=False)
    except papermill.PapermillExecutionError as err:
        raise ChapterFailed(
            f"chapter {chapter.id} failed in cell {err.cell_index} (execution count "
            f"{err.exec_count}): {err.ename}: {err.evalue}\n"
            f"  the executed copy with the full traceback: {out}") from None
    finally:
        if headless is None:
            os.environ.pop(HEADLESS, None)
        else:
            os.environ[HEADLESS] = headless
    seconds = time.perf_counter() - t0
    if not res.is_file():
        raise ChapterFailed(f"chapter {chapter.id} ran but wrote no results JSON to {res}")
    _postprocess(out, fp, seconds)
    print(f"[book] {chapter.id}: done in {seconds:.1f} s", flush=True)
    return out, res


