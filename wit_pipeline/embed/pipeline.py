"""``wit embed``: image and text embeddings of every sample of a shard set, in clip-retrieval's folder layout.

::

    (index, shard) pairs still to do -> EmbedShards [Spread -> Embed: EmbedShardFn] -> part records

One shard per element. ``EmbedShardFn.setup`` loads the model once per worker (``models.load_embedder``) and
starts ``--workers`` loader threads. For each shard, the worker's thread reads the tar as a stream
(``shardset.iter_tar_samples``, checked whole against its manifest row), the loader threads decode and
preprocess each batch's images while the model runs the batch before (``prepared_batches``: up to
``PREFETCH`` batches ahead), and the model embeds ``--batch-size`` samples at a time under
``torch.inference_mode`` (bf16 autocast with ``--precision bf16``). ``clip_score`` is the cosine of a
sample's image and text embeddings in float32, before the float16 cast. The part is written with
``parts.write_part`` (npy files, then the metadata parquet that commits it).

The driver (``run_embed``) checks the flags and the model in one line each, writes or checks ``embed.json``,
and sends only the shards whose part is not whole (``parts.part_record``): a killed run restarted redoes
the missing parts. It runs the job through ``StageRun`` (stage ``embed``); ``stats.json`` sums every part's
record, resumed or new. Records are samples: ``in`` every sample read (plus one for a shard that broke off),
``out`` the samples embedded, ``dropped``: ``missing_image`` (no image member), ``unreadable_image`` (it does
not decode) and ``damaged_shard`` (the tar is cut short or differs from its manifest row: the samples before
the damage are embedded, the part is redone on the next run). A sample without a caption is embedded with
the empty caption (counted ``samples_without_caption``). On the DirectRunner the job runs in one process
(one model, one GPU): ``--direct_num_workers`` / ``--direct_running_mode`` change that.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import apache_beam as beam
import numpy as np

from dedup.evalsets import image_member, json_member, list_tars, text_member

from .. import fileio
from ..beam import StageCounters
from ..errors import UserError
from ..options import check_values
from ..progress import progress
from ..shardset import DamagedShard, ShardDigest, iter_tar_samples, shard_digests
from ..stage import StageRun, dropped_counts, require_finished
from .models import Embedder, ModelSpec, describe_model, load_embedder, resolve_device, resolve_precision
from .options import EmbedOptions
from .parts import EMBED_JSON, FOLDERS, claim_folder, identity, part_record, read_record, write_part

__all__ = ["EmbedOptions", "run_embed", "EmbedShards", "EmbedShardFn", "embed_shard"]

log = logging.getLogger(__name__)

STAGE = "embed"
DROP_REASONS = ("missing_image", "unreadable_image", "damaged_shard")
PREFETCH = 2          # batches decoded ahead of the model


# -- one sample, one batch (pure) -----------------------------------------------------------------------------

@dataclass
class Prepared:
    """A sample ready for the model (``image`` set) or the reason it is dropped."""

    key: str
    url: str | None
    caption: str
    image: Any = None
    reason: str | None = None
    problem: str = ""


def prepare_sample(embedder: Embedder, key: str, members: dict[str, bytes]) -> Prepared:
    """Decode and preprocess one sample's image (in a loader thread); a bad image is a reason, never a raise."""
    meta = json_member(members)
    url = meta.get("url") if isinstance(meta.get("url"), str) else None
    caption = text_member(members, meta) or ""
    image = image_member(members)
    if image is None:
        return Prepared(key, url, caption, reason="missing_image")
    try:
        return Prepared(key, url, caption, image=embedder.prepare_image(image[1]))
    except Exception as exc:  # any decoder failure is this one sample's, never the job's
        return Prepared(key, url, caption, reason="unreadable_image", problem=f"{type(exc).__name__}: {exc}")


def prepared_batches(samples: Iterable[tuple[str, dict[str, bytes]]], prepare: Callable[..., Prepared],
                     batch_size: int, pool: ThreadPoolExecutor | None) -> Iterator[list[Prepared]]:
    """Batches of prepared samples, in shard order. With a pool, the next ``PREFETCH`` batches are being
    decoded while the caller runs the model on this one."""
    stream = iter(samples)
    chunks = iter(lambda: list(itertools.islice(stream, batch_size)), [])
    if pool is None:
        for chunk in chunks:
            yield [prepare(key, members) for key, members in chunk]
        return
    window: deque[list[Future]] = deque()
    try:
        for chunk in chunks:
            window.append([pool.submit(prepare, key, members) for key, members in chunk])
            if len(window) > PREFETCH:
                yield [future.result() for future in window.popleft()]
        while window:
            yield [future.result() for future in window.popleft()]
    finally:
        for futures in window:       # a shard that broke off: drop what was queued
            for future in futures:
                future.cancel()


