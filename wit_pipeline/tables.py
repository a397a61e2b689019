"""Reading url/text tables: the one reader for parquet, CSV, TSV, JSON(L) and url-list files.

``wit candidates --source table``, ``wit download --input``, ``wit select`` and
query loading all read through ``iter_table_rows`` (or ``iter_table_batches``, the same rows by column),
so a file type behaves the same in every stage.

Formats come from the file name: ``.parquet`` / ``.pq``, ``.csv``, ``.tsv``,
``.jsonl`` (also ``.ndjson``, one object a line), ``.json`` (one object a line,
or a JSON array of objects: ``[{...}, ...]``, told apart by the first character),
``.txt`` (img2dataset's url list: one URL a line, the one column ``url``), each
optionally compressed as ``.gz``, ``.bz2`` or ``.zst``. Paths are local or
remote (``wit_pipeline.fileio``). Rows are streamed: parquet by record batches
(local files opened directly, so only the asked-for columns of one batch are in
memory), text formats line by line; a JSON array is the exception, parsed whole
(as img2dataset does; JSON lines stream).

Column names: ``pick_columns`` finds the url and caption columns the way every
stage does (``--url-col`` / ``--caption-col``, else ``url``; ``text``, else
``caption``; LAION's ``URL`` / ``TEXT`` when those are absent).

One bad-row policy. A bad row is counted in ``counts["bad_rows"]`` and, by
reason (``BAD_ROW_REASONS``), in ``counts["bad_rows_<reason>"]``, and skipped:

- ``bad_encoding``: bytes that are not UTF-8 (a parquet string too);
- ``malformed``: a line that is not JSON (or nested too deeply to read) or not
  a JSON object, a CSV/TSV row that does not parse or has a different field
  count from the header;
- ``wrong_type``: a required value absent or not a string/number;
- ``field_too_large``: a CSV/TSV field over ``csv.field_size_limit()``;
- ``line_too_long``: a text line over ``MAX_LINE_BYTES`` (skipped unread, so a
  huge line costs no memory).

With ``strict=True`` the first one raises a ``UserError`` naming the file, the
line (or parquet row) and the problem. A required column that the file lacks
(parquet schema, CSV header, first JSON object) is a ``UserError`` at once. A
null value is no bad row: it comes out as ``None`` and the stage's own rules
judge it (an empty url is dropped later). JSON strings with lone surrogates
(``"\\ud800"``) come out with U+FFFD in their place (``text.valid_strings``).
"""

from __future__ import annotations

import csv
import itertools
import json
import posixpath
from collections import Counter
from typing import IO, Iterable, Iterator

import pyarrow as pa

from . import fileio
from .errors import UserError
from .text import valid_strings

TABLE_FORMATS = ("parquet", "csv", "tsv", "jsonl")   # with named columns; "txt" (a url list) has just ``url``
COMPRESSIONS = (".gz", ".bz2", ".zst")
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl",
            ".ndjson": "jsonl", ".json": "jsonl", ".txt": "txt"}
DELIMITERS = {"csv": ",", "tsv": "\t"}
PARQUET_BATCH_ROWS = 65536
KNOWN_FORMS = f"{', '.join(SUFFIXES)}, each optionally {', '.join(COMPRESSIONS)}"
URL_COLUMNS = ("url", "URL")                       # the defaults, in order of preference
CAPTION_COLUMNS = ("text", "caption", "TEXT")      # ours, img2dataset's, LAION's
BAD_ROW_REASONS = ("bad_encoding", "malformed", "wrong_type", "field_too_large", "line_too_long")
JSON_SNIFF_BYTES = 4096   # enough to pass leading blanks and tell '[' (a JSON array) from '{' (JSON lines)
MAX_LINE_BYTES = 8 << 20   # no url/text row is near this; a longer line is damage, skipped without reading it whole


class MissingColumns(UserError):
    """A table lacks a column the reader needs (a caller may add a hint such as its flag's name)."""

    def __init__(self, path: str, missing: list[str], present: Iterable[str]):
        self.path, self.missing, self.present = path, missing, list(present)
        shown = ", ".join(map(str, self.present[:20])) or "none"
        super().__init__(f"table {path!r} has no column(s) {', '.join(map(repr, missing))} (it has: {shown})")


