"""`wit embed` killed with SIGKILL mid-run and run again: only the missing parts are made, and the folder is the
one an uninterrupted run makes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq

from trainer.synthetic import write_shape_shards
from wit_pipeline.embed.pipeline import EmbedOptions, run_embed

SHARDS = 8


def _folder(out) -> dict[str, object]:
    """Every file of the embeddings folder's three subfolders: arrays and tables by name."""
    found = {}
    for folder in ("img_emb", "text_emb", "metadata"):
        for name in sorted(os.listdir(os.path.join(out, folder))):
            path = os.path.join(out, folder, name)
            found[f"{folder}/{name}"] = np.load(path) if name.endswith(".npy") else pq.read_table(path).to_pylist()
    return found


def _parts_written(out) -> int:
    folder = os.path.join(out, "metadata")
    return len([n for n in os.listdir(folder) if n.endswith(".parquet")]) if os.path.isdir(folder) else 0


def test_a_run_killed_mid_way_resumes_with_only_the_missing_parts(tiny_run, tmp_path):
    shards = str(tmp_path / "shards")
    write_shape_shards(shards, shards=SHARDS, samples_per_shard=24, image_size=40, seed=5)
    killed = tmp_path / "killed"
    argv = [sys.executable, "-m", "wit_pipeline", "embed", "--shards", shards, "--checkpoint", tiny_run,
            "--out", str(killed), "--batch-size", "1", "--workers", "0"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "WIT_DIRECT_RUNNING_MODE": "in_memory", "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 240
        while _parts_written(killed) < 1 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    kept = _parts_written(killed)
    assert 1 <= kept < SHARDS, f"the kill should land mid-run ({kept} of {SHARDS} parts were written)"
    assert not (killed / "stats.json").exists()

    options = dict(shards=shards, checkpoint=tiny_run, batch_size=1, workers=0)
    resumed = run_embed(EmbedOptions(out=str(killed), **options))
    fresh = run_embed(EmbedOptions(out=str(tmp_path / "fresh"), **options))
    assert resumed["parts_resumed"] >= kept and resumed["parts"] == SHARDS
    assert resumed["in"] == resumed["out"] == fresh["out"] == SHARDS * 24 and resumed["accounted"]
    got, want = _folder(killed), _folder(tmp_path / "fresh")
    assert sorted(got) == sorted(want) and len(got) == 3 * SHARDS      # no duplicate or stray parts
    for name, value in want.items():
        if name.endswith(".npy"):
            np.testing.assert_array_equal(got[name], value, err_msg=name)
        else:
            assert got[name] == value, name
    leftovers = [name for _, _, names in os.walk(killed) for name in names if name.endswith(".tmp")]
    assert leftovers == []
