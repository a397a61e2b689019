"""Beam wiring shared by every stage: pipeline options, running, counters.

Stages run through ``wit_pipeline.stage.StageRun``, which builds the pipeline with
``make_pipeline(beam_args)`` and finishes with ``run(pipeline)``: it waits for the
job and returns its counters for the stage's stats.json. DoFns create their counters
once (``counter(stage, name)`` in ``__init__`` or ``setup``), never per element. The
graph is the same whatever runner the options name. A DoFn whose slow bundles may end together hands
its counts on as data to ``CountOnce``, which increments the counters from one bundle (Prism loses
updates of concurrent bundles otherwise). The hot loops of DoFns run with the cyclic garbage
collector paused (``collector_paused``), and a worker's long-lived objects are frozen out of its reach
once (``freeze_long_lived``).

A job that fails on a user's mistake or a full disk ends in one line: ``run`` finds the
``UserError`` or the disk's ``OSError`` in whatever the runner raised (``find_user_error``,
``find_disk_error``), and worker processes of a run without ``-v`` print no traceback of
their own (``quiet_worker_tracebacks``); any other failure keeps its traceback.

No runner fetches code at run time. ``--runner DirectRunner`` (the default) runs on ``LocalBatchRunner``,
never on Beam's Prism fallback; ``--runner PrismRunner`` without ``--prism_location`` uses the binary that
``scripts/engines.sh prism fetch`` built (``local_prism_binary``, under ``WIT_ENGINES_CACHE``), and a missing
one is a one-line error instead of Beam's download from GitHub (``use_local_prism``). ``SparkRunner`` and
``FlinkRunner`` need their job server jar named (``--spark_job_server_jar`` / ``--flink_job_server_jar``,
``require_local_job_server_jar``; docs/cluster.md), never one Beam would fetch from Maven Central.

Beam's own loopback gRPC (multi-process DirectRunner workers, portable LOOPBACK workers) must
not go through an ``http_proxy``/``https_proxy`` the user has set: ``keep_loopback_grpc_direct``
adds the loopback names to ``no_grpc_proxy`` (worker processes inherit the environment).
"""

from __future__ import annotations

import gc
import logging
import os
import re
import threading
from collections import Counter
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    PrismRunnerOptions,
    StandardOptions,
    WorkerOptions,
)
from apache_beam.runners.runner import PipelineRunner

from .errors import DISK_ERRNOS, UserError

log = logging.getLogger(__name__)


def _drop_print(*args, **kwargs) -> None:
    return None


def quiet_worker_tracebacks() -> None:
    """In a Beam SDK worker process of a run without ``-v``: keep the worker from printing a failed
    bundle's traceback on the terminal it shares with the driver.

    The runner hands the failure to the driver, traceback in its text: ``run`` reports a ``UserError``
    or a full disk there in one line, and anything else with that traceback, so the worker's own print
    (Beam's ``sdk_worker`` prints it whatever the log level) would only put a traceback in front of the
    one line. ``print`` is shadowed in that module alone, where it is used for nothing else.
    """
    in_worker = "CONTROL_API_SERVICE_DESCRIPTOR" in os.environ     # set for SDK worker processes only
    if in_worker and logging.getLogger().getEffectiveLevel() > logging.WARNING:
        from apache_beam.runners.worker import sdk_worker

        sdk_worker.print = _drop_print


quiet_worker_tracebacks()   # DoFns import this module, so every worker process runs it before its first bundle


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
    keep_loopback_grpc_direct()
    beam_args = list(beam_args or [])
    options = PipelineOptions(beam_args)
    given = {arg[2:].split("=", 1)[0].replace("-", "_") for arg in beam_args if arg.startswith("--")}
    unknown = sorted(given - set(options.get_all_options(retain_unknown_options=False)))
    if unknown:
        raise UserError(f"unknown Beam pipeline option '--{unknown[0]}'")
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    if standard.runner in ("PrismRunner", "prism"):
        use_local_prism(options)
        if "prism_log_level" not in given and logging.getLogger().getEffectiveLevel() >= logging.WARNING:
            quiet_prism(options)
    if standard.runner in JOB_SERVER_JAR_OPTIONS:
        require_local_job_server_jar(options, standard.runner)
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
            # Worker processes log every channel they open, and warn about optional GCP clients; a
            # failed bundle comes back to the driver as an exception with the worker's traceback in
            # its text (see run), so below -v the workers' own logs stay off the terminal.
            ours = logging.getLogger().getEffectiveLevel()
            level = "CRITICAL" if ours >= logging.WARNING else logging.getLevelName(ours)
            options.view_as(WorkerOptions).default_sdk_harness_log_level = level
    return options


