"""The selection job: match candidates against the queries, filter language, cap pairs per query.

::

    candidate parts ─► ReadCandidates ─► MatchQueries (Aho–Corasick; unmatched counted)
      ─► OnePerPair: language, once per distinct matched text, and one row per uid (one GroupByKey on text)
      ─► CapPerQuery (top-cap or probabilistic) ─► KeepSelected (kept uids joined back to rows)
      ─► selected/part-*.parquet
      └► QueryCounts ─► query_counts.parquet; then stats.json, query_counts.png, summary.html

Every candidate row ends in exactly one place:
``in = out (selected) + dropped[no_match] + dropped[lang] + dropped[duplicate] + dropped[cap]
+ dropped[bad_row]`` (a row the table reader cannot use, counted by reason as ``bad_rows_<reason>``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa

from .. import fileio
from ..beam import StageCounters, counter
from ..errors import UserError
from ..options import check_values, option
from ..pairs import DedupPairs, LanguageAndDedup, parse_lang
from ..parquet_parts import WriteParquetParts
from ..querylist import MAX_QUERY_BYTES, load_query_list
from ..schemas import CANDIDATE_COLUMNS, QUERY_COUNTS_SCHEMA, SELECTED_SCHEMA, pair_uid
from ..stage import StageRun, dropped_counts, require_finished
from ..tables import MissingColumns, iter_table_rows
from .balancing import BALANCES, CapPerQuery
from .matching import MODES, shared_matcher
from .plot import write_summary

log = logging.getLogger(__name__)

STAGE = "select"
SELECTED_DIR = "selected"
QUERY_COUNTS = "query_counts.parquet"
DROP_REASONS = ("no_match", "lang", "duplicate", "cap")


@dataclass
class SelectOptions:
    """``wit select``: every flag, its default and its help (``wit_pipeline.options``)."""

    candidates: list[str] = option(metavar="DIR",
                                   help="candidate directories (or parquet files/globs) from 'wit candidates'")
    queries: str = option(metavar="DIR_OR_TXT",
                          help="queries directory (queries.parquet / queries.txt) or a text file, one per line")
    out: str = option(help="output directory")
    cap: int = option(20_000, minimum=1, help="pairs kept per query")
    match: str = option("word", choices=MODES,
                        help="word: whole words (MetaCLIP); substring: anywhere, inside words too (CLIP paper)")
    balance: str = option("top", choices=BALANCES,
                          help="top: the cap pairs with the smallest seeded hash per query (exact cap); "
                          "probabilistic: MetaCLIP's keep-with-probability rule (cap in expectation)")
    lang: str = option("en", convert=parse_lang, help="keep texts detected as this language; 'any' keeps all")
    seed: int = option(0, help="seed of the balancing hash and language detector")
    keep_case: bool = option(False, help="match case-sensitively (queries too)")
    rows_per_part: int = option(200_000, minimum=1, help="rows per selected parquet part")
    strict: bool = option(False, help="fail on the first malformed input row instead of counting and skipping it")
    allow_partial: bool = option(False, help="read an unfinished `wit candidates` or `wit queries build` output "
                                 "(no stats.json) as it is")


def candidate_files(patterns: list[str]) -> list[str]:
    files = [f for f in fileio.expand(patterns, what="candidates") if f.endswith(".parquet")]
    if not files:
        raise UserError(f"no .parquet files in --candidates {' '.join(patterns)}")
    return files


def read_rows(path: str, counts: Counter, strict: bool = False):
    """Row dicts of one candidate parquet file (missing provenance columns as None, numbers as their text,
    uid filled in); each row counted ``in``, a row the table reader finds bad (a list where a string
    belongs, bytes that are not UTF-8 ...) counted ``in`` and ``dropped_bad_row`` (by reason as
    ``bad_rows_<reason>``), a file without url/text columns counted ``unreadable_files``."""
    try:
        for row in iter_table_rows(path, columns=CANDIDATE_COLUMNS, required=("url", "text"), counts=counts,
                                   strict=strict, as_text=True):
            counts["in"] += 1
            row["url"], row["text"] = row["url"] or "", row["text"] or ""
            row["source"] = row["source"] or "table"
            if not row["uid"]:
                row["uid"] = pair_uid(row["url"], row["text"])
            yield row
    except MissingColumns:
        counts["unreadable_files"] += 1
        log.warning("skipping %s: no url/text columns", path)
    finally:   # a bad row was read too: it is accounted for as a drop
        counts["in"] += counts["bad_rows"]
        counts["dropped_bad_row"] += counts["bad_rows"]


class ReadCandidateFileFn(beam.DoFn):
    """One candidate file -> its rows; the file's counts go to the stage's counters when it is done."""

    def __init__(self, strict: bool):
        self.strict = strict

    def setup(self):
        self.counters = StageCounters(STAGE)

    def process(self, path: str):
        counts = Counter()
        try:
            yield from read_rows(path, counts, self.strict)
        finally:
            self.counters.add(counts)


class ReadCandidates(beam.PTransform):
    """Candidate parquet files -> candidate rows (each counted ``in``)."""

    def __init__(self, files: list[str], strict: bool = False):
        super().__init__()
        self.files, self.strict = files, strict

    def expand(self, begin):
        return (begin
                | "Files" >> beam.Create(self.files)
                | "SpreadFiles" >> beam.Reshuffle()
                | "Read" >> beam.ParDo(ReadCandidateFileFn(self.strict)))


class MatchFn(beam.DoFn):
    """Attach ``queries`` (all matches, sorted); unmatched rows are counted and dropped."""

    def __init__(self, queries: str, mode: str, keep_case: bool):
        self.queries, self.mode, self.keep_case = queries, mode, keep_case

    def setup(self):
        self.matcher = shared_matcher(self.queries, self.mode, self.keep_case)
        self.matched = counter(STAGE, "matched")
        self.dropped_no_match = counter(STAGE, "dropped_no_match")

    def process(self, row):
        found = self.matcher.match(row["text"])
        if not found:
            self.dropped_no_match.inc()
            return
        self.matched.inc()
        yield dict(row, queries=found)


class MatchQueries(beam.PTransform):
    """Rows whose text contains at least one query, with ``queries`` (sorted) attached."""

    def __init__(self, queries: str, mode: str, keep_case: bool):
        super().__init__()
        self.queries, self.mode, self.keep_case = queries, mode, keep_case

    def expand(self, rows):
        return rows | "Match" >> beam.ParDo(MatchFn(self.queries, self.mode, self.keep_case))


class OnePerPair(beam.PTransform):
    """Matched rows -> ``(uid, row)``, one per pair, of the kept language (``lang`` ``any``: all)."""

    def __init__(self, lang: str, seed: int):
        super().__init__()
        self.lang, self.seed = lang, seed

    def expand(self, rows):
        if self.lang != "any":   # the language filter shares the de-duplication's shuffle
            rows = rows | "LanguageAndDedup" >> LanguageAndDedup(self.lang, self.seed, STAGE)
        else:
            rows = rows | "DedupPairs" >> DedupPairs(STAGE)
        return rows | "KeyByUid" >> beam.Map(lambda row: (row["uid"], row))


class KeepSelectedFn(beam.DoFn):
    """``(uid, {"rows": [row], "kept": [...]})`` -> the row when the cap kept it (``out``), else ``dropped_cap``."""

    def setup(self):
        self.selected = counter(STAGE, "out")
        self.dropped_cap = counter(STAGE, "dropped_cap")

    def process(self, item):
        _uid, grouped = item
        rows, kept = list(grouped["rows"]), list(grouped["kept"])
        if not rows:
            return
        if kept:
            self.selected.inc()
            yield rows[0]
        else:
            self.dropped_cap.inc()


class KeepSelected(beam.PTransform):
    """``{"rows": (uid, row), "kept": (uid, queries)}`` -> the selected rows."""

    def expand(self, inputs):
        return (inputs
                | "JoinKept" >> beam.CoGroupByKey()
                | "Selected" >> beam.ParDo(KeepSelectedFn()))


def query_count_rows(items, queries: list[str]) -> list[dict]:
    """Every query of the list (zero counts included) with its counts, heaviest first."""
    counts = {q: {"matched": 0, "kept": 0, "selected": 0} for q in queries}
    for query, grouped in items:
        entry = counts.setdefault(query, {"matched": 0, "kept": 0, "selected": 0})
        for name in ("matched", "kept", "selected"):
            entry[name] = int(sum(grouped[name]))
    rows = [{"query": q, **c} for q, c in counts.items()]
    rows.sort(key=lambda r: (-r["matched"], -r["selected"], r["query"]))
    return rows


def write_query_counts(items, path: str, queries_path: str, keep_case: bool) -> int:
    """query_counts.parquet: every query of the list (zero counts included), heaviest first."""
    rows = query_count_rows(items, load_query_list(queries_path, keep_case))
    fileio.write_parquet_atomic(path, pa.Table.from_pylist(rows, schema=QUERY_COUNTS_SCHEMA))
    return len(rows)


class CountPerQuery(beam.PTransform):
    """``{"matched", "kept", "selected"}`` per-query count collections -> ``[(query, counts)]``, one list."""

    def expand(self, counts):
        return (counts
                | "JoinCounts" >> beam.CoGroupByKey()
                | "AllCounts" >> beam.combiners.ToList())


def build(pipeline: beam.Pipeline, options: SelectOptions) -> None:
    by_uid = (pipeline
              | "ReadCandidates" >> ReadCandidates(candidate_files(options.candidates), options.strict)
              | "MatchQueries" >> MatchQueries(options.queries, options.match, options.keep_case)
              | "OnePerPair" >> OnePerPair(options.lang, options.seed))
    capped = (by_uid
              | "UidQueries" >> beam.MapTuple(lambda uid, row: (uid, row["queries"]))
              | "Cap" >> CapPerQuery(options.cap, options.seed, options.balance))
    selected = {"rows": by_uid, "kept": capped["kept"]} | "KeepSelected" >> KeepSelected()
    selected | "WriteSelected" >> WriteParquetParts(fileio.join(options.out, SELECTED_DIR), SELECTED_SCHEMA,
                                                     options.rows_per_part)
    selected_counts = (selected
                       | "SelectedOnes" >> beam.FlatMap(lambda row: [(q, 1) for q in row["queries"]])
                       | "CountSelected" >> beam.CombinePerKey(sum))
    ({"matched": capped["matched"], "kept": capped["kept_counts"], "selected": selected_counts}
     | "CountPerQuery" >> CountPerQuery()
     | "WriteCounts" >> beam.Map(write_query_counts, fileio.join(options.out, QUERY_COUNTS), options.queries,
                                 options.keep_case))


def check_options(options: SelectOptions) -> tuple[list[str], Counter]:
    """Settings a library caller may get wrong (the command line checks them as it parses); the queries,
    and the query-list lines left out by reason (``line_too_long``)."""
    check_values(options)
    fileio.check_readable(options.queries, "--queries")   # every worker reads the list again: no http(s)
    for path in options.candidates:
        fileio.check_readable(path, "--candidates", http=True)
    skipped = Counter()
    queries = load_query_list(options.queries, options.keep_case, skipped)   # a bad list fails here, in one line
    if skipped:
        log.warning("--queries %s: left out %d line(s) longer than %d bytes", options.queries,
                    skipped["line_too_long"], MAX_QUERY_BYTES)
    return queries, skipped


def query_figures(query_counts: list[dict], queries: list[str], cap: int, skipped: Counter | None = None) -> dict:
    """The per-query figures of stats.json."""
    return {"queries_total": len(queries), "query_lines_skipped": dict(sorted((skipped or {}).items())),
            "queries_matched": sum(1 for r in query_counts if r["matched"] > 0),
            "queries_capped": sum(1 for r in query_counts if r["matched"] > cap),
            "queries_never_matched": sum(1 for r in query_counts if r["matched"] == 0)}


def summary_figures(options: SelectOptions, stats: dict) -> dict:
    """The figures summary.html lists, under the names its readers know (rows in, selected, ...)."""
    return {"balance": options.balance, "match": options.match, "cap": options.cap, "lang": options.lang,
            "rows_in": stats["in"], "matched": stats["matched"], "selected": stats["out"],
            **{k: stats[k] for k in ("lang_detect_calls", "queries_total", "queries_matched", "queries_capped")},
            **{f"dropped_{k}": v for k, v in stats["dropped"].items()}}


def run_select(options: SelectOptions, beam_args: list[str] | None = None) -> dict:
    """Run the selection job; returns (and writes as ``OUT/stats.json``) its statistics."""
    queries, skipped = check_options(options)
    partial = require_finished([*options.candidates, options.queries], allow_partial=options.allow_partial)
    with StageRun(STAGE, options.out, settings=options, partial_inputs=partial) as stage:
        pipeline = stage.pipeline(beam_args)
        build(pipeline, options)
        counts = stage.run(pipeline)
        counts_path = fileio.join(options.out, QUERY_COUNTS)
        query_counts = fileio.read_parquet(counts_path).to_pylist()
        figures = {"matched": counts.get("matched", 0), "lang_detect_calls": counts.get("lang_detect_calls", 0),
                   **query_figures(query_counts, queries, options.cap, skipped)}
        dropped = dropped_counts(counts, DROP_REASONS)
        png, page = write_summary(options.out, query_counts, summary_figures(
            options, {"in": counts.get("in", 0), "out": counts.get("out", 0), "dropped": dropped, **figures}),
            options.cap)
        return stage.finish(records_in=counts.get("in", 0), records_out=counts.get("out", 0), dropped=dropped,
                            outputs={"selected": fileio.join(options.out, SELECTED_DIR), "query_counts": counts_path,
                                     "plot": png, "summary": page},
                            **figures)