def table_format(path: str) -> str:
    """``parquet``, ``csv``, ``tsv`` or ``jsonl`` from ``path``'s suffix; ``UserError`` when unknown."""
    kind = format_or_none(path)
    if kind is None:
        raise UserError(f"{path!r}: unknown table format (known: {KNOWN_FORMS})")
    return kind


def format_or_none(path: str) -> str | None:
    """``table_format`` for callers that skip other files (a directory's ``stats.json`` ...)."""
    name = posixpath.basename(path).lower()
    for suffix in COMPRESSIONS:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    for suffix, kind in SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return None


def table_columns(path: str) -> list[str]:
    """The column names: the parquet footer, the CSV/TSV header, the keys of the first JSON object (a line,
    or an array's first item), ``url`` for a url list."""
    kind = _read_kind(path)
    if kind == "parquet":
        with fileio.open_parquet(path) as parquet:
            return list(parquet.schema_arrow.names)
    if kind == "txt":
        return ["url"]
    with fileio.open_read(path) as handle:
        if kind in ("jsonl", "json_array"):
            read = _json_rows if kind == "jsonl" else _json_array_rows
            for _, row in read(path, handle, _BadRows(path, None, strict=False)):
                return list(row)
            return []
        return _header(path, csv.reader(_Utf8Lines(handle), delimiter=DELIMITERS[kind]))


def pick_columns(path: str, present: Iterable[str], url_col: str | None = None,
                 caption_col: str | None = None) -> tuple[str, str | None]:
    """The url and caption columns of a table with the columns ``present``: the named ones, else the first of
    ``URL_COLUMNS`` / ``CAPTION_COLUMNS`` there is. A url list (``.txt``) has no caption column (``None``);
    a named or needed column that is not there is a ``MissingColumns`` error listing the columns there are."""
    present = list(present)
    if table_format(path) == "txt":
        if caption_col is not None:
            raise UserError(f"{path!r} is a url list (.txt, one URL a line): it has no caption column "
                            f"{caption_col!r}; use a CSV/TSV/JSON(L)/parquet table for captions")
        _check_columns(path, present, [url_col or "url"])
        return url_col or "url", None
    if not present:   # an empty JSON(L) file: no rows to read
        return url_col or "url", caption_col or CAPTION_COLUMNS[0]
    url = url_col or next((name for name in URL_COLUMNS if name in present), URL_COLUMNS[0])
    caption = caption_col or next((name for name in CAPTION_COLUMNS if name in present), CAPTION_COLUMNS[0])
    _check_columns(path, present, [url, caption])
    return url, caption


def bounded_lines(handle: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """Each line of a binary stream (with its line end), or ``None`` for a line over ``limit`` bytes,
    which is skipped in chunks and never held whole."""
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):   # the rest of the over-long line
            line = handle.readline(1 << 20)
        yield None


def iter_table_rows(path: str, *, columns: Iterable[str] | None = None, required: Iterable[str] = (),
                    counts: Counter | None = None, strict: bool = False, as_text: bool = False) -> Iterator[dict]:
    """Each good row of one table file as a dict, in file order.

    ``columns``: the keys every row gets (absent ones as ``None``); all of the
    file's columns when not given. ``required``: columns the file must have and
    every row must fill with a string or number (see the module docstring for
    bad rows, ``counts`` and ``strict``). ``as_text``: every value comes out as
    a string or ``None`` (numbers as their text; a row with any other value,
    a list or bytes, is bad: ``wrong_type``). An unknown format fails here,
    the rest when the rows are read.
    """
    kind = _read_kind(path)
    required = list(required)
    columns = list(columns) if columns is not None else None
    if kind == "parquet":   # returned, not yielded from: one generator less per row on the hot path
        return _parquet_rows(path, columns, required, _BadRows(path, counts, strict, unit="row"), as_text)
    unit = "item" if kind == "json_array" else "line"
    return _text_rows(path, kind, columns, required, _BadRows(path, counts, strict, unit=unit), as_text)


