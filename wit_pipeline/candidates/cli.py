"""``wit candidates``: the command over ``pipeline.run_candidates``."""

from __future__ import annotations

import argparse
import sys

from .filters import FILTERS, FilterConfig, parse_disabled
from .language import parse_lang
from .pipeline import SOURCES, CandidateOptions, run_candidates


def options_from_args(args: argparse.Namespace) -> CandidateOptions:
    return CandidateOptions(
        source=args.source, inputs=args.input, out=args.out,
        filters=FilterConfig(min_chars=args.min_chars, min_words=args.min_words, max_chars=args.max_chars,
                             disabled=parse_disabled(args.disable)),
        lang=parse_lang(args.lang, allow_defer=True), seed=args.seed,
        url_col=args.url_col, text_col=args.text_col, page_url_col=args.page_url_col,
        api=args.api, endpoint=args.endpoint or "", per_query_cap=args.per_query_cap, page_size=args.page_size,
        rate_per_host=args.rate, crawlers=args.crawlers, allow_private_networks=args.allow_private_networks,
        rows_per_part=args.rows_per_part)


def _cmd(args: argparse.Namespace) -> int:
    stats = run_candidates(options_from_args(args), args.beam_args)
    dropped = ", ".join(f"{k} {v}" for k, v in stats["dropped"].items() if v) or "none"
    unreadable = stats["counters"].get("unreadable_files", 0)
    if unreadable:
        print(f"wit candidates: warning: {unreadable} input file(s) could not be read (see the log)",
              file=sys.stderr)
    print(f"wit candidates: {stats['pairs_in']} pairs in, {stats['pairs_out']} out ({dropped} dropped) "
          f"-> {stats['outputs']['parts']}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "candidates", help="extract (image URL, text) pairs from WAT/WARC files, tables or image-search APIs",
        description="Extract candidate (image URL, text) pairs, clean and filter their texts (each filter "
        "counted), de-duplicate (url, text) exactly, and write parquet parts plus stats.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--source", required=True, choices=SOURCES,
                        help="wat: Common Crawl WAT; warc: WARC responses' HTML; table: parquet/CSV/TSV/JSONL; "
                        "search: crawl an image-search API for each query of --input")
    parser.add_argument("--input", required=True, nargs="+", metavar="PATH_OR_GLOB",
                        help="input files, globs or directories (local, gs://, s3://, http(s) single files); "
                        "for --source search, the queries (a queries directory or a text file)")
    parser.add_argument("--out", required=True, help="output directory (parts/part-*.parquet and stats.json)")
    filters = parser.add_argument_group("text filters")
    filters.add_argument("--min-chars", type=int, default=6, help="drop texts shorter than this (characters)")
    filters.add_argument("--min-words", type=int, default=3, help="drop texts with fewer words")
    filters.add_argument("--max-chars", type=int, default=1000, help="drop longer texts (0: no limit)")
    filters.add_argument("--disable", default="", metavar="FILTER[,FILTER]",
                         help=f"switch filters off, by name: {', '.join(FILTERS)}")
    filters.add_argument("--lang", default="defer",
                         help="defer: leave language filtering to 'wit select' (after matching, far cheaper); "
                         "any: keep every language; a code such as en: keep that language here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the language detector")
    table = parser.add_argument_group("table source")
    table.add_argument("--url-col", default="url")
    table.add_argument("--text-col", default="text")
    table.add_argument("--page-url-col", default=None)
    search = parser.add_argument_group("search source")
    search.add_argument("--api", choices=("openverse", "mediawiki"), default="openverse",
                        help="response shape of the search API")
    search.add_argument("--endpoint", default=None,
                        help="the API endpoint, e.g. https://api.openverse.org/v1/images/ or "
                        "https://commons.wikimedia.org/w/api.php")
    search.add_argument("--per-query-cap", type=int, default=20_000, help="stop a query's crawl after this many")
    search.add_argument("--page-size", type=int, default=0, help="results per request (0: the API's default)")
    search.add_argument("--rate", type=float, default=2.0,
                        help="requests per second to the API host for the whole job, however many workers "
                        "(0: no limit)")
    search.add_argument("--crawlers", type=int, default=1,
                        help="crawls run side by side, each taking a share of the queries and of --rate; more "
                        "than one helps when one request takes longer than 1/rate s (default 1)")
    search.add_argument("--allow-private-networks", action="store_true",
                        help="allow loopback/private addresses (tests and the sample web only)")
    parser.add_argument("--rows-per-part", type=int, default=200_000, help="rows per output parquet part")
    parser.set_defaults(func=_cmd, beam=True)


def demo_step(ctx) -> None:
    """Demo: candidates from the sample web's WAT files and from its Openverse-shaped search endpoint.

    The search crawl expands each query of ``ctx.outputs["queries"]`` (from the queries step) into a
    crawl of the loopback endpoint.
    """
    import os

    from ..select.cli import demo_queries

    root = ctx.path("candidates")
    wat = run_candidates(CandidateOptions(source="wat", inputs=list(ctx.files.wat) + list(ctx.files.broken_wat),
                                          out=os.path.join(root, "wat"), seed=ctx.seed), ctx.beam_args)
    queries = demo_queries(ctx)
    search = run_candidates(CandidateOptions(
        source="search", inputs=[queries], out=os.path.join(root, "search"), seed=ctx.seed, api="openverse",
        endpoint=ctx.web.base_url + "/v1/images/", per_query_cap=200, rate_per_host=0,
        allow_private_networks=True), ctx.beam_args)
    ctx.outputs["candidates"] = root
    damage = {k: v for k, v in wat["counters"].items()
              if k in ("bad_gzip_member", "truncated_record", "wat_bad_json", "bad_record") and v}
    ctx.report("candidates", "WAT pairs in / out", f"{wat['pairs_in']} / {wat['pairs_out']} "
               f"(dropped: {', '.join(f'{k} {v}' for k, v in wat['dropped'].items() if v)})")
    ctx.report("candidates", "WAT damage skipped", ", ".join(f"{k} {v}" for k, v in damage.items()) or "none")
    c = search["counters"]
    ctx.report("candidates", "search crawl", f"{c.get('search_queries', 0)} queries, "
               f"{c.get('search_requests', 0)} requests, {search['pairs_out']} pairs kept")
    ctx.report("candidates", "output", root)
