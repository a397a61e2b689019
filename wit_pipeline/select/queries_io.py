"""Reading the query list ``wit select`` matches against (and ``wit candidates --source search`` crawls).

Accepted: a queries directory (``queries.parquet`` with a ``query`` column, or
``queries.txt``), a ``.parquet`` file with a ``query`` column, or a text file
with one query per line (``#`` comments and blank lines ignored). Queries are
brought to ``wit_pipeline.text.canonical`` form (they are stored in it already;
this makes hand-written lists work too) and de-duplicated, first occurrence
first.
"""

from __future__ import annotations

import io
import os

from .. import fileio
from ..errors import UserError
from ..text import canonical


def _read_lines(path: str) -> list[str]:
    text = fileio.read_text(path)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _read_parquet(path: str) -> list[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(fileio.read_bytes(path)))
    if "query" not in table.column_names:
        raise UserError(f"queries file {path!r} has no 'query' column (it has: {', '.join(table.column_names)})")
    return [q for q in table.column("query").to_pylist() if isinstance(q, str)]


def load_query_list(path: str, keep_case: bool = False) -> list[str]:
    """The queries at ``path`` in canonical form, de-duplicated; ``UserError`` when unreadable or empty."""
    if not fileio.exists(path) and not (not fileio.is_remote(path) and os.path.isdir(path)):
        raise UserError(f"queries {path!r} do not exist")
    if not fileio.is_remote(path) and os.path.isdir(path):
        for name, reader in (("queries.parquet", _read_parquet), ("queries.txt", _read_lines)):
            candidate = os.path.join(path, name)
            if os.path.exists(candidate):
                raw = reader(candidate)
                break
        else:
            raise UserError(f"queries directory {path!r} holds neither queries.parquet nor queries.txt")
    elif path.endswith(".parquet"):
        raw = _read_parquet(path)
    else:
        raw = _read_lines(path)
    queries = list(dict.fromkeys(q for q in (canonical(r, keep_case) for r in raw) if q))
    if not queries:
        raise UserError(f"queries {path!r} hold no query")
    return queries
