"""Streaming input and deterministic shard assignment."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_pipeline.download.reader import input_files, iter_rows, sample_key, shard_rows
from wit_pipeline.errors import UserError


def _rows(n):
    return [{"url": f"http://x.test/{i}.jpg", "text": f"caption {i}", "queries": [f"q{i % 3}"], "source": "wat"}
            for i in range(n)]


def test_parquet_csv_jsonl_give_the_same_rows_with_other_columns_carried(tmp_path):
    rows = _rows(5)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet", row_group_size=2)
    with open(tmp_path / "b.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    with open(tmp_path / "c.csv", "w") as f:
        f.write("url,text,source\n" + "".join(f'{r["url"]},"{r["text"]}",wat\n' for r in rows))
    parquet = list(iter_rows(str(tmp_path / "a.parquet")))
    jsonl = list(iter_rows(str(tmp_path / "b.jsonl")))
    csv = list(iter_rows(str(tmp_path / "c.csv")))
    assert [r.url for r in parquet] == [r.url for r in jsonl] == [r.url for r in csv] == [r["url"] for r in rows]
    assert parquet == jsonl
    assert parquet[1].extra == {"queries": ["q1"], "source": "wat"}
    assert csv[0].text == "caption 0" and csv[0].extra == {"source": "wat"}


def test_directory_input_reads_part_files_in_order_and_skips_json(tmp_path):
    rows = _rows(6)
    pq.write_table(pa.Table.from_pylist(rows[3:]), tmp_path / "part-00001.parquet")
    pq.write_table(pa.Table.from_pylist(rows[:3]), tmp_path / "part-00000.parquet")
    (tmp_path / "stats.json").write_text("{}")
    (tmp_path / "_SUCCESS").write_text("")
    assert [r.url for r in iter_rows(str(tmp_path))] == [r["url"] for r in rows]
    assert len(input_files(str(tmp_path))) == 2


def test_bad_inputs_are_one_line_user_errors(tmp_path):
    pq.write_table(pa.table({"link": ["a"], "text": ["b"]}), tmp_path / "x.parquet")
    with pytest.raises(UserError, match="no column.*url"):
        list(iter_rows(str(tmp_path / "x.parquet")))
    with pytest.raises(UserError, match="matches no files"):
        list(iter_rows(str(tmp_path / "nothing-*.parquet")))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="unknown format"):
        list(iter_rows(str(tmp_path / "notes.txt")))


def test_pq_and_compressed_inputs_are_read(tmp_path):
    rows = _rows(3)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.pq")
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    assert list(iter_rows(str(tmp_path / "a.pq"))) == list(iter_rows(str(tmp_path / "b.jsonl.gz")))
    assert [r.url for r in iter_rows(str(tmp_path))] == [r["url"] for r in rows] * 2


def test_a_bad_line_is_counted_and_skipped_unless_strict(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"url": "a", "text": "b"}\n{not json\n{"url": "c", "text": "d"}\n')
    counts = Counter()
    assert [r.url for r in iter_rows(str(tmp_path / "bad.jsonl"), counts=counts)] == ["a", "c"]
    assert counts["bad_rows"] == 1
    with pytest.raises(UserError, match="bad.jsonl:2"):
        list(iter_rows(str(tmp_path / "bad.jsonl"), strict=True))


def test_shard_assignment_and_keys():
    rows = list(range(25))
    shards = list(shard_rows(rows, 10))
    assert [(s, len(r)) for s, r in shards] == [(0, 10), (1, 10), (2, 5)]
    assert shards[2][1][0] == 20
    assert sample_key(3, 7, 10000) == "000030007"
    assert sample_key(0, 12345, 20000) == "0000012345"      # wider index only when a shard needs it
    assert "." not in sample_key(1, 1, 100)
