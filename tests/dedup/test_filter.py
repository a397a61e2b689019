"""``dedup.filter``: one shard rewritten without flagged samples, and the stage's stats and manifest."""

from __future__ import annotations

import io
import json
import os

from dedup.filter import OverlapFilterOptions, rewrite_shard, run_overlap_filter
from wit_pipeline.shardset import MANIFEST_VERSION, ShardTarWriter, iter_tar_samples, read_manifest

SAMPLES = [(f"00000{i:04d}", {"jpg": bytes([i]) * 10, "txt": f"caption {i}".encode(), "json": b"{}"})
           for i in range(5)]


def _write(path: str, samples=SAMPLES) -> bytes:
    buffer = io.BytesIO()
    writer = ShardTarWriter(buffer)
    for key, members in samples:
        writer.add_sample(key, members)
    writer.close()
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return buffer.getvalue()


def test_a_shard_with_nothing_flagged_is_copied_byte_for_byte(tmp_path):
    data = _write(str(tmp_path / "00000.tar"))
    row = rewrite_shard(str(tmp_path / "00000.tar"), str(tmp_path / "copy.tar"), set())
    assert open(tmp_path / "copy.tar", "rb").read() == data
    assert row["samples"] == 5 and row["removed"] == 0 and row["bytes"] == len(data)


def test_flagged_samples_leave_and_the_rest_keep_their_bytes(tmp_path):
    _write(str(tmp_path / "00000.tar"))
    row = rewrite_shard(str(tmp_path / "00000.tar"), str(tmp_path / "out.tar"), {SAMPLES[1][0], SAMPLES[3][0]})
    assert list(iter_tar_samples(str(tmp_path / "out.tar"))) == [SAMPLES[0], SAMPLES[2], SAMPLES[4]]
    expected = _write(str(tmp_path / "expected.tar"), [SAMPLES[0], SAMPLES[2], SAMPLES[4]])
    assert open(tmp_path / "out.tar", "rb").read() == expected     # the same headers as the writer's
    assert (row["samples"], row["removed"], row["bytes"]) == (3, 2, len(expected))


def test_run_writes_stats_manifest_and_removed_list(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    _write(str(shards / "00000.tar"))
    _write(str(shards / "00001.tar"), [(k.replace("00000", "00001", 1), m) for k, m in SAMPLES])
    overlap = tmp_path / "overlap"
    overlap.mkdir()
    pair = {"shard": "00001.tar", "shard_key": "000010002", "eval_id": "e1", "similarity": 0.9}
    (overlap / "overlap.json").write_text(json.dumps({"eval_sets": {"toy": {"pairs": [pair]}}}))
    out = str(tmp_path / "clean")
    stats = run_overlap_filter(OverlapFilterOptions(shards=str(shards), overlap=str(overlap), out=out))
    assert (stats["stage"], stats["in"], stats["out"]) == ("overlap_filter", 10, 9)
    assert stats["dropped"] == {"overlap": 1, "damaged_shard": 0}
    assert stats["accounted"] is True and stats["shards"] == 2
    assert json.load(open(os.path.join(out, "stats.json"))) == stats
    manifest = read_manifest(out)
    assert manifest["version"] == MANIFEST_VERSION and manifest["total_samples"] == 9
    assert manifest["removed_samples"] == 1 and [s["samples"] for s in manifest["shards"]] == [5, 4]
    removed = [json.loads(line) for line in open(os.path.join(out, "removed.jsonl"))]
    assert removed == [{"shard": "00001.tar", "shard_key": "000010002",
                        "matches": [{"eval_set": "toy", "eval_id": "e1", "kind": "image", "similarity": 0.9}]}]
    assert not os.path.exists(os.path.join(out, "_work"))
