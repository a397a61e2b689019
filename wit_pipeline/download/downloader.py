"""One shard, from its input rows to its tar and status parquet (img2dataset's "downloader" role).

``process_row`` is the per-sample work (consent checks, fetch, check, resize, encode), run in a
thread pool; ``process_shard`` keeps results in key order with a bounded window
(memory stays flat whatever the shard size) and writes the shard atomically.
With ``previous`` (``--retry-failed``), rows that succeeded before are copied
from the old tar rather than fetched again, and only failed rows are retried.

Every input column but url/caption is carried (img2dataset's ``save_additional_columns``) into the
sample's json and its status row, less ``--drop-columns``; ``queries`` (``wit select``'s) is ours. A column
named like one of our own fields (``OWN_FIELDS``: ``sha256``, ``key``, ``status``, ``width`` ...) is carried
as ``input_<name>``, never overwritten (``carried_columns``). In the status parquet these columns follow
``STATUS_SCHEMA``'s, typed by their values over the whole input (``ColumnKinds``, seen as the plan reads
it), so every shard's parquet has the same schema (``status_table_rows``). ``--verify-hash COL[,ALGO]`` compares
the body's digest with the row's ``COL`` before any decode: a differing or empty cell is ``hash_mismatch``.
The downloaded bytes then meet ``--blocklist-hashes`` (sha256/md5 lines: ``blocklisted``) and the opt-outs
inside the file (``image_signals``: ``opt_out_metadata``, ``opt_out_c2pa``), both before ``--verify-hash``
(``bytes_verdict``); the decode meets the blocklist's PDQ lines (``pdq_check``) and ``--blur-bbox-col``
(``row_boxes``; a cell that is no box list is ``bad_bbox``). A refused or blocklisted row's status row says
its status and a short message only (never sha256, sizes or EXIF) and nothing of the image is written.
A sample's json also holds its ``status`` (``success``), ``error_message`` (``null``) and, with
``--save-exif``, ``exif`` (img2dataset's fields), like its status row.

Consent (``wit_pipeline/consent.py``): before the image is requested, the origin's robots.txt, tdmrep.json
and ai.txt (``OriginSignals``, one cache per worker) may refuse it; the session refuses a response whose
headers opt out before reading its body. A refused row's status is ``opt_out_<signal>`` with a short
message, its carried columns and nothing of the image (no sha256, sizes or exif, no tar member);
``--retry-failed`` leaves refusals alone unless named (``NOT_RETRIED``). ``config.signals`` is the set
``--opt-out-signals`` chose.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, TypeVar

import pyarrow as pa

from .. import fileio
from ..consent import OriginSignals
from ..errors import UserError
from ..http import GuardedSession
from ..progress import progress
from ..schemas import (
    DECISION_REASONS,
    REFUSAL_REASONS,
    STATUS_SCHEMA,
    extra_column_type,
    kinds_type,
    status_schema,
    value_kind,
)
from ..shardset import iter_tar_samples, shard_name, write_tar_atomic
from .blocklist import PDQ_MAX_SIDE, Blocklist, Blocklisted
from .fetch import FetchOptions, open_origin_signals
from .image_signals import ImageVerdict, check_image_signals
from .images import ImageChecks, ImageRejected, exif_json, load_resized
from .reader import InputRow, sample_key
from .resize import BadBoxes, encode_jpeg, parse_boxes
from .writer import read_status, sample_members, write_status

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

# Statuses --retry-failed leaves alone unless named: a duplicate is a decision, an opt-out or a blocklist
# match a refusal, neither a failure.
NOT_RETRIED = frozenset(DECISION_REASONS + REFUSAL_REASONS)
# Fields we write into a sample's json or status row: an input column with one of these names is carried
# as input_<name>. ``queries`` is not among them: it is wit select's column, which we read and keep.
OWN_FIELDS = frozenset(STATUS_SCHEMA.names) - {"queries"} | {"final_url"}
HASH_ALGORITHMS = ("sha256", "md5")


@dataclass(frozen=True)
class HashCheck:
    """``--verify-hash COL[,ALGO]``: the input column holding each row's expected hex digest."""
    column: str
    algorithm: str = "sha256"


