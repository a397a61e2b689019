"""Writing a shard: the WebDataset tar and its status parquet; listing the shards of an output.

A shard ``NNNNN`` is two files at the top of the output directory:

- ``NNNNN.tar``: one sample per successful row, members ``KEY.jpg``, ``KEY.txt``
  (the caption) and ``KEY.json``, in key order, written by ``shardset.ShardTarWriter``
  (fixed mtime/owner/mode, so the same content gives the same bytes);
- ``NNNNN.parquet``: one row per *input* row of the shard (``schemas.STATUS_SCHEMA``),
  successes and failures alike. Its schema metadata (``wit_shard``) holds the
  tar's sample count, byte size and sha256.

Beside them, ``NNNNN_stats.json`` (img2dataset's per-shard stats, ``shard_stats_of``: every row's
img2dataset class from ``IMG2DATASET_CLASSES``; our own reasons under ``reasons``), written just before
the parquet, and rebuilt from the parquet by ``ensure_shard_stats`` for a complete shard without one.

All are written under a temporary name and renamed; the parquet goes last and
is the commit marker: a shard is complete when its parquet exists (and agrees
with its tar), so a run killed at any point redoes exactly the incomplete shards.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from .. import fileio
from ..schemas import (
    DECISION_REASONS,
    FETCH_REASONS,
    IMAGE_REASONS,
    REFUSAL_REASONS,
    ROW_REASONS,
    STATUS_SCHEMA,
    VERIFY_REASONS,
)
from ..shardset import TarSummary, manifest_entry, shard_name, shard_stats_name, shard_stats_record, write_shard_stats

SHARD_META_KEY = b"wit_shard"
SHARD_FILE = re.compile(r"^(\d{5,})\.(tar|parquet)$")
WORK_DIR = "_work"


def sample_members(jpg: bytes, caption: str, meta: dict) -> dict[str, bytes]:
    return {"jpg": jpg, "txt": caption.encode("utf-8"),
            "json": json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")}


# img2dataset's coarse class of each of our statuses (its per-shard status_dict counts these): an image that
# arrived but did not become a sample is "failed_to_resize"; every other failure, a decision (duplicate) and
# any status not listed here (http_<status>) is "failed_to_download", as img2dataset counts a hash mismatch.
IMG2DATASET_CLASSES = {
    "success": "success",
    **{reason: "failed_to_download" for reason in FETCH_REASONS + VERIFY_REASONS + DECISION_REASONS},
    # Refused (an opt-out, a blocklist match): img2dataset counts its X-Robots-Tag refusal as a failed download.
    **{reason: "failed_to_download" for reason in REFUSAL_REASONS},
    **{reason: "failed_to_resize" for reason in IMAGE_REASONS + ROW_REASONS},
}


def img2dataset_class(status: str) -> str:
    return IMG2DATASET_CLASSES.get(status, "failed_to_download")


def shard_stats_of(statuses: list[str], meta: dict) -> dict:
    """A shard's ``NNNNN_stats.json`` record from its rows' statuses and its status parquet's metadata."""
    classes = Counter(img2dataset_class(s) for s in statuses)
    end = float(meta.get("end_time") or time.time())
    reasons = Counter(statuses)
    return shard_stats_record(classes, float(meta.get("start_time") or end), end,
                              reasons={k: reasons[k] for k in sorted(reasons)})


def write_status(path: str, rows: list[dict], summary: TarSummary, extra_meta: dict | None = None,
                 schema: pa.Schema = STATUS_SCHEMA) -> None:
    """The shard's ``NNNNN_stats.json`` and then its status parquet (the commit marker), with the tar's
    summary and the shard's ``start_time`` (from ``extra_meta``; now without it) and ``end_time`` in its
    metadata."""
    table = pa.Table.from_pylist(rows, schema=schema)   # STATUS_SCHEMA, or with carried input columns after it
    now = time.time()
    meta = {"samples": summary.samples, "bytes": summary.bytes, "sha256": summary.sha256, "rows": len(rows),
            **(extra_meta or {}), "end_time": now}
    meta["start_time"] = meta.get("start_time") or now
    directory, parquet_name = path.rsplit("/", 1) if "/" in path else (".", path)
    write_shard_stats(directory, parquet_name.replace(".parquet", ".tar"),
                      shard_stats_of([row["status"] for row in rows], meta))
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


def ensure_shard_stats(out: str, shard_id: int, statuses: list[str], meta: dict) -> None:
    """Write a complete shard's ``NNNNN_stats.json`` from its status parquet when it has none (a shard a
    run was killed between the two, or one written before the file existed); one that exists is kept."""
    tar_name = f"{shard_name(shard_id)}.tar"
    if not fileio.exists(fileio.join(out, shard_stats_name(tar_name))):
        write_shard_stats(out, tar_name, shard_stats_of(statuses, meta))
