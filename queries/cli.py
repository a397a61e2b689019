"""``wit queries build`` and ``wit queries stats``; also the demo's query step."""

from __future__ import annotations

import argparse
import os

from wit_pipeline import fileio
from wit_pipeline.errors import UserError

from .output import STATS_NAME, format_stats
from .pipeline import QueryOptions, build_queries

# Thresholds for the sample web's mini dump (~5k words): the full-Wikipedia defaults would admit nothing.
DEMO_OPTIONS = QueryOptions(min_count=5, min_pmi=6.0, min_bigram_count=3, min_views=50)


def _cmd_build(args: argparse.Namespace) -> int:
    options = QueryOptions(
        min_count=args.min_count, min_pmi=args.min_pmi, min_bigram_count=args.min_bigram_count,
        min_views=args.min_views, keep_case=args.keep_case, range_bytes=args.range_mb << 20,
        count_buckets=args.count_buckets,
    )
    stats = build_queries(args.wikipedia, args.out, pageviews=args.pageviews, wordnet=args.wordnet,
                          options=options, beam_args=args.beam_args)
    print(format_stats(stats))
    print(f"\nwrote {stats['entries']:,} queries to {args.out}")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    path = fileio.join(args.dir, STATS_NAME)
    if not fileio.exists(path):
        raise UserError(f"{args.dir!r} is not a queries directory (no {STATS_NAME})")
    print(format_stats(fileio.read_json(path)))
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
    build.add_argument("--wikipedia", nargs="+", required=True, metavar="PATH",
                       help="MediaWiki XML exports (pages-articles; .xml, .bz2 incl. multistream, .gz), "
                       "files, directories or globs, local or gs:// s3:// ...")
    build.add_argument("--pageviews", nargs="+", default=[], metavar="PATH",
                       help="hourly pageview dumps (pageviews-YYYYMMDD-HH0000.gz)")
    build.add_argument("--wordnet", metavar="DIR", help="WordNet 3.0 wndb directory (e.g. /usr/share/wordnet)")
    build.add_argument("--min-count", type=int, default=QueryOptions.min_count,
                       help="unigrams seen at least this often are queries (default %(default)s)")
    build.add_argument("--min-pmi", type=float, default=QueryOptions.min_pmi,
                       help="bigrams with PMI (bits, nltk's definition) at least this are queries "
                       "(default %(default)s)")
    build.add_argument("--min-bigram-count", type=int, default=QueryOptions.min_bigram_count,
                       help="bigrams seen fewer times are not scored (default %(default)s)")
    build.add_argument("--min-views", type=int, default=QueryOptions.min_views,
                       help="article titles with at least this many summed views are queries (default %(default)s)")
    build.add_argument("--keep-case", action="store_true", help="keep letter case (default: lower-case everything)")
    build.add_argument("--range-mb", type=int, default=QueryOptions.range_bytes >> 20,
                       help="dump megabytes per read task (default %(default)s)")
    build.add_argument("--count-buckets", type=int, default=QueryOptions.count_buckets,
                       help="hash buckets counts are summed in; one bucket's keys are in memory at a time "
                       "(default %(default)s; raise it if a worker runs out of memory)")
    build.add_argument("--out", required=True, metavar="DIR", help="output directory")
    build.set_defaults(func=_cmd_build, beam=True)

    stats = commands.add_parser("stats", help="print a queries DIR's summary",
                                description="Print entries per source, overlaps and input counts of a queries DIR.")
    stats.add_argument("dir", metavar="DIR")
    stats.set_defaults(func=_cmd_stats, beam=False)


def demo_step(ctx) -> None:
    """Demo: build the query list from the sample web's mini dump, pageviews and WordNet."""
    files = ctx.files
    if not getattr(files, "wikipedia", None):
        raise UserError("the sample web wrote no Wikipedia dump (SampleFiles.wikipedia is empty)")
    out = ctx.path("queries")
    stats = build_queries(list(files.wikipedia), out, pageviews=list(files.pageviews or []),
                          wordnet=files.wordnet or None, options=DEMO_OPTIONS, beam_args=ctx.beam_args)
    ctx.outputs["queries"] = out
    ctx.report("queries", "entries", f"{stats['entries']:,} ("
               + ", ".join(f"{k} {v}" for k, v in stats["by_source"].items()) + ")")
    inputs = stats["inputs"]
    ctx.report("queries", "pages counted / read", f"{inputs['pages_counted']} / {inputs['pages_read']}")
    ctx.report("queries", "output", os.path.join(out, "queries.parquet"))
