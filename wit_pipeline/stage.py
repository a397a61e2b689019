"""The one contract every stage that writes output runs through.

::

    with StageRun("candidates", options.out, settings=options) as stage:
        pipeline = stage.pipeline(beam_args)      # Beam options from the shared wiring (beam.py)
        build(pipeline, options)
        counts = stage.run(pipeline)              # counters of this stage's namespace, by name
        return stage.finish(records_in=counts.get("in", 0), records_out=counts.get("out", 0),
                            dropped=dropped_counts(counts), outputs={"parts": ...})

Entering a ``StageRun`` takes the output directory's lock (``output_lock``: a second run into the same
directory refuses, naming the first one's pid), removes the temporary files a killed run left there,
removes the previous run's ``stats.json`` (the file marks a finished run, so it is gone until this run
finishes) and starts the clock. ``run``
waits for the job; a ``UserError`` raised inside a worker comes back as itself, so the CLI prints
the usual one line. ``finish`` writes ``OUT/stats.json`` atomically, last, with the keys every
stage shares:

=============  ==============================================================================
``stage``      the stage's name (``candidates``, ``select``, ``download``, ``overlap``, ...)
``version``    the stats format's version (``STATS_VERSION``); ``wit_version`` the package's
``seconds``    wall time of the run
``in``         records that entered the stage (pairs, rows, shards, ... as the stage says)
``out``        records it wrote
``dropped``    ``{reason: count}`` for every record that did not come out
``accounted``  true exactly when ``in == out + sum(dropped)``
``settings``   the options that shaped the output (JSON-able)
``outputs``    ``{name: path}`` of what it wrote
``counters``   every counter of the stage's Beam namespace
=============  ==============================================================================

Stage-specific extras sit beside these keys (``finish(**extras)``); ``partial_inputs`` lists the inputs a
run read with ``--allow-partial`` although they were unfinished, ``stale_temporaries`` how many temporary
files of a killed run it removed (both only when there were any).

**Lock and completion record.** ``OUT/.wit.lock`` marks a directory as a wit stage's output: ``output_lock``
holds an exclusive ``flock`` on it for the whole run and writes the holder (pid, host, stage, command, start
time) into it. ``stats.json`` marks the output finished. A downstream stage calls ``require_finished`` on its
inputs: an input inside a directory with a lock file but no ``stats.json`` (a run that was killed, failed or is
still running) is refused unless ``--allow-partial``; inputs without a lock file (a user's own tables and
tars) pass. Object stores have no ``flock``: remote outputs are neither locked nor checked.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import fcntl
import json
import logging
import os
import re
import socket
import sys
import time
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from . import __version__
from .errors import UserError

if TYPE_CHECKING:
    import apache_beam as beam

log = logging.getLogger(__name__)

LOCK_NAME = ".wit.lock"
STATS_NAME = "stats.json"
STATS_VERSION = 1
COMMON_KEYS = ("stage", "version", "wit_version", "seconds", "in", "out", "dropped", "accounted",
               "settings", "outputs", "counters")


def _fileio():
    # Beam's filesystems load when a stage runs: the trainer takes its run directory's lock without Beam.
    from . import fileio

    return fileio


def _is_remote(path: str) -> bool:
    return "://" in path


def stats_path(out: str) -> str:
    return _fileio().join(out, STATS_NAME)


# -- the output directory's lock -------------------------------------------------------------------------

# How a stage's lock record names the command that wrote it (``wit overlap scan`` runs the stage ``overlap``).
_COMMANDS = {"overlap": "overlap scan", "overlap_filter": "overlap filter"}


def _holder_text(record: dict) -> str:
    return f"pid {record.get('pid', '?')} on {record.get('host', '?')}, since {record.get('started', '?')}"


def read_lock_record(out: str) -> dict:
    """What the lock file of ``out`` says about the run that holds (or last held) it; ``{}`` if unreadable."""
    try:
        with open(os.path.join(out, LOCK_NAME), encoding="utf-8") as handle:
            record = json.loads(handle.read() or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _lock_file(out: str, flag: str) -> int:
    """The open lock file of ``out`` (made with the directory if need be); a path that cannot hold one is
    the user's mistake."""
    try:
        os.makedirs(out, exist_ok=True)
        return os.open(os.path.join(out, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot write to {flag} {out!r}: {exc.strerror or exc}; give a directory you can "
                        "write to") from None


def remove_stale_temporaries(out: str) -> int:
    """Delete the temporary files (``fileio.is_temporary``) a killed run left under ``out``; returns how many.

    Only while the lock is held: then no other writer can be midway through one of them.
    """
    is_temporary = _fileio().is_temporary
    removed = 0
    for folder, _, names in os.walk(out):
        for name in names:
            if is_temporary(name):
                os.remove(os.path.join(folder, name))
                removed += 1
    if removed:
        log.info("removed %d temporary files left in %s by an interrupted run", removed, out)
    return removed


class OutputLock:
    """The held lock of one output directory (``output_lock``); ``stale_temporaries`` were removed on entry."""

    def __init__(self, out: str, fd: int | None, stale_temporaries: int = 0):
        self.out, self.fd, self.stale_temporaries = out, fd, stale_temporaries


@contextmanager
def output_lock(out: str, stage: str, *, flag: str = "--out") -> Iterator[OutputLock]:
    """Hold an exclusive lock on the output directory ``out`` (made if missing) for the block.

    A second holder, in this or another process, gets a ``UserError`` naming the first one's pid, host and
    start time. On entry the temporaries a killed run left are removed. The lock file stays when the block
    ends: it marks ``out`` as a wit stage's output (``require_finished``). Object stores have no ``flock``:
    a remote ``out`` is not locked.
    """
    if _is_remote(out):
        yield OutputLock(out, None)
        return
    fd = _lock_file(out, flag)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{out} is in use by another wit run ({_holder_text(read_lock_record(out))}): wait for "
                            f"it to finish or use another {flag}") from None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "stage": stage,
                  "command": " ".join(sys.argv)[:1000],
                  "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        yield OutputLock(out, fd, remove_stale_temporaries(out))
    finally:
        os.close(fd)          # closing the file releases the flock


