"""Writing a shard: the WebDataset tar and its status parquet; listing the shards of an output.

A shard ``NNNNN`` is two files at the top of the output directory:

- ``NNNNN.tar``: one sample per successful row, members ``KEY.jpg``, ``KEY.txt``
  (the caption) and ``KEY.json``, in key order, written by ``shardset.ShardTarWriter``
  (fixed mtime/owner/mode, so the same content gives the same bytes);
- ``NNNNN.parquet``: one row per *input* row of the shard (``schemas.STATUS_SCHEMA``),
  successes and failures alike. Its schema metadata (``wit_shard``) holds the
  tar's sample count, byte size and sha256.

Both are written under a temporary name and renamed; the parquet goes last and
is the commit marker: a shard is complete when its parquet exists (and agrees
with its tar), so a run killed at any point redoes exactly the incomplete shards.
"""

from __future__ import annotations

import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq

from .. import fileio
from ..schemas import STATUS_SCHEMA
from ..shardset import TarSummary, manifest_entry, shard_name

SHARD_META_KEY = b"wit_shard"
SHARD_FILE = re.compile(r"^(\d{5,})\.(tar|parquet)$")
WORK_DIR = "_work"


def sample_members(jpg: bytes, caption: str, meta: dict) -> dict[str, bytes]:
    return {"jpg": jpg, "txt": caption.encode("utf-8"),
            "json": json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")}


def write_status(path: str, rows: list[dict], summary: TarSummary, extra_meta: dict | None = None) -> None:
    """The shard's status parquet (the commit marker), with the tar's summary in its metadata."""
    table = pa.Table.from_pylist(rows, schema=STATUS_SCHEMA)
    meta = {"samples": summary.samples, "bytes": summary.bytes, "sha256": summary.sha256, "rows": len(rows),
            **(extra_meta or {})}
    table = table.replace_schema_metadata({SHARD_META_KEY: json.dumps(meta, sort_keys=True).encode()})
    fileio.write_parquet_atomic(path, table, compression="zstd")


def read_shard_meta(path: str) -> dict | None:
    """The ``wit_shard`` metadata of a status parquet, or ``None`` if unreadable."""
    try:
        with fileio.open_read(path, decompress=False) as handle:
            schema = pq.read_schema(handle)
    except Exception:  # noqa: BLE001 - a damaged file means "not complete"
        return None
    raw = (schema.metadata or {}).get(SHARD_META_KEY)
    return json.loads(raw) if raw else None


def read_status(path: str, columns: list[str] | None = None) -> pa.Table:
    with fileio.open_read(path, decompress=False) as handle:
        return pq.read_table(handle, columns=columns)


def top_level_names(out: str) -> list[str]:
    """File names at the top of ``out`` (local directory or object-store prefix)."""
    if not fileio.is_remote(out):
        return sorted(os.listdir(out)) if os.path.isdir(out) else []
    from apache_beam.io.filesystems import FileSystems

    matched = FileSystems.match([fileio.join(out, "*")])[0].metadata_list
    return sorted(m.path.rstrip("/").rsplit("/", 1)[-1] for m in matched)


def list_shards(out: str, kind: str = "parquet") -> list[int]:
    """Shard ids that have a ``kind`` file (status ``parquet`` or ``tar``) at the top of ``out``, sorted."""
    ids = []
    for name in top_level_names(out):
        match = SHARD_FILE.match(name)
        if match and match.group(2) == kind:
            ids.append(int(match.group(1)))
    return sorted(ids)


def shard_manifest_entry(shard_id: int, meta: dict) -> dict:
    """The manifest row of a complete shard, from its status parquet's metadata."""
    summary = TarSummary(meta["samples"], meta["bytes"], meta["sha256"])
    return manifest_entry(f"{shard_name(shard_id)}.tar", summary, rows=meta["rows"])
