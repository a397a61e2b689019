"""``wit download`` as a library call: ``run_download(DownloadOptions(...))`` plans the shards, downloads
them with Beam, and writes the manifest and ``stats.json``.

1. **Plan** (driver): stream the input, cut it into shards (``reader``), and
   write each shard that needs work as a small parquet under ``OUT/_work/``.
   A shard needs work unless its status parquet exists, covers the same
   rows and its tar has the recorded size; with ``--retry-failed``,
   complete shards with retryable failures are redone too (successes copied).
   It also types the carried input columns over every row (``ColumnKinds``), so
   every shard's status parquet gets the same schema.
2. **Download** (Beam): ``Create(shards) | Reshuffle | ParDo(DownloadShard) | CountOnce``;
   a shard is the unit of work, each worker (``ShardWorker``) holds one guarded
   session and a thread pool. Each shard's counts travel as data and reach the
   stage's counters summed, from one bundle (``CountOnce`` says why).
   ``--processes N`` is the DirectRunner's worker
   count (the shared Beam wiring, ``wit_pipeline.beam``); where that runner would
   start N worker processes (its multi-process mode), the job runs in memory and
   ``DownloadShard`` forks the N workers from the driver instead
   (``local_worker_processes``: no new interpreter importing Beam per worker).
   Other runners and running modes run ``DownloadShard`` in their own workers.
3. **Drop duplicates** (optional, Beam): successes grouped by sha256 of the
   original bytes; all but the lowest key become ``duplicate`` and leave their tar
   (counted through ``CountOnce`` too).
4. **Manifest and stats**: ``manifest.json`` (``wit_pipeline.shardset``: every shard's
   samples, bytes, sha256), OpenCLIP's ``sizes.json``, any missing ``NNNNN_stats.json`` and
   ``stats.json`` through ``StageRun``, over every shard of the output (not only those this run
   wrote): ``in`` = input rows, ``out`` = samples, ``dropped`` = ``{status reason: rows}``; extras
   ``shards``, ``done_now`` (shards written by this run), ``bytes``, ``plan_seconds``, ``consent_files``
   (``{robots|tdmrep|ai_txt: {ok, missing, error}}``: origins whose signal file this run read, per worker;
   ``wit_pipeline/consent.py`` says what each outcome means).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions
from apache_beam.transforms.window import GlobalWindows

from .. import USER_AGENT, __version__, fileio
from ..beam import CountOnce, add_counts, pipeline_options
from ..consent import check_user_agent, consent_file_counts, obeyed_agents, parse_agents, parse_signals
from ..errors import UserError
from ..options import check_values, option
from ..schemas import STATUS_REASONS, is_status_reason
from ..shardset import iter_tar_samples, manifest_path, shard_name, write_manifest, write_tar_atomic
from ..stage import OutputLock, StageRun, output_lock, require_finished
from .blocklist import DEFAULT_PDQ_MAX_DISTANCE, PDQ_BITS, load_blocklist
from .downloader import (
    ColumnKinds,
    DownloadConfig,
    HashCheck,
    Previous,
    check_bbox_column,
    check_hash_column,
    load_previous,
    parse_column_list,
    parse_hash_check,
    process_shard,
)
from .fetch import FetchOptions, open_origin_signals, open_session
from .image_signals import C2PA_CONSTRAINED
from .images import DEFAULT_DECODE_MEMORY, DEFAULT_MAX_PIXELS, ImageChecks
from .reader import InputRow, iter_rows, shard_rows
from .resize import RESIZE_MODES
from .writer import (
    WORK_DIR,
    ensure_shard_stats,
    list_shards,
    read_shard_meta,
    read_status,
    shard_manifest_entry,
    write_status,
)

log = logging.getLogger(__name__)
STAGE = "download"


def parse_byte_size(text: str) -> int:
    """Bytes, with an optional K/M/G suffix (binary): ``20M`` -> 20971520."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r}") from None


