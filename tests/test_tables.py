"""Chapter tables are real HTML tables with the report's number format."""
import pytest

from advtut.book.tables import table


def test_a_table_is_html_with_its_caption_and_formatted_cells():
    t = table([["FC10", 0.123456, None, True], ["<b>x</b>", 2, float("nan"), False]],
              ["model", "error", "paper", "ok"], caption="Table 1, ours")
    html = t.to_html()
    assert "<table" in html and "<caption>Table 1, ours</caption>" in html
    assert ">0.1235<" in html and ">—<" in html and ">yes<" in html and ">no<" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html  # text is escaped
    assert "|" not in html                                             # no pipe text
    assert t.data.loc[0, "error"] == 0.123456                         # full values kept
    assert t.to_html() == table([["FC10", 0.123456, None, True], ["<b>x</b>", 2, float("nan"), False]],
                                ["model", "error", "paper", "ok"], caption="Table 1, ours").to_html()


@pytest.mark.parametrize("rows, columns, match", [
    ([[1, 2]], ["a"], r"row 0 has 2 cells but there are 1 columns"),
    ([[1, 2]], ["a", "a"], "columns must be unique"),
])
def test_bad_tables_are_refused(rows, columns, match):
    with pytest.raises(ValueError, match=match):
        table(rows, columns)
