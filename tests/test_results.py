import json
import re

import pytest

from advtut.book.report import (
    SourcePoint,
    ours_vs_source_figure,
    report_markdown,
    source_points,
    summary_counts,
    summary_table,
    write_ours_vs_source,
)
from advtut.book.results import (
    check_results,
    entry,
    format_value,
    invariant,
    load_results,
    write_results,
)


def _doc(rows, chapter="01_iris", profile="quick"):
    return {"chapter": chapter, "profile": profile, "seed": 0, "device": "cpu", "runtime_s": 1.0,
            "results": rows}


def test_roundtrip_in_book_format(tmp_path):
    rows = [entry("training accuracy", 0.9667, source=0.966, tol=0.001, unit="fraction",
                  note="trunc")]
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
        text = isinstance(kwargs.get("source"), str)
        entry("x", "a" if text else 1.0, **kwargs)


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
    md = report_markdown({"01_iris": quick}, {"01_iris": full},
                         {"01_iris": "1. Iris", "02_x": "2. X"})
    assert "| quantity | source | quick | full | tol | status | note |" in md
    (acc,) = [line for line in md.splitlines() if line.startswith("| acc")]
    cells = [c.strip() for c in acc.strip("|").split("|")]
    assert cells[:5] == ["acc", "0.966", "0.9667", "0.96", "— / 0.001"]
    assert cells[5] == "quick: no equality expected; full: **outside tol**"
    assert cells[6] == "quick: subset; full: all data"
    (only,) = [line for line in md.splitlines() if line.startswith("| only quick")]
    assert "| 1 | — |" in only
    assert "full: seed 0, a GPU, 2026-11-30" in md
    same = report_markdown({"01_iris": full}, {"01_iris": full}, {"01_iris": "1. Iris"})
    assert "| **outside tol** | all data |" in same     # said once when both profiles agree
    assert "No results were produced" in md.split("## 2. X")[1]


def test_report_without_full_results_has_one_ours_column():
    md = report_markdown({"01_iris": _doc([entry("acc", 0.9, note="n")])}, {},
                         {"01_iris": "1. Iris"})
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


def _one_of_each(chapter="01_iris", profile="quick"):
    """A document with one entry of each kind the summary counts, plus ones the figure skips."""
    return _doc([entry("within", 0.9667, source=0.966, tol=0.001, unit="fraction", note="n"),
                 entry("outside", 0.5, source=0.966, tol=0.001, unit="fraction", note="n"),
                 invariant("held", 1.0, op="==", value=1.0, note="n"),
                 invariant("broken", 0.2, op=">=", value=1.0, note="n"),
                 entry("reported", 7.2, source=7.0, unit="nats", note="a subset"),
                 entry("text", "setosa", source="setosa", tol=0, note="n"),
                 entry("no source", 3.0, note="n"),
                 entry("nan", float("nan"), source=1.0, note="n"),
                 entry("negative", -3.0, source=-3.0, tol=0, note="n")],
                chapter=chapter, profile=profile)


def test_summary_counts_one_entry_of_each_kind():
    assert summary_counts(_one_of_each()) == {
        "within tol": 3, "outside tol": 1, "invariants held": 1, "invariants broken": 1,
        "no equality expected": 3}  # within: within, text, negative; none: reported, no source, nan
    with pytest.raises(ValueError, match="doc must be"):
        summary_counts({"chapter": "x"})


def test_summary_table_is_a_row_per_chapter_and_profile():
    md = summary_table({"01_iris": _one_of_each()}, {"01_iris": _one_of_each(profile="full")},
                       {"01_iris": "1. Iris", "02_x": "2. X"})
    lines = md.splitlines()
    assert lines[0] == ("| chapter | profile | within tol | outside tol | invariants held | "
                        "invariants broken | no equality expected |")
    assert lines[2:] == ["| 1. Iris | quick | 3 | **1** | 1 | **1** | 3 |",
                         "|  | full | 3 | **1** | 1 | **1** | 3 |",
                         "| 2. X | no results | — | — | — | — | — |"]


def test_source_points_keep_numeric_pairs_only():
    points = source_points([_one_of_each(), _one_of_each("02_x", "full")])
    assert [(p.chapter, p.profile, p.name) for p in points[:4]] == [
        ("01_iris", "quick", "within"), ("01_iris", "quick", "outside"),
        ("01_iris", "quick", "reported"), ("01_iris", "quick", "negative")]
    assert len(points) == 8 and points[2] == SourcePoint("01_iris", "quick", "reported", "nats",
                                                         7.2, 7.0)
    with pytest.raises(ValueError, match="docs must hold"):
        source_points([{"results": []}])


def test_the_figure_has_a_log_panel_and_a_linear_one(tmp_path):
    points = source_points([_one_of_each()])
    fig = ours_vs_source_figure(points, {"01_iris": "1. Iris"})
    assert [(ax.get_xscale(), ax.get_yscale()) for ax in fig.axes] == [("log", "log"),
                                                                       ("linear", "linear")]
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
    path = write_ours_vs_source(points[:3], {"01_iris": "1. Iris"}, tmp_path / "f.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="points must not be empty"):
        ours_vs_source_figure([], {})


def test_report_opens_with_the_summary_and_figure_and_folds_the_tables():
    md = report_markdown({"01_iris": _one_of_each()}, {"01_iris": _one_of_each(profile="full")},
                         {"01_iris": "1. Iris", "02_x": "2. X"}, figure="fig.png")
    assert md.startswith("## At a glance\n\n| chapter | profile |")
    assert md.index(":::{figure} fig.png") < md.index("## 1. Iris")
    assert "(8; text values are left out)" in md and "log axes" in md
    inside = re.findall(r"^::::\{dropdown\} .*?\n(.*?)^::::$", md, re.S | re.M)
    assert len(inside) == 1 and inside[0].strip().startswith("| quantity | source | quick | full")
    outside = re.sub(r"^::::\{dropdown\}.*?^::::$", "", md, flags=re.S | re.M)
    assert "| quantity" not in outside and "| within (fraction)" not in outside
    assert ":::{figure}" not in report_markdown({}, {}, {"02_x": "2. X"}, figure="fig.png")
