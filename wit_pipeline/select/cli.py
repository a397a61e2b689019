"""``wit select``: the command over ``pipeline.run_select``."""

from __future__ import annotations

import argparse

from ..candidates.language import parse_lang
from .balancing import BALANCES
from .matching import MODES
from .pipeline import SelectOptions, run_select


def _cmd(args: argparse.Namespace) -> int:
    stats = run_select(SelectOptions(
        candidates=args.candidates, queries=args.queries, out=args.out, cap=args.cap, match=args.match,
        balance=args.balance, lang=parse_lang(args.lang), seed=args.seed, keep_case=args.keep_case,
        rows_per_part=args.rows_per_part), args.beam_args)
    d = stats["dropped"]
    print(f"wit select: {stats['rows_in']} candidates, {stats['matched']} matched, {stats['selected']} selected "
          f"(no match {d['no_match']}, language {d['lang']}, duplicate {d['duplicate']}, cap {d['cap']}); "
          f"{stats['queries_matched']}/{stats['queries_total']} queries matched -> {stats['outputs']['summary']}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "select", help="match candidates against the queries and keep at most --cap pairs per query",
        description="Match candidate texts against the query list (Aho-Corasick over canonical text), keep "
        "the chosen language (langdetect once per distinct matched text), and keep at most --cap pairs per "
        "query. Writes selected/part-*.parquet, query_counts.parquet, stats.json and summary.html.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--candidates", required=True, nargs="+", metavar="DIR",
                        help="candidate directories (or parquet files/globs) from 'wit candidates'")
    parser.add_argument("--queries", required=True, metavar="DIR_OR_TXT",
                        help="queries directory (queries.parquet / queries.txt) or a text file, one per line")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--cap", type=int, default=20_000, help="pairs kept per query")
    parser.add_argument("--match", choices=MODES, default="word",
                        help="word: whole words (MetaCLIP); substring: anywhere, inside words too (CLIP paper)")
    parser.add_argument("--balance", choices=BALANCES, default="top",
                        help="top: the cap pairs with the smallest seeded hash per query (exact cap); "
                        "probabilistic: MetaCLIP's keep-with-probability rule (cap in expectation)")
    parser.add_argument("--lang", default="en", help="keep texts detected as this language; 'any' keeps all")
    parser.add_argument("--seed", type=int, default=0, help="seed of the balancing hash and language detector")
    parser.add_argument("--keep-case", action="store_true", help="match case-sensitively (queries too)")
    parser.add_argument("--rows-per-part", type=int, default=200_000, help="rows per selected parquet part")
    parser.set_defaults(func=_cmd, beam=True)