def _checked(parse):
    """An argparse ``type`` that checks the text with ``parse`` (a ``ValueError`` is the flag's one-line error)
    and keeps the text: the field holds what the user wrote, parsed again where it is used."""
    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    check.__name__ = parse.__name__
    return check


def unknown_reasons(reasons) -> list[str]:
    return [r for r in reasons if not is_status_reason(r)]


def known_reasons_text() -> str:
    return ", ".join(STATUS_REASONS) + ", http_<status>"


def parse_reasons(text: str) -> tuple[str, ...]:
    """``--retry-failed REASONS``: comma-separated status reasons (``all``: every failure), each one known."""
    reasons = tuple(r.strip() for r in text.split(",") if r.strip() and r.strip() != "all")
    unknown = unknown_reasons(reasons)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown reason {unknown[0]!r}; the reasons are {known_reasons_text()}")
    return reasons


@dataclass(frozen=True)
class DownloadOptions:
    input: str = option(help="parquet/CSV/TSV/JSON(L) file(s), .txt url lists (one URL a line) or a directory "
                        "(e.g. wit select's output), optionally .gz/.bz2/.zst; other columns go into each sample's "
                        ".json", metavar="PATH_OR_DIR")
    out: str = option(help="output directory (local or remote)", metavar="DIR")
    url_col: str | None = option(None, metavar="COLUMN", help="the url column (default: url, else URL)")
    caption_col: str | None = option(None, metavar="COLUMN", help="the caption column (default: text, else "
                                     "caption, else TEXT; text when both text and caption exist)")
    image_size: int = option(256, help="output side in pixels (default 256)", minimum=1)
    resize_mode: str = option("border", help="img2dataset's resize modes (default border)", choices=RESIZE_MODES)
    samples_per_shard: int = option(10000, help="input rows per shard (default 10000)", minimum=1)
    processes: int | None = option(None, help="worker processes (the DirectRunner's workers, forked from the driver; "
                                   "default: one per core)", minimum=1)
    threads: int = option(32, help="download threads per process (default 32)", minimum=1)
    timeout: float = option(10.0, help="connect and read timeout in seconds (default 10)", above=0, maximum=3600)
    retries: int = option(2, help="retries on timeouts, connection errors, 429 and 5xx, with backoff (default 2)",
                          minimum=0)
    max_bytes: int = option(20 << 20, help="largest body accepted, e.g. 20M (default 20 MiB)", type=parse_byte_size,
                            minimum=1)
    decode_memory: int = option(DEFAULT_DECODE_MEMORY, help="memory for image decodes in flight per process, e.g. 2G; "
                                "an image needing more alone is a decompression_bomb (default 1 GiB)",
                                type=parse_byte_size, minimum=16 << 20)
    min_image_size: int = option(200, help="drop images whose shorter side is smaller (default 200)", minimum=0)
    max_aspect_ratio: float = option(3.0, help="drop images whose long/short side ratio is larger (default 3)",
                                     minimum=1)
    allow_private_networks: bool = option(
        False, help="allow loopback/private addresses (test servers such as the sample web only)")
    allow_proxy: bool = option(False, help="send requests through the proxy HTTP(S)_PROXY/ALL_PROXY name (ignored "
                               "otherwise); each target and redirect is still resolved and checked first")
    retry_failed: tuple[str, ...] | None = option(
        None, help="also redo failed rows of complete shards (all failures, or only the comma-separated REASONS, "
        "e.g. timeout,http_503); successes are kept, not refetched",
        nargs="?", const=(), type=parse_reasons, metavar="REASONS")   # None: no; (): every failure
    drop_duplicates: bool = option(
        False, help="drop exact duplicate images (same sha256) across the output, keeping the lowest key")
    per_host_limit: int = option(16, help="concurrent requests to one host per process (default 16)", minimum=1)
    encode_quality: int = option(95, help="JPEG quality of the output (default 95)", minimum=1, maximum=100)
    strict: bool = option(False, help="fail on the first malformed input row instead of counting and skipping it")
    allow_partial: bool = option(False, help="read an unfinished `wit select` output (no stats.json) as it is")
    drop_columns: tuple[str, ...] = option(
        (), help="input columns to leave out of each sample's json and status row (every other column is carried)",
        type=parse_column_list, action="store", metavar="COL[,COL]")
    verify_hash: str | None = option(
        None, help="compare the downloaded bytes' hash (sha256 by default, or md5) with the input column COL; "
        "a different or empty one is hash_mismatch", metavar="COL[,ALGO]")
    save_exif: bool = option(True, help="keep each image's EXIF as JSON text in its json and status row "
                             "(default on)", action=argparse.BooleanOptionalAction)
    c2pa_constrained: str = option("deny", help="a C2PA training/mining entry whose use is `constrained`: refuse "
                                   "the image like `notAllowed` (deny, the default) or store it (allow)",
                                   choices=C2PA_CONSTRAINED)
    blocklist_hashes: str | None = option(
        None, help="never store an image listed in FILE: lines sha256:HEX or md5:HEX (the downloaded bytes) and "
        "pdq:HEX (PDQ hash of the decoded image); a match is `blocklisted`, its row says only the line",
        metavar="FILE")
    pdq_max_distance: int = option(DEFAULT_PDQ_MAX_DISTANCE, help="largest Hamming distance between an image's "
                                   "PDQ hash and a pdq: line that matches (0-256, default 31)", minimum=0,
                                   maximum=PDQ_BITS, metavar="BITS")
    blur_bbox_col: str | None = option(
        None, help="blur the boxes in input column COL (img2dataset's bbox_col: a list of [x0, y0, x1, y1] "
        "relative to the image) before resizing; a cell that is not such a list is bad_bbox", metavar="COL")
    opt_out_signals: str = option(
        "all", help="the opt-out signals honoured: all (default), none, or a comma list of robots, noai, tdmrep, "
        "content_usage, ai_txt, metadata, c2pa; a refused row's status is opt_out_<signal>",
        type=_checked(parse_signals), metavar="all|none|LIST")
    user_agent: str = option(USER_AGENT, help="the User-Agent header sent (default wit-pipeline/VERSION (+URL)); "
                             "robots.txt rules for wit-pipeline are obeyed whatever it says, and for its own "
                             "product token too", type=_checked(check_user_agent))
    robots_agents: str = option("", help="also obey the robots.txt and ai.txt rules written for these product "
                                "tokens, e.g. GPTBot,CCBot,Google-Extended", type=_checked(parse_agents),
                                metavar="LIST")

    def validate(self) -> None:
        """The command line's checks, for library callers too (``UserError`` naming the flag)."""
        check_values(self)
        self.hash_check()
        for flag, parse, value in (("--opt-out-signals", parse_signals, self.opt_out_signals),
                                   ("--robots-agents", parse_agents, self.robots_agents),
                                   ("--user-agent", check_user_agent, self.user_agent)):
            try:
                parse(value)
            except ValueError as exc:
                raise UserError(f"{flag}: {exc}") from None
        unknown = unknown_reasons(self.retry_failed or ())
        if unknown:
            raise UserError(f"--retry-failed: unknown reason {unknown[0]!r}; the reasons are {known_reasons_text()}")
        self.blocklist()                   # a missing or malformed file stops the run before it starts

    def output_settings(self) -> dict:
        """The flags that shape the samples written: a resume must not mix shards made with other values.
        The opt-outs honoured decide which rows are kept, so they are here (as parsed: ``all`` and the full
        list are the same); the User-Agent header is not, only the product tokens whose rules are obeyed."""
        return {"image_size": self.image_size, "resize_mode": self.resize_mode, "min_image_size": self.min_image_size,
                "max_aspect_ratio": self.max_aspect_ratio, "encode_quality": self.encode_quality,
                "drop_columns": list(self.drop_columns), "verify_hash": self.verify_hash, "save_exif": self.save_exif,
                "opt_out_signals": sorted(parse_signals(self.opt_out_signals)), "robots_agents": list(self.agents()),
                "c2pa_constrained": self.c2pa_constrained, "blocklist_hashes": self.blocklist_identity(),
                "pdq_max_distance": self.pdq_max_distance, "blur_bbox_col": self.blur_bbox_col}

    def agents(self) -> tuple[str, ...]:
        """The product tokens whose robots.txt and ai.txt rules are obeyed (``consent.obeyed_agents``)."""
        return obeyed_agents(self.user_agent, parse_agents(self.robots_agents))

    def config(self) -> DownloadConfig:
        return DownloadConfig(
            image_size=self.image_size, resize_mode=self.resize_mode, samples_per_shard=self.samples_per_shard,
            checks=ImageChecks(min_image_size=self.min_image_size, max_aspect_ratio=self.max_aspect_ratio,
                               max_pixels=DEFAULT_MAX_PIXELS, decode_memory=self.decode_memory),
            fetch=FetchOptions(timeout=self.timeout, retries=self.retries, max_bytes=self.max_bytes,
                               allow_private_networks=self.allow_private_networks, allow_proxy=self.allow_proxy,
                               per_host_limit=self.per_host_limit, threads=self.threads,
                               user_agent=self.user_agent, signals=parse_signals(self.opt_out_signals),
                               agents=self.agents()),
            encode_quality=self.encode_quality, drop_columns=frozenset(self.drop_columns),
            verify_hash=self.hash_check(),
            save_exif=self.save_exif, c2pa_constrained=self.c2pa_constrained, blocklist=self.blocklist(),
            blur_bbox_col=self.blur_bbox_col)

    def hash_check(self) -> HashCheck | None:
        """``--verify-hash`` parsed (``UserError`` naming the flag when malformed), or None."""
        return parse_hash_check(self.verify_hash) if self.verify_hash is not None else None

    def blocklist_identity(self) -> str | None:
        """``--blocklist-hashes`` as a resume compares it: the path and its content's digest (an edited list
        must not be mixed with shards checked against the old one)."""
        if self.blocklist_hashes is None:
            return None
        digest = hashlib.sha256(fileio.read_bytes(self.blocklist_hashes)).hexdigest()
        return f"{self.blocklist_hashes} sha256:{digest}"

    def blocklist(self):
        """The parsed ``--blocklist-hashes`` file (``blocklist.Blocklist``), or None without one."""
        if self.blocklist_hashes is None:
            return None
        return load_blocklist(self.blocklist_hashes, self.pdq_max_distance)


