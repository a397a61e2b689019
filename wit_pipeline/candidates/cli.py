"""``wit candidates``: the command over ``pipeline.run_candidates`` (flags from ``CandidateOptions``)."""

from __future__ import annotations

import argparse
import sys

from ..options import add_options, from_args
from .pipeline import CandidateOptions, run_candidates


def _cmd(args: argparse.Namespace) -> int:
    stats = run_candidates(from_args(CandidateOptions, args), args.beam_args)
    dropped = ", ".join(f"{k} {v}" for k, v in stats["dropped"].items() if v) or "none"
    unreadable = stats["counters"].get("unreadable_files", 0)
    if unreadable:
        print(f"wit candidates: warning: {unreadable} input file(s) could not be read (see the log)",
              file=sys.stderr)
    bad_rows = stats["counters"].get("table_bad_rows", 0)
    if bad_rows:
        reasons = ", ".join(f"{name.removeprefix('table_bad_rows_')} {n}" for name, n in stats["counters"].items()
                            if name.startswith("table_bad_rows_"))
        print(f"wit candidates: warning: {bad_rows} input row(s) skipped as bad ({reasons}; --strict stops at the "
              "first)", file=sys.stderr)
    print(f"wit candidates: {stats['in']} pairs in, {stats['out']} out ({dropped} dropped) "
          f"-> {stats['outputs']['parts']}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "candidates", help="extract (image URL, text) pairs from WAT/WARC files, tables or image-search APIs",
        description="Extract candidate (image URL, text) pairs, clean and filter their texts (each filter "
        "counted), de-duplicate (url, text) exactly, and write parquet parts plus stats.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_options(parser, CandidateOptions)
    parser.set_defaults(func=_cmd, beam=True)
