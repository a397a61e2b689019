"""The one contract every stage that writes output runs through.

::

    with StageRun("candidates", options.out, settings=options) as stage:
        pipeline = stage.pipeline(beam_args)      # Beam options from the shared wiring (beam.py)
        build(pipeline, options)
        counts = stage.run(pipeline)              # counters of this stage's namespace, by name
        return stage.finish(records_in=counts.get("in", 0), records_out=counts.get("out", 0),
                            dropped=dropped_counts(counts), outputs={"parts": ...})

Entering a ``StageRun`` makes the output directory, removes the previous run's ``stats.json`` (the
file marks a finished run, so it is gone until this run finishes) and starts the clock. ``run``
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

Stage-specific extras sit beside these keys (``finish(**extras)``).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from typing import Any, Mapping, Sequence

import apache_beam as beam

from . import __version__, fileio
from .beam import make_pipeline
from .beam import run as run_pipeline

STATS_NAME = "stats.json"
STATS_VERSION = 1
COMMON_KEYS = ("stage", "version", "wit_version", "seconds", "in", "out", "dropped", "accounted",
               "settings", "outputs", "counters")


def stats_path(out: str) -> str:
    return fileio.join(out, STATS_NAME)


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

    def __init__(self, stage: str, out: str, *, settings: Any = None, namespace: str | None = None):
        self.stage = stage
        self.out = out
        self.settings = settings
        self.namespace = namespace or stage      # the Beam counter namespace the stage counts under
        self.counters: dict[str, int] = {}
        self.started = 0.0
        self.stats: dict | None = None

    def __enter__(self) -> StageRun:
        fileio.makedirs(self.out)
        fileio.remove(stats_path(self.out))   # stats.json marks a finished run: gone until this one finishes
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def pipeline(self, beam_args: Sequence[str] | None = None, workers: int | None = None) -> beam.Pipeline:
        """A pipeline from the shared Beam wiring (``workers``: the stage's own worker-count flag, if any)."""
        return make_pipeline(beam_args, workers)

    def run(self, pipeline: beam.Pipeline) -> dict[str, int]:
        """Run a job to completion; its counters of this stage (by name) are returned and kept."""
        counts = run_pipeline(pipeline, self.namespace)
        for name, value in counts.items():
            self.counters[name] = self.counters.get(name, 0) + value
        return counts

    def finish(self, *, records_in: int, records_out: int, dropped: Mapping[str, int],
               outputs: Mapping[str, str] | None = None, settings: Any = None, **extras) -> dict:
        """Write ``OUT/stats.json`` atomically (the completion record, so last) and return it."""
        self.stats = stage_stats(
            self.stage, seconds=self.seconds, records_in=records_in, records_out=records_out, dropped=dropped,
            settings=self.settings if settings is None else settings, outputs=outputs, counters=self.counters,
            **extras)
        fileio.write_json_atomic(stats_path(self.out), self.stats)
        return self.stats
