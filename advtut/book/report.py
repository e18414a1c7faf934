"""The reproduction report: every chapter's results, quick (this build) beside full (recorded
under ``results/full/``), as one Markdown page.

The page opens with what a reader takes in at a glance: :func:`summary_table` (per chapter and
profile, how many entries are within tolerance, outside it, invariants held or broken, and no
equality expected) and a figure of ours against the source (:func:`source_points` gives its
points, :func:`ours_vs_source_figure` draws them, :func:`write_ours_vs_source` writes the PNG).
The per-chapter tables follow, each in a collapsible dropdown (sphinx-design, which Jupyter Book
1 enables).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, NamedTuple

from advtut.book.results import OPS, format_value, holds, within

__all__ = ["markdown_table", "report_markdown", "summary_counts", "summary_table", "KINDS",
           "SourcePoint", "source_points", "ours_vs_source_figure", "write_ours_vs_source"]

# The summary's columns: what an entry is, in the order the table shows them.
KINDS = ("within tol", "outside tol", "invariants held", "invariants broken",
         "no equality expected")
_ALARMS = ("outside tol", "invariants broken")  # shown in bold where not zero
PROFILES = ("quick", "full")


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown (MyST) table; floats to 4 significant digits, None as a dash."""
    esc = lambda s: format_value(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _kind(r: dict) -> str:
    """Which of KINDS a results entry is (the same reading as its status in the tables)."""
    if r.get("tol") is None:
        return "no equality expected"
    if "expect" in r:
        return "invariants held" if holds(r) else "invariants broken"
    return "within tol" if within(r) else "outside tol"


def _status(r: dict) -> str:
    kind = _kind(r)
    if kind.startswith("invariants"):
        bound = f"{OPS[r['expect']['op']]} {format_value(r['expect']['value'])}"
        return f"invariant {bound}: " + ("holds" if kind == "invariants held" else "**broken**")
    return "**outside tol**" if kind == "outside tol" else kind


def summary_counts(doc: dict) -> dict[str, int]:
    """How many of a results document's entries are of each of KINDS (every kind, zeros too)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ValueError(f"doc must be a results document with a 'results' list, got {doc!r:.80}")
    counts = dict.fromkeys(KINDS, 0)
    for r in doc["results"]:
        counts[_kind(r)] += 1
    return counts


def _profiles(quick: dict[str, dict], full: dict[str, dict], chapter: str) -> dict[str, dict]:
    """A chapter's documents by profile, quick first, leaving out the profiles it has none of."""
    return {p: d for p, d in zip(PROFILES, (quick.get(chapter), full.get(chapter))) if d}


def summary_table(quick: dict[str, dict], full: dict[str, dict], titles: dict[str, str]) -> str:
    """The report's opening table: a row per chapter and profile, a column per kind of entry.

    Arguments as for :func:`report_markdown`. The chapter's title is in its first row only; a
    chapter without results has one row saying so; counts of entries outside tolerance and of
    broken invariants are bold where not zero.
    """
    rows = []
    for chapter, title in titles.items():
        docs = _profiles(quick, full, chapter)
        if not docs:
            rows.append([title, "no results", *["—"] * len(KINDS)])
        for i, (profile, doc) in enumerate(docs.items()):
            counts = summary_counts(doc)
            rows.append(["" if i else title, profile, *(
                f"**{counts[k]}**" if k in _ALARMS and counts[k] else counts[k] for k in KINDS)])
    return markdown_table(["chapter", "profile", *KINDS], rows)


class SourcePoint(NamedTuple):
    """One entry of the figure: a chapter's ``ours`` against its source's value."""
    chapter: str
    profile: str
    name: str
    unit: str
    ours: float
    source: float


def _number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def source_points(docs: Iterable[dict]) -> list[SourcePoint]:
    """The figure's points: one per entry, in every document given, whose ``source`` and ``ours``
    are both finite numbers (text values, None, NaN, infinities and bools are left out).

    ``docs`` are loaded results documents; each point carries its document's chapter and profile.
    """
    points = []
    for doc in docs:
        if not isinstance(doc, dict) or not {"chapter", "profile", "results"} <= doc.keys():
            raise ValueError(f"docs must hold results documents (chapter, profile, results), "
                             f"got {doc!r:.80}")
        for r in doc["results"]:
            if _number(r.get("ours")) and _number(r.get("source")):
                points.append(SourcePoint(doc["chapter"], doc["profile"], r["name"],
                                          r.get("unit", ""), float(r["ours"]), float(r["source"])))
    return points


def _panels(points: list[SourcePoint]) -> list[tuple[str, bool, list[SourcePoint]]]:
    """``(title, log axes, points)`` per panel: the points whose ours and source are both
    positive on log axes, the others (a zero or a negative value) on linear axes."""
    positive = [p for p in points if p.ours > 0 and p.source > 0]
    others = [p for p in points if not (p.ours > 0 and p.source > 0)]
    panels = [("both positive: log axes", True, positive),
              ("zero or negative: linear axes", False, others)]
    return [panel for panel in panels if panel[2]]


def ours_vs_source_figure(points: list[SourcePoint], titles: dict[str, str]):
    """A matplotlib Figure of ours (y) against the source (x), with the line y = x.

    One colour per chapter (in the order of ``titles``, chapter id to title), filled markers for
    the full profile and hollow ones for quick; one panel per scale group (``_panels``). ``points`` must
    not be empty.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if not points:
        raise ValueError("points must not be empty (no entry has a numeric source)")
    panels = _panels(points)
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(titles)}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4, 4.0), squeeze=False,
                             facecolor="white", layout="constrained")
    for ax, (title, log, pts) in zip(axes[0], panels):
        values = [v for p in pts for v in (p.ours, p.source)]
        lo, hi = min(values), max(values)
        if log:
            lo, hi = lo / 2, hi * 2
            ax.set_xscale("log")
            ax.set_yscale("log")
        else:
            pad = 0.1 * (hi - lo) or 1.0
            lo, hi = lo - pad, hi + pad
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", zorder=1)
        for p in sorted(pts, key=lambda p: p.profile != "full"):  # hollow quick ones on top
            colour = colours.get(p.chapter, "black")
            full = p.profile == "full"
            ax.scatter(p.source, p.ours, s=30 if full else 60, zorder=2 if full else 3,
                       edgecolors=colour, linewidths=1.5, alpha=0.8 if full else 1.0,
                       facecolors=colour if full else "none")
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="source's value", ylabel="ours",
               title=title, facecolor="white")
        ax.set_aspect("equal", adjustable="box")
        ax.title.set_fontsize(10)
    shown = {p.chapter for p in points}
    chapters = [Line2D([], [], ls="", marker="o", color=colour, label=titles.get(c, c))
                for c, colour in colours.items() if c in shown]
    chapters += [Line2D([], [], ls="", marker="o", color="black", label=c)
                 for c in sorted(shown - colours.keys())]
    keys = [Line2D([], [], ls="", marker="o", color="0.3", label="full profile"),
            Line2D([], [], ls="", marker="o", color="0.3", markerfacecolor="none",
                   markersize=8, label="quick profile"),
            Line2D([], [], color="0.5", lw=1, ls="--", label="y = x")]
    axes[0][0].legend(handles=keys, loc="upper left", fontsize=8.5)
    fig.legend(handles=chapters, loc="outside lower center", fontsize=9, frameon=False)
    return fig


def write_ours_vs_source(points: list[SourcePoint], titles: dict[str, str], path) -> Path:
    """Draw :func:`ours_vs_source_figure` and write it as a PNG at ``path``; returns the path."""
    import matplotlib.pyplot as plt

    fig = ours_vs_source_figure(points, titles)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, facecolor="white")
    plt.close(fig)
    return path


def _figure_markdown(figure: str, points: list[SourcePoint]) -> str:
    """The figure's MyST block, with a caption that says what to look at."""
    split = len(_panels(points)) == 2
    where = ("Left: the entries whose two values are both positive, on log axes, where the "
             "distance from the line is the ratio ours / source whatever the unit; right: the "
             "entries with a zero or negative value, on linear axes. " if split else
             "Log axes: the distance from the line is the ratio ours / source, whatever the unit. "
             if all(p.ours > 0 and p.source > 0 for p in points) else "Linear axes. ")
    return (f":::{{figure}} {figure}\n:alt: ours against the source's value for every entry "
            f"with a numeric source\n\nOurs against the source's value, one point per entry "
            f"that has a numeric source ({len(points)}; text values are left out), coloured by "
            f"chapter; filled: full profile, hollow: quick. A point on the dashed line y = x "
            f"reproduces the source's number; the points off it are the ones to read in the "
            f"chapter's table below (its note says whether a tolerance applies). {where}\n:::\n")


def _tol_text(rq: dict | None, rf: dict | None):
    tols = [r.get("tol") for r in (rq, rf) if r is not None]
    if len(tols) == 2 and tols[0] != tols[1]:
        return f"{format_value(tols[0])} / {format_value(tols[1])}"
    return tols[0]


def _chapter_rows(docs: dict[str, dict]) -> list[list]:
    """A chapter's table rows: one per quantity, a column per profile in ``docs``."""
    by = {p: {r["name"]: r for r in d["results"]} for p, d in docs.items()}
    names = list(dict.fromkeys(n for rows in by.values() for n in rows))
    rows = []
    for name in names:
        rq, rf = by.get("quick", {}).get(name), by.get("full", {}).get(name)
        first = rq or rf
        unit = f" ({first['unit']})" if first.get("unit") else ""
        values = [("—" if by[p].get(name) is None else by[p][name]["ours"]) for p in docs]
        present = [(p, r) for p, r in (("quick", rq), ("full", rf)) if r is not None]
        both = len(docs) == 2
        statuses = list(dict.fromkeys(_status(r) for _, r in present))
        status = statuses[0] if len(statuses) == 1 else "; ".join(
            (f"{p}: " if both else "") + _status(r) for p, r in present)
        notes = list(dict.fromkeys(r.get("note", "") for _, r in present))
        note = notes[0] if len(notes) == 1 else "; ".join(
            f"{p}: {r.get('note', '')}" for p, r in present)
        source = next((r["source"] for _, r in present if r["source"] is not None), None)
        rows.append([name + unit, source, *values, _tol_text(rq, rf), status, note])
    return rows


def _dropdown(title: str, body: str) -> str:
    """A collapsible sphinx-design dropdown (closed) around Markdown ``body``."""
    return f"::::{{dropdown}} {title}\n\n{body}\n\n::::\n"


def report_markdown(quick: dict[str, dict], full: dict[str, dict], titles: dict[str, str],
                    figure: str | None = None) -> str:
    """The reproduction report: a summary, the figure, then one table per chapter, quick (this
    build) beside full (recorded), each in a collapsible dropdown.

    ``quick`` and ``full`` map a chapter id (``"01_iris"``) to its loaded results document;
    ``titles`` maps every chapter id to its title, in book order. ``figure`` is the path of the
    ours-against-source PNG relative to the page (written by :func:`write_ours_vs_source` from
    the same documents), or None for no figure. Each quantity is one row with a column per
    profile that has results (``quick``, ``full``); its tolerance, status and note are given per
    profile where they differ (a full run may carry a tol the quick one cannot).
    """
    out = ["## At a glance\n", summary_table(quick, full, titles) + "\n"]
    if figure is not None:
        points = source_points([*quick.values(), *full.values()])
        if points:
            out.append(_figure_markdown(figure, points))
    for chapter, title in titles.items():
        docs = _profiles(quick, full, chapter)
        out.append(f"## {title}\n")
        if not docs:
            out.append("No results were produced for this chapter in this build.\n")
            continue
        for profile, doc in docs.items():
            where = doc.get("machine") or doc["device"]
            out.append(f"- {profile}: seed {doc['seed']}, {where}, {doc['runtime_s']:.0f} s")
        if "full" not in docs:
            out.append("- full: none recorded yet (see `results/full/`)")
        rows = _chapter_rows(docs)
        table = markdown_table(["quantity", "source", *docs, "tol", "status", "note"], rows)
        out.append("\n" + _dropdown(f"The {len(rows)} entries", table))
    return "\n".join(out)
