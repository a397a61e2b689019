"""The overlap scan's parts: its options, the per-shard scan, the ``ScanShards`` transform and its accounting."""

from __future__ import annotations

import json
import os
import tarfile

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from dedup.index import EvalEntry, IndexBuilder
from dedup.scan import (
    DEFAULT_TEXT_THRESHOLD,
    DEFAULT_THRESHOLD,
    OverlapScanOptions,
    ScanShards,
    parse_eval_sets,
    scan_shard,
    shard_counts,
    shard_label,
    threshold_overrides,
)
from dedup.signatures import eval_image_signature, text_signature
from dedup.synthetic import distinct_image, jpeg_bytes, letterbox, transformed_copy
from wit_pipeline.beam import job_counters
from wit_pipeline.cli import main
from wit_pipeline.errors import UserError

EVAL_PICTURES = {f"e{i}": distinct_image(700 + i) for i in range(3)}
CAPTION = "a red lighthouse on a rocky island at dusk"
FLOORS = (DEFAULT_THRESHOLD / 2, DEFAULT_TEXT_THRESHOLD / 2)


def _meta(key: str) -> bytes:
    return json.dumps({"url": f"http://example.test/{key}.jpg"}).encode()


# Shards as the scan reads them: (key, {extension: bytes}); None marks where a shard breaks off.
SHARDS = {
    "mem/00000.tar": [("a0", {"jpg": transformed_copy(EVAL_PICTURES["e1"], seed=4, border=True), "json": _meta("a0")}),
                      ("a1", {"jpg": jpeg_bytes(letterbox(distinct_image(9100))), "json": _meta("a1")})],
    "mem/00001.tar": [("b0", {"jpg": b"\xff\xd8\xff garbage", "json": _meta("b0")}),
                      ("b1", {"txt": CAPTION.encode(), "json": _meta("b1")})],
    "mem/00002.tar": [("c0", {"jpg": jpeg_bytes(letterbox(distinct_image(9101))), "json": _meta("c0")}), None],
}


def read_fake_shard(path: str):
    for sample in SHARDS[path]:
        if sample is None:
            raise tarfile.ReadError("unexpected end of data")
        yield sample


def small_index():
    builder = IndexBuilder(image_threshold=DEFAULT_THRESHOLD, text_threshold=DEFAULT_TEXT_THRESHOLD)
    for eval_id, picture in EVAL_PICTURES.items():
        text = CAPTION if eval_id == "e2" else None
        builder.add(EvalEntry("toy", eval_id), eval_image_signature(jpeg_bytes(picture, 95)), text_signature(text))
    return builder.build()


def brief(row: dict) -> tuple:
    """A row without its thumbnail and similarity: what the scan decided."""
    if row["type"] == "match":
        return "match", row["shard"], row["shard_key"], row["eval_id"], row["kind"]
    return "shard", row["shard"], row["samples"], len(row["unreadable"]), row["no_image"], row["error"]


EXPECTED = [
    ("match", "00000.tar", "a0", "e1", "image"),
    ("shard", "00000.tar", 2, 0, 0, None),
    ("match", "00001.tar", "b1", "e2", "text"),
    ("shard", "00001.tar", 2, 1, 1, None),
    ("shard", "00002.tar", 1, 0, 0, "ReadError: unexpected end of data"),
]


def test_scan_shards_flags_copies_and_summarises_every_shard():
    pipeline = TestPipeline()
    rows = (pipeline
            | "Paths" >> beam.Create(sorted(SHARDS))
            | ScanShards(small_index(), "mem", FLOORS, read_samples=read_fake_shard))
    assert_that(rows | "Brief" >> beam.Map(brief), equal_to(EXPECTED))
    result = pipeline.run()
    result.wait_until_finish()
    counters = job_counters(result, "overlap")
    assert {name: counters.get(name) for name in ("in", "out", "dropped_unreadable_image",
                                                   "dropped_unreadable_shard", "pairs_kept")} == \
        {"in": 6, "out": 4, "dropped_unreadable_image": 1, "dropped_unreadable_shard": 1, "pairs_kept": 2}


