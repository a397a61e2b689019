"""Streaming WebDataset shards into training batches, resumable to the exact sample.

Shards are read with webdataset's tar reader from local paths, brace patterns,
``http(s)://`` (streamed through the project's guarded session: private and
loopback hosts refused unless ``--allow-private-networks``) and ``pipe:``
commands, and from any filesystem Beam knows
(``gs://``, ``s3://``, ``hdfs://``: a "directory" there is every ``.tar`` under
the prefix, its ``manifest.json`` read where present), streamed through
``wit_pipeline.fileio``. Every data-loader worker of every rank is one
*stream* (``global stream = rank * workers + worker``). A stream reads its
shards in *rounds*: round ``r`` opens ``shards_per_round`` shards chosen from
``(seed, stream, r)`` alone -- drawn with replacement from all shards
(resampling, the default) or, without resampling, taken in a per-epoch
permutation of the shards this stream owns (``shards[stream::streams]``, i.e.
split by node and then by worker; a round never spans two epochs, the last
one of an epoch reads the shards left) -- interleaves them, and shuffles samples in
a buffer that is emptied at the end of the round. A sample's random crop is
drawn from ``(seed, stream, round, index)``. So a stream's position is just
``(round, offset)``: a resumed stream regenerates round ``round`` and skips
``offset`` raw samples without decoding them, and continues as the
uninterrupted run would have.

With ``epochs`` (``--epochs``) a stream reads that many epochs and then sends
``done`` batches; each batch carries the tally of its samples' epochs
(``balance.EpochTally``), and with ``balance_cap`` a sample is used in an epoch
only when ``balance.keeps`` draws it; ``caption_fields`` (``--caption-keys``)
picks each use's caption field (``balance``: the coins and the rule).

Images are decoded with Pillow (JPEG ``draft`` mode decodes straight at a
reduced scale), cropped to a random square at train time (centre square at
eval), and captions tokenised, all in the workers; batches carry ``uint8``
images and the model normalises them on the device.

Fatal, with a message that names the shard and key: a sample without an image
or without a ``.txt`` caption (a shard set written wrong would otherwise train
on nothing), fewer shards than streams, and rounds that keep yielding nothing.
Counted and skipped: undecodable images or captions, unreadable shards,
damaged shards, samples on the blocklist, and (when balancing or a ``json:``
caption field needs it) samples whose json is not an object or whose
``queries`` is not a list of strings (``bad_json``).

A damaged shard (``wit_pipeline.shardset.DamagedShard``: cut short, a broken
header, or a size or sha256 other than its manifest row's) is counted
``damaged_shard`` once per read and logged with its path. Reading is a stream:
the whole samples before the damage are used (a cut is found where it is, a
changed sha256 only at the shard's end); the sample the damage falls in is not.
"""

from __future__ import annotations

import glob
import io
import logging
import math
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import torch
from PIL import Image

from wit_pipeline.errors import UserError
from wit_pipeline.shardset import (
    DamagedShard,
    ShardDigest,
    iter_tar_keys,
    iter_tar_samples,
    manifest_path,
    manifest_samples,
    read_manifest,
    shard_digests,
)

from .balance import JSON_PREFIX, EpochTally, draw_caption_field, field_text, keeps, sample_metadata, sample_queries
from .tokenizer import Tokenizer

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXT = "txt"
MAX_EMPTY_ROUNDS = 20


class DataFormatError(UserError):
    """The shards are not usable as training data (missing members, too few shards)."""


# ---------------------------------------------------------------------------------------------
# Which shards, and how many samples they hold
# ---------------------------------------------------------------------------------------------
@dataclass
class ShardSet:
    urls: list[str]
    epoch_samples: int | None       # samples in one pass over the shards (manifest, else counted)
    source: str                     # "manifest", "counted" or "unknown"
    digests: dict[str, ShardDigest] = field(default_factory=dict)   # {url: its manifest row's size, sha256}


def _expand_braces(pattern: str) -> list[str]:
    import braceexpand

    return list(braceexpand.braceexpand(pattern))


def _manifest_counts(directory: str) -> dict[str, int] | None:
    """``{shard path: samples}`` from the shard set's manifest (``wit_pipeline.shardset``) in its order,
    ``None`` without one. ``directory`` is local or on an object store."""
    manifest = read_manifest(directory)
    if manifest is None:
        return None
    remote = "://" in directory
    counts = manifest_samples(manifest, where=manifest_path(directory))
    return {(f"{directory}/{name}" if remote else os.path.normpath(os.path.join(directory, name))): samples
            for name, samples in counts.items()}


