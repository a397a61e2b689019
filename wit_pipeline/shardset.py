"""The shard-set format in one place: WebDataset tars, their ``manifest.json``, and how both are read and written.

A shard set is a folder of tars named ``shard_name(i) + ".tar"`` (``00000.tar``, ``00001.tar``, ...) and a
``manifest.json``::

    {"version": 1, "total_samples": N,
     "shards": [{"path": "00000.tar", "samples": n, "bytes": b, "sha256": "..."}, ...], ...}

Each writer adds fields of its own beside these (download: rows, settings; overlap filter: what it removed).

- **Tars** follow WebDataset: a sample is the consecutive members ``KEY.EXT`` that share ``KEY``; the key is the
  member path up to the first dot of its basename and the extension is lower-cased (``split_member_name``, the
  one key rule). ``ShardTarWriter`` writes PAX tars with a fixed mtime, owner and mode, so the same samples give
  the same bytes; ``iter_tar_samples`` / ``iter_tar_keys`` / ``iter_tar_members`` read them as a stream.
- **Damage**: Python's tarfile ends quietly at a cut on a member boundary, a short header or a broken one, so
  the readers check each tar whole as they stream it: the end-of-archive marker (two zero blocks, then zero
  padding to whole blocks) after the last member and, given its manifest row (``ShardDigest``), its size and
  sha256. A tar that is not whole raises ``DamagedShard`` (a ``tarfile.TarError``) after the samples before
  the damage; every reader counts it (overlap scan and filter, the trainer, ``wit shards verify``).
- **Manifests**: ``read_manifest`` / ``write_manifest`` (``MANIFEST_VERSION`` is written into each one),
  ``manifest_entry`` for a shard's row, ``manifest_samples`` for ``{path: samples}``, ``shard_digests`` for
  ``{path: ShardDigest}`` of shards listed in the manifest beside them.
- **Files other tools read**, beside the manifest: ``sizes.json`` (OpenCLIP's ``{tar file name: samples}``,
  written by ``write_manifest`` itself, so every writer has one) and a ``NNNNN_stats.json`` per shard in
  img2dataset's shape (``shard_stats_record``, ``write_shard_stats``; ``read_sizes`` / ``read_shard_stats``
  read them, ours or img2dataset's).
- **Hashing**: ``HashingStream`` counts and hashes the bytes written or read through it (a shard's size and
  sha256 as it is written, or as it is verified).

Writers: ``wit download``, ``wit overlap filter``, ``trainer.synthetic``. Readers: ``wit shards``, the overlap
scan, filter and report, and the trainer. Local paths are opened directly; Beam's filesystems
(``wit_pipeline.fileio``) are imported only for remote paths, so the trainer reads local shard sets without Beam.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import posixpath
import re
import tarfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Callable, Iterator, NamedTuple, Sequence

from .errors import UserError

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
SIZES_NAME = "sizes.json"
SHARD_STATS_SUFFIX = "_stats.json"
TAR_MTIME = 946684800            # 2000-01-01: fixed, so tars are reproducible

# WebDataset's rule: a sample's key is the member path up to the first dot of its basename.
_KEY_RE = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")


def shard_name(shard_id: int) -> str:
    """A shard's file stem: ``12`` -> ``"00012"``."""
    return f"{shard_id:05d}"


# -- paths: local directly, remote through Beam's filesystems ---------------------------------------------

def _is_remote(path: str) -> bool:
    return "://" in path


def _fileio():
    # Beam's filesystems load only when a remote path needs them: the trainer reads local shards without Beam.
    from . import fileio

    return fileio


def _join(directory: str, name: str) -> str:
    return posixpath.join(directory, name) if _is_remote(directory) else os.path.join(directory, name)


@contextmanager
def _open_read(path: str) -> Iterator[IO[bytes]]:
    if not _is_remote(path):
        try:
            handle = open(path, "rb")
        except OSError as exc:     # as fileio reports it: one line naming the file
            raise UserError(f"cannot open {path!r}: {exc.strerror or exc}") from exc
        with handle:
            yield handle
        return
    with _fileio().open_read(path, decompress=False) as handle:
        yield handle