# -- 1. plan --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ShardTask:
    shard_id: int
    work_path: str                    # the shard's input rows
    retry: bool                       # redo failed rows of a complete shard, keeping its successes
    input_sha256: str                 # fingerprint of the shard's input rows (kept in its status parquet)


@dataclass
class Plan:
    tasks: list[ShardTask]            # the shards this run writes
    shards: int                       # shards of the whole input
    rows: int                         # good input rows
    bad_rows: int                     # malformed input rows, counted and skipped
    column_types: tuple = ()          # the carried input columns' status-parquet types (ColumnKinds.types)


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


def check_same_settings(options: DownloadOptions, shard_id: int, meta: dict, wanted: dict) -> None:
    """A complete shard made with other image settings (``wanted``: ``options.output_settings()``) stops the
    run: resuming would mix the two."""
    written = meta.get("settings")
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
    table = pa.table({"url": [r.url for r in rows], "text": [r.text for r in rows],
                      "extra": [json.dumps(r.extra, sort_keys=True, default=str) for r in rows]})
    fileio.write_parquet_atomic(path, table, compression="snappy")


def read_work(path: str) -> list[InputRow]:
    table = read_status(path)
    return [InputRow(url=u, text=t, extra=json.loads(e))
            for u, t, e in zip(table["url"].to_pylist(), table["text"].to_pylist(), table["extra"].to_pylist(),
                               strict=True)]