def count_tar_samples(path: str) -> int:
    """Samples in a local tar, from its member names alone (the shard-set key rule, ``wit_pipeline.shardset``);
    a damaged tar counts the samples before the damage (training counts the shard when it reads it)."""
    count = 0
    try:
        for _ in iter_tar_keys(path):
            count += 1
    except DamagedShard as exc:
        log.warning("damaged shard %s: %s (%d samples before the damage)", path, exc, count)
    return count


# Schemes webdataset opens itself; any other ``scheme://`` goes through Beam's filesystems.
_WDS_SCHEMES = ("http", "https", "sftp", "ftps", "scp", "ais", "htgs", "hf")


def _on_beam_filesystem(url: str) -> bool:
    """``gs://``, ``s3://``, ``hdfs://``, ...: a URL webdataset cannot open but Beam's FileSystems can."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and not url.startswith("pipe:") and scheme not in _WDS_SCHEMES


def _object_store_shards(spec: str) -> ShardSet:
    """Shards on an object store: prefixes and globs listed, sizes from the manifests beside them."""
    from wit_pipeline import fileio  # imports Beam: only here

    urls = [url for pattern in _expand_braces(spec) for url in fileio.expand(pattern, what="--shards")
            if url.endswith(".tar")]
    if not urls:
        raise UserError(f"--shards {spec!r}: no .tar shards there")
    counts: dict[str, int] = {}
    for directory in sorted({url.rsplit("/", 1)[0] for url in urls}):
        counts.update(_manifest_counts(directory) or {})
    if all(url in counts for url in urls):
        return ShardSet(urls, sum(counts[url] for url in urls), "manifest", shard_digests(urls))
    return ShardSet(urls, None, "unknown", shard_digests(urls))


def resolve_shards(spec: str) -> ShardSet:
    """Shard URLs from a directory, a (brace/glob) pattern, an ``http(s)://`` URL, a ``pipe:`` command,
    or a prefix or pattern on an object store.

    The epoch length comes from ``manifest.json`` beside the shards when there is
    one; local shards it does not list are counted; other remote shards without a
    manifest leave it unknown.
    """
    if _on_beam_filesystem(spec):
        return _object_store_shards(spec)
    if spec.startswith("pipe:") or "://" in spec:
        return ShardSet(_expand_braces(spec), None, "unknown")
    manifests: dict[str, dict[str, int] | None] = {}

    def manifest(directory: str) -> dict[str, int]:
        if directory not in manifests:
            manifests[directory] = _manifest_counts(directory)
        return manifests[directory] or {}

    if os.path.isdir(spec):
        urls = list(manifest(os.path.normpath(spec))) or sorted(glob.glob(os.path.join(spec, "*.tar")))
        if not urls:
            raise UserError(f"--shards {spec!r}: no .tar shards in that directory")
    else:
        urls = []
        for pattern in _expand_braces(spec):
            urls.extend(sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern])
        if not urls:
            raise UserError(f"--shards {spec!r} matches no files")
    missing = [u for u in urls if not os.path.isfile(u)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"shard {missing[0]!r} does not exist{more}")
    total, counted = 0, False
    for url in urls:
        known = manifest(os.path.dirname(os.path.normpath(url))).get(os.path.normpath(url))
        if known is None:
            known, counted = count_tar_samples(url), True
        total += known
    return ShardSet(urls, total, "counted" if counted else "manifest", shard_digests(urls))


def check_stream_count(shards: ShardSet, world_size: int, workers: int) -> None:
    streams = world_size * max(1, workers)
    if len(shards.urls) < streams:
        raise DataFormatError(
            f"{len(shards.urls)} shard(s) but {world_size} rank(s) x {max(1, workers)} data worker(s) = {streams} "
            f"streams: every stream needs at least one shard. Use fewer --workers or more, smaller shards.")


# ---------------------------------------------------------------------------------------------
# Samples
# ---------------------------------------------------------------------------------------------
def image_key(sample: dict) -> str | None:
    return next((ext for ext in IMAGE_EXTS if ext in sample), None)


def check_sample(sample: dict) -> None:
    """Raise ``DataFormatError`` unless the sample has an image and a caption."""
    missing = []
    if image_key(sample) is None:
        missing.append("an image (." + "/.".join(IMAGE_EXTS) + ")")
    if CAPTION_EXT not in sample:
        missing.append("a caption (.txt)")
    if missing:
        members = ", ".join("." + k for k in sorted(sample) if not k.startswith("__")) or "none"
        raise DataFormatError(
            f"shard {sample.get('__url__')!r}: sample {sample.get('__key__')!r} lacks {' and '.join(missing)} "
            f"(its members: {members}). Every sample needs both; keys must not contain dots.")


def decode_image(data: bytes, size: int, rng: random.Random | None = None,
                 scale: tuple[float, float] = (0.9, 1.0)) -> np.ndarray:
    """``uint8 [3, size, size]``: a random square crop (``rng``) or the centre square, resized."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (size, size))
        image = image.convert("RGB")
    width, height = image.size
    short = min(width, height)
    if rng is None:
        side = short
        left, top = (width - side) // 2, (height - side) // 2
    else:
        side = max(1, int(round(short * rng.uniform(*scale))))
        left, top = rng.randint(0, width - side), rng.randint(0, height - side)
    image = image.resize((size, size), Image.BICUBIC, box=(left, top, left + side, top + side))
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()


