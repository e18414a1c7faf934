"""Run the book: execute every chapter with papermill, then build the HTML with Jupyter Book.

Used by ``make book`` (``python -m advtut.book build``) and by the tests. The committed
notebooks have no outputs; the book is built from executed copies:

1. each chapter listed in ``_toc.yml`` runs with papermill (kernel ``python3``) into
   ``_build/executed/<profile>/<chapter>.ipynb`` and writes its results JSON to
   ``_build/results/<profile>/<chapter>.json``; a chapter with a ``cache_dir`` parameter gets
   ``_build/cache/<profile>``, shared by the build's chapters (the MNIST CNN is trained once); papermill's injected-parameters cell is tagged
   ``remove-cell`` and saved widget state is dropped (it cannot render offline);
2. a staging folder ``_build/book-src`` mirrors the repository (``_config.yml``, ``_toc.yml``,
   ``book/``, ``notebooks/``) with the executed copies and the generated reproduction report;
3. ``jupyter-book build`` turns it into ``_build/html`` with warnings as errors. MathJax is
   served from the book itself (fetched once from the npm registry) so the mathematics renders
   offline; without npm the book falls back to MathJax's CDN.

A chapter that fails stops the build with its name, the cell's index and the error. With
``reuse=True`` an executed copy is reused when its fingerprint (notebook, package sources,
profile, seed, device) matches, so the tests check the same run the book shows.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Chapter", "ChapterFailed", "final_lines", "without_progress", "find_root", "chapters", "execute_chapter", "build_book",
           "auto_profile", "repository_url", "set_repository_url", "describe_machine",
           "record_full_results"]


class ChapterFailed(RuntimeError):
    """A chapter notebook raised; the message names the chapter, the cell and the error."""


@dataclass(frozen=True)
class Chapter:
    """One chapter: ``id`` like ``"01_iris"``, its source notebook and its title."""

    id: str
    path: Path
    title: str


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: the nearest folder at or above ``start`` (default: cwd) with ``_toc.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "_config.yml").is_file():
            return folder
    raise FileNotFoundError(f"no _toc.yml and _config.yml at or above {here}: run from the repository")


def _toc_files(node) -> list[str]:
    out = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(node["file"])
        for key in ("root", "parts", "chapters", "sections"):
            if key == "root" and isinstance(node.get(key), str):
                out.append(node[key])
            elif isinstance(node.get(key), list):
                for child in node[key]:
                    out += _toc_files(child)
    return out


def chapters(root: str | os.PathLike | None = None) -> list[Chapter]:
    """The chapter notebooks listed in ``_toc.yml`` (under ``notebooks/``), in book order."""
    import yaml

    root = find_root(root)
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    out = []
    for f in _toc_files(toc):
        if not f.startswith("notebooks/"):
            continue
        path = root / (f if f.endswith(".ipynb") else f + ".ipynb")
        nb = json.loads(path.read_text())
        title = next((line[2:].strip() for c in nb["cells"] if c["cell_type"] == "markdown"
                      for line in "".join(c["source"]).splitlines() if line.startswith("# ")), path.stem)
        out.append(Chapter(path.stem, path, title))
    return out


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


def _paths(chapter: Chapter, build_dir: Path, profile: str) -> tuple[Path, Path]:
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
    out, res = _paths(chapter, build_dir, profile)
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
    seconds = time.perf_counter() - t0
    if not res.is_file():
        raise ChapterFailed(f"chapter {chapter.id} ran but wrote no results JSON to {res}")
    _postprocess(out, fp, seconds)
    print(f"[book] {chapter.id}: done in {seconds:.1f} s", flush=True)
    return out, res


def _report_page(root: Path, build_dir: Path, profile: str, chs: list[Chapter]) -> str:
    from advtut.results import load_results, report_markdown

    json_paths = {c.id: _paths(c, build_dir, profile)[1] for c in chs}
    ours = {cid: load_results(p) for cid, p in json_paths.items() if p.is_file()}
    full = {p.stem: load_results(p) for p in sorted((root / "results" / "full").glob("*.json"))}
    if profile == "full":  # a full build shows its own numbers; nothing to put beside them
        full, ours = {**full, **ours}, {}
    head = (root / "book" / "report_header.md").read_text()
    return head + "\n" + report_markdown(ours, full, {c.id: c.title for c in chs})


MATHJAX = "mathjax@3.2.2"  # Sphinx 7.4 loads MathJax 3's tex-mml-chtml.js


def vendor_mathjax(build_dir: Path) -> Path | None:
    """MathJax's ``es5`` folder from the npm registry, cached in ``_build/mathjax/es5``.

    So that the book renders its mathematics without the internet (CI, offline readers).
    ``npm pack`` checks the package against the registry's integrity hash; the archive is
    unpacked with :func:`advtut.download.extract`. Returns None (the book then loads MathJax from
    its CDN) when npm is missing or the registry cannot be reached.
    """
    from advtut.download import extract

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
        why = "timed out" if proc is None else (proc.stderr.strip().splitlines() or ["no archive"])[-1]
        print(f"[book] could not fetch {MATHJAX} from npm ({why}): MathJax will load from its CDN")
        shutil.rmtree(work, ignore_errors=True)
        return None
    package = extract(archives[0], work, folder="package")
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
    cfg.setdefault("sphinx", {}).setdefault("config", {})["mathjax_path"] = "mathjax/tex-mml-chtml.js"
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
        shutil.copy2(_paths(ch, build_dir, profile)[0], src / "notebooks" / ch.path.name)
    (src / "book" / "report.md").write_text(_report_page(root, build_dir, profile, chs))
    es5 = vendor_mathjax(build_dir)
    if es5 is not None:
        _use_local_mathjax(src, es5)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb if jb.exists() else "jupyter-book"), "build", str(src), "--path-output",
           str(root), "--all", "-W", "-n", "--keep-going"]
    print("[book] " + " ".join(cmd), flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise ChapterFailed("jupyter-book build failed (warnings count as errors); see the log above")
    index = build_dir / "html" / "index.html"
    print(f"[book] the book is at {index}")
    return index


def repository_url(root: str | os.PathLike | None = None) -> str:
    """The one repository URL, ``repository.url`` in ``_config.yml``."""
    import yaml

    return yaml.safe_load((find_root(root) / "_config.yml").read_text())["repository"]["url"]


def set_repository_url(url: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Replace the repository URL in ``_config.yml`` and in every notebook's install cell.

    Returns the files changed. ``url`` must look like ``https://github.com/<owner>/<repo>``
    (Colab and Binder links are derived from the GitHub owner and name).
    """
    import re

    url = url.rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"url must look like https://github.com/<owner>/<repo>, got {url!r}")
    root = find_root(root)
    old = repository_url(root)
    changed = []
    for path in [root / "_config.yml", *sorted((root / "notebooks").glob("*.ipynb"))]:
        text = path.read_text()
        if old in text:
            path.write_text(text.replace(old, url))
            changed.append(path)
    return changed


