"""Tables for the chapters: a pandas DataFrame, shown as a real HTML table everywhere.

A chapter shows a table with one call::

    show = table([[name, err, paper] for ...], ["model", "test error", "paper"],
                 caption="Table 1, ours beside the paper's")
    show          # the cell's last line: an HTML table in JupyterLab and in the built book

:func:`table` returns a pandas ``Styler``: it renders as ``<table>`` in JupyterLab, in the book
(myst-nb prefers ``text/html``) and in Colab, and ``.data`` is the plain DataFrame for a reader
who wants to sort, filter or export it (``.data.to_csv(...)``). Numbers are shown to four
significant digits and ``None`` as a dash, the same format as the reproduction report; the
DataFrame keeps the full values. (``IPython.display.Markdown`` is not used for tables: myst-nb
renders a Markdown output as CommonMark, which has no tables.)
"""
from __future__ import annotations

import hashlib

from advtut.book.results import format_value

__all__ = ["table"]


def table(rows, columns, *, caption: str | None = None, digits: int = 4):
    """A table of ``rows`` (a list of lists, one per row) under ``columns`` (their headers).

    Returns a pandas ``Styler`` (``.data`` is the DataFrame) with no index column; floats are
    shown to ``digits`` significant digits, ``None`` as a dash. ``caption`` is printed above the
    table. Raises ``ValueError`` when a row's length differs from the number of columns.
    """
    import pandas as pd

    columns = [str(c) for c in columns]
    rows = [list(r) for r in rows]
    for i, row in enumerate(rows):
        if len(row) != len(columns):
            raise ValueError(f"row {i} has {len(row)} cells but there are {len(columns)} columns "
                             f"({columns}): {row!r}")
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns must be unique, got {columns}")
    df = pd.DataFrame(rows, columns=columns)
    # A stable id: the same table gets the same HTML in every run.
    uid = hashlib.sha1(repr((caption, columns, len(rows))).encode()).hexdigest()[:10]
    styler = (df.style.format(lambda v: format_value(v, digits=digits), escape="html")
              .hide(axis="index")
              .set_uuid(uid)
              .set_table_attributes('class="dataframe advtut-table"'))
    if caption:
        styler = styler.set_caption(caption)
    return styler
