"""The sample chain (queries → candidates → select → download → overlap scan) on real Beam engines gives
exactly the DirectRunner's outputs: the same keys, rows and counters (each engine's counters read back
from its metrics into every stage's stats.json). On Prism, the download's counters also add up when its
shards end together, with the runner's metric ids resolved late (as on a busy machine).

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
import time

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


def _ending_together(download, after_s: float = 2.0):
    """``ShardWorker.download`` returning no sooner than ``after_s`` after the output's first shard started:
    Prism splits a slow bundle and runs the halves at once, so by then each shard is a bundle of its own, and
    all of them end together."""
    ends: dict[str, float] = {}

    def download_then_wait(self, task):
        end = ends.setdefault(self.out, time.monotonic() + after_s)
        result = download(self, task)
        time.sleep(max(0.0, end - time.monotonic()))
        return result

    return download_then_wait


def _answering_late(get_infos, delay_s: float = 0.3):
    """The SDK harness's answer to the runner's question "which metric is this short id?", late, as on a busy
    machine: Prism holds a bundle's values of unresolved ids until the answer comes."""
    def late(short_ids):
        time.sleep(delay_s)
        return get_infos(short_ids)

    return late


@pytest.mark.timeout(FETCH_LIMIT_S + 300)
def test_prism_counts_every_download_shard_when_shards_end_together(prism_flags, sample_web, tmp_path,
                                                                    monkeypatch):
    """Prism (v2.77) keeps one pending value per unresolved metric id: of bundles that end together with the
    same new counters it counts one, unless their counts reach the counters from one bundle
    (``beam.CountOnce``). The download's counters must add up to its status parquets even then."""
    from apache_beam.runners.worker import sdk_worker

    from wit_pipeline.download.pipeline import ShardWorker

    # Prism runs the SDK harness in this process (LOOPBACK), so both patches reach it.
    monkeypatch.setattr(ShardWorker, "download", _ending_together(ShardWorker.download))
    monkeypatch.setattr(sdk_worker.SHORT_ID_CACHE, "get_infos", _answering_late(sdk_worker.SHORT_ID_CACHE.get_infos))
    source = tmp_path / "in.csv"     # 3 shards; a few images too small or too narrow for the flags below
    source.write_text("url,text\n" + "".join(f"{sample_web.url(image.path)},caption {i}\n"
                                             for i, image in enumerate(sample_web.site.images[:12])))
    out = tmp_path / "out"
    assert main(["download", "--input", str(source), "--out", str(out), "--samples-per-shard", "4",
                 "--min-image-size", "250", "--max-aspect-ratio", "2", "--allow-private-networks", "--timeout", "5",
                 *prism_flags]) == 0
    stats = json.loads((out / "stats.json").read_text())
    counters = stats["counters"]
    dropped = {name[len("dropped_"):]: n for name, n in counters.items() if name.startswith("dropped_")}
    assert stats["dropped"] and stats["out"], "the input should give both samples and dropped rows"
    assert (counters["shards_written"], counters["in"], counters["out"], dropped) == \
        (3, stats["in"], stats["out"], stats["dropped"])


@pytest.mark.timeout(FETCH_LIMIT_S + 900)
def test_a_standalone_spark_cluster_runs_the_chain_like_the_direct_runner(spark_flags, sample_files, eval_dir,
                                                                          direct_chain, tmp_path):
    assert_same_chain(chain(sample_files, eval_dir, str(tmp_path / "spark"), spark_flags), direct_chain)


@pytest.mark.timeout(FETCH_LIMIT_S + 900)
def test_flink_runs_the_chain_like_the_direct_runner(flink_flags, sample_files, eval_dir, direct_chain, tmp_path):
    assert_same_chain(chain(sample_files, eval_dir, str(tmp_path / "flink"), flink_flags), direct_chain)
