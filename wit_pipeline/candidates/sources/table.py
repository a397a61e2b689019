"""The ``table`` source: url/text pairs from parquet, CSV/TSV or JSON(L) files (LAION/DataComp pool form).

The files are read by the one table reader, ``wit_pipeline.tables`` (formats from
the file name, each also ``.gz``/``.bz2``/``.zst``; streamed, never loaded
whole); the url and caption columns are ``--url-col`` / ``--caption-col``, else
found per file by ``tables.pick_columns`` (``url``; ``text``, else ``caption``;
LAION's ``URL`` / ``TEXT``). A ``.txt`` url list has no captions, so it is refused
in one line. Outcomes:
``table_rows``; ``table_bad_rows`` (a row the table reader counts as bad: a JSONL
line that is not a JSON object, a CSV row that does not parse, ...; with
``--strict`` the first one stops the run instead), and the same by reason as
``table_bad_rows_<reason>`` (``tables.BAD_ROW_REASONS``: ``bad_encoding``,
``field_too_large``, ``line_too_long`` ...).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator

from ... import fileio
from ...errors import UserError
from ...schemas import candidate_row
from ...tables import MissingColumns, iter_table_rows, pick_columns, table_columns, table_format

CHECKED_FILES = 50   # the driver checks the columns of this many table inputs before the job starts


def _value(value) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _missing_columns(error: MissingColumns) -> UserError:
    """The table reader's error with the flags that fix it."""
    return UserError(f"table input {error.path!r} has no column(s) {', '.join(map(repr, error.missing))} "
                     f"(it has: {', '.join(map(str, error.present[:20])) or 'none'}); set --url-col/--caption-col")


def table_text_columns(path: str, url_col: str | None, caption_col: str | None) -> tuple[str, str]:
    """The url and caption columns of one table file, or a one-line ``UserError`` naming the flags."""
    try:
        url, caption = pick_columns(path, table_columns(path), url_col, caption_col)
    except MissingColumns as error:
        raise _missing_columns(error) from None
    if caption is None:
        raise UserError(f"table input {path!r} is a url list (.txt): candidates need a caption for each url; "
                        "use a table with a caption column (wit download reads url lists)")
    return url, caption


def read_table(path: str, counts: Counter, *, url_col: str | None = None, caption_col: str | None = None,
               page_url_col: str | None = None, strict: bool = False) -> Iterator[dict]:
    """Raw candidate rows of one table file."""
    url_col, text_col = table_text_columns(path, url_col, caption_col)
    columns = [url_col, text_col] + ([page_url_col] if page_url_col else [])
    found = Counter()
    try:
        for record in iter_table_rows(path, columns=columns, required=(url_col, text_col), counts=found,
                                      strict=strict):
            counts["table_rows"] += 1
            yield candidate_row(_value(record[url_col]) or "", _value(record[text_col]) or "", source="table",
                                source_file=path,
                                page_url=_value(record[page_url_col]) if page_url_col else None)
    except MissingColumns as error:
        raise _missing_columns(error) from None
    finally:
        for name, value in found.items():   # bad_rows and bad_rows_<reason>
            counts[f"table_{name}"] += value


def read_table_file(path: str, options, counts: Counter) -> Iterator[dict]:
    """The source reader: one table file with the options' columns."""
    return read_table(path, counts, url_col=options.url_col, caption_col=options.caption_col,
                      page_url_col=options.page_url_col, strict=options.strict)


def check_tables(options) -> None:
    """Fail fast, in one line, on an unknown table format or a table without the url/caption columns."""
    files = fileio.expand(options.inputs, what="table input")
    for path in files:
        table_format(path)
    for path in files[:CHECKED_FILES]:   # the parquet footer or the first line only
        table_text_columns(path, options.url_col, options.caption_col)