def load_image_file(path: str, size: int) -> np.ndarray:
    with open(path, "rb") as handle:
        return decode_image(handle.read(), size)


def load_blocklist(path: str) -> frozenset[str]:
    """Sample keys to exclude: ``wit overlap``'s ``overlap.json`` (or its directory), JSON lines with
    ``shard_key``/``key``, or a text file with one key per line."""
    if os.path.isdir(path):
        path = os.path.join(path, "overlap.json")
    from wit_pipeline import fileio  # remote blocklists too (imports Beam: only here)

    text = fileio.read_text(path)
    keys: set[str] = set()

    def collect(node) -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                if name in ("shard_key", "key") and isinstance(value, str):
                    keys.add(value)
                else:
                    collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    if path.endswith(".json"):      # bad JSON: a one-line error naming the file and line
        collect(fileio.parse_json(text, path))
    elif path.endswith(".jsonl"):
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                collect(fileio.parse_json(line, path, line=number))
    else:
        keys.update(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return frozenset(keys)


def _opened(urls: Iterable[str], on_error, allow_private_networks: bool = False) -> Iterator[dict]:
    """``{"url", "stream"}`` for each shard (webdataset's ``url_opener``, plus Beam's filesystems; ``http(s)``
    through the project's guarded session, streamed: private addresses only with ``allow_private_networks``)."""
    from webdataset.gopen import gopen

    for url in urls:
        try:
            if _on_beam_filesystem(url):
                from wit_pipeline import fileio

                stream = fileio.open_stream(url)
            elif url.startswith(("http://", "https://")):
                from wit_pipeline.http import open_url_stream

                stream = open_url_stream(url, allow_private_networks=allow_private_networks)
            else:
                stream = gopen(url)
        except Exception as exc:  # noqa: BLE001 - the handler decides (skip and count, or stop)
            exc.args = exc.args + (url,)
            if on_error(exc):
                continue
            return
        yield {"url": url, "stream": stream}


def _tar_samples(urls: Iterable[str], on_error, select_files=None,
                 digests: dict[str, ShardDigest] | None = None, allow_private_networks: bool = False
                 ) -> Iterator[dict]:
    """Samples as webdataset dicts (``__key__``, ``__url__``, one entry per extension), read with the
    shard-set reader (a shard with a row in ``digests`` is checked against it); ``on_error(exc)`` decides on a
    shard that cannot be read or is damaged (``DamagedShard``): True skips the rest of it."""
    for source in _opened(urls, on_error, allow_private_networks):
        url = source["url"]
        expected = (digests or {}).get(url)
        try:
            for key, members in iter_tar_samples(source["stream"], select=select_files, expected=expected):
                yield {"__key__": key, "__url__": url, **members}
        except Exception as exc:  # noqa: BLE001 - the handler decides (skip and count, or stop)
            exc.args = exc.args + (url,)
            if not on_error(exc):
                return


def read_captions(urls: list[str], limit: int, allow_private_networks: bool = False) -> list[str]:
    """The first ``limit`` captions of the shards, in shard order (for training the tokenizer)."""
    captions: list[str] = []

    def skip(exc: Exception) -> bool:
        log.warning("reading captions: %s", exc)
        return True

    for sample in _tar_samples(urls, skip, select_files=lambda name: name.endswith("." + CAPTION_EXT),
                               allow_private_networks=allow_private_networks):
        if CAPTION_EXT in sample:
            captions.append(sample[CAPTION_EXT].decode("utf-8", errors="replace"))
            if len(captions) >= limit:
                break
    return captions


def read_json_members(urls: list[str], allow_private_networks: bool = False) -> Iterator[dict]:
    """Every sample of the shards with its ``.json`` member alone (when it has one), in shard order;
    unreadable or damaged shard data is logged and passed over."""
    def skip(exc: Exception) -> bool:
        log.warning("reading the shards' json: %s", exc)
        return True

    yield from _tar_samples(urls, skip, select_files=lambda name: name.endswith(".json"),
                            allow_private_networks=allow_private_networks)


def check_first_samples(url: str, n: int = 8, allow_private_networks: bool = False) -> None:
    """Fail before training starts when the first shard's samples lack an image or a caption."""
    def reraise(exc: Exception) -> bool:
        if isinstance(exc, DamagedShard):     # the samples before the damage were checked; training counts it
            return True
        raise UserError(f"cannot read shard {url!r}: {exc}")

    for index, sample in enumerate(_tar_samples([url], reraise, allow_private_networks=allow_private_networks)):
        check_sample(sample)
        if index + 1 >= n:
            break


# ---------------------------------------------------------------------------------------------
# The stream
# ---------------------------------------------------------------------------------------------
def _shuffled(samples: Iterable[dict], size: int, rng: random.Random) -> Iterator[dict]:
    buffer: list[dict] = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) >= size:
            index = rng.randrange(len(buffer))
            buffer[index], buffer[-1] = buffer[-1], buffer[index]
            yield buffer.pop()
    rng.shuffle(buffer)
    yield from buffer