def parse_hash_check(text: str) -> HashCheck:
    """``COL`` or ``COL,ALGO`` (sha256 or md5) -> ``HashCheck``; a ``UserError`` naming the flag otherwise."""
    column, _, algorithm = (part.strip() for part in text.partition(","))
    algorithm = algorithm.lower() or "sha256"
    if not column:
        raise UserError(f"--verify-hash {text!r}: name the input column holding the hashes (COL[,ALGO])")
    if algorithm not in HASH_ALGORITHMS:
        known = ", ".join(HASH_ALGORITHMS)
        raise UserError(f"--verify-hash {text!r}: unknown algorithm {algorithm!r} (known: {known})")
    return HashCheck(column, algorithm)


def parse_column_list(text: str) -> tuple[str, ...]:
    """``COL[,COL]`` -> the column names, blanks left out."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


@dataclass(frozen=True)
class DownloadConfig:
    """What a worker needs to write a shard, built from ``DownloadOptions`` (the one place the defaults live)."""
    image_size: int
    resize_mode: str
    samples_per_shard: int
    checks: ImageChecks
    fetch: FetchOptions
    encode_quality: int
    drop_columns: frozenset[str] = frozenset()   # input columns left out of the json and status rows
    verify_hash: HashCheck | None = None
    save_exif: bool = True
    # (name, parquet type or None for JSON text) of each carried column, from the whole input (``ColumnKinds``)
    column_types: tuple[tuple[str, pa.DataType | None], ...] = ()
    c2pa_constrained: str = "deny"                    # --c2pa-constrained: does `constrained` refuse?
    blocklist: Blocklist | None = None                # --blocklist-hashes, parsed
    blur_bbox_col: str | None = None                  # --blur-bbox-col: the input column of boxes to blur

    @property
    def signals(self) -> frozenset[str]:
        """The opt-out signals honoured (``--opt-out-signals``; names from ``consent.SIGNALS``)."""
        return self.fetch.signals


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


def carried_name(name: str, columns) -> str:
    """The name an input column is carried under: its own, or ``input_<name>`` (repeated while that too is
    taken) when it is one of ``OWN_FIELDS``."""
    carried = name
    while carried in OWN_FIELDS or (carried != name and carried in columns):
        carried = f"input_{carried}"
    return carried


def carried_columns(extra: dict, drop: frozenset[str] = frozenset()) -> dict:
    """The input columns a sample's json and status row carry: every one but ``queries`` and ``drop``,
    a clash with our own fields renamed (``carried_name``)."""
    return {carried_name(name, extra): value for name, value in extra.items()
            if name != "queries" and name not in drop}


def _status_row(key: str, row: InputRow, status: str, message: str = "", http_status: int | None = None,
                drop: frozenset[str] = frozenset(), **fields) -> dict:
    return {"key": key, "url": row.url, "caption": row.text, "status": status, "error_message": message,
            "http_status": http_status, "queries": _queries(row.extra), "sha256": fields.get("sha256"),
            "original_width": fields.get("original_width"), "original_height": fields.get("original_height"),
            "width": fields.get("width"), "height": fields.get("height"), "exif": fields.get("exif"),
            **carried_columns(row.extra, drop)}


def hash_mismatch(body: bytes, row: InputRow, check: HashCheck) -> str | None:
    """Why ``body`` fails ``--verify-hash`` (an empty cell fails too: the row cannot be verified), or None."""
    expected = row.extra.get(check.column)
    if expected is None or not str(expected).strip():
        return f"no {check.algorithm} in column {check.column!r}"
    actual = hashlib.new(check.algorithm, body).hexdigest()
    if actual != str(expected).strip().lower():
        return f"{check.algorithm} {actual} != {str(expected).strip()[:128]} (column {check.column!r})"
    return None


def check_hash_column(row: InputRow, check: HashCheck | None) -> None:
    """``--verify-hash`` naming a column the input's first row lacks is a user mistake, not a run of failures."""
    if check is not None and check.column not in row.extra:
        columns = ", ".join(sorted(row.extra)) or "none"
        raise UserError(f"--verify-hash: the input has no column {check.column!r} (its other columns: {columns})")


