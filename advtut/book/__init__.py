"""The book machinery: running the chapters and building the book. It imports no science module.

``toc`` (the chapters in book order, the repository URL), ``execute`` (one chapter with
papermill), ``build`` (the HTML book), ``script`` (a chapter as a plain script), ``record``
(full-profile runs under ``results/full/``), ``cli`` (``python -m advtut.book``); and what a
chapter uses while it runs: ``chapter`` (its parameters, seeding, device), ``profiles`` (what
``quick`` and ``full`` mean), ``results`` (the results JSON), ``report`` (the reproduction
report), ``tables`` (HTML tables) and ``cache`` (computed models kept on disk, keyed by the code
that made them).

The names most used are importable from here::

    from advtut.book import chapters, execute_chapter, build_book
"""
from advtut.book.build import build_book, vendor_mathjax
from advtut.book.execute import (
                                 ChapterFailed,
                                 auto_profile,
                                 execute_chapter,
                                 final_lines,
                                 fingerprint,
                                 without_progress,
)
from advtut.book.record import describe_machine, record_full_results
from advtut.book.script import chapter_script
from advtut.book.toc import Chapter, chapters, find_root, repository_url, set_repository_url

__all__ = ["Chapter", "ChapterFailed", "auto_profile", "build_book", "chapter_script",
           "chapters", "describe_machine", "execute_chapter", "final_lines", "find_root",
           "fingerprint", "record_full_results", "repository_url", "set_repository_url",
           "vendor_mathjax", "without_progress"]
