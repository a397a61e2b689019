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


DEMO_CAP = 40   # the sample web is small: a cap this low shows the balancing at work on its head queries


def demo_queries(ctx) -> str:
    """The queries the demo matches: the queries step's output, or a list from the sample web's vocabulary."""
    import os

    if ctx.outputs.get("queries"):
        return ctx.outputs["queries"]
    from ..sampleweb.draw import COLOURS, SHAPES

    path = ctx.path("select", "sample_queries.txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    words = list(SHAPES) + list(COLOURS) + [f"{c} {s}" for c in COLOURS for s in SHAPES]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(words) + "\n")
    ctx.outputs["queries"] = path
    ctx.report("select", "queries", f"no queries step output: {len(words)} queries from the sample vocabulary")
    return path


def demo_step(ctx) -> None:
    """Demo: select from every candidate directory against the query list, cap DEMO_CAP per query."""
    import os

    stats = run_select(SelectOptions(candidates=[ctx.outputs["candidates"]], queries=demo_queries(ctx),
                                     out=ctx.path("select"), cap=DEMO_CAP, seed=ctx.seed), ctx.beam_args)
    ctx.outputs["selected"] = stats["outputs"]["selected"]
    d = stats["dropped"]
    ctx.report("select", "candidates / matched / selected",
               f"{stats['rows_in']} / {stats['matched']} / {stats['selected']} "
               f"(no match {d['no_match']}, language {d['lang']}, duplicate {d['duplicate']}, cap {d['cap']})")
    ctx.report("select", "queries matched / capped",
               f"{stats['queries_matched']} / {stats['queries_capped']} of {stats['queries_total']} (cap {DEMO_CAP})")
    ctx.report("select", "langdetect calls", f"{stats['lang_detect_calls']} (distinct matched texts)")
    ctx.report("select", "summary", os.path.abspath(stats["outputs"]["summary"]))