# -- hashing ------------------------------------------------------------------------------------------------

class HashingStream(io.RawIOBase):
    """Counts (``size``) and hashes (``sha256``) every byte written to, or read from, ``stream`` through it.

    With ``copy_to``, bytes read are also written there: a shard is copied while it is being read.
    """

    def __init__(self, stream: IO[bytes], copy_to: IO[bytes] | None = None):
        super().__init__()
        self.stream, self.copy_to = stream, copy_to
        self.size = 0
        self._digest = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def _seen(self, data: bytes) -> None:
        self._digest.update(data)
        self.size += len(data)

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self._seen(data)
        if data and self.copy_to is not None:
            self.copy_to.write(data)
        return data

    def write(self, data) -> int:
        data = bytes(data)
        self.stream.write(data)
        self._seen(data)
        return len(data)

    def drain(self, chunk: int = 1 << 20) -> None:
        """Read to the end (the end-of-archive blocks and padding a tar reader leaves unread)."""
        while self.read(chunk):
            pass


# -- writing tars ---------------------------------------------------------------------------------------------

@dataclass
class TarSummary:
    samples: int
    bytes: int
    sha256: str


class ShardTarWriter:
    """Writes samples to a tar stream (PAX format, fixed headers); ``close()`` returns its ``TarSummary``."""

    def __init__(self, stream: IO[bytes]):
        self._hashing = HashingStream(stream)
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
        """``members``: extension -> bytes, written as ``KEY.EXT`` in sorted extension order."""
        for ext in sorted(members):
            self._add(f"{key}.{ext}", members[ext])
        self.samples += 1

    def add_member(self, info: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        """Copy one member with the header it was read with (``samples`` counts ``add_sample`` calls only)."""
        self._tar.addfile(info, data)

    def close(self) -> TarSummary:
        self._tar.close()
        self.summary = TarSummary(self.samples, self._hashing.size, self._hashing.sha256)
        return self.summary

    def abandon(self) -> None:
        """Drop an unfinished tar whose file is thrown away (a failed write, a full disk): tarfile's stream
        would otherwise flush its buffer into the closed file when collected, printing a traceback."""
        self._tar.closed = True
        self._tar.fileobj.closed = True


@contextmanager
def write_tar_atomic(path: str) -> Iterator[ShardTarWriter]:
    """A ``ShardTarWriter`` whose tar appears at ``path`` (whole) only when the block succeeds."""
    with _fileio().open_write_atomic(path) as handle:
        writer = ShardTarWriter(handle)
        try:
            yield writer
        except BaseException:
            writer.abandon()
            raise
        writer.close()


# -- reading tars ---------------------------------------------------------------------------------------------

def split_member_name(name: str) -> tuple[str, str] | None:
    """``(key, extension)`` of a tar member name (``000000001.JPG`` -> ``("000000001", "jpg")``);
    None for a name with no extension."""
    match = _KEY_RE.match(name)
    return (match.group(1), match.group(2).lower()) if match else None


class TarMember(NamedTuple):
    info: tarfile.TarInfo
    key: str | None              # None: not part of a sample (a directory, a name without an extension)
    extension: str | None
    file: IO[bytes] | None       # the member's data, readable until the next member is taken


class DamagedShard(tarfile.TarError):
    """A tar that is not whole: it ends early (no end-of-archive marker, a cut member or header), has a
    damaged header, or does not match its manifest row (size, sha256). Readers count the shard as damaged."""


class ShardDigest(NamedTuple):
    """What a shard's manifest row says its file is: checked while the tar is streamed."""
    bytes: int | None = None
    sha256: str | None = None


# What a broken archive raises from inside tarfile (compressed tars: the decompressor's errors too).
_TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError)


class _MemberData:
    """A member's data stream whose read errors (a member cut short) say ``DamagedShard``."""

    def __init__(self, file: IO[bytes]):
        self._file = file

    def read(self, size: int = -1) -> bytes:
        try:
            return self._file.read(size)
        except DamagedShard:
            raise
        except _TAR_ERRORS as exc:
            raise DamagedShard(f"a member is cut short ({exc.__class__.__name__}: {exc})") from None