def _shard_work(options: DownloadOptions, settings: dict, shard_id: int, rows: list[InputRow], digest: str) -> str:
    """``"done"`` (complete: it stays), ``"write"`` (missing or incomplete) or ``"retry"`` (complete, with
    failures ``--retry-failed`` asks for)."""
    meta = complete_shard_meta(options.out, shard_id, len(rows), digest)
    if meta is None:
        return "write"
    check_same_settings(options, shard_id, meta, settings)
    if options.retry_failed is not None and _has_retryable(options.out, shard_id, options.retry_failed):
        return "retry"
    return "done"


def plan(options: DownloadOptions) -> Plan:
    """Stream the input; write the input rows of every shard this run must write under ``OUT/_work``."""
    tasks, shards, total = [], 0, 0
    bad: Counter = Counter()
    work = fileio.join(options.out, WORK_DIR)
    rows_in = iter_rows(options.input, strict=options.strict, counts=bad, url_col=options.url_col,
                        caption_col=options.caption_col)
    columns = ColumnKinds(frozenset(options.drop_columns))
    settings = options.output_settings()       # once: it reads the --blocklist-hashes file
    for shard_id, rows in shard_rows(rows_in, options.samples_per_shard):
        shards, total = shard_id + 1, total + len(rows)
        if shard_id == 0:
            check_hash_column(rows[0], options.hash_check())
            check_bbox_column(rows[0], options.blur_bbox_col)
        for row in rows:
            columns.observe(row)
        digest = rows_digest(rows)
        kind = _shard_work(options, settings, shard_id, rows, digest)
        if kind == "done":
            continue
        path = fileio.join(work, f"{shard_name(shard_id)}.parquet")
        _write_work(path, rows)
        tasks.append(ShardTask(shard_id, path, kind == "retry", digest))
    if total == 0:
        raise UserError(f"--input {options.input!r} has no rows")
    return Plan(tasks, shards, total, bad.get("bad_rows", 0), columns.types())


