"""File I/O over local and remote paths: the one home for it.

Everything goes through Beam's ``FileSystems``, so any scheme Beam knows
(local paths, ``gs://``, ``s3://``, ``hdfs://``) works the same way in the CLI,
in library calls and inside DoFns. ``http(s)://`` single files are read with the
guarded HTTP session.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import uuid
from contextlib import contextmanager
from typing import IO, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from .errors import UserError


def is_remote(path: str) -> bool:
    return "://" in path


def is_http(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def makedirs(path: str) -> None:
    """Create a directory (a no-op on object stores, which have none)."""
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)


def expand(patterns: list[str] | str, *, what: str = "input") -> list[str]:
    """Expand files, directories (all files inside, recursively; on object stores, every object under
    the prefix) and globs into a sorted file list; names starting with ``.`` or ``_`` are left out.

    Raises ``UserError`` naming the pattern when it matches nothing, so a typo
    never turns into an empty, silently "successful" run.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    files: list[str] = []
    for pattern in patterns:
        if is_http(pattern):
            files.append(pattern)
            continue
        if not is_remote(pattern) and os.path.isdir(pattern):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(pattern)
                for name in names
                if not name.startswith((".", "_"))
            )
        else:
            found = _match(pattern, what)
            if not found and is_remote(pattern) and not any(c in pattern for c in "*?["):
                # An object store has no directories: "gs://bucket/cand" means every object under it.
                prefix = pattern.rstrip("/") + "/"
                found = [path for path in _match(prefix + "**", what)
                         if not any(part.startswith((".", "_")) for part in path[len(prefix):].split("/"))]
        if not found:
            raise UserError(f"{what} {pattern!r} matches no files")
        files.extend(found)
    return files


def _match(pattern: str, what: str) -> list[str]:
    try:
        result = FileSystems.match([pattern])[0]
    except Exception as exc:  # Beam raises BeamIOError with a long chain; keep one line
        raise UserError(f"cannot list {what} {pattern!r}: {exc.__class__.__name__}") from exc
    return sorted(m.path for m in result.metadata_list)


@contextmanager
def open_read(path: str, *, decompress: bool = True) -> Iterator[IO[bytes]]:
    """Open a file for binary reading; ``.gz``/``.bz2`` are decompressed unless ``decompress=False``."""
    if is_http(path):
        from .http import fetch_bytes

        data = fetch_bytes(path)
        raw: IO[bytes] = io.BytesIO(data)
        if decompress and path.endswith(".gz"):
            import gzip

            raw = gzip.GzipFile(fileobj=raw)
        elif decompress and path.endswith(".bz2"):
            import bz2

            raw = bz2.BZ2File(raw)
        yield raw
        return
    handle = open_stream(path, decompress=decompress)
    try:
        yield handle
    finally:
        handle.close()


def open_stream(path: str, *, decompress: bool = False) -> IO[bytes]:
    """A binary read handle on ``path`` (Beam's filesystems) that the caller closes; object-store files
    are streamed, not read whole; ``.gz``/``.bz2`` decompressed when ``decompress``."""
    compression = CompressionTypes.AUTO if decompress else CompressionTypes.UNCOMPRESSED
    try:
        return FileSystems.open(path, compression_type=compression)
    except Exception as exc:
        raise UserError(f"cannot open {path!r}: {exc}".splitlines()[0]) from exc


def remove(path: str) -> None:
    """Delete ``path`` if it exists (a local file or an object)."""
    if FileSystems.exists(path):
        FileSystems.delete([path])


def read_bytes(path: str) -> bytes:
    with open_read(path, decompress=False) as handle:
        return handle.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def read_json(path: str):
    return json.loads(read_text(path))


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one.

    Locally: a temporary name in the same directory, fsync, then ``os.replace``.
    On object stores a single upload is already atomic.
    """
    if is_remote(path):
        with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            handle.write(data)
        return
    with open_write_atomic(path) as handle:
        handle.write(data)


@contextmanager
def open_write_atomic(path: str) -> Iterator[IO[bytes]]:
    """A binary file handle whose content appears at ``path`` only when the block succeeds."""
    if is_remote(path):
        buffer = io.BytesIO()
        yield buffer
        write_bytes_atomic(path, buffer.getvalue())
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
