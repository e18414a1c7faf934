"""The package's three layers and which way their imports run.

- the science library (``advtut/*.py``, ``advtut/attacks``, ``advtut/plotting``) imports neither
  the book machinery (``advtut.book``) nor the chapters (``advtut.chapters``);
- the book machinery imports no ``advtut`` module outside ``advtut.book``;
- a chapter (``advtut.chapters.<name>``) imports the library, the book machinery, its own
  modules and ``advtut.chapters.zoo`` (the book's shared trained networks), never another
  chapter; the zoo imports no chapter.

Imports are read from the source (those inside functions too). Each rule is also shown to fail
on a copy of the package with one import broken.
"""
import ast
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path, package_root: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module:
            names.append(n.module)
            names += [f"{n.module}.{a.name}" for a in n.names]  # from advtut import cache
    return [m for m in names if m == "advtut" or m.startswith("advtut.")]


def layer(module: str) -> str:
    """``"book"``, ``"zoo"``, ``"chapter:<name>"``, ``"chapters"`` (the package itself) or
    ``"library"``."""
    parts = module.split(".")
    if parts[:2] == ["advtut", "book"]:
        return "book"
    if parts[:2] == ["advtut", "chapters"]:
        if len(parts) == 2:
            return "chapters"
        return "zoo" if parts[2] == "zoo" else f"chapter:{parts[2]}"
    return "library"


def _known(module: str, modules: set[str]) -> str | None:
    """The longest prefix of ``module`` that is a module of the package (``from a.b import c``
    names a function ``c`` of module ``a.b`` as often as a submodule)."""
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in modules:
            return ".".join(parts[:k])
    return None


def violations(package_root: Path) -> list[str]:
    """Every import that breaks one of the three rules, as ``"importer -> imported: rule"``."""
    files = {_module_name(p, package_root): p for p in package_root.rglob("*.py")}
    out = []
    for importer, path in sorted(files.items()):
        src = layer(importer)
        for target in sorted({_known(m, set(files)) for m in _imports(path)} - {None}):
            if target in ("advtut", "advtut.chapters") or target == importer:
                continue
            dst = layer(target)
            if src == "library" and dst != "library":
                out.append(f"{importer} -> {target}: the library imports no book or chapter code")
            elif src == "book" and dst != "book":
                out.append(f"{importer} -> {target}: the book machinery imports no science module")
            elif src == "zoo" and dst.startswith("chapter:"):
                out.append(f"{importer} -> {target}: the zoo imports no chapter")
            elif src.startswith("chapter:") and dst.startswith("chapter:") and dst != src:
                out.append(f"{importer} -> {target}: a chapter imports no other chapter")
    return out


def test_the_package_keeps_its_three_layers():
    assert violations(ROOT / "advtut") == []


def test_each_layer_exists_where_ls_shows_it():
    names = {p.name for p in (ROOT / "advtut").iterdir()}
    assert {"book", "chapters", "attacks", "plotting"} <= names
    chapters = {p.name for p in (ROOT / "advtut" / "chapters").iterdir() if p.is_dir()
                and (p / "__init__.py").is_file()}
    assert len(chapters) == 7, chapters


@pytest.mark.parametrize("where, line, rule", [
    ("distances.py", "from advtut.book.results import entry", "the library imports no book"),
    ("plotting/images.py", "import advtut.chapters.zoo", "the library imports no book"),
    ("book/tables.py", "from advtut.evaluation import predict", "the book machinery imports no"),
    ("chapters/directions/experiments.py", "from advtut.chapters.spectral.experiments import cnn_layers",
     "a chapter imports no other chapter"),
    ("chapters/zoo.py", "import advtut.chapters.fooling.report", "the zoo imports no chapter"),
])
def test_each_rule_fails_when_broken(tmp_path, where, line, rule):
    copy = tmp_path / "advtut"
    shutil.copytree(ROOT / "advtut", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / where
    target.write_text(target.read_text() + f"\n\ndef _broken():\n    {line}\n")
    found = violations(copy)
    assert len(found) == 1 and rule in found[0], found
