"""Beam wiring shared by every stage: pipeline options, running, counters.

Stages build their graph with ``make_pipeline(beam_args)``, count every drop
with ``counter(stage, reason)``, and finish with ``run(pipeline)``, which waits
for the job and returns its counters as ``{"stage/name": value}`` for the
stage's stats.json. The graph is the same whatever runner the options name.
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions, WorkerOptions

from .errors import UserError

log = logging.getLogger(__name__)


def pipeline_options(beam_args: Sequence[str] | None = None) -> PipelineOptions:
    """Options from trailing command-line flags; DirectRunner when no runner is named.

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
            direct.direct_running_mode = os.environ.get("WIT_DIRECT_RUNNING_MODE", "multi_processing")
        if "direct_num_workers" not in given and direct.direct_running_mode != "in_memory":
            direct.direct_num_workers = default_workers()  # in_memory runs one worker whatever we ask
        if "default_sdk_harness_log_level" not in given:
            # Worker processes log every channel they open, and warn about optional GCP
            # clients; below -v, only their errors are worth the user's terminal.
            ours = logging.getLogger().getEffectiveLevel()
            level = "ERROR" if ours >= logging.WARNING else logging.getLevelName(ours)
            options.view_as(WorkerOptions).default_sdk_harness_log_level = level
    return options


def make_pipeline(beam_args: Sequence[str] | None = None) -> beam.Pipeline:
    return beam.Pipeline(options=pipeline_options(beam_args))


def counter(stage: str, name: str):
    """A Beam counter; every drop reason and every in/out count is one of these."""
    return Metrics.counter(stage, name)


def run(pipeline: beam.Pipeline, stage: str | None = None) -> dict[str, int]:
    """Run ``pipeline`` to completion and return its counters (``namespace/name`` keys).

    With ``stage``, only that namespace's counters are returned, keyed by name.
    """
    result = pipeline.run()
    state = result.wait_until_finish()
    if state not in (None, "DONE") and str(state) != "DONE":
        raise RuntimeError(f"pipeline ended in state {state}")
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


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
