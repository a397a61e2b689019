"""Streaming input and deterministic shard assignment."""

from __future__ import annotations

import bz2
import gzip
import io
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tests import memfs
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
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(UserError, match="unknown format"):
        list(iter_rows(str(tmp_path / "notes.md")))
    with pytest.raises(UserError, match=r"no column\(s\) 'alt' \(it has: link, text\); set --url-col/--caption-col"):
        list(iter_rows(str(tmp_path / "x.parquet"), url_col="link", caption_col="alt"))


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


def test_caption_and_laion_columns_are_found_and_the_rest_is_carried(tmp_path):
    (tmp_path / "img2dataset.csv").write_text("url,caption,uid\nhttp://x.test/1.jpg,a cat,u1\n")
    (tmp_path / "laion.jsonl.bz2").write_bytes(bz2.compress(b'{"URL": "http://x.test/2.jpg", "TEXT": "a dog", '
                                                             b'"uid": "u2"}\n'))
    rows = list(iter_rows(str(tmp_path / "*.*")))
    assert [(r.url, r.text, r.extra) for r in rows] == [("http://x.test/1.jpg", "a cat", {"uid": "u1"}),
                                                       ("http://x.test/2.jpg", "a dog", {"uid": "u2"})]
    named = list(iter_rows(str(tmp_path / "img2dataset.csv"), url_col="url", caption_col="uid"))
    assert [(r.text, r.extra) for r in named] == [("u1", {"caption": "a cat"})]


def test_url_lists_give_rows_with_an_empty_caption_and_json_arrays_are_read(tmp_path):
    (tmp_path / "urls.txt.gz").write_bytes(gzip.compress(b"http://x.test/1.jpg\n\nhttp://x.test/2.jpg\n"))
    assert [(r.url, r.text, r.extra) for r in iter_rows(str(tmp_path / "urls.txt.gz"))] == [
        ("http://x.test/1.jpg", "", {}), ("http://x.test/2.jpg", "", {})]
    (tmp_path / "pairs.json").write_text(json.dumps([{"url": "http://x.test/3.jpg", "caption": "a cow"}]))
    assert [(r.url, r.text) for r in iter_rows(str(tmp_path / "pairs.json"))] == [("http://x.test/3.jpg", "a cow")]


def test_json_and_txt_files_in_a_directory_are_notes_but_a_glob_naming_them_reads_them(tmp_path):
    (tmp_path / "a.csv").write_text("url,text\nhttp://x.test/1.jpg,one\n")
    (tmp_path / "README.txt").write_text("not urls\n")
    (tmp_path / "stats.json").write_text("{}")
    assert [r.url for r in iter_rows(str(tmp_path))] == ["http://x.test/1.jpg"]
    assert [r.url for r in iter_rows(str(tmp_path / "*"))] == ["http://x.test/1.jpg"]
    assert input_files(str(tmp_path / "*.txt")) == [str(tmp_path / "README.txt")]


def _encoded(kind: str, rows: list[dict]) -> bytes:
    if kind == "parquet":
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buffer)
        return buffer.getvalue()
    if kind == "json":
        return json.dumps(rows).encode()
    if kind == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows).encode()
    if kind == "txt":
        return "".join(row["url"] + "\n" for row in rows).encode()
    delimiter = "," if kind == "csv" else "\t"
    return ("".join(delimiter.join(row) + "\n" for row in [rows[0]] + [list(r.values()) for r in rows])).encode()


COMPRESS = {"": lambda data: data, ".gz": gzip.compress, ".bz2": bz2.compress,
            ".zst": lambda data: zstandard.ZstdCompressor().compress(data)}


@pytest.mark.parametrize("compression", list(COMPRESS))
@pytest.mark.parametrize("kind", ["parquet", "csv", "tsv", "jsonl", "json", "txt"])
def test_every_input_format_and_compression_reads_locally_and_from_an_object_store(tmp_path, kind, compression):
    rows = [{"url": f"http://x.test/{i}.jpg", "caption": f"caption {i}", "uid": f"u{i}"} for i in range(3)]
    data = COMPRESS[compression](_encoded(kind, rows))
    local, remote = tmp_path / f"in.{kind}{compression}", f"memfs://inputs/{tmp_path.name}/in.{kind}{compression}"
    local.write_bytes(data)
    memfs.put(remote, data)
    for path in (str(local), remote):
        got = [(r.url, r.text, r.extra) for r in iter_rows(path)]
        if kind == "txt":
            assert got == [(r["url"], "", {}) for r in rows], path
        else:
            assert got == [(r["url"], r["caption"], {"uid": r["uid"]}) for r in rows], path