def iter_table_batches(path: str, *, columns: Iterable[str], required: Iterable[str] = (),
                       counts: Counter | None = None, strict: bool = False, as_text: bool = False,
                       batch_rows: int = PARQUET_BATCH_ROWS) -> Iterator[dict[str, list]]:
    """``iter_table_rows`` by column: the same good rows in the same order (bad ones counted the same way),
    as ``{column: [values]}`` batches of up to ``batch_rows`` rows, none empty. A caller that works
    column-wise (matching a text column, picking a few rows) makes no dict per row."""
    kind = _read_kind(path)
    required, columns = list(required), list(columns)
    if kind == "parquet":
        for _size, values in _parquet_batches(path, columns, required, _BadRows(path, counts, strict, unit="row"),
                                              as_text, batch_rows):
            yield values
        return
    rows = iter_table_rows(path, columns=columns, required=required, counts=counts, strict=strict, as_text=as_text)
    while batch := list(itertools.islice(rows, batch_rows)):
        yield {name: [row[name] for row in batch] for name in columns}


def _read_kind(path: str) -> str:
    """``table_format``, with a ``.json`` file that holds a JSON array (not JSON lines) as ``json_array``."""
    kind = table_format(path)
    if kind == "jsonl" and _json_name(path):
        with fileio.open_read(path) as handle:
            start = handle.read(JSON_SNIFF_BYTES).decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
        if start.startswith("["):
            return "json_array"
    return kind


def _json_name(path: str) -> bool:
    name = posixpath.basename(path).lower()
    return any(name.endswith(".json" + suffix) for suffix in ("",) + COMPRESSIONS)


def _text_rows(path: str, kind: str, columns: list[str] | None, required: list[str],
               bad: _BadRows, as_text: bool) -> Iterator[dict]:
    with fileio.open_read(path) as handle:
        if kind == "jsonl":
            numbered = _json_rows(path, handle, bad, required)
        elif kind == "json_array":
            numbered = _json_array_rows(path, handle, bad, required)
        elif kind == "txt":
            numbered = _url_lines(path, handle, bad, required)
        else:
            numbered = _delimited_rows(path, handle, DELIMITERS[kind], bad, required)
        for number, row in numbered:
            problem = _value_problem(row, required)
            if not problem:
                row = row if columns is None else _project(row, columns)
                if as_text and kind in ("jsonl", "json_array"):   # CSV/TSV/url-list values are strings already
                    row, problem = _as_text(row)
            if problem:
                bad(number, problem, "wrong_type")
            else:
                yield row


def _as_text(row: dict) -> tuple[dict, str | None]:
    """``row`` with numbers as their text, or the problem with the first value that is no string or number."""
    text = {}
    for name, value in row.items():
        if value is None or isinstance(value, str):
            text[name] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            text[name] = str(value)
        else:
            return row, f"{name!r} is a {type(value).__name__}, not a string"
    return text, None


class _BadRows:
    """The bad-row policy: count and skip, or (``strict``) raise naming the file, place and problem."""

    def __init__(self, path: str, counts: Counter | None, strict: bool, unit: str = "line"):
        self.path, self.counts, self.strict, self.unit = path, counts, strict, unit

    def __call__(self, number: int, problem: str, reason: str = "malformed") -> None:
        if self.strict:
            where = f"{self.path}:{number}" if self.unit == "line" else f"{self.path}: {self.unit} {number}"
            raise UserError(f"{where}: {problem} (drop --strict to count and skip bad rows)")
        if self.counts is not None:
            self.counts["bad_rows"] += 1
            self.counts[f"bad_rows_{reason}"] += 1


def _project(row: dict, columns: list[str]) -> dict:
    return {name: row.get(name) for name in columns}


def _check_columns(path: str, present: Iterable[str], required: list[str]) -> None:
    present = list(present)
    missing = [name for name in required if name not in present]
    if missing:
        raise MissingColumns(path, missing, present)