def _lock_is_held(out: str) -> bool:
    try:
        fd = os.open(os.path.join(out, LOCK_NAME), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


# -- unfinished inputs -------------------------------------------------------------------------------------

def stage_output_of(path: str) -> str | None:
    """The wit output directory ``path`` lies in (itself, or the folder holding it, or that folder's parent:
    ``OUT``, ``OUT/parts``, ``OUT/00000.tar``, ``OUT/parts/*.parquet``), or None. Local paths only."""
    if _is_remote(path):
        return None
    path = os.path.abspath(re.split(r"[*?[]", path, maxsplit=1)[0])   # a glob: its fixed leading part
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    for candidate in (folder, os.path.dirname(folder)):
        if os.path.isfile(os.path.join(candidate, LOCK_NAME)):
            return candidate
    return None


def unfinished_message(path: str, out: str) -> str:
    record = read_lock_record(out)
    command = _COMMANDS.get(record.get("stage"), record.get("stage") or "stage")
    if _lock_is_held(out):
        state = f"its run is still running, {_holder_text(record)}"
    else:
        state = f"its run was interrupted or failed, pid {record.get('pid', '?')}"
    return f"{path} is an unfinished `wit {command}` output (no {STATS_NAME} in {out}; {state})"


def require_finished(paths: str | Sequence[str], *, allow_partial: bool = False) -> list[str]:
    """Refuse an input that is an unfinished wit output (see the module docstring) with a ``UserError``
    naming it; with ``allow_partial`` it is logged instead. Returns the unfinished inputs allowed through
    (for ``stats.json``'s ``partial_inputs``)."""
    partial = []
    for path in [paths] if isinstance(paths, str) else paths:
        out = stage_output_of(path)
        if out is None or os.path.isfile(os.path.join(out, STATS_NAME)):
            continue
        message = unfinished_message(path, out)
        if not allow_partial:
            raise UserError(f"{message}: rerun that stage to completion, or pass --allow-partial")
        log.warning("%s: read as it is (--allow-partial)", message)
        partial.append(path)
    return partial


def jsonable(value: Any) -> Any:
    """Options as plain JSON: dataclasses to dicts, sets sorted, tuples to lists, enums to values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def dropped_counts(counts: Mapping[str, int], reasons: Sequence[str] = (), prefix: str = "dropped_") -> dict:
    """``{reason: n}`` from ``dropped_<reason>`` counters: every listed reason (0 when none fell there),
    plus any other reason that was counted, so a new reason can never go missing from the total."""
    found = {name[len(prefix):]: value for name, value in counts.items() if name.startswith(prefix)}
    return {reason: int(found.get(reason, 0)) for reason in reasons} | {
        reason: int(value) for reason, value in sorted(found.items()) if reason not in reasons}


def stage_stats(stage: str, *, seconds: float, records_in: int, records_out: int, dropped: Mapping[str, int],
                settings: Any = None, outputs: Mapping[str, str] | None = None,
                counters: Mapping[str, int] | None = None, **extras) -> dict:
    """The shared ``stats.json`` record (see the module docstring), extras beside the common keys."""
    clash = set(extras) & set(COMMON_KEYS)
    if clash:
        raise ValueError(f"stage extras may not replace the common keys: {sorted(clash)}")
    dropped = {str(k): int(v) for k, v in dropped.items()}
    return {
        "stage": stage,
        "version": STATS_VERSION,
        "wit_version": __version__,
        "seconds": round(seconds, 3),
        "in": int(records_in),
        "out": int(records_out),
        "dropped": dropped,
        "accounted": int(records_in) == int(records_out) + sum(dropped.values()),
        "settings": jsonable(settings) if settings is not None else {},
        "outputs": dict(outputs or {}),
        "counters": dict(sorted((counters or {}).items())),
        **jsonable(extras),
    }


class StageRun:
    """One run of one stage: output directory, clock, Beam job(s), and ``stats.json`` written last.

    A stage may run more than one Beam job (download runs a de-duplication job after its fetch job):
    ``run`` collects the counters of each, and ``counters`` holds them all, summed by name.
    """

    def __init__(self, stage: str, out: str, *, settings: Any = None, namespace: str | None = None,
                 lock: OutputLock | None = None, partial_inputs: Sequence[str] = ()):
        self.stage = stage
        self.out = out
        self.settings = settings
        self.namespace = namespace or stage      # the Beam counter namespace the stage counts under
        self.counters: dict[str, int] = {}
        self.started = 0.0
        self.stats: dict | None = None
        self.lock = lock                         # given: the caller holds ``out``'s lock already
        self.partial_inputs = list(partial_inputs)
        self._held = ExitStack()                 # the lock this run took itself, released on exit

    def __enter__(self) -> StageRun:
        with ExitStack() as entering:
            if self.lock is None:
                self.lock = entering.enter_context(output_lock(self.out, self.stage))
            _fileio().makedirs(self.out)
            _fileio().remove(stats_path(self.out))   # stats.json marks a finished run: gone until this one finishes
            self._held = entering.pop_all()
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc_info) -> None:
        self._held.close()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def pipeline(self, beam_args: Sequence[str] | None = None, workers: int | None = None) -> beam.Pipeline:
        """A pipeline from the shared Beam wiring (``workers``: the stage's own worker-count flag, if any)."""
        from .beam import make_pipeline

        return make_pipeline(beam_args, workers)

    def run(self, pipeline: beam.Pipeline) -> dict[str, int]:
        """Run a job to completion; its counters of this stage (by name) are returned and kept."""
        from .beam import run as run_pipeline

        counts = run_pipeline(pipeline, self.namespace)
        for name, value in counts.items():
            self.counters[name] = self.counters.get(name, 0) + value
        return counts

    def finish(self, *, records_in: int, records_out: int, dropped: Mapping[str, int],
               outputs: Mapping[str, str] | None = None, settings: Any = None, **extras) -> dict:
        """Write ``OUT/stats.json`` atomically (the completion record, so last) and return it."""
        if self.partial_inputs:
            extras.setdefault("partial_inputs", self.partial_inputs)
        if self.lock is not None and self.lock.stale_temporaries:
            extras.setdefault("stale_temporaries", self.lock.stale_temporaries)
        self.stats = stage_stats(
            self.stage, seconds=self.seconds, records_in=records_in, records_out=records_out, dropped=dropped,
            settings=self.settings if settings is None else settings, outputs=outputs, counters=self.counters,
            **extras)
        _fileio().write_json_atomic(stats_path(self.out), self.stats)
        return self.stats
