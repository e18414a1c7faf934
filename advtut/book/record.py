"""Record a full-profile run under ``results/full/`` with the machine and date it ran on."""
from __future__ import annotations

import os
from pathlib import Path

from advtut.book.toc import chapters, find_root

__all__ = ["describe_machine", "record_full_results"]


def describe_machine() -> str:
    """This machine in one line, dated: CPU model and cores, GPU (if any), torch version."""
    import datetime
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
    day = datetime.date.today().isoformat()
    return f"{cpu}, {os.cpu_count()} cores, {gpu}; torch {torch.__version__}; {day}"


def record_full_results(chapter_id: str, *, source: str | os.PathLike | None = None,
                        machine: str | None = None, root: str | os.PathLike | None = None) -> Path:
    """Copy a chapter's full-profile results JSON into ``results/full/<chapter>.json`` with the
    machine and date (``machine``, default :func:`describe_machine`), for the report.

    ``source`` defaults to ``_build/results/full/<chapter>.json`` (what ``execute --profile
    full`` writes). Refuses (``ValueError``) a file of another chapter or profile, or one whose
    entries break their tolerances or invariants: a recorded run must pass the same gate.
    """
    from advtut.book.results import check_results, load_results, write_results

    root = find_root(root)
    known = [c.id for c in chapters(root)]
    if chapter_id not in known:
        raise ValueError(f"unknown chapter {chapter_id!r}; known: {known}")
    src = Path(source) if source else root / "_build" / "results" / "full" / f"{chapter_id}.json"
    if not src.is_file():
        raise FileNotFoundError(f"no results at {src}: run `python -m advtut.book execute "
                                f"--profile full {chapter_id}` first")
    doc = load_results(src)
    if doc["chapter"] != chapter_id or doc["profile"] != "full":
        raise ValueError(f"{src} holds chapter {doc['chapter']!r} in profile {doc['profile']!r}, "
                         f"not {chapter_id!r} in 'full'")
    failures = check_results(doc)
    if failures:
        raise ValueError(f"{src} fails its own checks, so it is not recorded: "
                         + "; ".join(failures))
    return write_results(root / "results" / "full" / f"{chapter_id}.json",
                         chapter=doc["chapter"], profile=doc["profile"], seed=doc["seed"],
                         device=doc["device"], runtime_s=doc["runtime_s"],
                         results=doc["results"], machine=machine or describe_machine(),
                         determinism=doc.get("determinism"))