# -- 2. download ----------------------------------------------------------------------------------------

class ShardWorker:
    """What one download worker holds: one guarded session (DNS cache, keep-alive pool) and its origins'
    signal files, for every shard it writes."""

    def __init__(self, out: str, config: DownloadConfig, retry_failed: tuple[str, ...] | None, settings: dict):
        self.out, self.config, self.retry_failed, self.settings = out, config, retry_failed, settings
        self.session = open_session(config.fetch)
        self.origins = open_origin_signals(self.session, config.fetch)

    def download(self, task: ShardTask) -> tuple[Counter, Counter]:
        """Write one shard; returns its status counts and the signal-file outcomes read meanwhile
        (``OriginSignals.take_counts``)."""
        rows = read_work(task.work_path)
        previous: Previous | None = None
        if task.retry:
            previous = load_previous(self.out, task.shard_id,
                                     frozenset(self.retry_failed) if self.retry_failed else None)
        started = time.monotonic()
        statuses = process_shard(self.out, task.shard_id, rows, self.config, self.session, previous, self.origins,
                                 extra_meta={"input_sha256": task.input_sha256, "settings": self.settings,
                                             "start_time": time.time()})
        log.info("shard %s: %d rows, %d samples in %.1f s", shard_name(task.shard_id), len(rows),
                 statuses.get("success", 0), time.monotonic() - started)
        return statuses, self.origins.take_counts()

    def close(self) -> None:
        self.session.close()


_forked_worker: ShardWorker | None = None       # a forked worker process's own (``DownloadShard.local_processes``)


