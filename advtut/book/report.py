"""The reproduction report: every chapter's results, quick (this build) beside full (recorded
under ``results/full/``), as one Markdown page."""
from __future__ import annotations

from advtut.book.results import OPS, format_value, holds, within

__all__ = ["markdown_table", "report_markdown"]


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown (MyST) table; floats to 4 significant digits, None as a dash."""
    esc = lambda s: format_value(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _status(r: dict) -> str:
    if r.get("tol") is None:
        return "no equality expected"
    if "expect" in r:
        bound = f"{OPS[r['expect']['op']]} {format_value(r['expect']['value'])}"
        return f"invariant {bound}: " + ("holds" if holds(r) else "**broken**")
    return "within tol" if within(r) else "**outside tol**"


def _tol_text(rq: dict | None, rf: dict | None):
    tols = [r.get("tol") for r in (rq, rf) if r is not None]
    if len(tols) == 2 and tols[0] != tols[1]:
        return f"{format_value(tols[0])} / {format_value(tols[1])}"
    return tols[0]


def report_markdown(quick: dict[str, dict], full: dict[str, dict], titles: dict[str, str]) -> str:
    """The reproduction report: one table per chapter, quick (this build) beside full (recorded).

    ``quick`` and ``full`` map a chapter id (``"01_iris"``) to its loaded results document;
    ``titles`` maps every chapter id to its title, in book order. Each quantity is one row with
    a column per profile that has results (``quick``, ``full``); its tolerance, status and note
    are given per profile where they differ (a full run may carry a tol the quick one cannot).
    """
    out = []
    for chapter, title in titles.items():
        docs = {p: d for p, d in (("quick", quick.get(chapter)), ("full", full.get(chapter))) if d}
        out.append(f"## {title}\n")
        if not docs:
            out.append("No results were produced for this chapter in this build.\n")
            continue
        for profile, doc in docs.items():
            where = doc.get("machine") or doc["device"]
            out.append(f"- {profile}: seed {doc['seed']}, {where}, {doc['runtime_s']:.0f} s")
        if "full" not in docs:
            out.append("- full: none recorded yet (see `results/full/`)")
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
        out.append("\n" + markdown_table(["quantity", "source", *docs, "tol", "status", "note"],
                                         rows) + "\n")
    return "\n".join(out)
