"""Beam wiring shared by every stage: pipeline options, running, counters.

Stages run through ``wit_pipeline.stage.StageRun``, which builds the pipeline with
``make_pipeline(beam_args)`` and finishes with ``run(pipeline)``: it waits for the
job and returns its counters for the stage's stats.json. DoFns create their counters
once (``counter(stage, name)`` in ``__init__`` or ``setup``), never per element. The
graph is the same whatever runner the options name.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions, WorkerOptions

from .errors import UserError

log = logging.getLogger(__name__)


def pipeline_options(beam_args: Sequence[str] | None = None, workers: int | None = None) -> PipelineOptions:
    """Options from trailing command-line flags; DirectRunner when no runner is named.

    ``workers`` (a stage's own flag, such as ``wit download --processes N``) sets the DirectRunner's
    worker count: separate processes when N > 1, the driver itself when N == 1. Explicit Beam flags
    (``--direct_num_workers``, ``--direct_running_mode``) win over it; other runners ignore it.

    The DirectRunner defaults to its multi-process mode with one worker per core
    (``--direct_running_mode`` / ``--direct_num_workers`` override it; so does the
    ``WIT_DIRECT_RUNNING_MODE`` environment variable, which the test suite sets
    to ``in_memory`` because starting worker processes costs seconds per job).

    Unknown flags are a user mistake: Beam would only log a warning and run
    with defaults, so we refuse them here instead.
    """
    beam_args = list(beam_args or [])
    options = PipelineOptions(beam_args)
    given = {arg[2:].split("=", 1)[0].replace("-", "_") for arg in beam_args if arg.startswith("--")}
    unknown = sorted(given - set(options.get_all_options(retain_unknown_options=False)))
    if unknown:
        raise UserError(f"unknown Beam pipeline option '--{unknown[0]}'")
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    if standard.runner in ("DirectRunner", "direct"):
        direct = options.view_as(DirectOptions)
        if "direct_running_mode" not in given:
            if workers is None:
                direct.direct_running_mode = os.environ.get("WIT_DIRECT_RUNNING_MODE", "multi_processing")
            else:
                direct.direct_running_mode = "multi_processing" if workers > 1 else "in_memory"
        if "direct_num_workers" not in given and direct.direct_running_mode != "in_memory":
            # in_memory runs one worker whatever we ask
            direct.direct_num_workers = workers if workers is not None else default_workers()
        if "default_sdk_harness_log_level" not in given:
            # Worker processes log every channel they open, and warn about optional GCP
            # clients; below -v, only their errors are worth the user's terminal.
            ours = logging.getLogger().getEffectiveLevel()
            level = "ERROR" if ours >= logging.WARNING else logging.getLevelName(ours)
            options.view_as(WorkerOptions).default_sdk_harness_log_level = level
    return options


def make_pipeline(beam_args: Sequence[str] | None = None, workers: int | None = None) -> beam.Pipeline:
    return beam.Pipeline(options=pipeline_options(beam_args, workers))


def counter(stage: str, name: str):
    """A Beam counter; every drop reason and every in/out count is one of these."""
    return Metrics.counter(stage, name)


class StageCounters:
    """Counters of the stage's namespace, each created once (on first use) and kept, so readers can
    count outcomes in a plain ``Counter`` per file and hand them over in one go."""

    def __init__(self, stage: str):
        self.stage = stage
        self.counters: dict[str, Any] = {}

    def add(self, counts: Mapping[str, int]) -> None:
        for name, value in counts.items():
            if value:
                if name not in self.counters:
                    self.counters[name] = counter(self.stage, name)
                self.counters[name].inc(value)


def run(pipeline: beam.Pipeline, stage: str | None = None) -> dict[str, int]:
    """Run ``pipeline`` to completion and return its counters (``namespace/name`` keys).

    With ``stage``, only that namespace's counters are returned, keyed by name. A ``UserError``
    raised inside a worker (a bad input row found only there) is raised again here as itself, so
    the CLI reports it in one line whatever runner wrapped it; anything else keeps its traceback.
    """
    # Beam logs a failing DoFn's traceback itself; a worker's UserError is re-raised below as the
    # one line it is, anything else keeps its traceback, so that log would only repeat it.
    beam_log = logging.getLogger("apache_beam.runners.common")
    previous_level = beam_log.level
    beam_log.setLevel(logging.CRITICAL)
    try:
        result = pipeline.run()
        state = result.wait_until_finish()
    except Exception as exc:
        user_error = find_user_error(exc)
        if user_error is not None:
            raise user_error from exc
        raise
    finally:
        beam_log.setLevel(previous_level)
    if state not in (None, "DONE") and str(state) != "DONE":
        raise RuntimeError(f"pipeline ended in state {state}")
    return job_counters(result, stage)


def job_counters(result, stage: str | None = None) -> dict[str, int]:
    """A finished job's counters, committed where the runner has them, summed per ``namespace/name``."""
    counters: dict[str, int] = {}
    try:
        query = result.metrics().query(MetricsFilter())
    except NotImplementedError:  # some runners do not report metrics
        return counters
    for item in query["counters"]:
        value = item.committed if item.committed is not None else item.attempted
        key = f"{item.key.metric.namespace}/{item.key.metric.name}"
        counters[key] = counters.get(key, 0) + int(value or 0)
    if stage is not None:
        prefix = f"{stage}/"
        return {k[len(prefix):]: v for k, v in sorted(counters.items()) if k.startswith(prefix)}
    return dict(sorted(counters.items()))


def find_user_error(exc: BaseException) -> UserError | None:
    """The ``UserError`` inside a runner's wrapped exception chain, or one re-raised by type name
    (portable runners send a worker's exception back as text)."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UserError):
            return UserError(str(current).split(" [while running")[0])
        current = current.__cause__ or current.__context__
    marker = "UserError: "
    text = str(exc)
    if marker in text:
        return UserError(text.split(marker, 1)[1].splitlines()[0].split(" [while running")[0])
    return None


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
