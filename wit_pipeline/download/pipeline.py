"""``wit download`` as a library call: plan the shards, download them with Beam, write manifest and stats.

1. **Plan** (driver): stream the input, cut it into shards (``reader``), and
   write each shard that needs work as a small parquet under ``OUT/_work/``.
   A shard needs work unless its status parquet exists, covers the same
   number of rows and its tar has the recorded size; with ``--retry-failed``,
   complete shards with retryable failures are redone too (successes copied).
2. **Download** (Beam): ``Create(shards) | Reshuffle | ParDo(DownloadShard)``; a
   shard is the unit of work, each worker holds one guarded session and a
   thread pool. ``--processes N`` runs N DirectRunner workers (multi-processing).
3. **Drop duplicates** (optional, Beam): successes grouped by sha256 of the
   original bytes; all but the lowest key become ``duplicate`` and leave their tar.
4. **Manifest and stats**: ``manifest.json`` (every shard's samples, bytes,
   sha256) and ``stats.json`` (totals and failure breakdown over all shards).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from .. import __version__, fileio
from ..beam import counter, pipeline_options, run
from ..errors import UserError
from ..tario import iter_tar_samples
from .downloader import DownloadConfig, Previous, load_previous, process_shard
from .fetch import FetchOptions, open_session
from .images import ImageChecks
from .reader import InputRow, iter_rows, shard_rows
from .resize import RESIZE_MODES
from .writer import (WORK_DIR, list_shards, manifest_entry, read_shard_meta, read_status,
                     remove_stale_temporaries, shard_name, write_status, write_tar_atomic)

log = logging.getLogger(__name__)
STAGE = "download"


@dataclass(frozen=True)
class DownloadOptions:
    input: str
    out: str
    image_size: int = 256
    resize_mode: str = "border"
    samples_per_shard: int = 10000
    processes: int | None = None                   # None: the Beam stage default (one worker per core)
    threads: int = 32
    timeout: float = 10.0
    retries: int = 2
    max_bytes: int = 20 << 20
    min_image_size: int = 200
    max_aspect_ratio: float = 3.0
    allow_private_networks: bool = False
    retry_failed: tuple[str, ...] | None = None     # None: no; (): every failure; else these reasons
    drop_duplicates: bool = False
    per_host_limit: int = 16
    encode_quality: int = 95

    def validate(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise UserError(f"--resize-mode {self.resize_mode!r}: choose from {', '.join(RESIZE_MODES)}")
        for name in ("image_size", "samples_per_shard", "processes", "threads", "max_bytes", "per_host_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
        if self.timeout <= 0:
            raise UserError("--timeout must be positive")
        if self.retries < 0 or self.min_image_size < 0:
            raise UserError("--retries and --min-image-size cannot be negative")
        if self.max_aspect_ratio < 1:
            raise UserError("--max-aspect-ratio must be at least 1")
        if not 1 <= self.encode_quality <= 100:
            raise UserError("--encode-quality must be within 1..100")

    def output_settings(self) -> dict:
        """The flags that shape the samples written: a resume must not mix shards made with other values."""
        return {"image_size": self.image_size, "resize_mode": self.resize_mode, "min_image_size": self.min_image_size,
                "max_aspect_ratio": self.max_aspect_ratio, "encode_quality": self.encode_quality}

    def config(self) -> DownloadConfig:
        return DownloadConfig(
            image_size=self.image_size, resize_mode=self.resize_mode, samples_per_shard=self.samples_per_shard,
            checks=ImageChecks(min_image_size=self.min_image_size, max_aspect_ratio=self.max_aspect_ratio),
            fetch=FetchOptions(timeout=self.timeout, retries=self.retries, max_bytes=self.max_bytes,
                               allow_private_networks=self.allow_private_networks,
                               per_host_limit=self.per_host_limit, threads=self.threads),
            encode_quality=self.encode_quality)


@dataclass
class DownloadResult:
    out: str
    shards: int
    rows: int
    samples: int
    done_now: int                     # shards (re)done by this run
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


# -- 1. plan --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShardTask:
    shard_id: int
    work_path: str                    # the shard's input rows
    retry: bool                       # redo failed rows of a complete shard, keeping its successes
    input_sha256: str                 # fingerprint of the shard's input rows (kept in its status parquet)


def rows_digest(rows: list[InputRow]) -> str:
    """A fingerprint of a shard's input: a resume only trusts a shard written from the same rows."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row.url, row.text, row.extra], sort_keys=True, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def complete_shard_meta(out: str, shard_id: int, rows: int, input_sha256: str) -> dict | None:
    """The shard's metadata when its status parquet exists, was written from the same rows, and its tar is
    whole; None otherwise (the shard is to be written)."""
    meta = read_shard_meta(fileio.join(out, f"{shard_name(shard_id)}.parquet"))
    if meta is None or meta.get("rows") != rows or meta.get("input_sha256") != input_sha256:
        return None
    tar = fileio.join(out, f"{shard_name(shard_id)}.tar")
    try:
        from apache_beam.io.filesystems import FileSystems

        whole = FileSystems.match([tar])[0].metadata_list[0].size_in_bytes == meta["bytes"]
    except Exception:  # noqa: BLE001 - missing tar
        return None
    return meta if whole else None