def engines_cache() -> str:
    """Where ``scripts/engines.sh`` keeps what it fetches (the Prism binary, job server jars, pyspark)."""
    return os.environ.get("WIT_ENGINES_CACHE") or os.path.expanduser("~/.cache/wit-pipeline/engines")


def local_prism_binary() -> str:
    """The Prism binary ``scripts/engines.sh prism fetch`` builds for the installed Beam version."""
    return os.path.join(engines_cache(), f"prism-v{beam.__version__}", "bin", "prism")


def use_local_prism(options: PipelineOptions) -> None:
    """``--runner PrismRunner`` without ``--prism_location``: the locally built binary, never Beam's
    download of a release zip from GitHub at run time (a local job must not fetch code)."""
    prism = options.view_as(PrismRunnerOptions)
    if prism.prism_location:
        return
    binary = local_prism_binary()
    if not os.path.isfile(binary):
        raise UserError(f"--runner PrismRunner needs a Prism binary: none at {binary}; build it with "
                        "'scripts/engines.sh prism fetch' or pass --prism_location BINARY")
    prism.prism_location = binary


def quiet_prism(options: PipelineOptions) -> None:
    """Below ``-v``, Prism's own log lines and Beam's notes on starting and stopping it stay off the
    terminal (four lines per job otherwise); errors still show."""
    options.view_as(PrismRunnerOptions).prism_log_level = "error"
    logging.getLogger("apache_beam.utils.subprocess_server").setLevel(logging.ERROR)
    logging.getLogger("apache_beam.runners.portability.prism_runner").setLevel(logging.WARNING)


# runner -> (its job server jar option, the scripts/engines.sh engine that fetches the jar)
JOB_SERVER_JAR_OPTIONS = {"SparkRunner": ("spark_job_server_jar", "spark"),
                          "FlinkRunner": ("flink_job_server_jar", "flink")}


def require_local_job_server_jar(options: PipelineOptions, runner: str) -> None:
    """Spark and Flink runners without a job server jar: a one-line error, not Beam's download of the jar
    from Maven Central at run time."""
    name, engine = JOB_SERVER_JAR_OPTIONS[runner]
    if not options.get_all_options().get(name):
        raise UserError(f"--runner {runner} needs --{name} JAR: 'scripts/engines.sh {engine} env' prints "
                        "the flags with the jar it fetched")


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def keep_loopback_grpc_direct(environ: dict | None = None) -> None:
    """Add the loopback hosts to ``no_grpc_proxy``, keeping what is there (gRPC reads ``no_grpc_proxy``
    instead of ``no_proxy`` when it is set, so an unset one starts from ``no_proxy``)."""
    environ = os.environ if environ is None else environ
    current = environ.get("no_grpc_proxy")
    if current is None:
        current = environ.get("no_proxy", environ.get("NO_PROXY", ""))
    hosts = [h.strip() for h in current.split(",") if h.strip()]
    missing = [h for h in LOOPBACK_HOSTS if h not in hosts]
    if missing or "no_grpc_proxy" not in environ:
        environ["no_grpc_proxy"] = ",".join(hosts + missing)


def make_pipeline(beam_args: Sequence[str] | None = None, workers: int | None = None) -> beam.Pipeline:
    options = pipeline_options(beam_args, workers)
    direct = options.view_as(StandardOptions).runner in ("DirectRunner", "direct")
    return beam.Pipeline(runner=LocalBatchRunner() if direct else None, options=options)


class LocalBatchRunner(PipelineRunner):
    """What ``--runner DirectRunner`` runs our batch jobs on: Beam's FnApiRunner (in-memory or multi-process,
    ``--direct_running_mode`` / ``--direct_num_workers``), set up as Beam's DirectRunner sets it up.

    Beam's DirectRunner itself first tries the Prism runner, which downloads its binary from GitHub at run
    time (through any proxy the user has set) and then ignores the running mode and worker count; with no
    network it wastes a lookup per job before falling back. A local job must not fetch code.
    """

    def run_pipeline(self, pipeline, options):
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.runners.portability.portable_runner import JobServiceHandle

        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        return fn_runner.FnApiRunner(provision_info=provision).run_pipeline(pipeline, options)


