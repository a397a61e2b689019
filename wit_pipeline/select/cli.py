"""``wit select``: the command over ``pipeline.run_select`` (flags from ``SelectOptions``)."""

from __future__ import annotations

import argparse

from ..options import add_options, from_args
from .pipeline import SelectOptions, run_select


def _cmd(args: argparse.Namespace) -> int:
    stats = run_select(from_args(SelectOptions, args), args.beam_args)
    d = stats["dropped"]
    bad = f", bad row {d['bad_row']}" if d.get("bad_row") else ""
    print(f"wit select: {stats['in']} candidates, {stats['matched']} matched, {stats['out']} selected "
          f"(no match {d['no_match']}, language {d['lang']}, duplicate {d['duplicate']}, cap {d['cap']}{bad}); "
          f"{stats['queries_matched']}/{stats['queries_total']} queries matched -> {stats['outputs']['summary']}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "select", help="match candidates against the queries and keep at most --cap pairs per query",
        description="Match candidate texts against the query list (Aho-Corasick over canonical text), keep "
        "the chosen language (langdetect once per distinct matched text), and keep at most --cap pairs per "
        "query. Writes selected/part-*.parquet, query_counts.parquet, stats.json and summary.html.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_options(parser, SelectOptions)
    parser.set_defaults(func=_cmd, beam=True)