def check_same_settings(options: DownloadOptions, shard_id: int, meta: dict) -> None:
    """A complete shard made with other image settings stops the run: resuming would mix the two."""
    written, wanted = meta.get("settings"), options.output_settings()
    if written is None or written == wanted:
        return
    changed = ", ".join(f"--{name.replace('_', '-')} {written.get(name)} (now {value})"
                        for name, value in wanted.items() if written.get(name) != value)
    raise UserError(f"{options.out}: shard {shard_name(shard_id)} was written with {changed}; "
                    "resume with the same settings, or write to a new --out")


def _has_retryable(out: str, shard_id: int, retry: tuple[str, ...]) -> bool:
    previous = load_previous(out, shard_id, frozenset(retry) if retry else None)
    return any(previous.wants_retry(key) for key in previous.status)


def _write_work(path: str, rows: list[InputRow]) -> None:
    import io

    table = pa.table({"url": [r.url for r in rows], "text": [r.text for r in rows],
                      "extra": [json.dumps(r.extra, sort_keys=True, default=str) for r in rows]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    fileio.write_bytes_atomic(path, buffer.getvalue())


def read_work(path: str) -> list[InputRow]:
    table = read_status(path)
    return [InputRow(url=u, text=t, extra=json.loads(e))
            for u, t, e in zip(table["url"].to_pylist(), table["text"].to_pylist(), table["extra"].to_pylist())]


def plan(options: DownloadOptions) -> tuple[list[ShardTask], int, int]:
    """Stream the input; returns (tasks, number of shards, number of rows)."""
    tasks, shards, total = [], 0, 0
    work = fileio.join(options.out, WORK_DIR)
    for shard_id, rows in shard_rows(iter_rows(options.input), options.samples_per_shard):
        shards, total = shard_id + 1, total + len(rows)
        digest = rows_digest(rows)
        meta = complete_shard_meta(options.out, shard_id, len(rows), digest)
        if meta is not None:
            check_same_settings(options, shard_id, meta)
        complete = meta is not None
        retry = complete and options.retry_failed is not None and _has_retryable(
            options.out, shard_id, options.retry_failed)
        if complete and not retry:
            continue
        path = fileio.join(work, f"{shard_name(shard_id)}.parquet")
        _write_work(path, rows)
        tasks.append(ShardTask(shard_id, path, retry, digest))
    if total == 0:
        raise UserError(f"--input {options.input!r} has no rows")
    return tasks, shards, total


# -- 2. download ----------------------------------------------------------------------------------------

class DownloadShard(beam.DoFn):
    """Downloads whole shards; one guarded session (DNS cache, keep-alive pool) per worker."""

    def __init__(self, out: str, config: DownloadConfig, retry_failed: tuple[str, ...] | None, settings: dict):
        self.out, self.config, self.retry_failed, self.settings = out, config, retry_failed, settings
        self.session = None

    def setup(self):
        self.session = open_session(self.config.fetch)
        self.shards = counter(STAGE, "shards_written")

    def process(self, task: ShardTask):
        rows = read_work(task.work_path)
        previous: Previous | None = None
        if task.retry:
            previous = load_previous(self.out, task.shard_id,
                                     frozenset(self.retry_failed) if self.retry_failed else None)
        started = time.monotonic()
        counts = process_shard(self.out, task.shard_id, rows, self.config, self.session, previous,
                               extra_meta={"input_sha256": task.input_sha256, "settings": self.settings})
        for status, n in counts.items():
            counter(STAGE, f"status/{status}").inc(n)
        self.shards.inc()
        log.info("shard %s: %d rows, %d samples in %.1f s", shard_name(task.shard_id), len(rows),
                 counts.get("success", 0), time.monotonic() - started)
        yield task.shard_id

    def teardown(self):
        if self.session is not None:
            self.session.close()
            self.session = None


def _beam_args(beam_args: list[str] | None, processes: int | None) -> list[str]:
    """``--processes N``: N DirectRunner workers (separate processes when N > 1, else in the driver).

    Without it, the project's Beam defaults apply (``wit_pipeline.beam``: one worker process per core).
    Explicit Beam flags (``--runner``, ``--direct_num_workers``, ``--direct_running_mode``) win.
    """
    args = list(beam_args or [])
    named = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    runner = next((a.split("=", 1)[1] for a in args if a.startswith("--runner=")), "DirectRunner")
    if runner not in ("DirectRunner", "direct"):
        return args
    if processes is not None and "--direct_num_workers" not in named:
        args.append(f"--direct_num_workers={processes}")
    if processes is not None and "--direct_running_mode" not in named:
        args.append("--direct_running_mode=" + ("multi_processing" if processes > 1 else "in_memory"))
    if "--default_sdk_harness_log_level" not in named:   # worker processes: warnings and errors only
        args.append("--default_sdk_harness_log_level=WARNING")
    return args


def _run_downloads(options: DownloadOptions, tasks: list[ShardTask], beam_args: list[str]) -> dict[str, int]:
    if not tasks:
        return {}
    p = beam.Pipeline(options=pipeline_options(beam_args))
    _ = (p | "Shards" >> beam.Create(tasks)
         | "Spread" >> beam.Reshuffle()
         | "Download" >> beam.ParDo(DownloadShard(options.out, options.config(), options.retry_failed,
                                                         options.output_settings())))
    return run(p, STAGE)


# -- 3. exact duplicates ----------------------------------------------------------------------------------

def _successes(out: str, shard_id: int):
    table = read_status(fileio.join(out, f"{shard_name(shard_id)}.parquet"), columns=["key", "status", "sha256"])
    for key, status, sha in zip(*(table[c].to_pylist() for c in ("key", "status", "sha256"))):
        if status == "success" and sha:
            yield sha, (shard_id, key)


def _duplicates_of(item):
    _sha, places = item
    places = sorted(places, key=lambda p: p[1])
    first = places[0][1]
    for shard_id, key in places[1:]:
        yield shard_id, (key, first)


def drop_from_shard(out: str, shard_id: int, drops: dict[str, str]) -> None:
    """Rewrite a shard without the samples in ``drops`` (key -> kept key), marking them ``duplicate``."""
    name = shard_name(shard_id)
    status = read_status(fileio.join(out, f"{name}.parquet")).to_pylist()
    old_meta = read_shard_meta(fileio.join(out, f"{name}.parquet")) or {}
    tar_path = fileio.join(out, f"{name}.tar")
    with write_tar_atomic(tar_path) as tar:
        for key, members in iter_tar_samples(tar_path):
            if key not in drops:
                tar.add_sample(key, members)
    for row in status:
        if row["key"] in drops:
            row["status"], row["error_message"] = "duplicate", f"same sha256 as {drops[row['key']]}"
            row["width"] = row["height"] = None
    write_status(fileio.join(out, f"{name}.parquet"), status, tar.summary,
                 {"input_sha256": old_meta.get("input_sha256"), "settings": old_meta.get("settings")})


class DropDuplicates(beam.DoFn):
    def __init__(self, out: str):
        self.out = out

    def process(self, item):
        shard_id, drops = item
        drops = dict(drops)
        drop_from_shard(self.out, shard_id, drops)
        counter(STAGE, "duplicates_dropped").inc(len(drops))
        yield shard_id


def _run_dedup(out: str, shard_ids: list[int], beam_args: list[str]) -> dict[str, int]:
    p = beam.Pipeline(options=pipeline_options(beam_args))
    _ = (p | "Shards" >> beam.Create(shard_ids)
         | "Successes" >> beam.FlatMap(lambda s: _successes(out, s))
         | "BySha" >> beam.GroupByKey()
         | "Duplicates" >> beam.FlatMap(_duplicates_of)
         | "ByShard" >> beam.GroupByKey()
         | "Rewrite" >> beam.ParDo(DropDuplicates(out)))
    return run(p, STAGE)


# -- 4. manifest and stats ---------------------------------------------------------------------------------

def write_manifest_and_stats(options: DownloadOptions, shard_count: int, rows: int, counters: dict,
                             seconds: float) -> tuple[dict, dict]:
    out = options.out
    entries, statuses = [], Counter()
    for shard_id in range(shard_count):
        meta = read_shard_meta(fileio.join(out, f"{shard_name(shard_id)}.parquet"))
        if meta is None:
            raise RuntimeError(f"shard {shard_name(shard_id)} has no status parquet after the run")
        entries.append(manifest_entry(shard_id, meta))
        table = read_status(fileio.join(out, f"{shard_name(shard_id)}.parquet"), columns=["status"])
        statuses.update(table["status"].to_pylist())
    total = sum(e["samples"] for e in entries)
    settings = {k: v for k, v in asdict(options).items() if k not in ("out",)}
    manifest = {"shards": entries, "total_samples": total, "total_rows": rows,
                "total_bytes": sum(e["bytes"] for e in entries), "format": "webdataset",
                "members": ["jpg", "txt", "json"], "key_scheme": "{shard:05d}{index:04d}",
                "created_by": f"wit-pipeline {__version__}", "settings": settings}
    failures = {k: v for k, v in sorted(statuses.items()) if k != "success"}
    stats = {"stage": STAGE, "rows": rows, "success": statuses.get("success", 0), "failed": sum(failures.values()),
             "failures": failures, "shards": shard_count, "bytes": manifest["total_bytes"],
             "this_run": {"seconds": round(seconds, 2), **counters}}
    if stats["success"] + stats["failed"] != rows:
        raise RuntimeError(f"status rows ({stats['success'] + stats['failed']}) != input rows ({rows})")
    fileio.write_json_atomic(fileio.join(out, "manifest.json"), manifest)
    fileio.write_json_atomic(fileio.join(out, "stats.json"), stats)
    return manifest, stats


def download(options: DownloadOptions, beam_args: list[str] | None = None) -> DownloadResult:
    """Run the whole download (resuming whatever an earlier run of the same command left)."""
    options.validate()
    started = time.monotonic()
    fileio.makedirs(options.out)
    removed = remove_stale_temporaries(options.out)
    if removed:
        log.info("removed %d temporary files left by an interrupted run", removed)
    tasks, shard_count, rows = plan(options)
    stale = [s for s in list_shards(options.out) if s >= shard_count]
    if stale:
        raise UserError(f"{options.out} holds shard {shard_name(stale[0])} beyond this input's {shard_count} "
                        "shards: is it the output of another input? Use a new --out")
    log.info("%d rows in %d shards; %d to do", rows, shard_count, len(tasks))
    args = _beam_args(beam_args, options.processes)
    counters = _run_downloads(options, tasks, args)
    if options.drop_duplicates:
        counters.update(_run_dedup(options.out, list(range(shard_count)), _beam_args(beam_args, 1)))
    _, stats = write_manifest_and_stats(options, shard_count, rows, counters, time.monotonic() - started)
    work = fileio.join(options.out, WORK_DIR)
    if not fileio.is_remote(work) and os.path.isdir(work):
        shutil.rmtree(work, ignore_errors=True)
    statuses = {"success": stats["success"], **stats["failures"]}
    return DownloadResult(out=options.out, shards=shard_count, rows=rows, samples=stats["success"],
                          done_now=len(tasks), statuses=statuses, seconds=time.monotonic() - started)
