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
import importlib

#: Where each name importable from ``advtut.book`` lives. Imported on first use, so that a
#: chapter importing ``advtut.book.chapter`` (and a cache key that follows its imports) does not
#: pull in papermill, the build and the command line.
_WHERE = {"build_book": "build", "vendor_mathjax": "build", "ChapterFailed": "execute",
          "auto_profile": "execute", "execute_chapter": "execute", "final_lines": "execute",
          "fingerprint": "execute", "without_progress": "execute",
          "describe_machine": "record", "record_full_results": "record",
          "chapter_script": "script", "Chapter": "toc", "chapters": "toc", "find_root": "toc",
          "repository_url": "toc", "set_repository_url": "toc"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"advtut.book.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'advtut.book' has no attribute {name!r}")
