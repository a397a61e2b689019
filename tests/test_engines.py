"""The sample chain (queries → candidates → select → download → overlap scan) on real Beam engines gives
exactly the DirectRunner's outputs: the same keys, rows and counters (each engine's counters read back
from its metrics into every stage's stats.json).

Each engine comes from ``scripts/engines.sh`` exactly as docs/cluster.md tells a user: Prism built by
``go install`` through the Go module proxy; a standalone Spark cluster (master + 2 workers on 127.0.0.1)
with Beam's Spark job server jar from Maven Central; Beam's Flink job server jar with its embedded
mini-cluster. What is fetched is cached in ``$WIT_ENGINES_CACHE`` (default ~/.cache/wit-pipeline/engines),
outside the repository. An engine whose fetch fails here is skipped with the fetch's one-line reason
(``-ra`` prints it); the others still run. Every process a test starts is stopped, even when it fails.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.test_runners import _config, snapshot
from wit_pipeline.build import run_build
from wit_pipeline.cli import main

pytestmark = pytest.mark.engines

ENGINES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "engines.sh")
FETCH_LIMIT_S = 1200    # a first `go install` of prism on a busy 2-core box; a cached one is instant
PER_WORKER_COUNTERS = ("signal_file_",)    # download: origins whose robots.txt/tdmrep.json/ai.txt a worker read
WALL_CLOCK_KEYS = ("seconds", "started", "finished", "wall_s", "elapsed_s")


def engines(engine: str, action: str, timeout: float = 300) -> str:
    """``scripts/engines.sh ENGINE ACTION``'s output; a failure raises with its one-line reason. On a
    timeout the script's whole process group goes (a ``go install``, ``mvn`` or JVM it started too)."""
    process = subprocess.Popen(["bash", ENGINES, engine, action], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHON": sys.executable}, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    if process.returncode != 0:
        raise RuntimeError((err.strip().splitlines() or [f"exit {process.returncode}"])[-1])
    return out.strip()


def fetched(engine: str) -> str:
    """Fetch ``engine`` (or find it cached); skip the test, saying why, when it cannot be had here."""
    try:
        return engines(engine, "fetch", timeout=FETCH_LIMIT_S)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{engine} cannot run here: {exc}")


def _without_clock(value):
    if isinstance(value, dict):
        return {k: _without_clock(v) for k, v in value.items() if k not in WALL_CLOCK_KEYS}
    if isinstance(value, list):
        return [_without_clock(v) for v in value]
    return value


def chain(files, eval_dir: str, out: str, beam_args: list[str]) -> dict:
    """Run the sample chain with ``beam_args``; everything a user reads from it, minus wall-clock fields."""
    run_build(_config(files, out), beam_args)
    assert main(["overlap", "scan", "--shards", os.path.join(out, "shards"), "--eval", f"toy={eval_dir}",
                 "--out", os.path.join(out, "overlap"), *beam_args]) == 0
    result = snapshot(out)
    for stats_path in sorted(glob.glob(os.path.join(out, "*", "stats.json"))):
        with open(stats_path) as handle:
            stats = json.load(handle)
        result[f"stats/{stats['stage']}"] = {k: stats[k] for k in ("in", "out", "dropped", "accounted", "counters")}
    with open(os.path.join(out, "overlap", "overlap.json")) as handle:     # paths under the run's root as OUT/...
        result["overlap"] = _without_clock(json.loads(handle.read().replace(json.dumps(out)[1:-1], "OUT")))
    return result


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory):
    from trainer.synthetic import write_shape_imagefolder

    return write_shape_imagefolder(str(tmp_path_factory.mktemp("eval")), per_class=1, image_size=32)


@pytest.fixture(scope="module")
def direct_chain(sample_files, eval_dir, tmp_path_factory):
    result = chain(sample_files, eval_dir, str(tmp_path_factory.mktemp("direct")),
                   ["--runner=DirectRunner", "--direct_running_mode=in_memory"])
    assert result["shard_members"] and result["stats/download"]["counters"] and result["overlap"]
    return result


def assert_same_chain(engine_result: dict, direct_result: dict) -> None:
    assert engine_result.keys() == direct_result.keys()
    for part in direct_result:      # one part at a time, so a failure names what differs
        mine, theirs = engine_result[part], direct_result[part]
        if part.startswith("stats/"):
            mine, theirs = dict(mine), dict(theirs)
            mine_counters, direct_counters = mine.pop("counters"), theirs.pop("counters")
            assert_same_counters(part, mine_counters, direct_counters)
        assert mine == theirs, part


def assert_same_counters(part: str, mine: dict, theirs: dict) -> None:
    """Every counter equal, except the per-worker cache's: each download worker reads an origin's signal files
    once (``DownloadShard``), so an engine running more workers than the in-memory reference's one reads them
    more often."""
    assert mine.keys() == theirs.keys(), f"{part} counters: {sorted(mine.keys() ^ theirs.keys())}"
    differ = {k: (mine[k], v) for k, v in theirs.items()
              if (mine[k] < v if k.startswith(PER_WORKER_COUNTERS) else mine[k] != v)}
    assert not differ, f"{part} counters (engine, direct): {differ}"


# The engine fixtures come first in each test's arguments: an engine that cannot be had here skips its
# test before the DirectRunner's chain (shared by the module) is run for it.

@pytest.fixture(scope="module")
def prism_flags():
    fetched("prism")
    return engines("prism", "env").split()


@pytest.fixture(scope="module")
def spark_flags():
    fetched("spark")
    try:
        master = engines("spark", "start", timeout=240)
        assert master.startswith("spark://127.0.0.1:")
        yield engines("spark", "env").split()
    finally:
        engines("spark", "stop", timeout=60)


@pytest.fixture(scope="module")
def flink_flags():
    fetched("flink")
    return engines("flink", "env").split()


@pytest.mark.timeout(FETCH_LIMIT_S + 600)
def test_prism_runs_the_chain_like_the_direct_runner(prism_flags, sample_files, eval_dir, direct_chain, tmp_path):
    assert_same_chain(chain(sample_files, eval_dir, str(tmp_path / "prism"), prism_flags), direct_chain)


@pytest.mark.timeout(FETCH_LIMIT_S + 900)
def test_a_standalone_spark_cluster_runs_the_chain_like_the_direct_runner(spark_flags, sample_files, eval_dir,
                                                                          direct_chain, tmp_path):
    assert_same_chain(chain(sample_files, eval_dir, str(tmp_path / "spark"), spark_flags), direct_chain)


@pytest.mark.timeout(FETCH_LIMIT_S + 900)
def test_flink_runs_the_chain_like_the_direct_runner(flink_flags, sample_files, eval_dir, direct_chain, tmp_path):
    assert_same_chain(chain(sample_files, eval_dir, str(tmp_path / "flink"), flink_flags), direct_chain)