def _header_recorder() -> type[tarfile.TarInfo]:
    """A ``TarInfo`` class (one per archive) that keeps the last header block tarfile read.

    Python's tarfile ends its member loop quietly at a missing, short or invalid header: only that block
    tells a whole archive (it ends with a zero block) from one cut at a member boundary or damaged there.
    """

    class Recording(tarfile.TarInfo):
        last_header = b""

        @classmethod
        def frombuf(cls, buf, encoding, errors):
            cls.last_header = buf
            return super().frombuf(buf, encoding, errors)

    return Recording


def _check_archive_end(archive: tarfile.TarFile, last_header: bytes) -> None:
    """After the last member: the end-of-archive marker (two zero blocks) and zero padding to a whole block."""
    at = archive.offset
    if len(last_header) < tarfile.BLOCKSIZE:
        raise DamagedShard(f"truncated: the archive stops at byte {at + len(last_header)} without its "
                           "end-of-archive marker")
    if last_header.count(0) != tarfile.BLOCKSIZE:
        raise DamagedShard(f"a damaged tar header at byte {at}")
    rest, nonzero = 0, False
    while chunk := archive.fileobj.read(1 << 16):
        rest += len(chunk)
        nonzero = nonzero or chunk.count(0) != len(chunk)
    if nonzero:
        raise DamagedShard(f"data after the end-of-archive marker at byte {at}: a damaged header")
    if rest < tarfile.BLOCKSIZE or rest % tarfile.BLOCKSIZE:
        raise DamagedShard(f"truncated: the archive stops at byte {at + tarfile.BLOCKSIZE + rest}, inside its "
                           "end-of-archive marker")


def _check_digest(stream: HashingStream, expected: ShardDigest) -> None:
    stream.drain()
    if expected.bytes is not None and stream.size != expected.bytes:
        raise DamagedShard(f"{stream.size} bytes where its manifest says {expected.bytes}")
    if expected.sha256 and stream.sha256 != expected.sha256:
        raise DamagedShard("its sha256 differs from its manifest's: the file was altered")


def iter_tar_members(stream: IO[bytes], expected: ShardDigest | None = None) -> Iterator[TarMember]:
    """Every member of a tar stream, in order, with its sample key (``split_member_name``).

    Once the last member is taken the archive is checked whole: its end-of-archive marker, and with
    ``expected`` (its manifest row) its size and sha256. A tar that is not whole raises ``DamagedShard``
    after the members before the damage (a member cut short raises it from ``file.read``).
    """
    hashing = HashingStream(stream) if expected is not None else None
    recorder = _header_recorder()
    try:
        with tarfile.open(fileobj=hashing or stream, mode="r|*", tarinfo=recorder) as archive:
            for info in archive:
                parts = split_member_name(info.name) if info.isfile() else None
                key, extension = parts if parts else (None, None)
                data = _MemberData(archive.extractfile(info)) if info.isfile() else None
                yield TarMember(info, key, extension, data)
            _check_archive_end(archive, recorder.last_header)
    except DamagedShard:
        raise
    except _TAR_ERRORS as exc:
        raise DamagedShard(f"not a readable tar ({exc.__class__.__name__}: {exc})".splitlines()[0]) from None
    if hashing is not None:
        _check_digest(hashing, expected)


@contextmanager
def _tar_source(source: str | IO[bytes]) -> Iterator[IO[bytes]]:
    if isinstance(source, str):
        with _open_read(source) as handle:
            yield handle
    else:
        yield source


def _grouped(source: str | IO[bytes], take: Callable[[TarMember], bytes | None],
             select: Callable[[str], bool] | None = None, expected: ShardDigest | None = None,
             ) -> Iterator[tuple[str, dict[str, bytes | None]]]:
    """``(key, {extension: take(member)})`` per sample: consecutive members sharing a key, in member order."""
    with _tar_source(source) as stream:
        key: str | None = None
        members: dict[str, bytes | None] = {}
        for member in iter_tar_members(stream, expected):
            if member.key is None or (select is not None and not select(member.info.name)):
                continue
            if member.key != key:
                if key is not None:
                    yield key, members
                key, members = member.key, {}
            members[member.extension] = take(member)
        if key is not None:
            yield key, members


