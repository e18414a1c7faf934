"""The chapters' results JSON: its entries, invariants, writing, loading and checking.

A chapter collects its headline numbers with :func:`entry` and writes them with
:func:`write_results`::

    rows = [entry("training accuracy", acc, source=0.966, tol=0.001, unit="fraction",
                  note="the source truncates 0.9667 to 96.6%")]
    write_results(results_path, chapter="01_iris", profile=profile, seed=seed,
                  device="cpu", runtime_s=12.3, results=rows)

:func:`invariant` records what must hold in any profile (an attack's success rate is 1, a lower
bound is at most the exact value), so that the gate can fail even where the quick profile is not
meant to match the source::

    rows.append(invariant("attack success rate", rate, op="==", value=1.0, tol=0,
                          unit="fraction", note="every attacked image must be fooled"))

:func:`check_results` lists the entries whose ``ours`` is further than ``tol`` from ``source``
and the invariants that do not hold. :mod:`advtut.book.report` renders the reproduction report
from these files. The format and its rules are written out in the book's conventions page.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

__all__ = ["entry", "invariant", "write_results", "load_results", "check_results",
           "holds", "within", "format_value", "OPS"]

_NUMBER = (int, float)


def _plain(value, name: str):
    """A JSON-friendly number: Python int/float/bool (tensors and numpy scalars via .item())."""
    if hasattr(value, "item"):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if not isinstance(value, _NUMBER):
        raise ValueError(f"{name} must be a number, bool, string or None, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    return value


def entry(name: str, ours, *, source=None, tol: float | None = None, unit: str = "",
          note: str = "") -> dict:
    """One results entry: ``ours`` beside the source's value.

    ``tol`` is the absolute tolerance within which ``ours`` is expected to equal ``source`` in this
    profile (chosen in advance and justified in ``note``); leave it ``None`` where no equality is
    expected and say why in ``note``. Text values (a predicted class name) take ``tol=0``:
    they must be equal.
    """
    if not name:
        raise ValueError("entry name must be a non-empty string")
    ours, source = _plain(ours, "ours"), _plain(source, "source")
    if tol is not None:
        tol = float(_plain(tol, "tol"))
        if tol < 0:
            raise ValueError(f"tol must be >= 0, got {tol} for {name!r}")
        both_text = isinstance(source, str) and isinstance(ours, str)
        if both_text and tol != 0:
            raise ValueError(f"{name!r}: text values can only be checked for equality (tol=0)")
        if not both_text and not (isinstance(source, _NUMBER) and isinstance(ours, _NUMBER)):
            raise ValueError(f"{name!r}: a tol needs numeric ours and source, got {ours!r}, {source!r}")
        if not note:
            raise ValueError(f"{name!r}: an entry with a tol needs a note saying why that tol")
    out = {"name": name, "ours": ours, "source": source}
    if tol is not None:
        out["tol"] = tol
    out["unit"] = unit
    out["note"] = note
    return out


OPS = {">=": "≥", "<=": "≤", "==": "="}


def invariant(name: str, ours, *, op: str, value: float, tol: float = 0.0, unit: str = "",
              note: str) -> dict:
    """An entry that must hold in every profile: ``ours op value`` up to ``tol``.

    ``op`` is ``">="`` (``ours >= value - tol``), ``"<="`` (``ours <= value + tol``) or ``"=="``
    (``|ours - value| <= tol``). ``source`` is None (the source does not state it; the chapter's
    own maths does), and ``note`` must say why it holds. Written as
    ``{"name", "ours", "source": null, "expect": {"op", "value"}, "tol", "unit", "note"}``.
    """
    if op not in OPS:
        raise ValueError(f"op must be one of {sorted(OPS)}, got {op!r} for {name!r}")
    if not note:
        raise ValueError(f"{name!r}: an invariant needs a note saying why it must hold")
    out = entry(name, ours, unit=unit, note=note)
    value, tol = _plain(value, "value"), _plain(tol, "tol")
    if not isinstance(value, _NUMBER) or not isinstance(tol, _NUMBER) or tol < 0:
        raise ValueError(f"{name!r}: value must be a number and tol a number >= 0, got {value!r}, {tol!r}")
    if not isinstance(out["ours"], _NUMBER) and out["ours"] is not None:
        raise ValueError(f"{name!r}: an invariant needs a numeric ours, got {ours!r}")
    return {"name": out["name"], "ours": out["ours"], "source": None,
            "expect": {"op": op, "value": float(value)}, "tol": float(tol), "unit": unit, "note": note}


def write_results(path, *, chapter: str, profile: str, seed: int, device: str, runtime_s: float,
                  results: list[dict], machine: str | None = None,
                  determinism: list[str] | None = None) -> Path:
    """Write the results JSON (the format of the book's conventions page) atomically; returns
    the path.

    ``determinism``: what :mod:`advtut.book.determinism` found that could make a second run
    differ; by default, its findings in this process when a chapter is being checked (any
    finding fails :func:`check_results`)."""
    from advtut.book import determinism as det

    if determinism is None and det.installed():
        determinism = det.findings()
    names = [r["name"] for r in results]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"results entry names must be unique within a chapter; repeated: {dupes}")
    doc = {"chapter": chapter, "profile": profile, "seed": int(seed), "device": str(device),
           "runtime_s": round(float(runtime_s), 2), "results": results}
    if machine:
        doc["machine"] = machine
    if determinism is not None:
        doc["determinism"] = [str(d) for d in determinism]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def load_results(path) -> dict:
    """Read and check a results JSON; raises ``ValueError`` naming the file and the problem."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    for key in ("chapter", "profile", "seed", "device", "runtime_s", "results"):
        if key not in doc:
            raise ValueError(f"{path} has no {key!r} field (the format is in book/conventions.md)")
    for r in doc["results"]:
        if not {"name", "ours", "source"} <= r.keys():
            raise ValueError(f"{path}: entry {r!r} needs name, ours and source")
        if "expect" in r:
            _check_expect(r, where=str(path))
    return doc


def _check_expect(r: dict, *, where: str) -> None:
    """An invariant's ``expect`` and ``tol`` must be well formed (a file edited by hand must
    not turn a check into a pass)."""
    e, tol = r["expect"], r.get("tol")
    ok = (isinstance(e, dict) and e.get("op") in OPS and isinstance(e.get("value"), _NUMBER)
          and not isinstance(e.get("value"), bool) and isinstance(tol, _NUMBER) and tol >= 0)
    if not ok:
        raise ValueError(f"{where}: invariant {r['name']!r} needs expect = {{op: one of "
                         f"{sorted(OPS)}, value: a number}} and tol >= 0; got expect={e!r}, "
                         f"tol={tol!r}")


def holds(r: dict) -> bool:
    ours, (op, value), tol = r["ours"], (r["expect"]["op"], r["expect"]["value"]), r["tol"]
    if not isinstance(ours, _NUMBER) or isinstance(ours, bool):
        return False  # NaN is written as null: it holds nothing
    if op == ">=":
        return ours >= value - tol - 1e-12
    if op == "<=":
        return ours <= value + tol + 1e-12
    if op == "==":
        return abs(ours - value) <= tol + 1e-12
    raise ValueError(f"unknown op {op!r} in {r['name']!r}")


def within(r: dict) -> bool:
    if "expect" in r:
        return holds(r)
    if isinstance(r["ours"], str) or isinstance(r["source"], str):
        return r["ours"] == r["source"]
    return abs(r["ours"] - r["source"]) <= r["tol"] + 1e-12


def check_results(doc: dict) -> list[str]:
    """Sentences for each entry with a ``tol`` whose ``|ours - source| > tol``, for each
    invariant that does not hold and for each ``determinism`` finding (empty: all pass). Text
    entries (``tol=0``) must be equal.
    """
    failures = [f"{doc['chapter']}: a second run could differ: {d}"
                for d in doc.get("determinism") or []]
    for r in doc["results"]:
        if "expect" in r:  # an invariant is always checked, whatever its tol says
            try:
                _check_expect(r, where=doc["chapter"])
            except ValueError as err:
                failures.append(str(err))
                continue
        elif r.get("tol") is None:
            continue
        if "expect" in r and not holds(r):
            e = r["expect"]
            failures.append(f"{doc['chapter']}: {r['name']}: ours {r['ours']!r} breaks the "
                            f"invariant {e['op']} {e['value']!r} (tol {r['tol']})")
        elif "expect" not in r and not within(r):
            gap = "differs" if isinstance(r["ours"], str) else f"|gap| {abs(r['ours'] - r['source']):.4g}"
            failures.append(f"{doc['chapter']}: {r['name']}: ours {r['ours']!r}, source "
                            f"{r['source']!r}, {gap}, tol {r['tol']}")
    return failures


def format_value(value, *, digits: int = 4) -> str:
    """A table cell as text: floats to ``digits`` significant digits, None and NaN as a dash,
    bools yes/no, 0-d tensors and NumPy scalars by their value."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)