def _start_forked_worker(*args) -> None:
    global _forked_worker
    # Ctrl-C reaches the whole process group: the driver says "interrupted"; a worker just stops, no traceback.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _forked_worker = ShardWorker(*args)


def _download_in_forked_worker(task: ShardTask) -> tuple[Counter, Counter]:
    return _forked_worker.download(task)


def local_worker_processes(beam_args: list[str] | None, processes: int | None) -> int:
    """The worker processes the download forks from the driver itself: the DirectRunner's worker count when it
    would run in its multi-process mode, 0 otherwise (another runner or running mode: Beam's own workers).

    Beam's multi-process mode starts each worker as a new interpreter that imports Beam and the stage (seconds
    of CPU per worker, per job); a fork of the driver, which has imported them already, starts in milliseconds.
    The job then runs on the in-memory DirectRunner (``in_memory_args``) and ``DownloadShard`` hands the shards
    to the forked workers: same processes, one session and decode budget each, same counters."""
    options = pipeline_options(beam_args, workers=processes)
    if options.view_as(StandardOptions).runner not in ("DirectRunner", "direct"):
        return 0
    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode != "multi_processing" or (direct.direct_num_workers or 0) < 2:
        return 0
    return direct.direct_num_workers


def in_memory_args(beam_args: list[str] | None) -> list[str]:
    """``beam_args`` with the DirectRunner's running mode set to in-memory (its worker flags left out)."""
    dropped = ("--direct_running_mode", "--direct_num_workers", "--direct-running-mode", "--direct-num-workers")
    kept, skip = [], False
    for arg in beam_args or []:
        if skip:
            skip = False
            continue
        if arg in dropped:
            skip = True                      # its value is the next argument
            continue
        if not arg.startswith(tuple(f"{flag}=" for flag in dropped)):
            kept.append(arg)
    return [*kept, "--direct_running_mode=in_memory"]


def download_counts(statuses: Counter, signal_files: Counter) -> Counter:
    """A downloaded shard's counts by counter name: ``in`` rows, ``out`` samples, ``dropped_<status>`` failed
    rows, ``shards_written``, ``signal_file_<file>_<outcome>`` origins whose robots.txt/tdmrep.json/ai.txt
    was read (``consent.FILE_OUTCOMES``; a worker's cache lives as long as the worker)."""
    counts = Counter({"in": sum(statuses.values()), "shards_written": 1})
    for status, n in statuses.items():
        counts["out" if status == "success" else f"dropped_{status}"] += n
    for (kind, outcome), n in signal_files.items():
        counts[f"signal_file_{kind}_{outcome}"] += n
    return counts


