"""The book's structure: the table of contents, the committed notebooks, the repository URL,
and how a failing chapter is reported."""
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from advtut.book import (
    ChapterFailed,
    chapters,
    execute_chapter,
    find_root,
    repository_url,
    set_repository_url,
)

ROOT = Path(__file__).resolve().parents[1]
BOOK_ORDER = ["01_iris", "02_linear_imagenet", "03_units_directions", "04_lbfgs_mnist",
              "05_spectral", "06_fooling_from_noise", "07_attribution"]  # book/conventions.md


def test_toc_lists_existing_chapters_in_book_order():
    ids = [c.id for c in chapters(ROOT)]
    assert ids and all(i in BOOK_ORDER for i in ids)
    assert ids == sorted(ids, key=BOOK_ORDER.index)
    assert chapters(ROOT)[0].title.startswith("1. ")


@pytest.mark.parametrize("chapter", chapters(ROOT), ids=lambda c: c.id)
def test_committed_notebook_is_clean_and_has_the_book_parameters(chapter):
    nb = json.loads(chapter.path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code), "commit without outputs"
    params = [i for i, c in enumerate(code) if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1
    src = "".join(code[params[0]]["source"])
    for name in ("profile", "seed", "device", "results_path"):
        assert f"{name} =" in src
    # the cell right after the parameters checks them
    assert "start_chapter(" in "".join(code[params[0] + 1]["source"])
    # the first cell installs advtut from the one repository URL when it is missing
    install = "".join(code[0]["source"])
    assert "import advtut" in install and f'REPO = "{repository_url(ROOT)}"' in install
    assert "git+{REPO}" in install
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("chapter", chapters(ROOT), ids=lambda c: c.id)
def test_code_cells_fit_the_book_column(chapter):
    """The page rules (book/conventions.md): no code cell scrolls sideways (77 characters at
    1280 px) or runs past 30 lines; the browser check measures the rendered page, this catches it
    before a build."""
    nb = json.loads(chapter.path.read_text())
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        lines = "".join(cell["source"]).splitlines()
        wide = [line for line in lines if len(line) > 77]
        assert not wide, f"code cell {i}: {len(wide[0])} characters: {wide[0]!r}"
        assert len(lines) <= 30, f"code cell {i} has {len(lines)} lines: {lines[0]!r}"


def test_set_url_changes_config_and_install_cells(tmp_path):
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    changed = set_repository_url("https://github.com/someone/advtut", tmp_path)
    assert tmp_path / "_config.yml" in changed
    assert repository_url(tmp_path) == "https://github.com/someone/advtut"
    for ch in chapters(tmp_path):
        assert "https://github.com/someone/advtut" in ch.path.read_text()
    with pytest.raises(ValueError, match="owner"):
        set_repository_url("not a url", tmp_path)


def test_find_root_explains_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="_toc.yml"):
        find_root(tmp_path)


def test_a_failing_chapter_names_itself_and_the_cell(tmp_path):
    (tmp_path / "_config.yml").write_text("title: t\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: notebooks/99_bad\n")
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("profile = 'quick'\nseed = 0\ndevice = 'auto'\nresults_path = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# 99. Bad"), params,
                nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('boom')")]
    nbformat.write(nb, tmp_path / "notebooks" / "99_bad.ipynb")
    (ch,) = chapters(tmp_path)
    with pytest.raises(ChapterFailed, match=r"chapter 99_bad failed in cell \d+ .*ValueError: boom"):
        execute_chapter(ch, profile="quick", build_dir=tmp_path / "_build", root=tmp_path)


def test_chapter_as_a_script_has_the_parameters_and_no_magics(tmp_path):
    from advtut.book import chapter_script, chapters

    (ch,) = [c for c in chapters(ROOT) if c.id == "04_lbfgs_mnist"]
    text = chapter_script(ch.path, {"profile": "full", "cache_dir": "cache"})
    compile(text, "chapter.py", "exec")  # plain Python: no % or ! lines left
    assert "profile = 'full'" in text and "cache_dir = 'cache'" in text
    assert "%pip" not in text and "from IPython.display import" not in text
    with pytest.raises(ValueError, match="no parameter"):
        chapter_script(ch.path, {"epochs": 3})


