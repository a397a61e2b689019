"""The scale inputs of bench/bench_pipeline_scale.py: deterministic, nested by size, shaped as the bench says."""

from __future__ import annotations

import os
import sys

import pyarrow.parquet as pq
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import _scale_inputs as scale  # noqa: E402
import bench_pipeline_scale as bench  # noqa: E402

from wit_pipeline.schemas import CANDIDATE_SCHEMA, pair_uid  # noqa: E402

LEMMAS = [f"lemma{chr(97 + i)}{chr(97 + j)}" for i in range(26) for j in range(26)]


def test_candidate_parts_hold_the_schema_and_the_asked_rows(tmp_path):
    paths = scale.write_candidates(str(tmp_path / "c"), 1200, LEMMAS, rows_per_part=500)
    table = pq.read_table(str(tmp_path / "c" / "parts"))
    assert len(paths) == 3 and table.num_rows == 1200
    assert table.schema.names == CANDIDATE_SCHEMA.names
    rows = table.to_pylist()
    assert all(row["uid"] == pair_uid(row["url"], row["text"]) for row in rows)


def test_a_larger_input_starts_with_the_smaller_one():
    small = list(scale.candidate_rows(LEMMAS, 300))
    large = list(scale.candidate_rows(LEMMAS, 1200))
    assert large[:300] == small


def test_captions_mix_wordnet_words_duplicates_and_foreign_texts():
    rows = list(scale.candidate_rows(LEMMAS, 3000))
    uids = [row["uid"] for row in rows]
    assert 0.02 < 1 - len(set(uids)) / len(uids) < 0.10          # exact duplicate pairs
    assert len({row["text"] for row in rows}) < len(set(uids))   # texts reused under other URLs
    spaced = [row["text"] for row in rows if not row["text"].startswith("IMG_")]
    words = [w.strip(".,-").lower() for text in spaced for w in text.split()]
    share = sum(w in set(LEMMAS) for w in words) / len(words)
    assert 0.3 < share < 0.45
    assert any("la vieille" in text or "Blick auf" in text or "vista de" in text for text in spaced)


def test_bench_flags_are_checked():
    args = bench.parse_args(["--rows", "400000,100000", "--modes", "default"])
    assert args.rows == [100000, 400000] and args.modes == ["default"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--modes", "threads"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--make-only"])
