"""`wit demo` runs every stage end to end on the sample web, exits 0, and its model learns."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from wit_pipeline.stage import COMMON_KEYS


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WIT_PROGRESS": "0"}
    result = subprocess.run([sys.executable, "-m", "wit_pipeline", "demo", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("wit demo: finished in")
    for step in ("sample web", "queries", "candidates", "select", "download", "train", "overlap"):
        assert f"\n  {step} " in result.stdout, step
    assert (out / "queries" / "queries.parquet").exists()
    assert (out / "shards" / "manifest.json").exists()
    assert (out / "overlap" / "overlap.json").exists()

    # Every stage that wrote output says so in one stats.json shape, with every record accounted for.
    for folder in ("queries", "candidates/wat", "candidates/search", "select", "shards", "overlap"):
        stats = json.load(open(out / folder / "stats.json"))
        assert set(COMMON_KEYS) <= set(stats), (folder, sorted(set(COMMON_KEYS) - set(stats)))
        assert stats["accounted"] is True, (folder, stats["in"], stats["out"], stats["dropped"])

    # The tiny CLIP learns from the downloaded pairs: loss falls, zero-shot beats chance clearly.
    losses = [json.loads(line)["loss"] for line in open(out / "train" / "metrics.jsonl") if '"loss"' in line]
    assert losses[-1] < losses[0] - 1.0
    zeroshot = json.load(open(out / "train" / "zeroshot" / "metrics.json"))
    assert zeroshot["top1"] >= 2 * zeroshot["chance"], zeroshot
