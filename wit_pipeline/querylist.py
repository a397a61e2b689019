"""Reading a query list: what `wit select` matches against and `wit candidates --source search` crawls.

The loader lives with the query builder (``queries.output.load_queries``): a
queries directory (``queries.parquet``), a parquet file with a ``query`` column
(``.parquet``/``.pq``, optionally compressed, read by ``wit_pipeline.tables``),
or a text file with one query per line (normalised to
``wit_pipeline.text.canonical`` form, de-duplicated); a query longer than
``queries.output.MAX_QUERY_BYTES`` is left out and counted in ``skipped``. This
wrapper only drops empty entries and duplicates once more, so the matcher's
indices are unique.
"""

from __future__ import annotations

from collections import Counter

from queries.output import MAX_QUERY_BYTES, load_queries

from .errors import UserError

__all__ = ["MAX_QUERY_BYTES", "load_query_list"]


def load_query_list(path: str, keep_case: bool = False, skipped: Counter | None = None) -> list[str]:
    """The queries at ``path`` in canonical form, de-duplicated; ``UserError`` when unreadable or empty."""
    found = list(dict.fromkeys(q for q in load_queries(path, keep_case, skipped) if isinstance(q, str) and q))
    if not found:
        raise UserError(f"query list {path!r} is empty")
    return found