def _interleave(iterators: list[Iterator[dict]]) -> Iterator[dict]:
    active = list(iterators)
    while active:
        for iterator in list(active):
            try:
                yield next(iterator)
            except StopIteration:
                active.remove(iterator)


@dataclass
class _Pending:
    """What a stream has read since its last batch: the batch being filled and the counts that go with it."""

    images: list[np.ndarray] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)          # each pending sample's epoch
    skipped: Counter = field(default_factory=Counter)
    caption_fallbacks: int = 0
    tallies: dict[int, EpochTally] = field(default_factory=dict)

    def tally(self, epoch: int) -> EpochTally:
        return self.tallies.setdefault(epoch, EpochTally())

    def add(self, image: np.ndarray, caption: str, epoch: int) -> None:
        self.images.append(image)
        self.captions.append(caption)
        self.epochs.append(epoch)

    def emit(self, **fields) -> dict:
        """The counts as a batch's bookkeeping (``tally`` in checkpoint form), and a fresh start."""
        batch = {**fields, "skipped": dict(self.skipped), "caption_fallbacks": self.caption_fallbacks,
                 "tally": {epoch: tally.to_dict() for epoch, tally in self.tallies.items()}}
        self.images, self.captions, self.epochs = [], [], []
        self.skipped, self.caption_fallbacks, self.tallies = Counter(), 0, {}
        return batch


