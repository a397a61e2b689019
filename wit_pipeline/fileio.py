"""File I/O over local and remote paths: the one home for it.

Everything goes through Beam's ``FileSystems``, so any scheme Beam knows
(local paths, ``gs://``, ``s3://``, ``hdfs://``) works the same way in the CLI,
in library calls and inside DoFns. ``http(s)://`` single files are read with the
guarded HTTP session.

Compressed files (``.gz``, ``.bz2``, ``.zst``, ``.xz``, ``.deflate``: the
suffixes Beam recognises) are decompressed into a real ``io`` stream, so text
wrappers, ``csv`` and ``tarfile`` work on them as on plain files. Parquet is
read through ``open_parquet`` / ``read_parquet`` (seekable, by row group) and
written with ``write_parquet_atomic``. ``read_text`` and ``read_json`` (``parse_json``
for text in hand) turn a file that is not UTF-8 or not JSON, or JSON of the wrong
type, into a one-line ``UserError`` naming the file and line.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from typing import IO, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from apache_beam.io.filesystem import CompressedFile, CompressionTypes
from apache_beam.io.filesystems import FileSystems

from .errors import UserError


def is_remote(path: str) -> bool:
    return "://" in path


def is_http(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def check_readable(path: str, what: str, *, http: bool = False) -> None:
    """A one-line ``UserError`` naming ``what`` (a flag) unless ``path``'s scheme can be read here: an
    http(s) URL only where the input allows one (``http``: read whole through the guarded session; inputs
    that are listed, sized or probed for files inside cannot be), any other scheme when its Beam file
    system is installed (``gs://`` needs apache-beam[gcp], ``s3://`` apache-beam[aws])."""
    if is_http(path):
        if not http:
            raise UserError(f"{what}: http(s) URLs are not supported for this input; download the file first "
                            f"({path})")
        return
    try:
        FileSystems.get_filesystem(path)
    except ValueError:
        scheme = path.split("://", 1)[0]
        raise UserError(f"{what}: no file system for {scheme}:// paths is installed ({path}); gs:// needs "
                        "apache-beam[gcp], s3:// apache-beam[aws]") from None


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
    """Open a file for binary reading; compressed files are decompressed unless ``decompress=False``."""
    handle = open_stream(path, decompress=decompress)
    try:
        yield handle
    finally:
        handle.close()


def open_stream(path: str, *, decompress: bool = False) -> IO[bytes]:
    """A binary read handle on ``path`` that the caller closes; object-store files are streamed, not read
    whole (``http(s)`` files are fetched whole); compressed files decompressed when ``decompress``."""
    if is_http(path):
        from .http import fetch_bytes  # here: requests loads only when an http input is read

        raw: IO[bytes] = io.BytesIO(fetch_bytes(path))
    else:
        try:
            raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        except Exception as exc:
            raise UserError(f"cannot open {path!r}: {exc}".splitlines()[0]) from exc
    return decompressing(raw, path) if decompress else raw


def compression_of(path: str) -> str:
    """Beam's name for the compression ``path``'s suffix implies (``CompressionTypes.UNCOMPRESSED`` if none)."""
    return CompressionTypes.detect_compression_type(path)


def decompressing(raw: IO[bytes], path: str) -> IO[bytes]:
    """``raw`` decompressed as its name's suffix says, as a buffered ``io`` stream that closes ``raw`` too."""
    kind = compression_of(path)
    if kind == CompressionTypes.UNCOMPRESSED:
        return raw
    if kind == CompressionTypes.GZIP:
        decoder = gzip.GzipFile(fileobj=raw, mode="rb")
    elif kind == CompressionTypes.BZIP2:
        decoder = bz2.BZ2File(raw)
    elif kind == CompressionTypes.ZSTD:
        decoder = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)
    elif kind == CompressionTypes.LZMA:
        decoder = lzma.LZMAFile(raw)
    else:   # deflate: only Beam reads it; its CompressedFile is no io stream, hence the wrapper
        decoder = CompressedFile(raw, kind)
    return io.BufferedReader(_DecodedStream(decoder, raw), buffer_size=1 << 20)


class _DecodedStream(io.RawIOBase):
    """A decompressor's ``read`` as a raw ``io`` stream; closing it closes the decompressor and the file."""

    def __init__(self, decoder, raw: IO[bytes]):
        super().__init__()
        self._decoder, self._raw = decoder, raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._decoder.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._decoder.close()
            finally:
                self._raw.close()
                super().close()


