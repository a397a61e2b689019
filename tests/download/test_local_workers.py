"""``wit download --processes N`` on the local DirectRunner: the shards are written by N worker processes forked
from the driver (``pipeline.local_worker_processes``), with the same outputs and counters as one worker."""

from __future__ import annotations

import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq

from wit_pipeline.download.pipeline import (
    DownloadOptions,
    in_memory_args,
    interrupted,
    local_worker_processes,
    run_download,
)

SKIPPED_FAULTS = ("slow", "unavailable_then_ok")        # slow by design; stateful on the server


def _status_rows(out: str) -> list[dict]:
    """Every status row; an object's address in an error message (``<_io.BytesIO object at 0x...>``) differs
    from run to run."""
    rows = []
    for name in sorted(os.listdir(out)):
        if name.endswith(".parquet"):
            rows += pq.read_table(os.path.join(out, name)).to_pylist()
    for row in rows:
        row["error_message"] = re.sub(r" at 0x[0-9a-f]+", "", row["error_message"] or "")
    return rows


def _run(source: str, out: str, processes: int) -> dict:
    return run_download(DownloadOptions(input=source, out=out, processes=processes, samples_per_shard=5, threads=4,
                                        timeout=2.0, retries=1, allow_private_networks=True))


def test_forked_workers_write_the_same_shards_statuses_and_counts_as_one_worker(sample_web, tmp_path):
    urls = [sample_web.image_url(image) for image in sample_web.site.images[:24]]
    urls += [url for kind, url in sorted(sample_web.fault_urls().items()) if kind not in SKIPPED_FAULTS]
    source = str(tmp_path / "in.parquet")
    pq.write_table(pa.table({"url": urls, "text": [f"caption {i}" for i in range(len(urls))]}), source)

    one = _run(source, str(tmp_path / "one"), processes=1)
    forked = _run(source, str(tmp_path / "forked"), processes=2)

    assert forked["in"] == one["in"] == len(urls) and forked["accounted"]
    assert forked["out"] == one["out"] > 0 and forked["dropped"] == one["dropped"]
    manifest = [json.load(open(tmp_path / name / "manifest.json"))["shards"] for name in ("one", "forked")]
    assert manifest[0] == manifest[1]                      # same tar bytes, shard by shard
    assert _status_rows(str(tmp_path / "forked")) == _status_rows(str(tmp_path / "one"))
    per_shard = {key: value for key, value in forked["counters"].items() if not key.startswith("signal_file_")}
    assert per_shard == {key: value for key, value in one["counters"].items() if not key.startswith("signal_file_")}
    # each worker process reads an origin's signal files once: one or two reads with two workers
    assert 1 <= forked["counters"]["signal_file_robots_ok"] <= 2


def test_workers_are_forked_only_where_the_direct_runner_would_start_worker_processes():
    assert local_worker_processes([], 2) == 2
    assert local_worker_processes(["--direct_num_workers=3"], 2) == 3
    assert local_worker_processes([], 1) == 0                                   # the driver alone
    assert local_worker_processes(["--direct_running_mode=in_memory"], 2) == 0  # asked for by name
    assert local_worker_processes(["--direct_running_mode=multi_threading"], 2) == 0
    assert local_worker_processes(["--runner=PortableRunner", "--job_endpoint=localhost:1"], 2) == 0


def test_the_forked_job_runs_in_memory_whatever_running_mode_was_given():
    given = ["--direct_running_mode", "multi_processing", "--direct_num_workers=2", "--temp_location=/tmp/x"]
    assert in_memory_args(given) == ["--temp_location=/tmp/x", "--direct_running_mode=in_memory"]


def test_a_ctrl_c_that_beam_rewrapped_is_still_an_interrupt():
    def beam_rewrapped(exc: BaseException) -> BaseException:
        try:
            try:
                raise exc
            except BaseException:
                raise RuntimeError("KeyboardInterrupt [while running 'Download']") from None
        except RuntimeError as wrapped:
            return wrapped

    assert interrupted(beam_rewrapped(KeyboardInterrupt()))
    assert not interrupted(beam_rewrapped(ValueError("a bad row")))