_collector_lock = threading.Lock()
_collector_pauses = 0          # hot loops now running in this process (threads of one worker included)
_collector_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a DoFn's hot loop runs; back on (if it was) when the last
    such loop of the process ends, so threads and nested loops may overlap.

    Such a loop makes millions of short-lived objects without cycles (row values, records, parsed JSON):
    reference counting frees them, but their allocations keep setting off the collector, and each of its
    full passes walks every object the process holds (Beam's and pyarrow's modules, the query index ...).
    That was a third of ``wit select``'s CPU time per candidate row (``bench/bench_candidates.py --beam``;
    docs/benchmarks.md). A cycle made meanwhile is collected once the collector is back on.
    """
    global _collector_pauses, _collector_was_enabled
    with _collector_lock:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pauses -= 1
            if _collector_pauses == 0 and _collector_was_enabled:
                gc.enable()


_frozen = False


def freeze_long_lived() -> None:
    """Once per process, from the setup of a DoFn that builds long-lived state (the query index): collect,
    then take every object the collector tracks out of its reach (``gc.freeze``): the modules, the index,
    the runner. The collector's full passes, which a job's allocations set off now and then, then walk only
    the job's own objects: ~50 ms instead of ~250 ms each in ``wit select``'s worker. A frozen object is
    never collected as part of a cycle, hence once, when what is alive is what the process keeps.
    """
    global _frozen
    with _collector_lock:
        if not _frozen:
            _frozen = True
            gc.collect()
            gc.freeze()


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


def add_counts(counts) -> Counter:
    """The sum of ``{name: n}`` counts (negative ones too, which ``Counter``'s ``+`` would drop)."""
    total = Counter()
    for part in counts:
        total.update(part)
    return total


def _increment_counters(counts: Counter, stage: str) -> tuple:
    StageCounters(stage).add(counts)
    return ()


class CountOnce(beam.PTransform):
    """``{counter name: n}`` elements -> the stage's counters, summed first and incremented in one bundle.

    For a DoFn whose slow bundles may end side by side (the download's shards): it hands its counts on as
    data instead of counting where the work is done, because Prism (v2.77) loses counter values of
    concurrent bundles. A bundle's value of a metric whose short id Prism has not resolved yet waits for the
    id's metadata keyed by that id alone, so when two bundles of one step end before the id is resolved, the
    second bundle's value replaces the first's. Prism splits a slow bundle (a shard downloading shows no
    element progress) and runs the parts at once, so shards can end together, and a counter new to both
    (``dropped_bad_aspect_ratio``, or ``in`` itself) is then a shard short. Elements are not lost that way,
    and the summed counts reach the counters as one element: one bundle reports them, whatever the runner."""

    def __init__(self, stage: str):
        super().__init__()
        self.stage = stage

    def expand(self, counts):
        return (counts
                | "Sum" >> beam.CombineGlobally(add_counts)
                | "Count" >> beam.FlatMap(_increment_counters, self.stage))


def run(pipeline: beam.Pipeline, stage: str | None = None) -> dict[str, int]:
    """Run ``pipeline`` to completion and return its counters (``namespace/name`` keys).

    With ``stage``, only that namespace's counters are returned, keyed by name. A ``UserError``
    raised inside a worker (a bad input row found only there) is raised again here as itself, so
    the CLI reports it in one line whatever runner wrapped it; so is a full or read-only disk
    (``find_disk_error``); anything else keeps its traceback.
    """
    # Beam logs a failing DoFn's traceback itself; a worker's UserError is re-raised below as the
    # one line it is, anything else keeps its traceback, so that log would only repeat it.
    beam_log = logging.getLogger("apache_beam.runners.common")
    previous_level = beam_log.level
    beam_log.setLevel(logging.CRITICAL)
    keep_loopback_grpc_direct()
    try:
        result = pipeline.run()
        state = result.wait_until_finish()
    except Exception as exc:
        user_error = find_user_error(exc) or find_disk_error(exc)
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


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling, innermost last."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def find_user_error(exc: BaseException) -> UserError | None:
    """The ``UserError`` inside a runner's wrapped exception chain, or one re-raised by type name
    (portable runners send a worker's exception back as text)."""
    for current in exception_chain(exc):
        if isinstance(current, UserError):
            return UserError(str(current).split(" [while running")[0])
    marker = "UserError: "
    text = str(exc)
    if marker in text:
        return UserError(text.split(marker, 1)[1].splitlines()[0].split(" [while running")[0])
    return None


# "[Errno 28] No space left on device: '/out/00001.tar'" as a runner's text carries a worker's OSError
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\] ([^:\[\n]+?)(?:: '([^'\n]*)')?\s*(?:\[while running|$)", re.MULTILINE)


def find_disk_error(exc: BaseException) -> OSError | None:
    """A full, over-quota or read-only disk (``errors.DISK_ERRNOS``) inside a runner's wrapped exception
    chain, or in its text, as an ``OSError`` the CLI reports in one line (``errors.disk_error_message``)."""
    for current in exception_chain(exc):
        if isinstance(current, OSError) and current.errno in DISK_ERRNOS:
            return current
    for match in _ERRNO_TEXT.finditer(str(exc)):
        if int(match.group(1)) in DISK_ERRNOS:
            return OSError(int(match.group(1)), match.group(2).strip(), match.group(3) or None)
    return None


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
