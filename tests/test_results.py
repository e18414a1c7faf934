import json

import pytest

from advtut.book.report import report_markdown
from advtut.book.results import (check_results, entry, format_value, invariant, load_results,
                                 write_results)


def _doc(rows, chapter="01_iris", profile="quick"):
    return {"chapter": chapter, "profile": profile, "seed": 0, "device": "cpu", "runtime_s": 1.0,
            "results": rows}


def test_roundtrip_in_book_format(tmp_path):
    rows = [entry("training accuracy", 0.9667, source=0.966, tol=0.001, unit="fraction", note="trunc")]
    path = write_results(tmp_path / "r.json", chapter="01_iris", profile="quick", seed=0,
                         device="cpu", runtime_s=12.345, results=rows)
    doc = json.loads(path.read_text())
    assert doc == {"chapter": "01_iris", "profile": "quick", "seed": 0, "device": "cpu",
                   "runtime_s": 12.35, "results": [{"name": "training accuracy", "ours": 0.9667,
                   "source": 0.966, "tol": 0.001, "unit": "fraction", "note": "trunc"}]}
    assert load_results(path) == doc


def test_check_results_uses_the_tolerance_and_exact_text():
    rows = [entry("a", 0.9667, source=0.966, tol=0.001, note="n"),
            entry("b", 0.95, source=0.966, tol=0.001, note="n"),
            entry("c", "setosa", source="setosa", tol=0, note="n"),
            entry("d", "virginica", source="setosa", tol=0, note="n"),
            entry("e", 123.0, note="no source value")]
    failures = check_results(_doc(rows))
    assert len(failures) == 2 and "b" in failures[0] and "d" in failures[1]


@pytest.mark.parametrize("kwargs, match", [
    (dict(source=1.0, tol=-1, note="n"), "tol must be >= 0"),
    (dict(source=None, tol=0.1, note="n"), "needs numeric"),
    (dict(source=1.0, tol=0.1), "needs a note"),
    (dict(source="a", tol=0.5, note="n"), "equality"),
])
def test_entry_rejects_unjustified_or_malformed_tolerances(kwargs, match):
    with pytest.raises(ValueError, match=match):
        entry("x", 1.0 if "source" not in kwargs or not isinstance(kwargs["source"], str) else "a", **kwargs)


def test_duplicate_names_are_rejected(tmp_path):
    rows = [entry("a", 1), entry("a", 2)]
    with pytest.raises(ValueError, match="unique"):
        write_results(tmp_path / "r.json", chapter="c", profile="quick", seed=0, device="cpu",
                      runtime_s=0, results=rows)


def test_load_results_names_the_missing_field(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"chapter": "x"}))
    with pytest.raises(ValueError, match="profile"):
        load_results(tmp_path / "r.json")


def test_report_puts_full_beside_quick():
    quick = _doc([entry("acc", 0.9667, note="subset"), entry("only quick", 1.0, note="q")])
    full = _doc([entry("acc", 0.96, source=0.966, tol=0.001, note="all data")], profile="full")
    full["machine"] = "a GPU, 2026-11-30"
    md = report_markdown({"01_iris": quick}, {"01_iris": full}, {"01_iris": "1. Iris", "02_x": "2. X"})
    assert "| quantity | source | quick | full | tol | status | note |" in md
    (acc,) = [l for l in md.splitlines() if l.startswith("| acc")]
    cells = [c.strip() for c in acc.strip("|").split("|")]
    assert cells[:5] == ["acc", "0.966", "0.9667", "0.96", "— / 0.001"]
    assert cells[5] == "quick: no equality expected; full: **outside tol**"
    assert cells[6] == "quick: subset; full: all data"
    (only,) = [l for l in md.splitlines() if l.startswith("| only quick")]
    assert "| 1 | — |" in only
    assert "full: seed 0, a GPU, 2026-11-30" in md
    same = report_markdown({"01_iris": full}, {"01_iris": full}, {"01_iris": "1. Iris"})
    assert "| **outside tol** | all data |" in same     # said once when both profiles agree
    assert "No results were produced" in md.split("## 2. X")[1]


def test_report_without_full_results_has_one_ours_column():
    md = report_markdown({"01_iris": _doc([entry("acc", 0.9, note="n")])}, {}, {"01_iris": "1. Iris"})
    assert "| quantity | source | quick | tol | status | note |" in md
    assert "full: none recorded yet" in md


@pytest.mark.parametrize("kwargs, match", [
    (dict(op=">", value=1.0, note="n"), "op must be one of"),
    (dict(op=">=", value=1.0, note=""), "needs a note"),
    (dict(op=">=", value=1.0, tol=-1, note="n"), "tol a number >= 0"),
    (dict(op=">=", value="1", note="n"), "value must be a number"),
])
def test_invariant_rejects_malformed_checks(kwargs, match):
    with pytest.raises(ValueError, match=match):
        invariant("x", 1.0, **kwargs)


def test_report_shows_invariants_as_holding_or_broken():
    doc = _doc([invariant("ok", 1.0, op="==", value=1.0, note="n"),
                invariant("bad", 0.2, op=">=", value=1.0, note="n")])
    md = report_markdown({"01_iris": doc}, {}, {"01_iris": "1. Iris"})
    assert "invariant = 1: holds" in md and "invariant ≥ 1: **broken**" in md


def test_format_value():
    assert [format_value(v) for v in (None, float("nan"), True, 0.123456, 3, "a")] == \
        ["—", "—", "yes", "0.1235", "3", "a"]
    assert format_value(0.123456, digits=2) == "0.12"


@pytest.mark.parametrize("tamper", [
    lambda r: r.pop("tol"),
    lambda r: r.update(tol=None),
    lambda r: r["expect"].update(op=">"),
    lambda r: r["expect"].update(value="1"),
    lambda r: r.update(expect=None),
])
def test_a_hand_edited_invariant_fails_rather_than_passes(tamper, tmp_path):
    r = invariant("success", 0.5, op="==", value=1.0, note="n")
    tamper(r)
    assert check_results(_doc([r])), "a malformed invariant must be reported"
    (tmp_path / "r.json").write_text(json.dumps(_doc([r])))
    with pytest.raises(ValueError, match="invariant 'success' needs expect"):
        load_results(tmp_path / "r.json")


def test_a_bool_is_not_a_number_for_an_invariant():
    r = invariant("flag", 1.0, op=">=", value=1.0, note="n")
    r["ours"] = True
    assert check_results(_doc([r]))