class DownloadShard(beam.DoFn):
    """Downloads whole shards: in this worker (one ``ShardWorker``), or, with ``local_processes`` > 1, in that
    many worker processes forked from it (``local_worker_processes``), each with its own ``ShardWorker``.

    Outputs this run's counts (``download_counts``), for ``CountOnce``: one per shard, or one per bundle from
    the forked workers.
    """

    def __init__(self, out: str, config: DownloadConfig, retry_failed: tuple[str, ...] | None, settings: dict,
                 local_processes: int = 0):
        self.out, self.config, self.retry_failed, self.settings = out, config, retry_failed, settings
        self.local_processes = local_processes
        self.worker = self.pool = None

    def setup(self):
        self.pending = []
        worker_args = (self.out, self.config, self.retry_failed, self.settings)
        if self.local_processes > 1:
            self.pool = ProcessPoolExecutor(self.local_processes, mp_context=multiprocessing.get_context("fork"),
                                            initializer=_start_forked_worker, initargs=worker_args)
        else:
            self.worker = ShardWorker(*worker_args)

    def process(self, task: ShardTask):
        if self.pool is None:
            yield download_counts(*self.worker.download(task))
        else:
            self.pending.append(self.pool.submit(_download_in_forked_worker, task))

    def finish_bundle(self):
        pending, self.pending = self.pending, []
        if pending:
            yield GlobalWindows.windowed_value(add_counts(download_counts(*future.result()) for future in pending))

    def teardown(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        if self.worker is not None:
            self.worker.close()
            self.worker = None


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised while handling, a ``KeyboardInterrupt`` (Beam re-raises an exception
    in a DoFn as another, with the step's name)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def download_graph(pipeline: beam.Pipeline, options: DownloadOptions, tasks: list[ShardTask],
                   column_types: tuple = (), local_processes: int = 0) -> None:
    config = dataclasses.replace(options.config(), column_types=column_types)
    _ = (pipeline
         | "Shards" >> beam.Create(tasks)
         | "Spread" >> beam.Reshuffle()
         | "Download" >> beam.ParDo(DownloadShard(options.out, config, options.retry_failed,
                                                  options.output_settings(), local_processes))
         | "Counters" >> CountOnce(STAGE))


# -- 3. exact duplicates ----------------------------------------------------------------------------------

def _successes(out: str, shard_id: int):
    table = read_status(fileio.join(out, f"{shard_name(shard_id)}.parquet"), columns=["key", "status", "sha256"])
    for key, status, sha in zip(*(table[c].to_pylist() for c in ("key", "status", "sha256")), strict=True):
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
    status_table = read_status(fileio.join(out, f"{name}.parquet"))
    status = status_table.to_pylist()
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
                 {"input_sha256": old_meta.get("input_sha256"), "settings": old_meta.get("settings"),
                  "start_time": old_meta.get("start_time")},
                 status_table.schema.remove_metadata())   # keeps the carried input columns and their types


class DropDuplicates(beam.DoFn):
    """Rewrites one shard without its duplicates; they move from the ``out`` count to ``dropped_duplicate``
    (its output, for ``CountOnce``)."""

    def __init__(self, out: str):
        self.out = out

    def process(self, item):
        shard_id, drops = item
        drops = dict(drops)
        drop_from_shard(self.out, shard_id, drops)
        yield Counter({"out": -len(drops), "dropped_duplicate": len(drops)})


class FindDuplicates(beam.PTransform):
    """``(sha256, (shard_id, key))`` of every success -> ``(shard_id, [(key, kept key), ...])``: per shard,
    the samples whose image a lower key already has (the lowest key of each sha256 is kept)."""

    def expand(self, successes):
        return (successes
                | "BySha" >> beam.GroupByKey()
                | "Duplicates" >> beam.FlatMap(_duplicates_of)
                | "ByShard" >> beam.GroupByKey())


def dedup_graph(pipeline: beam.Pipeline, out: str, shard_ids: list[int]) -> None:
    _ = (pipeline
         | "Shards" >> beam.Create(shard_ids)
         | "Successes" >> beam.FlatMap(lambda s: _successes(out, s))
         | "FindDuplicates" >> FindDuplicates()
         | "Rewrite" >> beam.ParDo(DropDuplicates(out))
         | "Counters" >> CountOnce(STAGE))


# -- 4. manifest and stats ---------------------------------------------------------------------------------

def collect_shards(out: str, shard_count: int) -> tuple[list[dict], Counter]:
    """Every shard's manifest row, and the statuses of all their rows; a shard without its
    ``NNNNN_stats.json`` gets it rebuilt from its status parquet."""
    entries, statuses = [], Counter()
    for shard_id in range(shard_count):
        meta = read_shard_meta(fileio.join(out, f"{shard_name(shard_id)}.parquet"))
        if meta is None:
            raise RuntimeError(f"shard {shard_name(shard_id)} has no status parquet after the run")
        entries.append(shard_manifest_entry(shard_id, meta))
        table = read_status(fileio.join(out, f"{shard_name(shard_id)}.parquet"), columns=["status"])
        statuses.update(table["status"].to_pylist())
        ensure_shard_stats(out, shard_id, table["status"].to_pylist(), meta)
    return entries, statuses


