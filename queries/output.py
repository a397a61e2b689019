"""The query list on disk, and the loader later stages use.

A queries DIR holds:

* ``queries.parquet``: one row per (``lang``, ``query``), sorted by language then query
  (``query`` is unique per language; ``lang`` is never null: ``en`` for a bare input), with
  ``sources`` (list of ``unigram``/``bigram``/``title``/``wordnet``) and the
  statistics it was admitted on: ``count`` (Wikipedia count of the word or
  bigram), ``pmi`` (bigrams), ``views`` (titles), ``synsets`` (WordNet);
* ``queries.txt``: the distinct queries of every language, one per line, sorted;
* ``stats.json``: the stage record every stage writes (``wit_pipeline.stage``: ``in`` candidate
  entries, ``out`` rows, ``dropped`` by reason, ...) with entries per source, overlaps, input
  counts, thresholds and ``languages`` (per-language figures) beside it.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Iterable, Iterator

import pyarrow as pa

from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.tables import bounded_lines, format_or_none, iter_table_rows
from wit_pipeline.text import canonical

PARQUET_NAME = "queries.parquet"
TEXT_NAME = "queries.txt"
# No query comes near this (a Wikipedia title is at most 255 bytes); a longer line is damage, and the matcher's
# automaton over one multi-megabyte key crashes the process, so it is skipped (and counted) unread.
MAX_QUERY_BYTES = 4096

SCHEMA = pa.schema([
    ("query", pa.string()),
    pa.field("lang", pa.string(), nullable=False),
    ("sources", pa.list_(pa.string())),
    ("count", pa.int64()),
    ("pmi", pa.float64()),
    ("views", pa.int64()),
    ("synsets", pa.int64()),
])


def write_query_files(rows: list[dict], out: str) -> int:
    """Write queries.parquet and queries.txt (sorted, atomic); returns the number of rows.

    A row without ``lang`` (a caller that builds one language) is English's.
    """
    rows = sorted(({**row, "lang": row.get("lang") or "en"} for row in rows),
                  key=lambda row: (row["lang"], row["query"]))
    fileio.makedirs(out)
    fileio.write_parquet_atomic(fileio.join(out, PARQUET_NAME), pa.Table.from_pylist(rows, schema=SCHEMA))
    text = sorted({row["query"] for row in rows})
    fileio.write_text_atomic(fileio.join(out, TEXT_NAME), "".join(query + "\n" for query in text))
    return len(rows)


def read_query_table(out: str) -> pa.Table:
    path = fileio.join(out, PARQUET_NAME)
    if not fileio.exists(path):
        raise UserError(f"{out!r} is not a queries directory (no {PARQUET_NAME})")
    return fileio.read_parquet(path)


def load_queries(path: str, keep_case: bool = False, skipped: Counter | None = None) -> list[str]:
    """The queries of a queries DIR, a parquet file with a ``query`` column (``.parquet``/``.pq``, optionally
    compressed; read by ``wit_pipeline.tables``) or a plain text file (one query a line).

    Queries from a DIR or parquet are already in canonical form and are used as
    they are. Lines of a text file are normalised with ``canonical(line,
    keep_case)`` (the rule captions are matched with), blank lines dropped and
    duplicates removed keeping the first. A query or line longer than
    ``MAX_QUERY_BYTES`` is left out and counted in ``skipped["line_too_long"]``.
    Raises UserError when the list cannot be read (an http(s) URL, a text file
    that is not UTF-8 ...) or nothing is left.
    """
    fileio.check_readable(path, "query list")
    is_dir = os.path.isdir(path) if not fileio.is_remote(path) else fileio.exists(fileio.join(path, PARQUET_NAME))
    skipped = Counter() if skipped is None else skipped
    if is_dir:
        queries = _short(dict.fromkeys(read_query_table(path).column("query").to_pylist()), skipped)   # all langs
    elif format_or_none(path) == "parquet":
        queries = _short((row["query"] for row in iter_table_rows(path, columns=["query"], required=["query"])),
                         skipped)
    else:
        queries = list(dict.fromkeys(query for query in _text_queries(path, keep_case, skipped) if query))
    if not queries:
        raise UserError(f"query list {path!r} is empty")
    return queries


def _short(queries: Iterable, skipped: Counter) -> list:
    """``queries`` without those over ``MAX_QUERY_BYTES`` (counted)."""
    kept = []
    for query in queries:
        # a string of n characters has at most 4n UTF-8 bytes: most need no encoding to be measured
        if isinstance(query, str) and len(query) > MAX_QUERY_BYTES // 4 and len(query.encode()) > MAX_QUERY_BYTES:
            skipped["line_too_long"] += 1
        else:
            kept.append(query)
    return kept


def _text_queries(path: str, keep_case: bool, skipped: Counter) -> Iterator[str]:
    """Each line of a text query list in canonical form (over-long lines counted, not read)."""
    if not fileio.exists(path):
        raise UserError(f"query list {path!r} does not exist")
    with fileio.open_read(path, decompress=False) as handle:
        for number, line in enumerate(bounded_lines(handle, MAX_QUERY_BYTES), start=1):
            if line is None:
                skipped["line_too_long"] += 1
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(f"{path}:{number}: the query list is not UTF-8 text; save it as UTF-8") from None
            yield canonical(text, keep_case)


def format_stats(stats: dict) -> str:
    """The summary ``wit queries stats`` prints: entries per source, overlaps, inputs, and the accounting."""
    lines = [f"{'source':<10} {'entries':>10} {'only this':>10}"]
    for source, count in stats["by_source"].items():
        lines.append(f"{source:<10} {count:>10,} {stats['only_source'].get(source, 0):>10,}")
    lines.append(f"{'total':<10} {stats['out']:>10,}")
    lines.append("")
    lines.append(f"{'overlap':<18} {'entries':>10}")
    for pair, count in stats["overlap"].items():
        lines.append(f"{pair:<18} {count:>10,}")
    lines.append("")
    lines.append("inputs")
    for key, value in stats.get("inputs", {}).items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v:,}" for k, v in value.items()) or "none"
        elif isinstance(value, int):
            value = f"{value:,}"
        lines.append(f"  {key:<28} {value}")
    dropped = ", ".join(f"{reason} {n:,}" for reason, n in stats["dropped"].items() if n) or "none"
    lines.append("")
    lines.append(f"candidates {stats['in']:,}: {stats['out']:,} rows, dropped {dropped}"
                 + ("" if stats["accounted"] else " (NOT accounted)"))
    languages = stats.get("languages", {})
    if len(languages) > 1:
        lines.append("")
        lines.append(f"{'language':<10} {'entries':>10} {'tokens':>12}  thresholds")
        for lang, figures in languages.items():
            limits = ", ".join(f"{k} {v}" for k, v in figures["thresholds"].items())
            lines.append(f"{lang:<10} {figures['entries']:>10,} {figures['tokens']:>12,}  {limits}")
    thresholds = stats.get("thresholds", {})
    if thresholds:
        lines.append("")
        lines.append("thresholds  " + ", ".join(f"{k} {v}" for k, v in thresholds.items()))
    return "\n".join(lines)