def process_row(session: GuardedSession, key: str, row: InputRow, config: DownloadConfig,
                origins: OriginSignals | None = None) -> Outcome:
    """Fetch, check, resize and encode one row; never raises (the status says why).

    The last line of defence: an exception nothing below expected is this row's ``internal_error``
    (its type in the message), counted like any other failure, and the shard goes on.
    """
    drop = config.drop_columns
    try:
        return _process_row(session, key, row, config, origins)
    except Exception as exc:  # one row must never end the job
        log.warning("row %s (%s): unexpected %s: %s", key, str(row.url)[:200], type(exc).__name__, exc)
        return Outcome(_status_row(key, row, "internal_error", f"{type(exc).__name__}: {exc}"[:300], drop=drop))


def _process_row(session: GuardedSession, key: str, row: InputRow, config: DownloadConfig,
                 origins: OriginSignals | None = None) -> Outcome:
    drop = config.drop_columns
    if not row.url:
        return Outcome(_status_row(key, row, "invalid_url", "empty url", drop=drop))
    # The origin's robots.txt, tdmrep.json and ai.txt, before any request for the image itself.
    refused = origins.refusal(row.url) if origins is not None else None
    if refused is not None:
        return Outcome(_status_row(key, row, refused[0], refused[1], drop=drop))
    # The response's opt-out headers (X-Robots-Tag, tdm-reservation, Content-Usage) are checked by the
    # session before the body is read: a refusal is result.error, like any failed fetch.
    result = session.fetch(row.url)
    if not result.ok:
        return Outcome(_status_row(key, row, result.error, result.message, result.status, drop=drop))
    body = result.body
    digest = hashlib.sha256(body).hexdigest()
    # Before --verify-hash: a blocklisted image's row must not carry its sha256 in a hash_mismatch message.
    verdict = bytes_verdict(body, digest, config)
    if verdict.reason:
        return Outcome(_status_row(key, row, verdict.reason, verdict.message, result.status, drop))
    mismatch = hash_mismatch(body, row, config.verify_hash) if config.verify_hash else None
    if mismatch:
        return Outcome(_status_row(key, row, "hash_mismatch", mismatch, result.status, drop, sha256=digest))
    try:
        image, (width, height) = load_resized(body, config.checks, config.image_size, config.resize_mode,
                                              inspect=pdq_check(config), inspect_side=PDQ_MAX_SIDE,
                                              boxes=row_boxes(row, config))
        jpg = encode_jpeg(image, config.encode_quality)
    except Blocklisted as exc:                    # its PDQ: the row says the line, nothing of the image
        return Outcome(_status_row(key, row, "blocklisted", str(exc), result.status, drop))
    except ImageRejected as exc:
        return Outcome(_status_row(key, row, exc.reason, exc.message, result.status, drop, sha256=digest))
    except Exception as exc:  # an image library failing on these bytes in a way it does not declare
        return Outcome(_status_row(key, row, "decode_error", f"{type(exc).__name__}: {exc}"[:300], result.status,
                                   drop, sha256=digest))
    sizes = {"original_width": width, "original_height": height, "width": image.width, "height": image.height}
    exif = exif_json(body) if config.save_exif else None
    status = _status_row(key, row, "success", verdict.note, result.status, drop, sha256=digest, exif=exif, **sizes)
    return Outcome(status, sample_members(jpg, row.text, sample_meta(status, result.final_url, config.save_exif)))


def bytes_verdict(body: bytes, digest: str, config: DownloadConfig) -> ImageVerdict:
    """The checks on the downloaded bytes before any decode: ``--blocklist-hashes`` sha256/md5 lines
    (``blocklisted``, message ``line N``), then the opt-outs inside the file (``image_signals``). A passing
    verdict's ``note`` (an unreadable C2PA manifest) goes into the success row's ``error_message``."""
    if config.blocklist is not None:
        line = config.blocklist.match_bytes(body, digest)
        if line is not None:
            return ImageVerdict("blocklisted", f"line {line}")
    return check_image_signals(body, config.signals, config.c2pa_constrained)


def pdq_check(config: DownloadConfig) -> Callable | None:
    """``load_resized``'s ``inspect`` step: the PDQ match, only when the blocklist has ``pdq`` lines."""
    if config.blocklist is not None and config.blocklist.has_pdq:
        return config.blocklist.check_image
    return None