def iter_tar_samples(source: str | IO[bytes], select: Callable[[str], bool] | None = None,
                     expected: ShardDigest | None = None) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` for every sample of a tar (a path or an open stream), in member order.

    ``select(member name)`` keeps only the members it accepts (the others are skipped unread). A tar that is
    not whole (``iter_tar_members``; ``expected``: its manifest row) raises ``DamagedShard`` after yielding
    the samples before the damage; the last sample before a cut is not yielded, as it may be incomplete.
    """
    return _grouped(source, lambda member: member.file.read(), select, expected)


def iter_tar_keys(source: str | IO[bytes], expected: ShardDigest | None = None) -> Iterator[tuple[str, set[str]]]:
    """``(key, {extensions})`` for every sample of a tar, without reading member data."""
    return ((key, set(members)) for key, members in _grouped(source, lambda member: None, None, expected))


# -- manifests ------------------------------------------------------------------------------------------------

def manifest_path(directory: str) -> str:
    return _join(directory, MANIFEST_NAME)


def manifest_entry(path: str, summary: TarSummary, **extra) -> dict:
    """A manifest's row for one shard: its path (relative to the manifest), samples, bytes and sha256."""
    return {"path": path, "samples": summary.samples, "bytes": summary.bytes, "sha256": summary.sha256, **extra}


def read_manifest(directory: str) -> dict | None:
    """The shard set's manifest, or ``None`` when the folder has none.

    A file that is not a shard manifest, or one written by a newer format version, is a ``UserError``.
    """
    path = manifest_path(directory)
    if _is_remote(path):
        fileio = _fileio()
        if not fileio.exists(path):
            return None
        text = fileio.read_text(path)
    else:
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    try:
        manifest = json.loads(text)
        if not isinstance(manifest, dict):
            raise TypeError(f"a JSON {type(manifest).__name__}, not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a shard manifest ({exc.__class__.__name__}: {exc})") from None
    if int(manifest.get("version", MANIFEST_VERSION)) > MANIFEST_VERSION:
        raise UserError(f"{path}: manifest version {manifest['version']} is newer than this wit-pipeline reads "
                        f"({MANIFEST_VERSION}); upgrade it")
    return manifest


def manifest_samples(manifest: dict, *, where: str = MANIFEST_NAME) -> dict[str, int]:
    """``{shard path: samples}`` in the manifest's order (``where`` names it in the error for a bad row)."""
    try:
        return {entry["path"]: int(entry["samples"]) for entry in manifest["shards"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{where}: not a shard manifest ({exc.__class__.__name__}: {exc})") from None


def _digest_of(entry) -> ShardDigest | None:
    """A manifest row's size and sha256, or None when it has neither in a usable form."""
    if not isinstance(entry, dict):
        return None
    size, sha = entry.get("bytes"), entry.get("sha256")
    size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    sha = sha.lower() if isinstance(sha, str) and re.fullmatch(r"[0-9a-fA-F]{64}", sha) else None
    return ShardDigest(size, sha) if size is not None or sha is not None else None


def shard_digests(paths: Sequence[str]) -> dict[str, ShardDigest]:
    """``{path: ShardDigest}`` for the shards listed in the ``manifest.json`` beside them (each folder's
    manifest read once); shards without a row are left out and read with the end-of-archive check alone."""
    by_folder: dict[str, list[str]] = {}
    for path in paths:
        folder = path.rsplit("/", 1)[0] if _is_remote(path) else os.path.dirname(path)
        by_folder.setdefault(folder, []).append(path)
    digests: dict[str, ShardDigest] = {}
    for folder, members in by_folder.items():
        manifest = read_manifest(folder or ".")
        shards = manifest.get("shards") if manifest else None
        if not isinstance(shards, list):
            continue
        rows = {entry.get("path"): entry for entry in shards if isinstance(entry, dict)}
        for path in members:
            digest = _digest_of(rows.get(posixpath.basename(path)))
            if digest is not None:
                digests[path] = digest
    return digests


def write_manifest(directory: str, manifest: dict) -> dict:
    """Write ``directory/sizes.json`` (``write_sizes``, from the manifest's shard rows) and then
    ``directory/manifest.json``, both atomically; the manifest gets the format's ``version``. Returns it."""
    record = {**manifest, "version": MANIFEST_VERSION}
    shards = record.get("shards")
    write_sizes(directory, {entry["path"]: entry["samples"] for entry in shards if isinstance(entry, dict)
                            and isinstance(entry.get("path"), str) and isinstance(entry.get("samples"), int)}
                if isinstance(shards, list) else {})
    _fileio().write_json_atomic(manifest_path(directory), record)
    return record


# -- files other tools read: OpenCLIP's sizes.json, img2dataset's per-shard NNNNN_stats.json --------------------

def write_sizes(directory: str, samples: dict[str, int]) -> None:
    """``directory/sizes.json``: OpenCLIP's ``{tar file name: samples}`` (it then needs no --train-num-samples)."""
    _fileio().write_json_atomic(_join(directory, SIZES_NAME), {posixpath.basename(p): n for p, n in samples.items()})


def read_sizes(directory: str) -> dict | None:
    """``sizes.json`` as a dict, ``None`` when there is none; one that is not a JSON object of counts is a
    ``UserError``."""
    return _read_json_object(_join(directory, SIZES_NAME), "not OpenCLIP's sizes.json",
                             lambda data: all(isinstance(v, int) for v in data.values()))


def shard_stats_name(tar_name: str) -> str:
    """The per-shard stats file of a tar: ``00012.tar`` -> ``00012_stats.json`` (img2dataset's name)."""
    base = posixpath.basename(tar_name)
    return (base[:-len(".tar")] if base.endswith(".tar") else base) + SHARD_STATS_SUFFIX


def shard_stats_record(classes: dict[str, int], start_time: float, end_time: float, **extra) -> dict:
    """A shard's stats in img2dataset's shape from its rows' coarse classes (``IMG2DATASET_CLASSES``:
    ``{class: rows}``): ``count`` (every row), ``successes`` (= samples in the tar), ``failed_to_download``,
    ``failed_to_resize``, ``duration``/``start_time``/``end_time`` (Unix seconds) and ``status_dict``
    (``{class: rows}``, as img2dataset's reader sums it); ``extra`` fields are added beside them."""
    return {"count": sum(classes.values()), "successes": classes.get("success", 0),
            "failed_to_download": classes.get("failed_to_download", 0),
            "failed_to_resize": classes.get("failed_to_resize", 0),
            "duration": round(end_time - start_time, 3), "start_time": start_time, "end_time": end_time,
            "status_dict": {k: v for k, v in sorted(classes.items()) if v}, **extra}


def write_shard_stats(directory: str, tar_name: str, record: dict) -> None:
    """``directory/NNNNN_stats.json`` of the tar ``tar_name``, atomically."""
    _fileio().write_json_atomic(_join(directory, shard_stats_name(tar_name)), record)


def read_shard_stats(directory: str, tar_name: str) -> dict | None:
    """A tar's ``NNNNN_stats.json`` (img2dataset's or ours), ``None`` when there is none; one without an integer
    ``successes`` and ``count`` is a ``UserError``."""
    return _read_json_object(_join(directory, shard_stats_name(tar_name)), "not a per-shard stats file",
                             lambda data: all(isinstance(data.get(k), int) for k in ("count", "successes")))


def _read_json_object(path: str, what: str, valid: Callable[[dict], bool]) -> dict | None:
    if _is_remote(path):
        if not _fileio().exists(path):
            return None
        text = _fileio().read_text(path)
    else:
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{path}: {what} ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or not valid(data):
        raise UserError(f"{path}: {what}")
    return data
