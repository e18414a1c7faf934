"""Build the HTML book from the executed chapters: stage the sources, add the reproduction
report, serve MathJax from the book itself, and run ``jupyter-book build`` with warnings as errors.

A staging folder ``_build/book-src`` mirrors the repository (``_config.yml``, ``_toc.yml``,
``book/``, ``notebooks/``) with the executed copies and the generated report; MathJax is fetched
once from the npm registry so the mathematics renders offline (without npm the book falls back
to MathJax's CDN).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from advtut.book.execute import ChapterFailed, auto_profile, execute_chapter, executed_paths
from advtut.book.toc import Chapter, chapters, find_root

__all__ = ["build_book", "vendor_mathjax"]


REPORT_FIGURE = "report_ours_vs_source.png"  # next to book/report.md in the staging folder


def _report_page(root: Path, build_dir: Path, profile: str, chs: list[Chapter],
                 src: Path) -> str:
    """The report page's Markdown; writes its figure (``REPORT_FIGURE``) into ``src / "book"``."""
    from advtut.book.report import report_markdown, source_points, write_ours_vs_source
    from advtut.book.results import load_results

    json_paths = {c.id: executed_paths(c, build_dir, profile)[1] for c in chs}
    ours = {cid: load_results(p) for cid, p in json_paths.items() if p.is_file()}
    full = {p.stem: load_results(p) for p in sorted((root / "results" / "full").glob("*.json"))}
    if profile == "full":  # a full build shows its own numbers; nothing to put beside them
        full, ours = {**full, **ours}, {}
    titles = {c.id: c.title for c in chs}
    points = source_points([*ours.values(), *full.values()])
    figure = None
    if points:
        write_ours_vs_source(points, titles, src / "book" / REPORT_FIGURE)
        figure = REPORT_FIGURE
    head = (root / "book" / "report_header.md").read_text()
    return head + "\n" + report_markdown(ours, full, titles, figure=figure)


MATHJAX = "mathjax@3.2.2"  # Sphinx 7.4 loads MathJax 3's tex-mml-chtml.js


def vendor_mathjax(build_dir: Path) -> Path | None:
    """MathJax's ``es5`` folder from the npm registry, cached in ``_build/mathjax/es5``.

    So that the book renders its mathematics without the internet (CI, offline readers).
    ``npm pack`` checks the package against the registry's integrity hash; the archive is
    unpacked with tarfile's ``data`` filter (no absolute paths, links or files outside the
    folder). Returns None (the book then loads MathJax from its CDN) when npm is missing or the
    registry cannot be reached.
    """
    dest = build_dir / "mathjax" / "es5"
    if (dest / "tex-mml-chtml.js").is_file():
        return dest
    npm = shutil.which("npm")
    if npm is None:
        print("[book] npm not found: the book will load MathJax from its CDN")
        return None
    work = build_dir / "mathjax-pack"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        proc = subprocess.run([npm, "pack", MATHJAX, "--pack-destination", str(work), "--silent"],
                              capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        proc = None
    archives = sorted(work.glob("mathjax-*.tgz"))
    if proc is None or proc.returncode != 0 or not archives:
        lines = [] if proc is None else proc.stderr.strip().splitlines()
        why = "timed out" if proc is None else (lines or ["no archive"])[-1]
        print(f"[book] could not fetch {MATHJAX} from npm ({why}): MathJax will load from its CDN")
        shutil.rmtree(work, ignore_errors=True)
        return None
    with tarfile.open(archives[0]) as tar:
        tar.extractall(work, filter="data")
    package = work / "package"
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(package / "es5", dest)
    shutil.rmtree(work, ignore_errors=True)
    return dest


def _use_local_mathjax(src: Path, es5: Path) -> None:
    """Copy MathJax into the staged book's static files and point Sphinx at it."""
    import yaml

    shutil.copytree(es5, src / "book" / "_static" / "mathjax")
    cfg_path = src / "_config.yml"
    cfg = yaml.safe_load(cfg_path.read_text())
    sphinx_config = cfg.setdefault("sphinx", {}).setdefault("config", {})
    sphinx_config["mathjax_path"] = "mathjax/tex-mml-chtml.js"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def build_book(*, profile: str | None = None, seed: int = 0, device: str = "auto",
               reuse: bool = False, root: str | os.PathLike | None = None) -> Path:
    """Execute every chapter and build the HTML book; returns ``_build/html/index.html``."""
    root = find_root(root)
    build_dir = root / "_build"
    profile = profile or auto_profile()
    chs = chapters(root)
    for ch in chs:
        execute_chapter(ch, profile=profile, seed=seed, device=device, build_dir=build_dir,
                        reuse=reuse, root=root)
    src = build_dir / "book-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, src / name)
    shutil.copytree(root / "book", src / "book")
    (src / "notebooks").mkdir()
    for ch in chs:
        shutil.copy2(executed_paths(ch, build_dir, profile)[0], src / "notebooks" / ch.path.name)
    (src / "book" / "report.md").write_text(_report_page(root, build_dir, profile, chs, src))
    es5 = vendor_mathjax(build_dir)
    if es5 is not None:
        _use_local_mathjax(src, es5)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb if jb.exists() else "jupyter-book"), "build", str(src), "--path-output",
           str(root), "--all", "-W", "-n", "--keep-going"]
    print("[book] " + " ".join(cmd), flush=True)
    # The API reference documents this checkout's package, whatever else is installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
    if subprocess.run(cmd, env=env).returncode != 0:
        raise ChapterFailed("jupyter-book build failed (warnings count as errors); "
                            "see the log above")
    index = build_dir / "html" / "index.html"
    print(f"[book] the book is at {index}")
    return index


