"""The selection job: match candidates against the queries, filter language, cap pairs per query.

::

    candidate parts ─► match (Aho–Corasick; unmatched counted) ─► language, once per distinct
    matched text, and one row per uid (one GroupByKey on text) ─► CapPerQuery (top-cap or probabilistic)
    ─► join kept uids back to rows ─► selected/part-*.parquet
                                   └► query_counts.parquet, stats.json, query_counts.png, summary.html

Every candidate row ends in exactly one place:
``rows_in = selected + dropped_no_match + dropped_lang + dropped_duplicate + dropped_cap``.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import asdict, dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from .. import fileio
from ..beam import counter, make_pipeline, run
from ..candidates.pipeline import LanguageAndDedup, first_by_provenance
from ..errors import UserError
from ..parquet_parts import WriteParquetParts
from ..schemas import CANDIDATE_COLUMNS, QUERY_COUNTS_SCHEMA, SELECTED_SCHEMA, pair_uid
from .balancing import BALANCES, CapPerQuery
from .matching import MODES, shared_matcher
from .queries_io import load_query_list

log = logging.getLogger(__name__)

STAGE = "select"
SELECTED_DIR = "selected"
DROP_REASONS = ("no_match", "lang", "duplicate", "cap")


@dataclass
class SelectOptions:
    candidates: list[str]          # candidate directories, files or globs (their *.parquet files are read)
    queries: str                   # queries directory or text file
    out: str
    cap: int = 20_000
    match: str = "word"
    balance: str = "top"
    lang: str = "en"
    seed: int = 0
    keep_case: bool = False
    rows_per_part: int = 200_000


def candidate_files(patterns: list[str]) -> list[str]:
    files = [f for f in fileio.expand(patterns, what="candidates") if f.endswith(".parquet")]
    if not files:
        raise UserError(f"no .parquet files in --candidates {' '.join(patterns)}")
    return files


def read_rows(path: str):
    """Row dicts of one candidate parquet file (missing provenance columns as None, uid filled in)."""
    handle = pq.ParquetFile(io.BytesIO(fileio.read_bytes(path)) if fileio.is_remote(path) else path)
    names = handle.schema_arrow.names
    if "url" not in names or "text" not in names:
        counter(STAGE, "unreadable_files").inc()
        log.warning("skipping %s: no url/text columns", path)
        return
    columns = [c for c in CANDIDATE_COLUMNS if c in names]
    for batch in handle.iter_batches(batch_size=65536, columns=columns):
        for row in batch.to_pylist():
            counter(STAGE, "rows_in").inc()
            full = {c: row.get(c) for c in CANDIDATE_COLUMNS}
            full["url"], full["text"] = full["url"] or "", full["text"] or ""
            full["source"] = full["source"] or "table"
            if not full["uid"]:
                full["uid"] = pair_uid(full["url"], full["text"])
            yield full


class Match(beam.DoFn):
    """Attach ``queries`` (all matches, sorted); unmatched rows are counted and dropped."""

    def __init__(self, queries: str, mode: str, keep_case: bool):
        self.queries, self.mode, self.keep_case = queries, mode, keep_case

    def setup(self):
        self.matcher = shared_matcher(self.queries, self.mode, self.keep_case)

    def process(self, row):
        found = self.matcher.match(row["text"])
        if not found:
            counter(STAGE, "dropped_no_match").inc()
            return
        counter(STAGE, "matched").inc()
        yield dict(row, queries=found)


def one_per_uid(item):
    uid, rows = item
    return uid, first_by_provenance(rows, STAGE)


def join_kept(item):
    _uid, grouped = item
    rows, kept = list(grouped["rows"]), list(grouped["kept"])
    if not rows:
        return
    if kept:
        counter(STAGE, "selected").inc()
        yield rows[0]
    else:
        counter(STAGE, "dropped_cap").inc()


def write_query_counts(items, path: str, queries_path: str, keep_case: bool) -> int:
    """query_counts.parquet: every query of the list (zero counts included), heaviest first."""
    counts = {q: {"matched": 0, "kept": 0, "selected": 0} for q in load_query_list(queries_path, keep_case)}
    for query, grouped in items:
        entry = counts.setdefault(query, {"matched": 0, "kept": 0, "selected": 0})
        for name in ("matched", "kept", "selected"):
            entry[name] = int(sum(grouped[name]))
    rows = [{"query": q, **c} for q, c in counts.items()]
    rows.sort(key=lambda r: (-r["matched"], -r["selected"], r["query"]))
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=QUERY_COUNTS_SCHEMA), buffer, compression="zstd")
    fileio.write_bytes_atomic(path, buffer.getvalue())
    return len(rows)


def build(pipeline: beam.Pipeline, options: SelectOptions) -> None:
    files = candidate_files(options.candidates)
    rows = (pipeline
            | "Files" >> beam.Create(files)
            | "SpreadFiles" >> beam.Reshuffle()
            | "Read" >> beam.FlatMap(read_rows)
            | "Match" >> beam.ParDo(Match(options.queries, options.match, options.keep_case)))
    if options.lang != "any":
        by_uid = (rows
                  | "LanguageAndDedup" >> LanguageAndDedup(options.lang, options.seed, STAGE)
                  | "KeyByUid" >> beam.Map(lambda row: (row["uid"], row)))
    else:
        by_uid = (rows
                  | "KeyByUid" >> beam.Map(lambda row: (row["uid"], row))
                  | "GroupUid" >> beam.GroupByKey()
                  | "OnePerUid" >> beam.Map(one_per_uid))
    capped = (by_uid
              | "UidQueries" >> beam.MapTuple(lambda uid, row: (uid, row["queries"]))
              | "Cap" >> CapPerQuery(options.cap, options.seed, options.balance))
    selected = ({"rows": by_uid, "kept": capped["kept"]}
                | "JoinKept" >> beam.CoGroupByKey()
                | "Selected" >> beam.FlatMap(join_kept))
    selected | "WriteSelected" >> WriteParquetParts(fileio.join(options.out, SELECTED_DIR), SELECTED_SCHEMA,
                                                     options.rows_per_part)
    selected_counts = (selected
                       | "SelectedOnes" >> beam.FlatMap(lambda row: [(q, 1) for q in row["queries"]])
                       | "CountSelected" >> beam.CombinePerKey(sum))
    path = fileio.join(options.out, "query_counts.parquet")
    ({"matched": capped["matched"], "kept": capped["kept_counts"], "selected": selected_counts}
     | "JoinCounts" >> beam.CoGroupByKey()
     | "AllCounts" >> beam.combiners.ToList()
     | "WriteCounts" >> beam.Map(write_query_counts, path, options.queries, options.keep_case))


def run_select(options: SelectOptions, beam_args: list[str] | None = None) -> dict:
    """Run the selection job; returns (and writes as ``OUT/stats.json``) its statistics."""
    if options.match not in MODES:
        raise UserError(f"--match must be one of {', '.join(MODES)}")
    if options.balance not in BALANCES:
        raise UserError(f"--balance must be one of {', '.join(BALANCES)}")
    if options.cap < 1:
        raise UserError("--cap must be at least 1")
    queries = load_query_list(options.queries, options.keep_case)   # a bad list fails here, in one line
    fileio.makedirs(options.out)
    stats_path = fileio.join(options.out, "stats.json")
    fileio.remove(stats_path)   # stats.json marks a finished run: gone until this one finishes
    started = time.monotonic()
    pipeline = make_pipeline(beam_args)
    build(pipeline, options)
    counts = run(pipeline, STAGE)
    table = pq.read_table(io.BytesIO(fileio.read_bytes(fileio.join(options.out, "query_counts.parquet"))))
    query_counts = table.to_pylist()
    dropped = {reason: counts.get(f"dropped_{reason}", 0) for reason in DROP_REASONS}
    stats = {
        "stage": STAGE,
        "candidates": options.candidates,
        "queries": options.queries,
        "rows_in": counts.get("rows_in", 0),
        "matched": counts.get("matched", 0),
        "selected": counts.get("selected", 0),
        "dropped": dropped,
        "lang_detect_calls": counts.get("lang_detect_calls", 0),
        "queries_total": len(queries),
        "queries_matched": sum(1 for r in query_counts if r["matched"] > 0),
        "queries_capped": sum(1 for r in query_counts if r["matched"] > options.cap),
        "queries_never_matched": sum(1 for r in query_counts if r["matched"] == 0),
        "counters": counts,
        "settings": {k: v for k, v in asdict(options).items() if k not in ("candidates", "queries", "out")},
        "outputs": {"selected": fileio.join(options.out, SELECTED_DIR),
                    "query_counts": fileio.join(options.out, "query_counts.parquet")},
        "seconds": round(time.monotonic() - started, 3),
    }
    stats["accounted"] = stats["rows_in"] == stats["selected"] + sum(dropped.values())
    summary_stats = {"balance": options.balance, "match": options.match, "cap": options.cap, "lang": options.lang,
                     **{k: stats[k] for k in ("rows_in", "matched", "selected", "lang_detect_calls",
                                              "queries_total", "queries_matched", "queries_capped")},
                     **{f"dropped_{k}": v for k, v in dropped.items()}}
    from .plot import write_summary

    png, page = write_summary(options.out, query_counts, summary_stats, options.cap)
    stats["outputs"].update({"plot": png, "summary": page})
    fileio.write_json_atomic(stats_path, stats)
    return stats