def test_a_shard_that_breaks_off_keeps_its_rows_and_ends_with_its_summary():
    rows = list(scan_shard(small_index(), "00002.tar", read_fake_shard("mem/00002.tar"), FLOORS))
    assert [brief(r) for r in rows] == [("shard", "00002.tar", 1, 0, 0, "ReadError: unexpected end of data")]
    rows = list(scan_shard(small_index(), "00000.tar", read_fake_shard("mem/00000.tar"), FLOORS))
    assert rows[-1]["type"] == "shard" and rows[0]["thumb"].startswith("data:image/jpeg;base64,")


def test_shard_counts_account_for_every_sample_and_each_broken_shard():
    counts = shard_counts({"samples": 5, "unreadable": [{}], "no_image": 2, "error": "ReadError: x",
                           "lsh_candidates": 7})
    assert counts == {"in": 6, "out": 4, "dropped_unreadable_image": 1, "dropped_unreadable_shard": 1,
                      "samples_without_image": 2, "lsh_candidates": 7}
    assert counts["in"] == counts["out"] + counts["dropped_unreadable_image"] + counts["dropped_unreadable_shard"]


def test_threshold_flags_fill_the_default_and_per_set_fields():
    assert threshold_overrides(None) == {}
    assert threshold_overrides(["0.2", "toy=0.5", "other=0.9"]) == {"threshold": 0.2,
                                                                    "thresholds": {"toy": 0.5, "other": 0.9}}
    with pytest.raises(UserError, match="expected T or NAME=T"):
        threshold_overrides(["toy=high"])


def test_eval_flags_need_a_name_and_a_path_once_each():
    assert parse_eval_sets(["toy=/data/eval", "b=s3://x/y=z"]) == {"toy": "/data/eval", "b": "s3://x/y=z"}
    with pytest.raises(UserError, match="expected NAME=PATH"):
        parse_eval_sets(["/data/eval"])
    with pytest.raises(UserError, match="given twice"):
        parse_eval_sets(["a=1", "a=2"])


def test_options_check_thresholds_and_eval_names():
    options = OverlapScanOptions(shards="s", eval={"toy": "e"}, out="o", thresholds={"toy": 0.3})
    options.validate()
    assert options.threshold_for("toy") == 0.3 and options.threshold_for("other") == DEFAULT_THRESHOLD
    assert options.floors() == (DEFAULT_THRESHOLD / 2, DEFAULT_TEXT_THRESHOLD / 2)
    with pytest.raises(UserError, match="no eval set named 'nope'"):
        OverlapScanOptions(shards="s", eval={"toy": "e"}, out="o", thresholds={"nope": 0.3}).validate()
    with pytest.raises(UserError, match=r"in \(0, 1\]"):
        OverlapScanOptions(shards="s", eval={"toy": "e"}, out="o", text_threshold=1.5).validate()
    with pytest.raises(UserError, match="at least one --eval"):
        OverlapScanOptions(shards="s", eval={}, out="o").validate()


def test_shard_labels_are_relative_to_the_shards_folder():
    assert shard_label("/data/shards/00001.tar", "/data/shards") == "00001.tar"
    assert shard_label("gs://b/shards/sub/00001.tar", "gs://b/shards/") == "sub/00001.tar"
    assert shard_label("/elsewhere/00001.tar", "/data/shards") == "/elsewhere/00001.tar"
    assert shard_label("/data/shards/00001.tar", None) == "/data/shards/00001.tar"


def test_an_unreadable_shard_is_counted_in_stats_not_lost(small_world, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    for name in ("00000.tar", "00001.tar"):
        (shards / name).write_bytes(open(os.path.join(small_world["shards"], name), "rb").read())
    whole = open(os.path.join(small_world["shards"], "00002.tar"), "rb").read()
    (shards / "00002.tar").write_bytes(whole[:len(whole) // 2])
    out = tmp_path / "overlap"
    assert main(["overlap", "scan", "--shards", str(shards), "--eval", f"toy={small_world['eval']}",
                 "--out", str(out)]) == 0
    report = json.load(open(out / "overlap.json"))
    stats = json.load(open(out / "stats.json"))
    read = report["shards"]["samples"]
    assert 20 < read < 30 and [f["shard"] for f in report["shards"]["failed"]] == ["00002.tar"]
    assert stats["in"] == read + 1 and stats["out"] == read - 1
    assert stats["dropped"] == {"unreadable_image": 1, "unreadable_shard": 1}
    assert stats["accounted"] is True
