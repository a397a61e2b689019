"""One shard, from its input rows to its tar and status parquet (img2dataset's "downloader" role).

``process_row`` is the per-sample work (fetch, check, resize, encode), run in a
thread pool; ``process_shard`` keeps results in key order with a bounded window
(memory stays flat whatever the shard size) and writes the shard atomically.
With ``previous`` (``--retry-failed``), rows that succeeded before are copied
from the old tar rather than fetched again, and only failed rows are retried.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, TypeVar

from .. import fileio
from ..http import GuardedSession
from ..progress import progress
from ..schemas import DECISION_REASONS
from ..shardset import iter_tar_samples, shard_name, write_tar_atomic
from .fetch import FetchOptions
from .images import ImageChecks, ImageRejected, load_resized
from .reader import InputRow, sample_key
from .resize import encode_jpeg
from .writer import read_status, sample_members, write_status

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

# Statuses --retry-failed leaves alone unless named: a duplicate is a decision, not a failure.
NOT_RETRIED = frozenset(DECISION_REASONS)


@dataclass(frozen=True)
class DownloadConfig:
    """What a worker needs to write a shard, built from ``DownloadOptions`` (the one place the defaults live)."""
    image_size: int
    resize_mode: str
    samples_per_shard: int
    checks: ImageChecks
    fetch: FetchOptions
    encode_quality: int


@dataclass
class Outcome:
    """What happened to one input row: a status-table row, plus the sample's tar members on success."""
    status: dict
    members: dict[str, bytes] | None = None


def _queries(extra: dict) -> list[str] | None:
    value = extra.get("queries")
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None]
    return None


def _status_row(key: str, row: InputRow, status: str, message: str = "", http_status: int | None = None,
                **fields) -> dict:
    return {"key": key, "url": row.url, "caption": row.text, "status": status, "error_message": message,
            "http_status": http_status, "queries": _queries(row.extra), "sha256": fields.get("sha256"),
            "original_width": fields.get("original_width"), "original_height": fields.get("original_height"),
            "width": fields.get("width"), "height": fields.get("height")}


def process_row(session: GuardedSession, key: str, row: InputRow, config: DownloadConfig) -> Outcome:
    """Fetch, check, resize and encode one row; never raises (the status says why).

    The last line of defence: an exception nothing below expected is this row's ``internal_error``
    (its type in the message), counted like any other failure, and the shard goes on.
    """
    try:
        return _process_row(session, key, row, config)
    except Exception as exc:  # one row must never end the job
        log.warning("row %s (%s): unexpected %s: %s", key, str(row.url)[:200], type(exc).__name__, exc)
        return Outcome(_status_row(key, row, "internal_error", f"{type(exc).__name__}: {exc}"[:300]))


def _process_row(session: GuardedSession, key: str, row: InputRow, config: DownloadConfig) -> Outcome:
    if not row.url:
        return Outcome(_status_row(key, row, "invalid_url", "empty url"))
    result = session.fetch(row.url)
    if not result.ok:
        return Outcome(_status_row(key, row, result.error, result.message, result.status))
    body = result.body
    digest = hashlib.sha256(body).hexdigest()
    try:
        image, (width, height) = load_resized(body, config.checks, config.image_size, config.resize_mode)
        jpg = encode_jpeg(image, config.encode_quality)
    except ImageRejected as exc:
        return Outcome(_status_row(key, row, exc.reason, exc.message, result.status, sha256=digest))
    except Exception as exc:  # an image library failing on these bytes in a way it does not declare
        return Outcome(_status_row(key, row, "decode_error", f"{type(exc).__name__}: {exc}"[:300], result.status,
                                   sha256=digest))
    sizes = {"original_width": width, "original_height": height, "width": image.width, "height": image.height}
    status = _status_row(key, row, "success", "", result.status, sha256=digest, **sizes)
    meta = {**row.extra, "key": key, "url": row.url, "caption": row.text, "sha256": digest, **sizes}
    if result.final_url != row.url:
        meta["final_url"] = result.final_url
    if status["queries"] is not None:
        meta["queries"] = status["queries"]
    return Outcome(status, sample_members(jpg, row.text, meta))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], threads: int, window: int) -> Iterator[R]:
    """``map`` over a thread pool, results in input order, at most ``window`` items in flight."""
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="wit-fetch") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@dataclass
class Previous:
    """A complete shard's earlier result, for ``--retry-failed``: status rows by key and its tar."""
    status: dict[str, dict]
    tar_path: str
    retry: frozenset[str] | None     # reasons to retry; None = every failure but NOT_RETRIED

    def wants_retry(self, key: str) -> bool:
        old = self.status.get(key)
        if old is None:
            return True
        reason = old["status"]
        if reason == "success":
            return False
        return reason not in NOT_RETRIED if self.retry is None else reason in self.retry


def load_previous(out: str, shard_id: int, retry: frozenset[str] | None) -> Previous:
    name = shard_name(shard_id)
    table = read_status(fileio.join(out, f"{name}.parquet"))
    return Previous({row["key"]: row for row in table.to_pylist()}, fileio.join(out, f"{name}.tar"), retry)


def _kept(previous: Previous, key: str, old_samples: Iterator[tuple[str, dict[str, bytes]]]) -> Outcome:
    """A row kept from the previous run: its old status, and its old sample if it had one (``old_samples``
    is the old tar, read forward in key order as the rows come)."""
    old = previous.status[key]
    if old["status"] == "success":
        for old_key, members in old_samples:
            if old_key == key:
                return Outcome(old, members)
    return Outcome(old)


def process_shard(out: str, shard_id: int, rows: list[InputRow], config: DownloadConfig,
                  session: GuardedSession, previous: Previous | None = None,
                  extra_meta: dict | None = None) -> Counter:
    """Download one shard's rows and write ``NNNNN.tar`` then ``NNNNN.parquet``; returns status counts."""
    name = shard_name(shard_id)
    keyed = [(sample_key(shard_id, index, config.samples_per_shard), row) for index, row in enumerate(rows)]
    old_samples = iter_tar_samples(previous.tar_path) if previous else iter(())

    def work(item: tuple[str, InputRow]) -> Outcome | None:
        key, row = item
        if previous is not None and not previous.wants_retry(key):
            return None                     # kept from the previous run
        return process_row(session, key, row, config)

    counts: Counter = Counter()
    status_rows: list[dict] = []
    window = max(64, 16 * config.fetch.threads)
    results = ordered_map(work, keyed, config.fetch.threads, window)
    tar_path = fileio.join(out, f"{name}.tar")
    with write_tar_atomic(tar_path) as tar:
        progressed = progress(results, total=len(keyed), desc=f"shard {name}", unit="img")
        for (key, _row), outcome in zip(keyed, progressed, strict=True):
            if outcome is None:
                outcome = _kept(previous, key, old_samples)
            status_rows.append(outcome.status)
            if outcome.members is not None:
                tar.add_sample(key, outcome.members)
            counts[outcome.status["status"]] += 1
    write_status(fileio.join(out, f"{name}.parquet"), status_rows, tar.summary, extra_meta)
    return counts