@dataclass
class ShardEmbeddings:
    """One shard's embeddings and metadata columns, row-aligned, and its counts."""

    image: list[np.ndarray] = field(default_factory=list)
    text: list[np.ndarray] = field(default_factory=list)
    rows: dict[str, list] = field(default_factory=lambda: {"key": [], "shard": [], "url": [], "caption": [],
                                                           "clip_score": []})
    counts: Counter = field(default_factory=Counter)
    error: str | None = None

    def add(self, shard: str, kept: list[Prepared], image: np.ndarray, text: np.ndarray) -> None:
        self.image.append(image)
        self.text.append(text)
        self.rows["key"] += [p.key for p in kept]
        self.rows["shard"] += [shard] * len(kept)
        self.rows["url"] += [p.url for p in kept]
        self.rows["caption"] += [p.caption for p in kept]
        # the cosine of two unit vectors, in float32 before the embeddings are stored as float16
        self.rows["clip_score"] += np.einsum("ij,ij->i", image, text).astype(np.float32).tolist()

    def arrays(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.image:
            return np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float32)
        return np.concatenate(self.image), np.concatenate(self.text)

    def record(self, shard: str, index: int, seconds: float) -> dict:
        dropped = {reason: int(self.counts[f"dropped_{reason}"]) for reason in DROP_REASONS}
        return {"shard": shard, "index": index, "in": int(self.counts["in"]), "out": int(self.counts["out"]),
                "dropped": dropped, "samples_without_caption": int(self.counts["samples_without_caption"]),
                "error": self.error, "seconds": round(seconds, 3)}


def _embed_batch(embedder: Embedder, shard: str, batch: list[Prepared], result: ShardEmbeddings) -> None:
    result.counts["in"] += len(batch)
    kept = []
    for prepared in batch:
        if prepared.reason is None:
            kept.append(prepared)
            continue
        result.counts[f"dropped_{prepared.reason}"] += 1
        log.info("%s: sample %s dropped (%s) %s", shard, prepared.key, prepared.reason, prepared.problem)
    if not kept:
        return
    result.counts["out"] += len(kept)
    result.counts["samples_without_caption"] += sum(1 for p in kept if not p.caption)
    image, text = embedder.encode(embedder.collate([p.image for p in kept]),
                                  embedder.tokenize([p.caption for p in kept]))
    result.add(shard, kept, image, text)


def embed_shard(embedder: Embedder, shard: str, samples: Iterable[tuple[str, dict[str, bytes]]], batch_size: int,
                pool: ThreadPoolExecutor | None = None) -> ShardEmbeddings:
    """Embed every sample of one shard. A shard that breaks off keeps the samples before the damage and says
    why in ``error`` (counted ``damaged_shard``)."""
    result = ShardEmbeddings()
    prepare = functools.partial(prepare_sample, embedder)
    try:
        for batch in prepared_batches(samples, prepare, batch_size, pool):
            _embed_batch(embedder, shard, batch, result)
    except (DamagedShard, OSError, UserError) as exc:
        result.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        result.counts["in"] += 1
        result.counts["dropped_damaged_shard"] += 1
        log.warning("shard %s broke off after %d samples: %s", shard, result.counts["in"] - 1, result.error)
    return result


# -- the Beam job ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmbedJob:
    """What a worker needs (small and picklable: the model is loaded in ``setup``)."""

    out: str
    parts: int
    model: ModelSpec
    device: str
    precision: str
    batch_size: int
    workers: int
    digests: dict[str, ShardDigest] = field(default_factory=dict)