_SCRIPT_HEADER = '''# Generated by `python -m advtut.book script` from {source}: the chapter as a plain Python
# script, for machines without Jupyter (the GPU machine). Figures are drawn off-screen.
import matplotlib
matplotlib.use("Agg")
def display(obj):  # tables (pandas Stylers) print as their DataFrame
    print(getattr(obj, "data", obj))
'''


def chapter_script(notebook: str | os.PathLike, params: dict[str, object]) -> str:
    """A chapter notebook as one Python script: the ``parameters`` cell replaced by ``params``
    (its other values kept), the install cell, IPython magics (``%``, ``!`` lines) and the
    ``IPython.display`` import dropped (tables passed to ``display`` print as text, figures draw
    off-screen).

    Raises ``ValueError`` for a parameter the notebook does not have.
    """
    import ast

    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    out = [_SCRIPT_HEADER.format(source=Path(notebook).name)]
    found = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "parameters" in cell.metadata.get("tags", []):
            found = True
            names = [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                     for t in node.targets if isinstance(t, ast.Name)]
            unknown = set(params) - set(names)
            if unknown:
                raise ValueError(f"{Path(notebook).name} has no parameter(s) {sorted(unknown)}; "
                                 f"its parameters: {names}")
            out.append(cell.source)
            out += [f"{k} = {v!r}" for k, v in params.items()]
            continue
        lines = [ln for ln in cell.source.splitlines()
                 if not ln.lstrip().startswith(("%", "!", "from IPython.display import"))]
        body = "\n".join(lines)
        if "import advtut" in body and "except ImportError" in body:
            continue  # the Colab install cell
        out.append(_display_last_expression(body))
    if not found:
        raise ValueError(f"{Path(notebook).name} has no cell tagged 'parameters'")
    return "\n\n".join(out) + "\n"