class ShardStream(torch.utils.data.IterableDataset):
    """Stream of batches ``{"image", "text", "stream", "position", "skipped", "caption_fallbacks", "tally",
    "done"}``: infinite, or with ``epochs`` that many passes over the shards without replacement.

    ``positions`` maps a rank-local stream number to the ``(round, offset)`` it
    starts from; ``stream_shift`` rotates worker numbers onto streams, so that
    after ``k`` consumed batches a fresh loader's first batch comes from stream
    ``k % workers``, as it would have without the restart.

    With ``epochs``, rounds never span two epochs, every batch carries ``tally`` (``{epoch:
    EpochTally.to_dict()}`` of the samples read since the previous batch) and a stream that has read its
    last epoch yields ``done`` batches (no image or text; the first carries the last tally, its partial batch
    counted ``unused``) for ever, so the DataLoader's turn order over workers never changes.
    ``balance_cap`` with ``query_counts`` keeps each sample in an epoch by ``balance.keeps``;
    ``caption_fields`` (``balance.parse_caption_keys``) draws each use's caption field.
    """

    def __init__(self, urls: list[str], tokenizer: Tokenizer, *, batch_size: int, image_size: int,
                 seed: int = 0, rank: int = 0, world_size: int = 1, resample: bool = True,
                 shards_per_round: int = 4, shuffle_buffer: int = 2000, blocklist: frozenset[str] = frozenset(),
                 positions: dict[int, tuple[int, int]] | None = None, stream_shift: int = 0,
                 crop_scale: tuple[float, float] = (0.9, 1.0), digests: dict[str, ShardDigest] | None = None,
                 allow_private_networks: bool = False, epochs: int | None = None, balance_cap: int | None = None,
                 query_counts: dict[str, int] | None = None,
                 caption_fields: tuple[tuple[str, float], ...] | None = None):
        super().__init__()
        self.urls = list(urls)
        self.allow_private_networks = allow_private_networks   # for http(s) shards on private/loopback hosts
        self.digests = dict(digests or {})      # {url: manifest row}: a shard that differs counts as damaged
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.image_size = image_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.resample = resample and epochs is None      # an epoch is a pass without replacement
        self.shards_per_round = shards_per_round
        self.shuffle_buffer = shuffle_buffer
        self.blocklist = blocklist
        self.positions = dict(positions or {})
        self.stream_shift = stream_shift
        self.crop_scale = crop_scale
        self.epochs = epochs
        self.balance_cap = balance_cap
        self.query_counts = dict(query_counts or {})
        self.caption_fields = caption_fields
        self.needs_metadata = bool(balance_cap) or any(name.startswith(JSON_PREFIX)
                                                       for name, _ in caption_fields or ())

    def rounds_per_epoch(self, stream: int, streams: int) -> int:
        """Rounds in one pass over this stream's shards (without resampling)."""
        return math.ceil(len(self.urls[stream::streams]) / self.shards_per_round)

    # Shards of one round: a pure function of (seed, stream, round).
    def round_urls(self, stream: int, streams: int, round_index: int) -> list[str]:
        k = self.shards_per_round
        if self.resample:
            rng = random.Random(f"{self.seed}/shards/{stream}/{round_index}")
            return [self.urls[rng.randrange(len(self.urls))] for _ in range(k)]
        own = self.urls[stream::streams]
        epoch, index = divmod(round_index, self.rounds_per_epoch(stream, streams))
        order = random.Random(f"{self.seed}/epoch/{stream}/{epoch}").sample(own, len(own))
        return order[index * k:(index + 1) * k]

    def round_epoch(self, stream: int, streams: int, round_index: int) -> int:
        """The epoch a round's samples belong to (resampling: the round itself, for the caption coin)."""
        return round_index if self.resample else round_index // self.rounds_per_epoch(stream, streams)

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        workers = info.num_workers if info else 1
        local = ((info.id if info else 0) + self.stream_shift) % workers
        stream, streams = self.rank * workers + local, self.world_size * workers
        if len(self.urls) < streams:
            raise DataFormatError(f"{len(self.urls)} shard(s) for {streams} streams")
        round_index, offset = self.positions.get(local, (0, 0))
        rounds = self.rounds_per_epoch(stream, streams) * self.epochs if self.epochs is not None else None
        pending = _Pending()

        def unreadable(exc: Exception) -> bool:
            if isinstance(exc, DamagedShard):
                pending.skipped["damaged_shard"] += 1
                log.warning("damaged shard %s: %s; its samples before the damage were used", exc.args[-1], exc.args[0])
            else:
                pending.skipped["unreadable_shard"] += 1
                log.warning("skipping unreadable shard data: %s", exc)
            return True

        empty_rounds = 0
        while rounds is None or round_index < rounds:
            urls = self.round_urls(stream, streams, round_index)
            epoch = self.round_epoch(stream, streams, round_index)
            shuffle_rng = random.Random(f"{self.seed}/shuffle/{stream}/{round_index}")
            samples = _shuffled(_interleave([iter(_tar_samples([u], unreadable, digests=self.digests,
                                                               allow_private_networks=self.allow_private_networks))
                                             for u in urls]),
                                self.shuffle_buffer, shuffle_rng)
            used = 0
            for index, sample in enumerate(samples):
                check_sample(sample)
                if index < offset or self._take(sample, pending, (stream, round_index, index), epoch):
                    used += 1
                if len(pending.images) == self.batch_size:
                    yield self._batch(pending, local, (round_index, index + 1))
            if rounds is not None and (round_index + 1) % self.rounds_per_epoch(stream, streams) == 0:
                pending.tally(epoch).streams_done += 1
            empty_rounds = 0 if used else empty_rounds + 1
            if empty_rounds >= MAX_EMPTY_ROUNDS:
                raise DataFormatError(f"stream {stream}: {MAX_EMPTY_ROUNDS} rounds of shards in a row gave no usable "
                                      f"sample (last round: {urls}); are the shards readable?")
            round_index, offset = round_index + 1, 0
        yield from self._finished(pending, local, round_index)

    def _take(self, sample: dict, pending: _Pending, where: tuple[int, int, int], epoch: int) -> bool:
        """Add ``sample`` to the pending batch unless it is skipped (blocklist, bad json, corrupt: counted) or
        not drawn this epoch; True when it was readable (drawn or not)."""
        key = sample["__key__"]
        tally = pending.tally(epoch)
        tally.seen += 1
        if key in self.blocklist:
            pending.skipped["blocklist"] += 1
            return False
        metadata, queries = None, None
        if self.needs_metadata:
            metadata = sample_metadata(sample)
            try:
                if metadata is None:
                    raise ValueError("its json is not a JSON object")
                queries = sample_queries(metadata)
            except ValueError as exc:
                pending.skipped["bad_json"] += 1
                log.debug("skipping sample %s in %s: %s", key, sample.get("__url__"), exc)
                return False
        if self.balance_cap and not keeps(key, queries, self.query_counts, self.balance_cap, self.seed, epoch):
            return True
        try:
            rng = random.Random(f"{self.seed}/crop/{where[0]}/{where[1]}/{where[2]}")
            image = decode_image(sample[image_key(sample)], self.image_size, rng, self.crop_scale)
            caption, fell_back = self._caption(sample, metadata, epoch)
        except Exception as exc:  # a corrupt sample never stops training
            pending.skipped["corrupt"] += 1
            log.debug("skipping corrupt sample %s in %s: %s", key, sample.get("__url__"), exc)
            return False
        tally.add_kept(key, queries)
        tally.caption_fallbacks += fell_back
        pending.caption_fallbacks += fell_back
        pending.add(image, caption, epoch)
        return True

    def _caption(self, sample: dict, metadata: dict | None, epoch: int) -> tuple[str, bool]:
        """This use's caption, and whether its drawn field was missing (the ``.txt`` used instead)."""
        if self.caption_fields:
            name = draw_caption_field(self.caption_fields, self.seed, epoch, sample["__key__"])
            if name != CAPTION_EXT:
                text = field_text(sample, name, metadata)
                if text is not None:
                    return text, False
                return sample[CAPTION_EXT].decode("utf-8"), True
        return sample[CAPTION_EXT].decode("utf-8"), False

    def _batch(self, pending: _Pending, local: int, position: tuple[int, int]) -> dict:
        image = torch.from_numpy(np.stack(pending.images))
        text = torch.from_numpy(self.tokenizer(pending.captions))
        batch = pending.emit(image=image, text=text, stream=local, position=position, done=False)
        if self.epochs is None:
            batch["tally"] = {}          # an endless stream's epochs are not recorded
        return batch

    def _finished(self, pending: _Pending, local: int, rounds: int) -> Iterator[dict]:
        """After the last epoch: ``done`` batches for ever; the first counts the partial batch ``unused``."""
        for epoch in pending.epochs:
            pending.tally(epoch).unused += 1
        while True:
            yield pending.emit(stream=local, position=(rounds, 0), done=True)


def make_loader(dataset: ShardStream, workers: int, pin_memory: bool = False) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=workers, pin_memory=pin_memory,
        prefetch_factor=4 if workers else None, worker_init_fn=_worker_init if workers else None)


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)


def worker_error_message(exc: BaseException) -> str:
    """The original one-line message of an error re-raised by the DataLoader from a worker."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        if "DataFormatError: " in line:
            return line.split("DataFormatError: ", 1)[1]
    return lines[-1] if lines else str(exc)
