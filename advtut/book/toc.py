"""The book's table of contents: the repository root, its chapters in book order, and the one
repository URL (``_config.yml``) that the install cells and the launch buttons share."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Chapter", "find_root", "chapters", "repository_url", "set_repository_url"]


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


def repository_url(root: str | os.PathLike | None = None) -> str:
    """The one repository URL, ``repository.url`` in ``_config.yml``."""
    import yaml

    return yaml.safe_load((find_root(root) / "_config.yml").read_text())["repository"]["url"]


def set_repository_url(url: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Replace the repository URL in ``_config.yml`` and in every notebook's install cell.

    Returns the files changed. ``url`` must look like ``https://github.com/<owner>/<repo>``
    (Colab and Binder links are derived from the GitHub owner and name).
    """

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

