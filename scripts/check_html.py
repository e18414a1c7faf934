"""Open every page of the built book in headless Chromium and check what a reader would see.

    python scripts/check_html.py _build/html --screenshots _build/screenshots

For each HTML page (served from 127.0.0.1): it loads; every <img> has loaded (naturalWidth > 0,
checked a second after load); its formulas are typeset when the book serves MathJax itself; no
JavaScript error, no console error and no failed request,
except, allowed by name, requests to hosts outside this machine (the CI has no internet) and
favicon.ico. On chapter pages the Colab and Binder buttons must open the *source* notebook in the
repository set in _config.yml. The page must also read well (`page_problems`): no Markdown table
left as raw `| a | b |` text, at most one tqdm progress-bar line per loop in an output (and at most
MAX_PROGRESS_LINES on the page), no code block (cell input, cell output or Markdown code) that
scrolls sideways in the book's column, no table and no display equation wider than its column
(a MathJax equation does not wrap: one wider than the column is cut off or scrolls, so break it
with ``aligned`` or split it), and no code cell over MAX_CELL_LINES lines (hidden inputs included).
Collapsed <details> (hidden cells, dropdowns) are opened while they are measured. A full-page
screenshot of each page is written. Exits 1 on any failure, listing every one.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import re
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import yaml

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]

MAX_CELL_LINES = 30       # a code cell longer than this does not fit on a reader's screen
MAX_PROGRESS_LINES = 10   # progress-bar lines a page may show (the book drops them; a few may stay)
# A tqdm line: "desc:  45%|████▌     | 9/20 [00:01<00:02,  5.1it/s]"; group 1 is the description.
PROGRESS_LINE = re.compile(r"^(.*?)\s*\d{1,3}%\|.*\|\s*[\d.]+[kMGT]?/[\d.]+[kMGT]?\s*\[")
PIPE_RULE = re.compile(r"\|\s*:?-{3,}")  # the "|---" rule under a Markdown table's header (JS too)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _local(url: str) -> bool:
    return urlparse(url).hostname in ("127.0.0.1", "localhost", None, "")


def _expected_launch_links(repo_root: Path, page: str) -> list[str]:
    """The Colab and Binder addresses a chapter page must link to."""
    cfg = yaml.safe_load((repo_root / "_config.yml").read_text())
    url = cfg["repository"]["url"].rstrip("/")
    branch = cfg["repository"].get("branch", "main")
    owner_repo = urlparse(url).path.strip("/")
    nb = page[:-len(".html")] + ".ipynb"
    return [f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/{nb}",
            f"https://mybinder.org/v2/gh/{owner_repo}/{branch}?urlpath=tree/{nb}"]


def _short(text: str, n: int = 60) -> str:
    """The first n characters of text on one line, quoted, for a problem report."""
    return repr(" ".join(text.split())[:n])


def _frames(text: str) -> list[str]:
    """An output's text split on newlines and carriage returns: each \\r starts a new tqdm frame.

    (The HTML parser reads a bare \\r in a page's source as a line break, so a browser shows each.)
    """
    return re.split(r"\r\n|\r|\n", text)


def raw_tables(page) -> list[str]:
    """Markdown tables that reached the page as text (a "|---" rule outside pre, code and table)."""
    blocks = page.evaluate("""rule => {
        const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        const found = new Set(), re = new RegExp(rule);
        while (walk.nextNode()) {
            const el = walk.currentNode.parentElement;
            if (!el.closest('pre, code, table, script, style, textarea')
                && re.test(walk.currentNode.textContent))
                found.add(el.closest('p, li, dt, dd, h1, h2, h3, h4, h5, h6, div') || el);
        }
        return Array.from(found, el => el.textContent);
    }""", PIPE_RULE.pattern)
    return [f"Markdown table shown as raw text: {_short(text)}" for text in blocks]


def progress_problems(outputs: list[str]) -> list[str]:
    """tqdm lines in the given output texts: one line per loop and output, MAX_PROGRESS_LINES a page."""
    problems, total = [], 0
    for text in outputs:
        bars: dict[str, list[str]] = {}
        for line in _frames(text):
            match = PROGRESS_LINE.match(line.strip())
            if match:
                bars.setdefault(match.group(1), []).append(line.strip())
        for desc, lines in bars.items():
            if len(lines) > 1:
                problems.append(f"progress bar {desc or '(no description)'!r} left {len(lines)} lines "
                                f"in one output (at most 1): {_short(lines[-1])}")
        total += sum(len(lines) for lines in bars.values())
    if total > MAX_PROGRESS_LINES:
        problems.append(f"{total} progress-bar lines on the page (at most {MAX_PROGRESS_LINES})")
    return problems


def wide_code(page) -> list[str]:
    """Code blocks wider than the column: cell inputs, cell outputs and Markdown code blocks.

    Collapsed <details> (hidden cells) are opened just long enough to measure them.
    """
    blocks = page.evaluate("""() => {
        const closed = Array.from(document.querySelectorAll('details:not([open])'));
        closed.forEach(d => d.open = true);
        const blocks = Array.from(
            document.querySelectorAll('div.highlight pre, div.cell_input pre, div.cell_output pre'),
            pre => ({kind: pre.closest('.cell_input') ? 'code cell input'
                         : pre.closest('.cell_output') ? 'code cell output' : 'code block',
                     text: pre.textContent, scroll: pre.scrollWidth, client: pre.clientWidth}));
        closed.forEach(d => d.open = false);
        return blocks;
    }""")
    problems = []
    for b in blocks:
        if b["scroll"] > b["client"] + 1:
            widest = max(b["text"].split("\n"), key=len)
            problems.append(f"{b['kind']} scrolls sideways ({b['scroll']}px wide in a "
                            f"{b['client']}px column): {_short(widest)}")
    return problems


def wide_tables(page) -> list[str]:
    """Tables wider than the page's column (the reader would have to scroll them sideways).

    Tables in collapsed <details> (the report's dropdowns) are opened just long enough to measure.
    """
    tables = page.evaluate("""() => {
        const col = document.querySelector('article');
        if (!col) return [];
        const width = col.getBoundingClientRect().width;
        const closed = Array.from(document.querySelectorAll('details:not([open])'));
        closed.forEach(d => d.open = true);
        // a table's box (its scroll container, or the column) is what the reader sees of it
        const tables = Array.from(col.querySelectorAll('table'), t => ({
            width: t.getBoundingClientRect().width,
            column: Math.min(width, t.parentElement.clientWidth || width),
            name: (t.caption ? t.caption.textContent : t.textContent).trim()}));
        closed.forEach(d => d.open = false);
        return tables;
    }""")
    return [f"table is {t['width']:.0f}px wide in a {t['column']:.0f}px column: {_short(t['name'])}"
            for t in tables if t["width"] > t["column"] + 1]


def wide_maths(page) -> list[str]:
    """Display equations wider than their column: MathJax 3 does not break a line, so the end of
    such an equation is cut off (or scrolls) in the book's column.

    Measured: each ``mjx-container[display="true"]`` (its ``mjx-math``, the typeset equation)
    against the column and its own box (the ``div.math`` around it); a ``div.math`` that MathJax
    has not typeset is measured as it stands. The problem names the start of the equation's TeX
    (from MathJax's list of typeset maths, else the block's text).
    """
    blocks = page.evaluate("""() => {
        const col = document.querySelector('article');
        if (!col) return [];
        const width = col.getBoundingClientRect().width;
        const closed = Array.from(document.querySelectorAll('details:not([open])'));
        closed.forEach(d => d.open = true);
        const tex = new Map();
        try {
            for (const item of window.MathJax.startup.document.math)
                if (item.typesetRoot) tex.set(item.typesetRoot, item.math);
        } catch (e) {}
        const blocks = [];
        for (const el of col.querySelectorAll('mjx-container[display="true"], div.math')) {
            const typeset = el.matches('mjx-container');
            if (!typeset && el.querySelector('mjx-container')) continue;  // seen as its container
            const box = typeset ? (el.closest('div.math') || el.parentElement) : el;
            const eq = typeset ? (el.querySelector('mjx-math') || el) : el;
            blocks.push({
                width: Math.max(eq.getBoundingClientRect().width, el.scrollWidth),
                column: Math.min(width, box.clientWidth || width),
                tex: tex.get(el) || el.textContent});
        }
        closed.forEach(d => d.open = false);
        return blocks;
    }""")
    return [f"display equation is {b['width']:.0f}px wide in a {b['column']:.0f}px column (break "
            f"it with aligned, or split it): {_short(_strip_delimiters(b['tex']))}"
            for b in blocks if b["width"] > b["column"] + 1]


def _strip_delimiters(tex: str) -> str:
    """An equation's TeX without the ``\\[ \\]`` or ``$$`` around it (as Sphinx writes it)."""
    tex = tex.strip()
    for left, right in (("\\[", "\\]"), ("$$", "$$")):
        if tex.startswith(left) and tex.endswith(right) and len(tex) >= len(left) + len(right):
            return tex[len(left):-len(right)].strip()
    return tex


def long_cells(page) -> list[str]:
    """Code cells whose source has more than MAX_CELL_LINES lines (hidden inputs count too)."""
    sources = page.evaluate("""() => Array.from(document.querySelectorAll('div.cell_input'),
        cell => (cell.querySelector('pre') || cell).textContent)""")
    problems = []
    for source in sources:
        lines = source.split("\n")
        if lines[-1] == "":
            lines.pop()
        if len(lines) > MAX_CELL_LINES:
            problems.append(f"code cell has {len(lines)} lines (at most {MAX_CELL_LINES}): "
                            f"{_short(lines[0])}")
    return problems


def page_problems(page) -> list[str]:
    """What makes a loaded page read badly: raw tables, progress-bar spam, wide code, tables or
    display equations, long cells."""
    outputs = page.evaluate(
        "Array.from(document.querySelectorAll('div.cell_output pre'), pre => pre.textContent)")
    return (raw_tables(page) + progress_problems(outputs) + wide_code(page) + wide_tables(page)
            + wide_maths(page) + long_cells(page))


def check(html_dir: Path, shots: Path, chromium: str, repo_root: Path) -> list[str]:
    from playwright.sync_api import sync_playwright

    pages = sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                   if not p.relative_to(html_dir).parts[0].startswith("_"))
    if not pages:
        return [f"no HTML pages under {html_dir}"]
    shots.mkdir(parents=True, exist_ok=True)
    server, base = _serve(html_dir)
    problems: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script("try { localStorage.setItem('mode', 'auto'); } catch (e) {}")
            for page_name in pages:
                page = context.new_page()
                issues: list[str] = []
                page.on("pageerror", lambda err, i=issues: i.append(f"JavaScript error: {err}"))

                def on_console(msg, i=issues):
                    if msg.type != "error":
                        return
                    where = (msg.location or {}).get("url", "")
                    if "Failed to load resource" in msg.text and (not _local(where) or "favicon" in where):
                        return  # reported (or allowed) below as a failed request
                    i.append(f"console error: {msg.text} ({where})")

                def on_failed(req, i=issues):
                    if _local(req.url) and "favicon.ico" not in req.url:
                        i.append(f"request failed: {req.url} ({req.failure})")

                def on_response(resp, i=issues):
                    if resp.status >= 400 and _local(resp.url) and "favicon.ico" not in resp.url:
                        i.append(f"HTTP {resp.status}: {resp.url}")

                page.on("console", on_console)
                page.on("requestfailed", on_failed)
                page.on("response", on_response)
                response = page.goto(base + page_name, wait_until="load", timeout=30_000)
                if response is None or response.status != 200:
                    issues.append(f"page did not load (status {response and response.status})")
                page.wait_for_timeout(1000)
                images = page.evaluate(
                    "Array.from(document.images).map(i => [i.currentSrc || i.src, i.naturalWidth])")
                issues += [f"image did not load: {src[:120]}" for src, width in images if not width > 0]
                math = page.evaluate("""() => ({
                    spans: document.querySelectorAll('.math').length,
                    typeset: document.querySelectorAll('mjx-container').length,
                    local: Array.from(document.scripts).some(s => s.src.includes('_static/mathjax/'))})""")
                if math["spans"] and math["local"] and not math["typeset"]:
                    issues.append(f"{math['spans']} formulas but MathJax typeset none")
                if page_name.startswith("notebooks/"):
                    hrefs = page.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.href)")
                    for want in _expected_launch_links(repo_root, page_name):
                        if want not in hrefs:
                            kind = "Colab" if "colab" in want else "Binder"
                            found = [h for h in hrefs if kind.lower() in h.lower()]
                            issues.append(f"{kind} button should open {want}; found {found}")
                issues += page_problems(page)
                shot = shots / (page_name.replace("/", "__")[:-5] + ".png")
                page.screenshot(path=str(shot), full_page=True)
                status = "ok" if not issues else f"{len(issues)} problem(s)"
                print(f"[html] {page_name}: {len(images)} images, {status}")
                problems += [f"{page_name}: {i}" for i in issues]
                page.close()
            browser.close()
    finally:
        server.shutdown()
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("html_dir", type=Path)
    ap.add_argument("--screenshots", type=Path, default=Path("_build/screenshots"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--repo-root", type=Path, default=Path(__file__).resolve().parents[1])
    args = ap.parse_args(argv)
    if not (args.html_dir / "index.html").is_file():
        print(f"[html] ERROR: {args.html_dir}/index.html not found: run `make book` first", file=sys.stderr)
        return 1
    if not Path(args.chromium).exists():
        print(f"[html] ERROR: no Chromium at {args.chromium} (Debian: apt-get install chromium)",
              file=sys.stderr)
        return 1
    problems = check(args.html_dir, args.screenshots, args.chromium, args.repo_root)
    for p in problems:
        print(f"[html] FAIL {p}", file=sys.stderr)
    print(f"[html] {'all pages passed' if not problems else f'{len(problems)} problem(s)'}; "
          f"screenshots in {args.screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