def _value_problem(row: dict, names: Iterable[str]) -> str | None:
    """Why ``row`` cannot give the string each of ``names`` needs, or ``None`` when it can."""
    for name in names:
        if name not in row:
            return f"no {name!r} value"
        value = row[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
            return f"{name!r} is a {type(value).__name__}, not a string"
    return None


def _parquet_rows(path: str, columns: list[str] | None, required: list[str], bad: _BadRows,
                  as_text: bool) -> Iterator[dict]:
    for size, values in _parquet_batches(path, columns, required, bad, as_text, PARQUET_BATCH_ROWS):
        if not values:   # no column asked for: the rows still count
            yield from ({} for _ in range(size))
            continue
        names = list(values)
        for row in zip(*values.values(), strict=True):
            yield dict(zip(names, row, strict=True))


def _parquet_batches(path: str, columns: list[str] | None, required: list[str], bad: _BadRows,
                     as_text: bool, batch_rows: int) -> Iterator[tuple[int, dict[str, list]]]:
    """``(rows, {column: values})`` of each record batch's good rows (``rows`` > 0)."""
    with fileio.open_parquet(path) as parquet:
        schema = parquet.schema_arrow
        _check_columns(path, schema.names, required)
        names = schema.names if columns is None else columns
        present = [name for name in names if name in schema.names]
        # string and number columns always hold a usable value (or null); others must be null
        checked = [name for name in dict.fromkeys(required + (present if as_text else []))
                   if not _scalar(schema.field(name).type)]
        numeric = [name for name in present if as_text and _numeric(schema.field(name).type)]
        wanted = list(dict.fromkeys(present + checked))
        if not wanted:   # no column to read: the rows still count
            total = parquet.metadata.num_rows
            for start in range(0, total, batch_rows):
                size = min(batch_rows, total - start)
                yield size, {name: [None] * size for name in names}
            return
        first = 1
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
            if numeric:   # numbers as their text, cast by arrow column-wise
                batch = pa.RecordBatch.from_arrays(
                    [column.cast(pa.string()) if name in numeric else column
                     for name, column in zip(batch.schema.names, batch.columns, strict=True)],
                    names=batch.schema.names)
            data, undecodable = _batch_values(batch)
            values = {name: data[name] if name in data else [None] * batch.num_rows for name in names}
            size = batch.num_rows
            if checked or undecodable:
                good = _good_rows(data, checked, undecodable, bad, first, batch.num_rows)
                if len(good) < size:
                    size, values = len(good), {name: [column[i] for i in good] for name, column in values.items()}
            if size:
                yield size, values
            first += batch.num_rows


def _good_rows(data: dict[str, list], checked: list[str], undecodable: dict[int, str], bad: _BadRows,
               first: int, rows: int) -> list[int]:
    """The indices of a batch's good rows; each bad one reported to ``bad`` (``first``: the batch's first
    row number)."""
    good = []
    for index in range(rows):
        if index in undecodable:
            bad(first + index, f"{undecodable[index]!r} holds bytes that are not UTF-8", "bad_encoding")
            continue
        problem = _value_problem({name: data[name][index] for name in checked}, checked)
        if problem:
            bad(first + index, problem, "wrong_type")
        else:
            good.append(index)
    return good


def _batch_values(batch: pa.RecordBatch) -> tuple[dict[str, list], dict[int, str]]:
    """The batch's columns as Python lists, and ``{row index: column}`` of the rows with a string that is not
    UTF-8 (parquet does not check; such a value comes out as ``None``, its row is bad)."""
    try:
        return batch.to_pydict(), {}
    except UnicodeDecodeError:   # rare: column by column, the string ones value by value
        pass
    data, undecodable = {}, {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            data[name] = column.to_pylist()
            continue
        except UnicodeDecodeError:
            raw = column.cast(pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary())
        data[name] = []
        for index, value in enumerate(raw.to_pylist()):
            try:
                data[name].append(None if value is None else value.decode("utf-8"))
            except UnicodeDecodeError:
                data[name].append(None)
                undecodable.setdefault(index, name)
    return data, undecodable


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _scalar(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or _numeric(kind) or pa.types.is_null(kind)


def _json_rows(path: str, handle: IO[bytes], bad: _BadRows,
               required: Iterable[str] = ()) -> Iterator[tuple[int, dict]]:
    checked = False
    for number, line in enumerate(bounded_lines(handle, MAX_LINE_BYTES), start=1):
        if line is None:
            bad(number, f"a line longer than {MAX_LINE_BYTES} bytes", "line_too_long")
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            bad(number, "bytes that are not UTF-8", "bad_encoding")
            continue
        except ValueError as exc:
            bad(number, f"not JSON ({getattr(exc, 'msg', exc)})")
            continue
        except RecursionError:
            bad(number, "JSON nested too deeply to read")
            continue
        if not isinstance(row, dict):
            bad(number, f"not a JSON object (a {type(row).__name__})")
            continue
        if b"\\u" in line:   # only an escape can make a lone surrogate
            row = valid_strings(row)
        if not checked:   # the first object names the columns
            _check_columns(path, row, required)
            checked = True
        yield number, row


def _json_array_rows(path: str, handle: IO[bytes], bad: _BadRows,
                     required: Iterable[str] = ()) -> Iterator[tuple[int, dict]]:
    """The objects of a JSON array, numbered from 1; the array is parsed whole (a file that is no JSON array
    is a ``UserError``; an item that is no object is a bad row)."""
    data = handle.read()
    try:
        items = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: bytes that are not UTF-8 at byte {exc.start}") from None
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{path}: not a JSON array ({getattr(exc, 'msg', type(exc).__name__)})") from None
    if not isinstance(items, list):
        raise UserError(f"{path}: not a JSON array of objects (a {type(items).__name__})")
    checked = False
    escaped = b"\\u" in data   # only an escape can make a lone surrogate
    del data
    for number, row in enumerate(items, start=1):
        if not isinstance(row, dict):
            bad(number, f"not a JSON object (a {type(row).__name__})")
            continue
        if not checked:   # the first object names the columns
            _check_columns(path, row, list(required))
            checked = True
        yield number, valid_strings(row) if escaped else row


def _url_lines(path: str, handle: IO[bytes], bad: _BadRows,
               required: Iterable[str] = ()) -> Iterator[tuple[int, dict]]:
    """img2dataset's url list: one URL a line (surrounding blanks dropped, blank lines skipped), as ``url``."""
    _check_columns(path, ["url"], list(required))
    for number, line in enumerate(bounded_lines(handle, MAX_LINE_BYTES), start=1):
        if line is None:
            bad(number, f"a line longer than {MAX_LINE_BYTES} bytes", "line_too_long")
            continue
        try:
            url = line.decode("utf-8").removeprefix("\ufeff").strip()
        except UnicodeDecodeError:
            bad(number, "bytes that are not UTF-8", "bad_encoding")
            continue
        if url:
            yield number, {"url": url}


class _Utf8Lines:
    """Lines of a binary stream as text; a line that is not UTF-8 is decoded with replacement and flagged,
    and an over-long line is left out (an empty line in its place) and flagged, so the CSV record it
    belongs to (which may span lines) can be counted as bad."""

    def __init__(self, handle: IO[bytes]):
        self._lines = bounded_lines(handle, MAX_LINE_BYTES)
        self.undecodable = False
        self.too_long = False
        self.first = True

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        if line is None:
            self.too_long = True
            return "\n"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self.undecodable = True
            text = line.decode("utf-8", "replace")
        if self.first:   # a byte-order mark is no part of the first column's name
            self.first = False
            text = text.removeprefix("\ufeff")
        return text


def _header(path: str, reader) -> list[str]:
    try:
        return next(reader, [])
    except csv.Error as exc:
        raise UserError(f"{path}:1: the header is no valid CSV ({exc})") from exc


def _delimited_rows(path: str, handle: IO[bytes], delimiter: str, bad: _BadRows,
                    required: list[str]) -> Iterator[tuple[int, dict]]:
    lines = _Utf8Lines(handle)
    reader = csv.reader(lines, delimiter=delimiter)
    header = _header(path, reader)
    _check_columns(path, header, required)
    lines.undecodable = lines.too_long = False
    while True:
        start = reader.line_num + 1     # the record's first line
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            too_large = "field larger than field limit" in str(exc)
            bad(start, f"not a valid row ({exc})", "field_too_large" if too_large else "malformed")
            lines.undecodable = lines.too_long = False
            continue
        if lines.too_long:
            bad(start, f"a line longer than {MAX_LINE_BYTES} bytes", "line_too_long")
            lines.undecodable = lines.too_long = False
        elif lines.undecodable:
            bad(start, "bytes that are not UTF-8", "bad_encoding")
            lines.undecodable = False
        elif len(record) != len(header):
            if record:   # a blank line is no row
                bad(start, f"{len(record)} field(s) where the header has {len(header)}")
        else:
            yield start, dict(zip(header, record, strict=True))
