"""Reading WebDataset tar shards sample by sample: the one home for it (download resume and
verification, overlap scans and filters all read shards through here)."""

from __future__ import annotations

import re
import tarfile
from typing import Iterator

from . import fileio

# WebDataset's rule: a sample's key is the member path up to the first dot of its basename.
_KEY_RE = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")


def split_member_name(name: str) -> tuple[str, str] | None:
    """``(key, extension)`` of a tar member name (``000000001.jpg`` -> ``("000000001", "jpg")``);
    None for a name with no extension."""
    match = _KEY_RE.match(name)
    return (match.group(1), match.group(2).lower()) if match else None


def iter_tar_samples(path: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` for every sample of a WebDataset tar, streamed in member order.

    Members sharing a key are consecutive in a WebDataset tar (``000000001.jpg`` -> key
    ``000000001``, extension ``jpg``, lower-cased). Directories and dot-less names are skipped.
    A truncated or corrupt tar raises ``tarfile.TarError`` or ``EOFError`` after yielding the
    samples before the damage.
    """
    with fileio.open_read(path, decompress=False) as raw:
        with tarfile.open(fileobj=raw, mode="r|*") as archive:
            key: str | None = None
            members: dict[str, bytes] = {}
            for info in archive:
                if not info.isfile():
                    continue
                parts = split_member_name(info.name)
                if parts is None:
                    continue
                member_key, extension = parts
                handle = archive.extractfile(info)
                data = handle.read() if handle is not None else b""
                if member_key != key:
                    if key is not None:
                        yield key, members
                    key, members = member_key, {}
                members[extension] = data
            if key is not None:
                yield key, members