def test_progress_bars_leave_nothing_in_the_book(tmp_path):
    """A text bar's redraws arrive as separate stream outputs, each starting with a carriage
    return (as nbclient saves them); they collapse to the final line, which the book drops."""
    from advtut.book.execute import _postprocess, final_lines, without_progress

    assert final_lines("\rA 0%\rA 50%\rA 100%\nok\n") == "A 100%\nok\n"
    bar = "softmax λ=100: 100%|██████████| 474/474 [00:58<00:00,  8.04it/s]\n"
    assert without_progress(bar + "score 0.5 (50%|of it) [done]\n") == \
        "score 0.5 (50%|of it) [done]\n"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("loop()")
    stream = lambda name, text: nbformat.v4.new_output("stream", name=name, text=text)  # noqa: E731
    cell.outputs = [stream("stderr", "\rloop:   0%| | 0/2 [00:00<?, ?it/s]"),
                    stream("stderr", "\rloop:  50%| | 1/2 [00:01<00:01, 1.0it/s]"),
                    stream("stderr", "\rloop: 100%| | 2/2 [00:02<00:00, 1.0it/s]"),
                    stream("stderr", "\n"), stream("stdout", "done\n"),
                    stream("stderr", "\rnext: 100%| | 1/1 [00:01<00:00, 1.0it/s]\nwarning\n")]
    nb.cells = [cell]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    _postprocess(path, "fingerprint", 1.0)
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert [(o.name, o.text) for o in outputs] == [("stdout", "done\n"), ("stderr", "warning\n")]


def test_a_script_prints_the_tables_a_cell_ends_with(tmp_path):
    """Without Jupyter, a cell's last expression (a table) is displayed, as in a notebook."""
    import subprocess
    import sys

    from advtut.book import chapter_script

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("profile = 'quick'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "from advtut.book.tables import table\nx = 2\ntable([['a', x]],\n      ['name', 'value'])")]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    script = tmp_path / "nb.py"
    script.write_text(chapter_script(path, {}))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert "name" in out.stdout and "value" in out.stdout and "a" in out.stdout


def test_full_results_are_recorded_with_the_machine_and_checked(tmp_path):
    import shutil

    from advtut.book import record_full_results
    from advtut.book.results import entry, load_results, write_results

    for name in ("_toc.yml", "_config.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    ok = [entry("training accuracy", 0.9667, source=0.966, tol=0.001, note="n")]
    src = write_results(tmp_path / "_build" / "results" / "full" / "01_iris.json",
                        chapter="01_iris", profile="full", seed=0, device="cpu", runtime_s=1,
                        results=ok)
    out = record_full_results("01_iris", machine="test machine", root=tmp_path)
    assert out == tmp_path / "results" / "full" / "01_iris.json"
    assert load_results(out) == {**load_results(src), "machine": "test machine"}
    bad = [entry("training accuracy", 0.9, source=0.966, tol=0.001, note="n")]
    write_results(tmp_path / "bad.json", chapter="01_iris", profile="full", seed=0,
                  device="cpu", runtime_s=1, results=bad)
    with pytest.raises(ValueError, match="fails its own checks"):
        record_full_results("01_iris", source=tmp_path / "bad.json", root=tmp_path)
    write_results(tmp_path / "quick.json", chapter="01_iris", profile="quick", seed=0,
                  device="cpu", runtime_s=1, results=ok)
    with pytest.raises(ValueError, match="not '01_iris' in 'full'"):
        record_full_results("01_iris", source=tmp_path / "quick.json", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="--profile full 02_linear_imagenet"):
        record_full_results("02_linear_imagenet", root=tmp_path)
    with pytest.raises(ValueError, match="unknown chapter"):
        record_full_results("09_nothing", root=tmp_path)


def _public_modules() -> set[str]:
    """Every module of the package, by dotted name, with no part starting with ``_``."""
    names = set()
    for path in (ROOT / "advtut").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(p.startswith("_") for p in parts):
            names.add(".".join(parts))
    return names


def test_api_reference_lists_every_public_module():
    """book/api.md and its pages document each module once, so a new module cannot be left
    out of the API reference silently (and a removed one fails here before Sphinx does)."""
    pages = [ROOT / "book" / "api.md", *sorted((ROOT / "book" / "api").rglob("*.md"))]
    directive = re.compile(r"^\.\. automodule:: (\S+)$", re.M)
    listed = [m for p in pages for m in directive.findall(p.read_text())]
    assert len(listed) == len(set(listed)), sorted({m for m in listed if listed.count(m) > 1})
    modules = _public_modules()
    assert "advtut.attacks.lbfgs" in modules and "advtut.chapters.zoo" in modules
    missing = sorted(modules - set(listed))
    assert not missing, f"missing from the API reference: {missing}"
    assert not set(listed) - modules, f"not modules of the package: {sorted(set(listed) - modules)}"
    toc = (ROOT / "_toc.yml").read_text()
    for p in pages:
        assert f"file: {p.relative_to(ROOT).with_suffix('').as_posix()}\n" in toc, p


def test_no_path_outside_the_repository():
    """The package, the notebooks, the README and the book's pages name no file outside the
    repository (the data root is the ADVTUT_DATA variable)."""
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "advtut").rglob("*.py"),
             *(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "book").rglob("*.md")]
    for f in files:
        text = f.read_text()
        for bad in ("../shared", "BOOK.md", "STYLE.md"):
            assert bad not in text, f"{f.relative_to(ROOT)} mentions {bad}"
