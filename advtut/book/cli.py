"""``python -m advtut.book build|execute|script|record|set-url``: the book's command line."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from advtut.book.build import build_book
from advtut.book.execute import ChapterFailed, auto_profile, execute_chapter
from advtut.book.record import record_full_results
from advtut.book.script import chapter_script, parse_param
from advtut.book.toc import chapters, set_repository_url

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advtut.book",
                                     description="Run the chapters and build the advtut book.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("build", "execute"):
        p = sub.add_parser(name, help={"build": "execute every chapter and build the HTML book",
                                       "execute": "execute chapters only"}[name])
        p.add_argument("--profile", default=os.environ.get("PROFILE") or None,
                       choices=["quick", "full"], help="default: full with CUDA, else quick")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        p.add_argument("--reuse", action="store_true",
                       help="reuse executed copies whose sources and parameters are unchanged")
        if name == "execute":
            p.add_argument("chapter", nargs="*", help="chapter ids (default: all)")
    p = sub.add_parser("set-url", help="set the repository URL (config and install cells)")
    p.add_argument("url")
    p = sub.add_parser("script", help="write a chapter as a plain Python script (no Jupyter needed)")
    p.add_argument("chapter", help="chapter id, e.g. 04_lbfgs_mnist")
    p.add_argument("output", help="the .py file to write")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter (a Python literal, or a bare string), e.g. -p profile=full")
    p = sub.add_parser("record", help="copy full-profile results into results/full/ with the "
                                      "machine and date")
    p.add_argument("chapter", nargs="+", help="chapter ids")
    p.add_argument("--machine", default=None, help="default: this machine, described")
    args = parser.parse_args(argv)
    try:
        if args.command == "script":
            (ch,) = [c for c in chapters() if c.id == args.chapter] or [None]
            if ch is None:
                parser.error(f"unknown chapter {args.chapter!r}; known: {[c.id for c in chapters()]}")
            Path(args.output).write_text(chapter_script(ch.path, dict(map(parse_param, args.param))))
            print(f"[book] wrote {args.output}")
        elif args.command == "set-url":
            for path in set_repository_url(args.url):
                print(f"[book] updated {path}")
        elif args.command == "record":
            for cid in args.chapter:
                print(f"[book] recorded {record_full_results(cid, machine=args.machine)}")
        elif args.command == "build":
            build_book(profile=args.profile, seed=args.seed, device=args.device, reuse=args.reuse)
        else:
            chs = [c for c in chapters() if not args.chapter or c.id in args.chapter]
            unknown = set(args.chapter) - {c.id for c in chs}
            if unknown:
                parser.error(f"unknown chapter(s) {sorted(unknown)}; known: {[c.id for c in chapters()]}")
            for ch in chs:
                execute_chapter(ch, profile=args.profile or auto_profile(), seed=args.seed,
                                device=args.device, reuse=args.reuse)
    except (ChapterFailed, ValueError, FileNotFoundError) as err:
        print(f"[book] ERROR: {err}", file=sys.stderr)
        return 1
    return 0

