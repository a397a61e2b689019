"""Reading the download's input as a stream and cutting it into shards.

Input: the ``selected`` directory of ``wit select`` or any parquet / CSV / TSV /
JSONL file(s) with ``url`` and ``text`` columns, optionally compressed (local
or remote, directories and globs allowed), read through
``wit_pipeline.tables``: rows are streamed (parquet by record batches, text
formats line by line), so memory stays flat whatever the input size; a
malformed row is counted and skipped (``--strict``: the first one stops the
run). img2dataset loads each input file whole.

Row ``i`` of the input, in file order then row order, goes to shard
``i // samples_per_shard`` at index ``i % samples_per_shard``: the assignment
depends on nothing but the input, so every run (and every resume) agrees on it.
Columns other than ``url`` and ``text`` are carried through as ``extra``.
"""

from __future__ import annotations

import datetime
import decimal
import posixpath
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Iterator

from .. import fileio
from ..errors import UserError
from ..tables import KNOWN_FORMS, format_or_none, iter_table_rows

REQUIRED = ("url", "text")


@dataclass(frozen=True)
class InputRow:
    url: str
    text: str
    extra: dict          # every other column (``queries``, provenance, ...)


def input_files(path: str) -> list[str]:
    """The input files under ``path`` in a fixed order; in directories ``.json`` files are not inputs."""
    files = fileio.expand(path, what="--input")
    is_single = len(files) == 1 and files[0].rstrip("/") == path.rstrip("/")
    chosen = []
    for name in files:
        kind = format_or_none(name)
        if kind is None or (not is_single and posixpath.basename(name).lower().endswith(".json")):
            if is_single:
                raise UserError(f"--input {path!r}: unknown format (known: {KNOWN_FORMS})")
            continue
        chosen.append(name)
    if not chosen:
        raise UserError(f"--input {path!r} holds no table files ({KNOWN_FORMS})")
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


def iter_rows(path: str, *, strict: bool = False, counts: Counter | None = None) -> Iterator[InputRow]:
    """Every good input row, streamed, in the deterministic input order; bad rows are counted in
    ``counts["bad_rows"]`` and skipped, or with ``strict`` the first one raises ``UserError``."""
    for name in input_files(path):
        for row in iter_table_rows(name, required=REQUIRED, counts=counts, strict=strict):
            url, text = row["url"], row["text"]
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
