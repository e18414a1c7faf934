"""The reading checks of scripts/check_html.py, run in the real headless Chromium on tiny pages.

The pages copy myst-nb's markup for code cells and a column about as wide as the book's, so each
defect (raw table, progress-bar spam, sideways scrolling, long cell, wide equation) is proved on
what a browser lays out. MathJax is not here (a real build serves it from the book), so a display
equation is MathJax 3's CHTML markup with the typeset equation's width, and the list of typeset
maths that MathJax keeps (``MathJax.startup.document.math``) is given as MathJax would.
"""
from __future__ import annotations

import html
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_html.py"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")

_spec = importlib.util.spec_from_file_location("check_html", SCRIPT)
check_html = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_html)

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>t</title><style>
body {{ margin: 0; font-family: sans-serif; }}
article {{ width: 700px; margin: 0 auto; }}
pre {{ overflow-x: auto; white-space: pre; font-family: monospace; font-size: 14px; margin: 0; }}
</style></head><body><article>
{body}
</article></body></html>"""

TQDM_LOOP = ("train:   0%|          | 0/20 [00:00<?, ?it/s]\r"
             "train:  50%|█████     | 10/20 [00:01<00:01,  9.90it/s]\n"
             "train: 100%|██████████| 20/20 [00:02<00:00,  9.90it/s]\n")


def _pre(text: str) -> str:
    """A <pre> as Sphinx writes it (a bare carriage return stays in the source, read as a newline)."""
    return f"<pre>{html.escape(text)}</pre>"


def cell(source: str, output: str | None = None, hide_input: bool = False) -> str:
    """A code cell the way myst-nb 1.4 writes it (input, optional stream output)."""
    code = ('<div class="cell_input docutils container"><div class="highlight-ipython3 notranslate">'
            f'<div class="highlight">{_pre(source)}</div></div></div>')
    if hide_input:
        code = ('<details class="admonition hide above-input"><summary aria-label="Toggle hidden content">'
                '<p class="collapsed admonition-title">Show code cell source</p></summary>'
                f'{code}</details>')
    out = "" if output is None else (
        '<div class="cell_output docutils container"><div class="output stream highlight-myst-ansi '
        f'notranslate"><div class="highlight">{_pre(output)}</div></div></div>')
    tag = " tag_hide-input" if hide_input else ""
    return f'<div class="cell docutils container{tag}">{code}{out}</div>'


def display_math(tex: str, width: int, *, register: bool = True) -> str:
    """A display equation as Sphinx and MathJax 3 (CHTML) leave it, typeset ``width`` px wide.

    With ``register`` the equation's TeX is added to the page's ``MathJax.startup.document.math``
    (as MathJax does for every equation it typesets); without it only the markup is there.
    """
    item = ("<script>(window.MathJax = window.MathJax || {startup: {document: {math: []}}})"
            ".startup.document.math.push({math: %s, display: true, "
            "typesetRoot: document.currentScript.previousElementSibling.firstElementChild});"
            "</script>" % json.dumps(tex)) if register else ""
    return ('<div class="math notranslate nohighlight"><mjx-container class="MathJax CHTML" '
            'jax="CHTML" display="true" style="display: block; text-align: center; margin: 1em 0">'
            '<mjx-math display="true" class="MJX-TEX" '
            f'style="display: inline-block; width: {width}px"><mjx-mi>x</mjx-mi></mjx-math>'
            f'</mjx-container></div>{item}')


CHAPTER_3 = (r"x' = \arg\max_{x \in \mathcal{I}} \langle \phi(x), e_i \rangle \quad "
             r"\text{(a unit)} \qquad\text{with}\qquad "
             r"x' = \arg\max_{x \in \mathcal{I}} \langle \phi(x), v \rangle")

CLEAN = "\n".join([
    "<h1>A clean page</h1><p>Prose with a | pipe, and a table below.</p>",
    "<table><tr><th>model</th><th>error</th></tr><tr><td>|---|</td><td>0.1</td></tr></table>",
    '<div class="highlight-markdown notranslate"><div class="highlight">'
    + _pre("| model | error |\n|---|---|\n| FC10 | 0.1 |\n") + "</div></div>",
    cell("import numpy as np\nx = np.zeros(3)\nprint(x)\n", "[0. 0. 0.]\n"),
    cell("for i in trange(20):\n    pass\n", "100%|██████████| 20/20 [00:02<00:00, 8.00it/s]\n"),
    cell("\n".join(f"y{i} = {i}" for i in range(30)) + "\n", hide_input=True),
    display_math(r"x' = \arg\max_x f(x)", 300),
    "<details><summary>Table</summary><table><tr><td>a</td><td>1</td></tr></table></details>",
])


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=check_html.CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def problems(browser, tmp_path):
    """``problems(body)``: page_problems of a page with that body, opened from a file at 1280x900."""
    pages = []

    def run(body: str) -> list[str]:
        path = tmp_path / f"page{len(pages)}.html"
        path.write_text(PAGE.format(body=body), encoding="utf-8")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        pages.append(page)
        page.goto(path.as_uri(), wait_until="load")
        return check_html.page_problems(page)

    yield run
    for page in pages:
        page.close()


def test_clean_page_passes(problems):
    assert problems(CLEAN) == []


def test_raw_pipe_table_fails(problems):
    found = problems("<p>Results:</p><p>| model | error |\n|---|---|\n| FC10 | 0.1 |</p>")
    assert found == ["Markdown table shown as raw text: '| model | error | |---|---| | FC10 | 0.1 |'"]


def test_progress_loop_leaving_three_lines_fails(problems):
    found = problems(cell("for i in trange(20, desc='train'):\n    pass\n", TQDM_LOOP))
    assert len(found) == 1
    assert "progress bar 'train:' left 3 lines in one output (at most 1)" in found[0]
    assert "train: 100%|" in found[0]


def test_too_many_progress_lines_on_a_page_fail(problems):
    n = check_html.MAX_PROGRESS_LINES
    bars = "".join(f"epoch {e}: 100%|██████████| 20/20 [00:02<00:00, 8.00it/s]\n"
                   for e in range(n + 1))
    found = problems(cell("train()\n", bars))
    assert found == [f"{n + 1} progress-bar lines on the page (at most {n})"]


def test_wide_code_line_fails(problems):
    line = "x = [" + ", ".join(["1234567"] * 22) + "]"
    assert len(line) >= 200
    found = problems(cell(line + "\n") + cell(line + "\n", hide_input=True))
    assert len(found) == 2 and found[0] == found[1], found  # a collapsed cell is measured too
    assert found[0].startswith("code cell input scrolls sideways (")
    assert "px column): 'x = [1234567, 1234567" in found[0]


def test_wide_output_and_markdown_code_fail(problems):
    wide = "0123456789" * 20
    markdown_code = f'<div class="highlight-text notranslate"><div class="highlight">{_pre(wide)}</div></div>'
    found = problems(cell("print(s)\n", wide + "\n") + markdown_code)
    assert [p.split(" (")[0] for p in found] == ["code cell output scrolls sideways",
                                                 "code block scrolls sideways"]
    assert all(f"'{wide[:60]}'" in p for p in found)


def test_table_wider_than_the_column_fails(problems):
    header = "".join(f"<th>a long column header {i}</th>" for i in range(12))
    wide = f'<div style="overflow-x: auto"><table><caption>Table 5</caption><tr>{header}</tr></table></div>'
    found = problems(wide)
    assert len(found) == 1 and "table is" in found[0] and "Table 5" in found[0]


def test_table_wider_than_the_column_fails_in_a_collapsed_dropdown(problems):
    header = "".join(f"<th>a long column header {i}</th>" for i in range(12))
    found = problems(f'<details class="sd-dropdown"><summary>1. Iris</summary><div><table>'
                     f'<caption>Table 6</caption><tr>{header}</tr></table></div></details>')
    assert len(found) == 1 and "table is" in found[0] and "Table 6" in found[0]


def test_display_equation_wider_than_the_column_fails(problems):
    """Chapter 3's first equation was 799 px in the book's 752 px column, cut off at "(a randor"."""
    found = problems("<p>it compares</p>" + display_math(CHAPTER_3, 799))
    assert found == ["display equation is 799px wide in a 700px column (break it with aligned, or "
                     "split it): " + repr(CHAPTER_3[:60])]


def test_display_equation_is_named_by_its_text_without_mathjax_list(problems):
    found = problems("<details><summary>hidden</summary>"
                     + display_math("wide", 900, register=False) + "</details>")
    assert found == ["display equation is 900px wide in a 700px column (break it with aligned, or "
                     "split it): 'x'"]


def test_long_code_cell_fails_even_when_hidden(problems):
    source = "".join(f"a{i} = {i}\n" for i in range(35))
    found = problems(cell(source) + cell(source, hide_input=True))
    assert found == [f"code cell has 35 lines (at most {check_html.MAX_CELL_LINES}): 'a0 = 0'"] * 2


def test_carriage_returns_count_as_progress_lines():
    """A \\r kept in the page (as &#13;) is drawn on one line, but each is still a frame of the loop."""
    found = check_html.progress_problems(["x:  0%|  | 0/2 [00:00<?, ?it/s]\rx: 100%|██| 2/2 [00:01<00:00]"])
    assert found == ["progress bar 'x:' left 2 lines in one output (at most 1): "
                     "'x: 100%|██| 2/2 [00:01<00:00]'"]


def test_command_line_end_to_end(tmp_path):
    """The script from the command line, in its own process (one sync Playwright per thread)."""
    site = tmp_path / "html"
    site.mkdir()
    (site / "index.html").write_text(PAGE.format(body=cell("print(1)\n", TQDM_LOOP)), encoding="utf-8")
    run = subprocess.run([sys.executable, str(SCRIPT), str(site), "--screenshots", str(tmp_path / "shots"),
                          "--repo-root", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "[html] FAIL index.html: progress bar 'train:' left 3 lines" in run.stderr
    assert "1 problem(s)" in run.stdout and (tmp_path / "shots" / "index.png").is_file()
