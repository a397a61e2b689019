"""The ``table`` source: url/text pairs from parquet, CSV/TSV or JSONL files (LAION/DataComp pool form).

The format comes from the file name (``.parquet``; ``.csv``/``.tsv`` and
``.jsonl``/``.json``/``.ndjson``, optionally ``.gz``/``.bz2``); the url and text
column names are configurable. Files are streamed in batches, never loaded
whole. Outcomes: ``table_rows``; ``table_bad_rows`` (a JSONL line that is not a
JSON object, a CSV row that does not parse).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from typing import Iterator

from ..errors import UserError
from ..schemas import candidate_row

BATCH_ROWS = 65536


def table_format(path: str) -> str:
    name = path.lower()
    for suffix in (".gz", ".bz2"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(".parquet") or name.endswith(".pq"):
        return "parquet"
    if name.endswith(".tsv"):
        return "tsv"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise UserError(f"table input {path!r}: unknown format (expected .parquet, .csv, .tsv or .jsonl)")


def _values(value) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _missing(path: str, columns, url_col: str, text_col: str) -> None:
    absent = [c for c in (url_col, text_col) if c not in columns]
    if absent:
        raise UserError(f"table input {path!r} has no column(s) {', '.join(map(repr, absent))} "
                        f"(it has: {', '.join(map(str, list(columns)[:20]))}); set --url-col/--text-col")


def read_table(stream, path: str, counts: Counter, *, url_col: str = "url", text_col: str = "text",
               page_url_col: str | None = None) -> Iterator[dict]:
    """Raw candidate rows of one table file (``stream`` is open, decompressed)."""
    fmt = table_format(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        handle = pq.ParquetFile(stream)
        _missing(path, handle.schema_arrow.names, url_col, text_col)
        columns = [url_col, text_col] + ([page_url_col] if page_url_col in handle.schema_arrow.names else [])
        for batch in handle.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            data = batch.to_pydict()
            pages = data.get(page_url_col) if page_url_col else None
            for i, (url, text) in enumerate(zip(data[url_col], data[text_col])):
                counts["table_rows"] += 1
                yield candidate_row(_values(url) or "", _values(text) or "", source="table", source_file=path,
                                    page_url=_values(pages[i]) if pages else None)
        return
    text_stream = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    if fmt in ("csv", "tsv"):
        reader = csv.DictReader(text_stream, delimiter="\t" if fmt == "tsv" else ",")
        _missing(path, reader.fieldnames or [], url_col, text_col)
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error:
                counts["table_bad_rows"] += 1
                continue
            counts["table_rows"] += 1
            yield candidate_row(record.get(url_col) or "", record.get(text_col) or "", source="table",
                                source_file=path, page_url=record.get(page_url_col) if page_url_col else None)
    checked = False
    for line in text_stream:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            counts["table_bad_rows"] += 1
            continue
        if not checked:
            _missing(path, record.keys(), url_col, text_col)
            checked = True
        counts["table_rows"] += 1
        yield candidate_row(_values(record.get(url_col)) or "", _values(record.get(text_col)) or "",
                            source="table", source_file=path,
                            page_url=_values(record.get(page_url_col)) if page_url_col else None)
