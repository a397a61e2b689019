"""Reading the download's input as a stream and cutting it into shards.

Input: the ``selected`` directory of ``wit select`` or any parquet / CSV / TSV /
JSONL file(s) with ``url`` and ``text`` columns (local or remote, directories
and globs allowed). Rows are streamed (parquet by record batches, text formats
line by line), so memory stays flat whatever the input size; img2dataset loads
each input file whole.

Row ``i`` of the input, in file order then row order, goes to shard
``i // samples_per_shard`` at index ``i % samples_per_shard``: the assignment
depends on nothing but the input, so every run (and every resume) agrees on it.
Columns other than ``url`` and ``text`` are carried through as ``extra``.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import posixpath
from dataclasses import dataclass
from typing import Iterable, Iterator

import pyarrow.parquet as pq

from .. import fileio
from ..errors import UserError

REQUIRED = ("url", "text")
_FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".json": "jsonl"}
_COMPRESSED = (".gz", ".bz2")


@dataclass(frozen=True)
class InputRow:
    url: str
    text: str
    extra: dict          # every other column (``queries``, provenance, ...)


def _format_of(path: str) -> str | None:
    name = posixpath.basename(path).lower()
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    for suffix, kind in _FORMATS.items():
        if name.endswith(suffix):
            return kind
    return None


def input_files(path: str) -> list[str]:
    """The input files under ``path`` in a fixed order; in directories ``.json`` files are not inputs."""
    files = fileio.expand(path, what="--input")
    is_single = len(files) == 1 and files[0].rstrip("/") == path.rstrip("/")
    chosen = []
    for name in files:
        kind = _format_of(name)
        if kind is None or (not is_single and posixpath.basename(name).lower().endswith(".json")):
            if is_single:
                raise UserError(f"--input {path!r}: unknown format (want .parquet, .csv, .tsv or .jsonl)")
            continue
        chosen.append(name)
    if not chosen:
        raise UserError(f"--input {path!r} holds no .parquet, .csv, .tsv or .jsonl files")
    return chosen


def _plain(value):
    """A JSON-friendly copy of a parquet/CSV value."""
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_columns(path: str, columns: Iterable[str]) -> None:
    missing = [c for c in REQUIRED if c not in set(columns)]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (need url and text)")


def _parquet_rows(path: str, handle) -> Iterator[dict]:
    try:
        parquet = pq.ParquetFile(handle)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: not a readable parquet file ({exc})".splitlines()[0]) from exc
    _check_columns(path, parquet.schema_arrow.names)
    for batch in parquet.iter_batches(batch_size=2048):
        yield from batch.to_pylist()


def _text_rows(path: str, handle, delimiter: str) -> Iterator[dict]:
    reader = csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8", newline=""), delimiter=delimiter)
    _check_columns(path, reader.fieldnames or [])
    yield from reader


def _jsonl_rows(path: str, handle) -> Iterator[dict]:
    checked = False
    for number, line in enumerate(io.TextIOWrapper(handle, encoding="utf-8"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not a JSON object ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number}: not a JSON object")
        if not checked:
            _check_columns(path, row.keys())
            checked = True
        yield row


def iter_rows(path: str) -> Iterator[InputRow]:
    """Every input row, streamed, in the deterministic input order."""
    for name in input_files(path):
        kind = _format_of(name)
        with fileio.open_read(name) as handle:
            if kind == "parquet":
                rows = _parquet_rows(name, handle)
            elif kind == "jsonl":
                rows = _jsonl_rows(name, handle)
            else:
                rows = _text_rows(name, handle, "\t" if kind == "tsv" else ",")
            for row in rows:
                url, text = row.get("url"), row.get("text")
                extra = {k: _plain(v) for k, v in row.items() if k not in REQUIRED}
                yield InputRow(url=str(url).strip() if url is not None else "",
                               text=str(text) if text is not None else "", extra=extra)


def shard_rows(rows: Iterable[InputRow], samples_per_shard: int) -> Iterator[tuple[int, list[InputRow]]]:
    """Cut the row stream into ``(shard_id, rows)``; only one shard's rows are held at a time."""
    shard_id, batch = 0, []
    for row in rows:
        batch.append(row)
        if len(batch) == samples_per_shard:
            yield shard_id, batch
            shard_id, batch = shard_id + 1, []
    if batch:
        yield shard_id, batch


def key_widths(samples_per_shard: int) -> tuple[int, int]:
    """Digits of the shard number and of the index in a key: 5 and 4 (img2dataset's) unless more are needed."""
    return 5, max(4, len(str(samples_per_shard - 1)))


def sample_key(shard_id: int, index: int, samples_per_shard: int) -> str:
    shard_digits, index_digits = key_widths(samples_per_shard)
    return f"{shard_id:0{shard_digits}d}{index:0{index_digits}d}"
