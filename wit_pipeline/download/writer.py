"""Writing a shard: the WebDataset tar, its status parquet, and the run's manifest.

A shard ``NNNNN`` is two files at the top of the output directory:

- ``NNNNN.tar``: one sample per successful row, members ``KEY.jpg``, ``KEY.txt``
  (the caption) and ``KEY.json``, in key order, with fixed mtime/owner/mode so the
  same content gives the same bytes;
- ``NNNNN.parquet``: one row per *input* row of the shard (``STATUS_SCHEMA``),
  successes and failures alike. Its schema metadata (``wit_shard``) holds the
  tar's sample count, byte size and sha256.

Both are written under a temporary name and renamed; the parquet goes last and
is the commit marker: a shard is complete when its parquet exists (and agrees
with its tar), so a run killed at any point redoes exactly the incomplete shards.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from .. import fileio

TAR_MTIME = 946684800            # 2000-01-01: fixed, so tars are reproducible
SHARD_META_KEY = b"wit_shard"
SHARD_NAME = re.compile(r"^(\d{5,})\.(tar|parquet)$")
WORK_DIR = "_work"

STATUS_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("url", pa.string()),
    ("caption", pa.string()),
    ("status", pa.string()),                 # "success" or the failure reason
    ("error_message", pa.string()),
    ("http_status", pa.int32()),
    ("sha256", pa.string()),                 # of the original (downloaded) bytes
    ("original_width", pa.int32()),
    ("original_height", pa.int32()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("queries", pa.list_(pa.string())),
])


def shard_name(shard_id: int) -> str:
    return f"{shard_id:05d}"


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``target``."""

    def __init__(self, target: IO[bytes]):
        self.target, self.sha256, self.size = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        self.target.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)


@dataclass
class TarSummary:
    samples: int
    bytes: int
    sha256: str


class ShardTarWriter:
    """Adds samples to a tar stream; ``summary`` once closed."""

    def __init__(self, stream: IO[bytes]):
        self._hashing = _HashingWriter(stream)
        self._tar = tarfile.open(fileobj=self._hashing, mode="w|", format=tarfile.PAX_FORMAT)
        self.samples = 0
        self.summary: TarSummary | None = None

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o444
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))

    def add_sample(self, key: str, members: dict[str, bytes]) -> None:
        """``members``: extension -> bytes, written in sorted extension order."""
        for ext in sorted(members):
            self._add(f"{key}.{ext}", members[ext])
        self.samples += 1

    def close(self) -> TarSummary:
        self._tar.close()
        self.summary = TarSummary(self.samples, self._hashing.size, self._hashing.sha256.hexdigest())
        return self.summary


@contextmanager
def write_tar_atomic(path: str) -> Iterator[ShardTarWriter]:
    with fileio.open_write_atomic(path) as handle:
        writer = ShardTarWriter(handle)
        yield writer
        writer.close()


def sample_members(jpg: bytes, caption: str, meta: dict) -> dict[str, bytes]:
    return {"jpg": jpg, "txt": caption.encode("utf-8"),
            "json": json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")}


def write_status(path: str, rows: list[dict], summary: TarSummary, extra_meta: dict | None = None) -> None:
    """The shard's status parquet (the commit marker), with the tar's summary in its metadata."""
    table = pa.Table.from_pylist(rows, schema=STATUS_SCHEMA)
    meta = {"samples": summary.samples, "bytes": summary.bytes, "sha256": summary.sha256, "rows": len(rows),
            **(extra_meta or {})}
    table = table.replace_schema_metadata({SHARD_META_KEY: json.dumps(meta, sort_keys=True).encode()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    fileio.write_bytes_atomic(path, buffer.getvalue())


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
        match = SHARD_NAME.match(name)
        if match and match.group(2) == kind:
            ids.append(int(match.group(1)))
    return sorted(ids)


def remove_stale_temporaries(out: str) -> int:
    """Delete temporary files a killed run left at the top of ``out`` (local only); returns how many."""
    if fileio.is_remote(out) or not os.path.isdir(out):
        return 0
    removed = 0
    for name in os.listdir(out):
        if name.startswith(".") and name.endswith(".tmp") and (".tar." in name or ".parquet." in name
                                                               or ".json." in name):
            os.remove(os.path.join(out, name))
            removed += 1
    return removed


def manifest_entry(shard_id: int, meta: dict) -> dict:
    return {"path": f"{shard_name(shard_id)}.tar", "samples": meta["samples"], "bytes": meta["bytes"],
            "sha256": meta["sha256"], "rows": meta["rows"]}
