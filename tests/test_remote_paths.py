"""The chain on an object store: inputs and outputs under ``memfs://`` (tests/memfs.py), as on gs:// or s3://.

Each stage reads the previous one's output by its "directory" (a key prefix, as
users pass ``gs://bucket/cand``) and must produce what the same stage produces
on local paths.
"""

from __future__ import annotations

import io
import json
import os

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests import memfs
from wit_pipeline.candidates.pipeline import CandidateOptions, run_candidates
from wit_pipeline.cli import main as wit
from wit_pipeline.select.pipeline import SelectOptions, run_select

QUERIES = "circle\nsquare\nstar\ntriangle\nred\nblue\ngreen\nlarge\nsmall\n"


def _read_parts(prefix: str) -> pd.DataFrame:
    frames = [pq.read_table(io.BytesIO(memfs.get(k))).to_pandas() for k in memfs.keys(prefix) if k.endswith(".parquet")]
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def bucket(sample_files):
    root = "memfs://bucket"
    for path in sample_files.wat:
        with open(path, "rb") as handle:
            memfs.put(f"{root}/cc/{os.path.basename(path)}", handle.read())
    memfs.put(f"{root}/queries.txt", QUERIES.encode())
    return root


def test_candidates_and_select_read_and_write_an_object_store(bucket, sample_files, tmp_path):
    remote = run_candidates(CandidateOptions(source="wat", inputs=[f"{bucket}/cc"], out=f"{bucket}/cand"))
    local = run_candidates(CandidateOptions(source="wat", inputs=list(sample_files.wat), out=str(tmp_path / "cand")))
    assert remote["out"] == local["out"] > 0 and remote["accounted"]
    remote_rows = _read_parts(f"{bucket}/cand/parts/")
    local_rows = pd.read_parquet(tmp_path / "cand" / "parts")
    assert sorted(remote_rows.uid) == sorted(local_rows.uid)
    assert memfs.keys(f"{bucket}/cand/stats.json")

    (tmp_path / "q.txt").write_text(QUERIES)
    remote = run_select(SelectOptions(candidates=[f"{bucket}/cand"], queries=f"{bucket}/queries.txt",
                                      out=f"{bucket}/sel", cap=5, lang="any"))
    local = run_select(SelectOptions(candidates=[str(tmp_path / "cand")], queries=str(tmp_path / "q.txt"),
                                     out=str(tmp_path / "sel"), cap=5, lang="any"))
    assert remote["out"] == local["out"] > 0 and remote["accounted"]
    assert sorted(_read_parts(f"{bucket}/sel/selected/").uid) == sorted(
        pd.read_parquet(tmp_path / "sel" / "selected").uid)
    assert memfs.keys(f"{bucket}/sel/query_counts.parquet") and memfs.keys(f"{bucket}/sel/stats.json")


DOWNLOAD = ["--samples-per-shard", "100", "--max-bytes", "2M", "--timeout", "1.0", "--retries", "0", "--threads", "8",
            "--allow-private-networks"]


@pytest.fixture(scope="module")
def remote_shards(bucket, sample_web, sample_files):
    with open(sample_files.urls_table, "rb") as handle:
        memfs.put(f"{bucket}/urls.parquet", handle.read())
    out = f"{bucket}/shards"
    assert wit(["download", "--input", f"{bucket}/urls.parquet", "--out", out, *DOWNLOAD]) == 0
    return out


def test_download_writes_shards_to_an_object_store(bucket, remote_shards, sample_files, capsys):
    out = remote_shards
    tars = [k for k in memfs.keys(out + "/") if k.endswith(".tar")]
    rows = pq.read_table(sample_files.urls_table).num_rows
    assert len(tars) == -(-rows // 100)
    assert wit(["shards", "verify", out]) == 0
    capsys.readouterr()
    assert wit(["download", "--input", f"{bucket}/urls.parquet", "--out", out, *DOWNLOAD]) == 0
    assert "(0 written now)" in capsys.readouterr().out       # a re-run finds every shard complete

    # The overlap scan reads those shards where they are and writes its report there too.
    assert wit(["overlap", "scan", "--shards", out, "--eval", f"sample={sample_files.eval_dir}",
                "--out", f"{bucket}/overlap"]) == 0
    report = json.loads(memfs.get(f"{bucket}/overlap/overlap.json"))
    assert report["eval_sets"]["sample"]["flagged"] > 0
    stats = json.loads(memfs.get(f"{bucket}/overlap/stats.json"))
    assert stats["stage"] == "overlap" and stats["accounted"] is True and stats["in"] == report["shards"]["samples"]


def test_the_trainer_streams_shards_from_an_object_store(remote_shards, tmp_path):
    from trainer.data import resolve_shards
    from trainer.train import TrainOptions, run_train

    shards = resolve_shards(remote_shards)
    manifest = json.loads(memfs.get(f"{remote_shards}/manifest.json"))
    assert shards.source == "manifest" and shards.epoch_samples == manifest["total_samples"]
    assert shards.urls == [f"{remote_shards}/{entry['path']}" for entry in manifest["shards"]]
    result = run_train(TrainOptions(shards=remote_shards, out=str(tmp_path / "train"), model="tiny", batch_size=16,
                                    steps=4, workers=2, shuffle_buffer=16, shards_per_round=2, save_every=10,
                                    log_every=1, tokenizer_captions=200))
    assert result.steps == 4 and result.first_loss > 0