def write_download_manifest(options: DownloadOptions, entries: list[dict], rows: int) -> dict:
    # The flags that shaped the shards (``strict`` only decides whether a bad input row stops the run).
    settings = {k: v for k, v in dataclasses.asdict(options).items() if k not in ("out", "strict", "allow_partial")}
    return write_manifest(options.out, {
        "shards": entries, "total_samples": sum(e["samples"] for e in entries), "total_rows": rows,
        "total_bytes": sum(e["bytes"] for e in entries), "format": "webdataset",
        "members": ["jpg", "txt", "json"], "key_scheme": "{shard:05d}{index:04d}",
        "created_by": f"wit-pipeline {__version__}", "settings": settings})


def _start_output(options: DownloadOptions) -> Plan:
    """Plan this run (a refused resume leaves the output as it was; the lock removed a killed run's temporaries)."""
    work = plan(options)
    stale = [s for s in list_shards(options.out) if s >= work.shards]
    if stale:
        raise UserError(f"{options.out} holds shard {shard_name(stale[0])} beyond this input's {work.shards} "
                        "shards: is it the output of another input? Use a new --out")
    log.info("%d rows in %d shards; %d to do", work.rows, work.shards, len(work.tasks))
    return work


def run_download(options: DownloadOptions, beam_args: list[str] | None = None) -> dict:
    """Run the whole download (resuming whatever an earlier run of the same command left); returns the
    stats record written to ``OUT/stats.json``."""
    options.validate()
    partial = require_finished(options.input, allow_partial=options.allow_partial)
    with output_lock(options.out, STAGE) as lock:     # held from the plan on: it may refuse, leaving OUT as it was
        return _download(options, beam_args, lock, partial)


def _download(options: DownloadOptions, beam_args: list[str] | None, lock: OutputLock, partial: list[str]) -> dict:
    planning = time.monotonic()
    work = _start_output(options)
    plan_seconds = time.monotonic() - planning
    with StageRun(STAGE, options.out, settings=options, lock=lock, partial_inputs=partial) as stage:
        if work.tasks:
            forked = local_worker_processes(beam_args, options.processes)
            pipeline = stage.pipeline(in_memory_args(beam_args), workers=1) if forked else \
                stage.pipeline(beam_args, workers=options.processes)
            download_graph(pipeline, options, work.tasks, work.column_types, forked)
            try:
                stage.run(pipeline)
            except Exception as exc:
                if interrupted(exc):        # Ctrl-C, which Beam re-raised as "... [while running 'Download']"
                    raise KeyboardInterrupt from None
                raise
        if options.drop_duplicates:
            pipeline = stage.pipeline(beam_args, workers=1)
            dedup_graph(pipeline, options.out, list(range(work.shards)))
            stage.run(pipeline)
        entries, statuses = collect_shards(options.out, work.shards)
        if sum(statuses.values()) != work.rows:
            raise RuntimeError(f"status rows ({sum(statuses.values())}) != input rows ({work.rows})")
        manifest = write_download_manifest(options, entries, work.rows)
        work_dir = fileio.join(options.out, WORK_DIR)
        if not fileio.is_remote(work_dir) and os.path.isdir(work_dir):
            shutil.rmtree(work_dir, ignore_errors=True)
        dropped = {k: v for k, v in sorted(statuses.items()) if k != "success"}
        if work.bad_rows:
            dropped["bad_row"] = work.bad_rows
        return stage.finish(
            records_in=work.rows + work.bad_rows, records_out=statuses.get("success", 0), dropped=dropped,
            outputs={"shards": options.out, "manifest": manifest_path(options.out)},
            shards=work.shards, done_now=len(work.tasks), bytes=manifest["total_bytes"],
            plan_seconds=round(plan_seconds, 3), consent_files=consent_file_counts(stage.counters))
