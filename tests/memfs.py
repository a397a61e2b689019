"""``memfs://``: an in-memory Beam FileSystem with object-store semantics, for tests.

Beam finds a FileSystem by its URL scheme among the loaded subclasses, so
importing this module makes ``memfs://bucket/key`` paths work everywhere Beam's
``FileSystems`` is used, as ``gs://`` or ``s3://`` would. Like those: no
directories (a "directory" is a key prefix), an object appears whole when its
writer closes, listing is by prefix. Runs in one process only (the tests'
in-memory DirectRunner).
"""

from __future__ import annotations

import hashlib
import io
import threading
import time

from apache_beam.io.filesystem import BeamIOError, CompressedFile, CompressionTypes, FileMetadata, FileSystem

_objects: dict[str, bytes] = {}
_lock = threading.Lock()


def put(path: str, data: bytes) -> None:
    with _lock:
        _objects[path] = data


def get(path: str) -> bytes:
    with _lock:
        return _objects[path]


def keys(prefix: str) -> list[str]:
    with _lock:
        return sorted(k for k in _objects if k.startswith(prefix))


class _Upload(io.BytesIO):
    """Bytes written to an object; published when closed (as an object store's upload)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def close(self) -> None:
        if not self.closed:
            put(self.path, self.getvalue())
        super().close()


class MemoryFileSystem(FileSystem):
    @classmethod
    def scheme(cls):
        return "memfs"

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/")] + [p.strip("/") for p in paths])

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        now = time.time()
        with _lock:
            found = [(k, len(v)) for k, v in _objects.items() if k.startswith(dir_or_prefix)]
        for path, size in found:
            yield FileMetadata(path, size, now)

    @staticmethod
    def _wrap(raw, path, compression_type):
        compression_type = FileSystem._get_compression_type(path, compression_type)
        return raw if compression_type == CompressionTypes.UNCOMPRESSED else CompressedFile(raw, compression_type)

    def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        return self._wrap(_Upload(path), path, compression_type)

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        with _lock:
            data = _objects.get(path)
        if data is None:
            raise BeamIOError("Open operation failed", {path: FileNotFoundError(path)})
        return self._wrap(io.BytesIO(data), path, compression_type)

    def copy(self, source_file_names, destination_file_names):
        with _lock:
            for source, destination in zip(source_file_names, destination_file_names, strict=True):
                _objects[destination] = _objects[source]

    def rename(self, source_file_names, destination_file_names):
        with _lock:
            for source, destination in zip(source_file_names, destination_file_names, strict=True):
                _objects[destination] = _objects.pop(source)

    def exists(self, path):
        with _lock:
            return path in _objects

    def size(self, path):
        return len(get(path))

    def last_updated(self, path):
        return time.time()

    def checksum(self, path):
        return hashlib.md5(get(path)).hexdigest()

    def metadata(self, path):
        return FileMetadata(path, self.size(path), time.time())

    def delete(self, paths):
        with _lock:
            for path in paths:
                for key in [k for k in _objects if k == path or (path.endswith("/") and k.startswith(path))]:
                    del _objects[key]