def row_boxes(row: InputRow, config: DownloadConfig) -> tuple:
    """The row's ``--blur-bbox-col`` boxes; a cell that is not a box list is the row's ``bad_bbox``."""
    if config.blur_bbox_col is None:
        return ()
    try:
        return parse_boxes(row.extra.get(config.blur_bbox_col))
    except BadBoxes as exc:
        raise ImageRejected("bad_bbox", f"--blur-bbox-col {config.blur_bbox_col!r}: {exc}") from None


def check_bbox_column(row: InputRow, column: str | None) -> None:
    """``--blur-bbox-col`` naming a column the input's first row lacks is a user mistake."""
    if column is not None and column not in row.extra:
        columns = ", ".join(sorted(row.extra)) or "none"
        raise UserError(f"--blur-bbox-col: the input has no column {column!r} (its other columns: {columns})")


def sample_meta(status: dict, final_url: str, save_exif: bool = True) -> dict:
    """A sample's json: its status row (img2dataset's ``error_message`` is null on success) without
    ``http_status``, ``queries`` when there are none and ``exif`` without ``--save-exif`` (with it, an
    unreadable EXIF block is null, as in img2dataset), plus ``final_url`` after a redirect."""
    meta = {name: value for name, value in status.items() if name != "http_status"}
    meta["error_message"] = None
    if status["queries"] is None:
        del meta["queries"]
    if not save_exif:
        del meta["exif"]
    if final_url != status["url"]:
        meta["final_url"] = final_url
    return meta


class ColumnKinds:
    """The carried columns of an input and the kinds of their values (``value_kind``), row by row: the
    plan sees every row, so the types it gives (``types``) hold for every shard."""

    def __init__(self, drop: frozenset[str] = frozenset()):
        self.drop, self.kinds = drop, {}

    def observe(self, row: InputRow) -> None:
        for name, value in carried_columns(row.extra, self.drop).items():
            kinds = self.kinds.setdefault(name, set())
            kind = value_kind(value)
            if kind is not None:
                kinds.add(kind)

    def types(self) -> tuple[tuple[str, pa.DataType | None], ...]:
        return tuple((name, kinds_type(kinds)) for name, kinds in self.kinds.items())


def status_table_rows(rows: list[dict], known: tuple[tuple[str, pa.DataType | None], ...] = ()
                      ) -> tuple[pa.Schema, list[dict]]:
    """The status parquet's schema and rows: carried input columns after ``STATUS_SCHEMA``'s, typed as
    ``known`` says (the whole input's types), else by this shard's values (``extra_column_type``); a column
    of mixed values is written as JSON text."""
    given = dict(known)
    names = list(dict.fromkeys([*given, *(name for row in rows for name in row if name not in STATUS_SCHEMA.names)]))
    types, text_columns = {}, []
    for name in names:
        kind = given[name] if name in given else extra_column_type([row.get(name) for row in rows])
        types[name] = kind or pa.string()
        if kind is None:
            text_columns.append(name)
    if text_columns:
        rows = [{**row, **{name: _json_text(row.get(name)) for name in text_columns}} for row in rows]
    return status_schema(types), rows


def _json_text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


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
                  session: GuardedSession, previous: Previous | None = None, origins: OriginSignals | None = None,
                  extra_meta: dict | None = None) -> Counter:
    """Download one shard's rows and write ``NNNNN.tar`` then ``NNNNN.parquet``; returns status counts.
    ``origins``: the worker's per-origin signal files (a new cache for this shard when not given)."""
    name = shard_name(shard_id)
    origins = origins if origins is not None else open_origin_signals(session, config.fetch)
    keyed = [(sample_key(shard_id, index, config.samples_per_shard), row) for index, row in enumerate(rows)]
    old_samples = iter_tar_samples(previous.tar_path) if previous else iter(())

    def work(item: tuple[str, InputRow]) -> Outcome | None:
        key, row = item
        if previous is not None and not previous.wants_retry(key):
            return None                     # kept from the previous run
        return process_row(session, key, row, config, origins)

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
    schema, status_rows = status_table_rows(status_rows, config.column_types)
    write_status(fileio.join(out, f"{name}.parquet"), status_rows, tar.summary, extra_meta, schema)
    return counts