@contextmanager
def open_parquet(path: str) -> Iterator[pq.ParquetFile]:
    """A parquet file open for reading by row group (the footer is read now, the rows when asked for)."""
    try:
        with _seekable(path) as source, pq.ParquetFile(source) as parquet:
            yield parquet
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{path}: not a readable parquet file ({exc})".splitlines()[0]) from exc


@contextmanager
def _seekable(path: str):
    """What parquet can seek in: a local file by name, an object-store stream as it is (Beam's gcs/s3
    readers seek); a compressed file (``x.parquet.gz``) or a stream that cannot seek is spooled to a
    temporary file first, so memory stays flat."""
    compressed = compression_of(path) != CompressionTypes.UNCOMPRESSED
    if not is_remote(path) and not compressed:
        yield path
        return
    with open_read(path) as handle:
        if handle.seekable() and not compressed:
            yield handle
            return
        with tempfile.TemporaryFile() as spool:
            shutil.copyfileobj(handle, spool, 1 << 20)
            spool.seek(0)
            yield spool


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    """The whole table (or ``columns`` of it) of one parquet file, local or remote."""
    with open_parquet(path) as parquet:
        return parquet.read(columns=columns)


def write_parquet_atomic(path: str, table: pa.Table, *, compression: str = "zstd") -> None:
    """Write ``table`` as a parquet file that appears at ``path`` whole or not at all."""
    with open_write_atomic(path) as handle:
        pq.write_table(table, handle, compression=compression)


def write_parquet_groups_atomic(path: str, schema: pa.Schema, tables: Iterable[pa.Table], *,
                                compression: str = "zstd") -> None:
    """``write_parquet_atomic`` of ``tables`` (of ``schema``), one row group each, made one at a time: the
    whole table is never in memory at once."""
    with open_write_atomic(path) as handle, pq.ParquetWriter(handle, schema, compression=compression) as writer:
        for table in tables:
            writer.write_table(table)


def remove(path: str) -> None:
    """Delete ``path`` if it exists (a local file or an object)."""
    if FileSystems.exists(path):
        FileSystems.delete([path])


def read_bytes(path: str) -> bytes:
    with open_read(path, decompress=False) as handle:
        return handle.read()


def read_text(path: str) -> str:
    """The file's text; a file that is not UTF-8 is a ``UserError`` naming the file, line and byte."""
    return decode_utf8(read_bytes(path), path)


def decode_utf8(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); "
                        "save the file as UTF-8") from None


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true/false", type(None): "null"}


def parse_json(text: str, path: str, *, line: int | None = None, expect: type | None = None):
    """``json.loads(text)``, or a ``UserError`` naming ``path`` and the line (``line``: the number of a JSON
    line, else where the parser stopped); ``expect`` (``dict``, ``list``) is the type the value must have."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = line if line is not None else exc.lineno
        raise UserError(f"{path}:{where}: not JSON ({exc.msg}, column {exc.colno}); fix or regenerate the file"
                        ) from None
    except RecursionError:
        raise UserError(f"{path}:{line or 1}: JSON nested too deeply to read") from None
    if expect is not None and not isinstance(value, expect):
        where = f"{path}:{line}" if line is not None else path
        raise UserError(f"{where}: is JSON {_JSON_TYPES.get(type(value), type(value).__name__)} where "
                        f"{_JSON_TYPES.get(expect, expect.__name__)} is expected")
    return value


def read_json(path: str, *, expect: type | None = None):
    """A JSON file's value; bad UTF-8, bad JSON or (``expect``) the wrong type is a one-line ``UserError``."""
    return parse_json(read_text(path), path, expect=expect)


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


# A file being written atomically: ``.NAME.<32 hex>.tmp`` beside ``NAME`` until it is renamed into place.
_TEMPORARY_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")


def temporary_path(path: str) -> str:
    """The name ``open_write_atomic`` writes ``path`` under until the file is whole."""
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")


def is_temporary(name: str) -> bool:
    """Whether a file name is one of ``temporary_path``'s (left behind only by a killed writer)."""
    return bool(_TEMPORARY_NAME.match(name))


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
    tmp = temporary_path(path)
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


def read_json_lines(prefix: str, *, what: str) -> Iterator:
    """Every JSON line of the files starting with ``prefix`` (a Beam job's ``WriteToText`` output), in
    file-name order."""
    for path in expand(prefix + "*", what=what):
        for number, line in enumerate(read_text(path).splitlines(), 1):
            if line.strip():
                yield parse_json(line, path, line=number)


def write_json_atomic(path: str, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
