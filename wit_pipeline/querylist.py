"""Reading a query list: what `wit select` matches against and `wit candidates --source search` crawls.

The loader lives with the query builder (``queries.output.load_queries``): a
queries directory (``queries.parquet``), a parquet file with a ``query`` column
(``.parquet``/``.pq``, optionally compressed, read by ``wit_pipeline.tables``),
or a text file with one query per line (normalised to
``wit_pipeline.text.canonical`` form, de-duplicated); a query longer than
``queries.output.MAX_QUERY_BYTES`` is left out and counted in ``skipped``. This
wrapper only drops empty entries and duplicates once more, so the matcher's
indices are unique.

``load_query_lists`` gives the list per language: ``{lang: [queries]}`` from a
queries directory or parquet file with a ``lang`` column (codes through
``langcodes.normalise``; a null ``lang`` is language-neutral), else
``{None: [queries]}`` (a text file or a list without languages is matched
against every text).
"""

from __future__ import annotations

from collections import Counter

from queries.output import MAX_QUERY_BYTES, PARQUET_NAME, load_queries

from . import fileio
from .errors import UserError
from .langcodes import normalise
from .tables import format_or_none, iter_table_batches, table_columns

__all__ = ["MAX_QUERY_BYTES", "load_query_list", "load_query_lists"]


def load_query_list(path: str, keep_case: bool = False, skipped: Counter | None = None) -> list[str]:
    """The queries at ``path`` in canonical form, de-duplicated; ``UserError`` when unreadable or empty."""
    found = list(dict.fromkeys(q for q in load_queries(path, keep_case, skipped) if isinstance(q, str) and q))
    if not found:
        raise UserError(f"query list {path!r} is empty")
    return found


def _lang_table(path: str) -> str | None:
    """The parquet file holding ``path``'s queries when it has a ``lang`` column, else None (a text file,
    a queries directory or parquet file without languages)."""
    table = path if format_or_none(path) == "parquet" else fileio.join(path, PARQUET_NAME)   # else a directory
    if not fileio.exists(table):
        return None
    return table if "lang" in table_columns(table) else None


def load_query_lists(path: str, keep_case: bool = False, skipped: Counter | None = None) -> dict[str | None, list[str]]:
    """The queries at ``path`` per language, each list in canonical form and de-duplicated; ``None`` holds
    the language-neutral ones (all of them for a list without a ``lang`` column)."""
    table = _lang_table(path)
    if table is None:
        return {None: load_query_list(path, keep_case, skipped)}
    skipped = Counter() if skipped is None else skipped
    lists: dict[str | None, dict[str, None]] = {}
    codes: dict[str, str] = {}   # a list has a handful of distinct lang values: normalise each once
    for batch in iter_table_batches(table, columns=["query", "lang"], required=["query"], as_text=True):
        for query, lang in zip(batch["query"], batch["lang"], strict=True):
            if not query:
                continue
            if len(query) > MAX_QUERY_BYTES // 4 and len(query.encode()) > MAX_QUERY_BYTES:
                skipped["line_too_long"] += 1
                continue
            if lang:
                lang = codes[lang] if lang in codes else codes.setdefault(lang, normalise(lang))
            lists.setdefault(lang or None, {})[query] = None
    if not lists:
        raise UserError(f"query list {path!r} is empty")
    return {lang: list(queries) for lang, queries in lists.items()}