class EmbedShardFn(beam.DoFn):
    """``(index, shard path)`` -> the part's record, after writing the part."""

    def __init__(self, job: EmbedJob):
        self.job = job

    def setup(self):
        self.embedder = load_embedder(self.job.model, self.job.device, self.job.precision)
        self.pool = ThreadPoolExecutor(self.job.workers, thread_name_prefix="embed-load") if self.job.workers else None
        self.counters = StageCounters(STAGE)

    def teardown(self):
        if getattr(self, "pool", None) is not None:
            self.pool.shutdown(cancel_futures=True)

    def process(self, element):
        index, shard = element
        job = self.job
        started = time.monotonic()
        digest = job.digests.get(shard)
        samples = iter_tar_samples(shard, expected=digest) if digest else iter_tar_samples(shard)
        samples = progress(samples, desc=f"embed {os.path.basename(shard)}", unit="sample")
        result = embed_shard(self.embedder, shard, samples, job.batch_size, self.pool)
        image, text = result.arrays(job.model.dim)
        record = result.record(shard, index, time.monotonic() - started)
        write_part(job.out, index, job.parts, image, text, result.rows, record)
        self.counters.add({**result.counts, "parts_written": 1})
        log.info("embedded %s: %d samples in %.1f s", shard, record["out"], record["seconds"])
        yield record


class EmbedShards(beam.PTransform):
    """``(index, shard path)`` pairs -> part records, one shard per element."""

    def __init__(self, job: EmbedJob):
        super().__init__()
        self.job = job

    def expand(self, shards):
        return (
            shards
            | "Spread" >> beam.Reshuffle()     # few, large elements: spread them before the heavy work
            | "Embed" >> beam.ParDo(EmbedShardFn(self.job))
        )


# -- the stage ---------------------------------------------------------------------------------------------

def shard_list(spec: str) -> list[str]:
    """The shards ``--shards`` names, sorted: a part's index is its shard's place in this list."""
    paths = sorted(list_tars(spec))
    if not paths:
        raise UserError(f"--shards {spec!r}: no .tar shards there")
    missing = [p for p in paths if not fileio.is_remote(p) and not os.path.isfile(p)]
    if missing:
        raise UserError(f"shard {missing[0]!r} does not exist" + (f" (and {len(missing) - 1} more)"
                                                                  if len(missing) > 1 else ""))
    return paths


def _totals(records: list[dict]) -> Counter:
    totals: Counter = Counter()
    for record in records:
        totals["in"] += record["in"]
        totals["out"] += record["out"]
        totals["samples_without_caption"] += record.get("samples_without_caption", 0)
        for reason, count in record["dropped"].items():
            totals[f"dropped_{reason}"] += count
    return totals


def run_embed(options: EmbedOptions, beam_args: list[str] | None = None) -> dict:
    """Embed every sample of ``options.shards`` into ``options.out``; returns the stats record."""
    check_values(options)
    options.validate()
    shards = shard_list(options.shards)
    partial = require_finished(options.shards, allow_partial=options.allow_partial)
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    model = describe_model(options)
    wanted = identity(model.to_dict(), precision, shards)
    with StageRun(STAGE, options.out, settings=options, partial_inputs=partial) as stage:
        claim_folder(options.out, wanted)
        done = {i for i, shard in enumerate(shards) if part_record(options.out, i, len(shards), shard, model.dim)}
        todo = [(i, shard) for i, shard in enumerate(shards) if i not in done]
        if todo:
            job = EmbedJob(options.out, len(shards), model, device, precision, options.batch_size,
                           options.loader_threads(), shard_digests([shard for _, shard in todo]))
            pipeline = stage.pipeline(beam_args, workers=1)
            _ = pipeline | "Shards" >> beam.Create(todo) | "EmbedShards" >> EmbedShards(job)
            stage.run(pipeline)
        records = [read_record(options.out, i, len(shards)) for i in range(len(shards))]
        if any(record is None for record in records):
            raise RuntimeError(f"the embed job ended without writing every part under {options.out}")
        totals = _totals(records)
        embedded_now = sum(records[i]["out"] for i, _ in todo)
        return stage.finish(
            records_in=totals["in"], records_out=totals["out"], dropped=dropped_counts(totals, DROP_REASONS),
            outputs={"embeddings": options.out, "embed_json": fileio.join(options.out, EMBED_JSON),
                     **{name: fileio.join(options.out, folder) for name, folder in FOLDERS.items()}},
            model=model.to_dict(), dim=model.dim, precision=precision, device=device, parts=len(shards),
            parts_resumed=len(done), samples_without_caption=totals["samples_without_caption"],
            samples_per_second=round(embedded_now / max(stage.seconds, 1e-9), 1),
            broken_shards=[{"shard": r["shard"], "error": r["error"]} for r in records if r.get("error")])

