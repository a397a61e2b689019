"""Reading the download's input as a stream and cutting it into shards.

Input: the ``selected`` directory of ``wit select`` or any parquet / CSV / TSV /
JSON(L) file(s) with url and caption columns, or ``.txt`` url lists (one URL a
line; the caption is empty), optionally compressed (local or remote,
directories and globs allowed), read through ``wit_pipeline.tables``. The
columns are ``--url-col`` / ``--caption-col``, else found per file by
``tables.pick_columns`` (``url``; ``text``, else ``caption``; LAION's ``URL`` /
``TEXT``). Rows are streamed (parquet by record batches, text
formats line by line), so memory stays flat whatever the input size; a
malformed row is counted and skipped (``--strict``: the first one stops the
run). img2dataset loads each input file whole.

Row ``i`` of the input, in file order then row order, goes to shard
``i // samples_per_shard`` at index ``i % samples_per_shard``: the assignment
depends on nothing but the input, so every run (and every resume) agrees on it.
Columns other than the url and caption columns are carried through as ``extra``.
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
from ..tables import (
    COMPRESSIONS,
    KNOWN_FORMS,
    MissingColumns,
    format_or_none,
    iter_table_rows,
    pick_columns,
    table_columns,
)

LISTED_ONLY_BY_NAME = (".json", ".txt")   # in a directory these are notes, not inputs (a glob or a file name is)


@dataclass(frozen=True)
class InputRow:
    url: str
    text: str
    extra: dict          # every other column (``queries``, provenance, ...)


def input_files(path: str) -> list[str]:
    """The input files under ``path`` in a fixed order. ``.json`` and ``.txt`` files are inputs only when
    named (a file, or a glob such as ``lists/*.txt``): in a directory or a glob like ``sel/*`` they are
    notes (``stats.json``, a README)."""
    files = fileio.expand(path, what="--input")
    is_single = len(files) == 1 and files[0].rstrip("/") == path.rstrip("/")
    notes_are_inputs = is_single or _named_like_a_note(path)
    chosen = []
    for name in files:
        kind = format_or_none(name)
        if kind is None or (not notes_are_inputs and _named_like_a_note(name)):
            if is_single:
                raise UserError(f"--input {path!r}: unknown format (known: {KNOWN_FORMS})")
            continue
        chosen.append(name)
    if not chosen:
        raise UserError(f"--input {path!r} holds no table files ({KNOWN_FORMS})")
    return chosen


def _named_like_a_note(name: str) -> bool:
    base = posixpath.basename(name).lower()
    return any(base.endswith(suffix + compression) for suffix in LISTED_ONLY_BY_NAME
               for compression in ("",) + COMPRESSIONS)


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


def iter_rows(path: str, *, strict: bool = False, counts: Counter | None = None, url_col: str | None = None,
              caption_col: str | None = None) -> Iterator[InputRow]:
    """Every good input row, streamed, in the deterministic input order; bad rows are counted in
    ``counts["bad_rows"]`` and skipped, or with ``strict`` the first one raises ``UserError``."""
    for name in input_files(path):
        url_name, caption_name = _columns(name, url_col, caption_col)
        taken = (url_name, caption_name) if caption_name else (url_name,)
        for row in iter_table_rows(name, required=taken, counts=counts, strict=strict):
            url, text = row[url_name], row[caption_name] if caption_name else None
            extra = {k: _plain(v) for k, v in row.items() if k not in taken}
            yield InputRow(url=str(url).strip() if url is not None else "",
                           text=str(text) if text is not None else "", extra=extra)


def _columns(path: str, url_col: str | None, caption_col: str | None) -> tuple[str, str | None]:
    """The url and caption columns of one input file (``tables.pick_columns``), a missing one named with the
    flags that fix it."""
    try:
        return pick_columns(path, table_columns(path), url_col, caption_col)
    except MissingColumns as error:
        raise UserError(f"{error}; set --url-col/--caption-col") from None


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
