"""``wit queries build`` and ``wit queries stats``.

The flags of ``build`` are ``queries.pipeline.QueryOptions``' fields (``wit_pipeline.options``).
"""

from __future__ import annotations

import argparse

from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.options import add_options, from_args
from wit_pipeline.stage import STATS_NAME, stats_path

from .output import format_stats
from .pipeline import QueryOptions, run_queries


def _cmd_build(args: argparse.Namespace) -> int:
    options = from_args(QueryOptions, args)
    stats = run_queries(options, beam_args=args.beam_args)
    print(format_stats(stats))
    print(f"\nwrote {stats['out']:,} queries to {options.out}")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    path = stats_path(args.dir)
    if not fileio.exists(path):
        raise UserError(f"{args.dir!r} is not a queries directory (no {STATS_NAME})")
    stats = fileio.read_json(path, expect=dict)   # not UTF-8, not JSON, not an object: one line
    if stats.get("stage") != "queries":
        raise UserError(f"{path} is not a queries stats record (rebuild the directory with `wit queries build`)")
    try:
        summary = format_stats(stats)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:   # a figure missing or of the wrong type
        raise UserError(f"{path} is not a complete queries stats record ({type(exc).__name__}: {exc}); "
                        "rebuild the directory with `wit queries build`") from None
    print(summary)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "queries",
        help="build the query list from Wikipedia, pageviews and WordNet",
        description="Build (and inspect) the CLIP-style query list: Wikipedia words seen at least "
        "--min-count times, high-PMI bigrams, article titles with at least --min-views pageviews, "
        "and every WordNet lemma.",
    )
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1], beam=False)
    commands = parser.add_subparsers(dest="queries_command", metavar="SUBCOMMAND", parser_class=type(parser))

    build = commands.add_parser(
        "build",
        help="run the query-list Beam job",
        description="Count words and bigrams in Wikipedia dumps, sum pageviews, read WordNet, and write "
        "queries.parquet, queries.txt and stats.json to --out. Beam pipeline options (--runner, "
        "--direct_num_workers, --project, ...) may follow.",
    )
    add_options(build, QueryOptions)
    build.set_defaults(func=_cmd_build, beam=True)

    stats = commands.add_parser("stats", help="print a queries DIR's summary",
                                description="Print entries per source, overlaps and input counts of a queries DIR.")
    stats.add_argument("dir", metavar="DIR")
    stats.set_defaults(func=_cmd_stats, beam=False)
