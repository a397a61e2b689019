"""One job graph, any runner: the whole chain gives the same output on the DirectRunner (1 or 2
worker processes) and through the Beam Job API (the path a Flink or Spark job server takes)."""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
import tarfile
import time

import pyarrow.parquet as pq
import pytest

from wit_pipeline.build import run_build


def _config(files, out: str) -> dict:
    return {
        "output": out,
        "seed": 0,
        "queries": {"wikipedia": files.wikipedia, "pageviews": files.pageviews, "wordnet": files.wordnet,
                    "min_count": 5, "min_pmi": 6.0, "min_bigram_count": 3, "min_views": 50},
        "candidates": {"source": "wat", "input": files.wat},
        "select": {"cap": 12},
        "download": {"allow_private_networks": True, "timeout": 1, "retries": 1, "samples_per_shard": 40,
                     "image_size": 64, "min_image_size": 150},
    }


def _rows(pattern: str, drop: tuple[str, ...] = ()) -> list[str]:
    rows = []
    for path in sorted(glob.glob(pattern, recursive=True)):
        for row in pq.read_table(path).to_pylist():
            rows.append(json.dumps({k: v for k, v in row.items() if k not in drop}, sort_keys=True, default=str))
    return sorted(rows)


def snapshot(root: str) -> dict:
    """Everything a user reads from a run, minus wall-clock fields."""
    keys = []
    for tar in sorted(glob.glob(os.path.join(root, "shards", "*.tar"))):
        with tarfile.open(tar) as archive:
            keys += [(os.path.basename(tar), m.name, m.size) for m in archive.getmembers()]
    return {
        "queries": open(os.path.join(root, "queries", "queries.txt")).read(),
        "candidates": _rows(os.path.join(root, "candidates", "**", "*.parquet")),
        "selected": _rows(os.path.join(root, "select", "selected", "*.parquet")),
        "shard_members": keys,
        "status": _rows(os.path.join(root, "shards", "*.parquet"), drop=("message", "error_message", "seconds")),
    }


@pytest.fixture(scope="module")
def direct_run(sample_files, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("direct"))
    run_build(_config(sample_files, out), ["--direct_running_mode=in_memory", "--direct_num_workers=1"])
    result = snapshot(out)
    assert result["queries"] and result["candidates"] and result["selected"] and result["shard_members"]
    return result


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def job_service():
    """Beam's own job service on loopback: the Job API a Flink or Spark job server speaks."""
    port = _free_port()
    service = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or service.poll() is not None:
                    raise RuntimeError("the Beam job service did not start") from None
                time.sleep(0.2)
        yield f"localhost:{port}"
    finally:
        service.terminate()
        try:
            service.wait(timeout=10)
        except subprocess.TimeoutExpired:
            service.kill()


def test_portable_runner_through_the_job_api_matches_direct_runner(sample_files, direct_run, job_service, tmp_path):
    out = str(tmp_path / "portable")
    run_build(_config(sample_files, out),
              ["--runner=PortableRunner", f"--job_endpoint={job_service}", "--environment_type=LOOPBACK"])
    assert snapshot(out) == direct_run


def test_two_worker_processes_give_the_same_output_as_one(sample_files, direct_run, tmp_path):
    out = str(tmp_path / "two-workers")
    run_build(_config(sample_files, out), ["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert snapshot(out) == direct_run


def test_the_direct_runner_runs_locally_without_fetching_prism(monkeypatch):
    # Beam's DirectRunner would first try Prism, downloading its binary at run time and ignoring the
    # worker count; our jobs run on the local batch runner with the options they were given.
    import apache_beam as beam
    from apache_beam.runners.portability import prism_runner

    from wit_pipeline.beam import counter, make_pipeline, run

    prism_tries = []

    def no_prism(*args, **kwargs):
        prism_tries.append(args)
        raise RuntimeError("no Prism here")    # Beam's DirectRunner would fall back after this

    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", no_prism)
    # Beam's own DirectRunner, not the one tests/conftest.py routes TestPipelines through: a stage that fell
    # back to it would try Prism here.
    from apache_beam.runners.direct.direct_runner import DirectRunner
    monkeypatch.setattr(DirectRunner, "run_pipeline", getattr(DirectRunner.run_pipeline, "__wrapped__",
                                                              DirectRunner.run_pipeline))

    class Count(beam.DoFn):
        def setup(self):
            self.seen = counter("probe", "seen")

        def process(self, element):
            self.seen.inc()
            yield element

    pipeline = make_pipeline(["--direct_running_mode=in_memory"])
    _ = pipeline | beam.Create(range(7)) | beam.ParDo(Count())
    assert run(pipeline, "probe") == {"seen": 7}
    assert prism_tries == []


def test_prism_runner_takes_the_locally_built_binary_instead_of_downloading_one(monkeypatch, tmp_path):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PrismRunnerOptions

    from wit_pipeline.beam import pipeline_options

    binary = tmp_path / f"prism-v{beam.__version__}" / "bin" / "prism"
    binary.parent.mkdir(parents=True)
    binary.write_bytes(b"")
    monkeypatch.setenv("WIT_ENGINES_CACHE", str(tmp_path))
    assert pipeline_options(["--runner=PrismRunner"]).view_as(PrismRunnerOptions).prism_location == str(binary)
    given = pipeline_options(["--runner=PrismRunner", "--prism_location=/opt/prism"])
    assert given.view_as(PrismRunnerOptions).prism_location == "/opt/prism"