def _display_last_expression(body: str) -> str:
    """A cell's source with its last expression passed to ``display`` (as Jupyter shows it),
    so that a table a cell ends with is printed by the script too."""
    import ast

    tree = ast.parse(body)
    if not tree.body or not isinstance(tree.body[-1], ast.Expr) or tree.body[-1].col_offset:
        return body
    last = tree.body[-1]
    lines = body.splitlines()
    head = "\n".join(lines[:last.lineno - 1])
    expr = "\n".join(lines[last.lineno - 1:last.end_lineno])
    return (head + "\n" if head else "") + f"_shown = {expr}\nif _shown is not None:\n    display(_shown)"


def _param(text: str) -> tuple[str, object]:
    import ast

    name, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"parameters are NAME=VALUE, got {text!r}")
    try:
        return name.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name.strip(), value  # a bare string


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
    from advtut.results import check_results, load_results, write_results

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
                         results=doc["results"], machine=machine or describe_machine())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advtut.book", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("build", "execute"):
        p = sub.add_parser(name, help={"build": "execute every chapter and build the HTML book",
                                       "execute": "execute chapters only"}[name])
        p.add_argument("--profile", default=os.environ.get("PROFILE") or None,
                       choices=["quick", "full"], help="default: full with CUDA, else quick")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        p.add_argument("--reuse", action="store_true",
                       help="reuse executed copies whose sources and parameters are unchanged")
        if name == "execute":
            p.add_argument("chapter", nargs="*", help="chapter ids (default: all)")
    p = sub.add_parser("set-url", help="set the repository URL (config and install cells)")
    p.add_argument("url")
    p = sub.add_parser("script", help="write a chapter as a plain Python script (no Jupyter needed)")
    p.add_argument("chapter", help="chapter id, e.g. 04_lbfgs_mnist")
    p.add_argument("output", help="the .py file to write")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter (a Python literal, or a bare string), e.g. -p profile=full")
    p = sub.add_parser("record", help="copy full-profile results into results/full/ with the "
                                      "machine and date")
    p.add_argument("chapter", nargs="+", help="chapter ids")
    p.add_argument("--machine", default=None, help="default: this machine, described")
    args = parser.parse_args(argv)
    try:
        if args.command == "script":
            (ch,) = [c for c in chapters() if c.id == args.chapter] or [None]
            if ch is None:
                parser.error(f"unknown chapter {args.chapter!r}; known: {[c.id for c in chapters()]}")
            Path(args.output).write_text(chapter_script(ch.path, dict(map(_param, args.param))))
            print(f"[book] wrote {args.output}")
        elif args.command == "set-url":
            for path in set_repository_url(args.url):
                print(f"[book] updated {path}")
        elif args.command == "record":
            for cid in args.chapter:
                print(f"[book] recorded {record_full_results(cid, machine=args.machine)}")
        elif args.command == "build":
            build_book(profile=args.profile, seed=args.seed, device=args.device, reuse=args.reuse)
        else:
            chs = [c for c in chapters() if not args.chapter or c.id in args.chapter]
            unknown = set(args.chapter) - {c.id for c in chs}
            if unknown:
                parser.error(f"unknown chapter(s) {sorted(unknown)}; known: {[c.id for c in chapters()]}")
            for ch in chs:
                execute_chapter(ch, profile=args.profile or auto_profile(), seed=args.seed,
                                device=args.device, reuse=args.reuse)
    except (ChapterFailed, ValueError, FileNotFoundError) as err:
        print(f"[book] ERROR: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
