"""The one table reader: every format and compression, the bad-row policy, remote paths, and the stages on it."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import tarfile
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from queries.output import load_queries
from tests import memfs
from wit_pipeline import tables
from wit_pipeline.cli import main as wit
from wit_pipeline.errors import UserError
from wit_pipeline.querylist import MAX_QUERY_BYTES, load_query_list
from wit_pipeline.tables import (
    BAD_ROW_REASONS,
    TABLE_FORMATS,
    MissingColumns,
    bounded_lines,
    iter_table_rows,
    pick_columns,
    table_columns,
    table_format,
)

ROWS = [{"url": f"http://x.test/{i}.jpg", "text": f"caption {i}, with a comma"} for i in range(5)]
COMPRESSORS = {"": lambda data: data, ".gz": gzip.compress, ".bz2": bz2.compress,
               ".zst": lambda data: zstandard.ZstdCompressor().compress(data)}


def _encoded(kind: str, rows: list[dict]) -> bytes:
    if kind == "parquet":
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buffer, row_group_size=2)
        return buffer.getvalue()
    if kind == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows).encode()
    delimiter = "," if kind == "csv" else "\t"
    quote = (lambda v: f'"{v}"') if kind == "csv" else (lambda v: v)
    lines = [delimiter.join(rows[0])] + [delimiter.join(quote(v) for v in row.values()) for row in rows]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("compression", list(COMPRESSORS))
@pytest.mark.parametrize("kind", TABLE_FORMATS)
def test_every_format_and_compression_reads_back_the_same_rows(tmp_path, kind, compression):
    path = str(tmp_path / f"t.{kind}{compression}")
    with open(path, "wb") as handle:
        handle.write(COMPRESSORS[compression](_encoded(kind, ROWS)))
    assert table_format(path) == kind
    assert table_columns(path) == ["url", "text"]
    assert list(iter_table_rows(path, required=("url", "text"))) == ROWS
    assert list(iter_table_rows(path, columns=["text", "page_url"])) == [
        {"text": row["text"], "page_url": None} for row in ROWS]


def test_format_comes_from_the_name_and_unknown_names_are_user_errors():
    assert [table_format(p) for p in ("a.pq", "b.PARQUET.gz", "c.ndjson.zst", "d.json", "gs://x/e.tsv.bz2",
                                      "urls.txt.gz")] == ["parquet", "parquet", "jsonl", "jsonl", "tsv", "txt"]
    with pytest.raises(UserError, match=r"'notes.md.gz': unknown table format \(known: .parquet, .pq"):
        table_format("notes.md.gz")


def test_bad_rows_are_counted_and_skipped(tmp_path):
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_bytes(b'{"url": "a", "text": "b"}\n\n{not json\n[1, 2]\n\xff\xfe\n{"text": "no url"}\n'
                      b'{"url": {"nested": 1}, "text": "x"}\n{"url": null, "text": "null is a value"}\n')
    counts = Counter()
    rows = list(iter_table_rows(str(jsonl), required=("url", "text"), counts=counts))
    assert rows == [{"url": "a", "text": "b"}, {"url": None, "text": "null is a value"}]
    assert counts["bad_rows"] == 5

    csv_file = tmp_path / "bad.csv"
    csv_file.write_bytes(b'url,text\na,b\nonly one field\nc,d,e\n\xff,x\n"two\nlines",ok\n\ne,f\n')
    counts = Counter()
    rows = list(iter_table_rows(str(csv_file), required=("url", "text"), counts=counts))
    assert rows == [{"url": "a", "text": "b"}, {"url": "two\nlines", "text": "ok"}, {"url": "e", "text": "f"}]
    assert counts["bad_rows"] == 3     # the blank line is no row


def test_bad_rows_are_counted_by_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "MAX_LINE_BYTES", 300_000)   # over the CSV field limit (131072)
    (tmp_path / "t.csv").write_bytes(b'url,text\na,b\nc,caf\xe9\nd,"' + b"x" * 200_000 + b'"\n'
                                     + b"e," + b"y" * 400_000 + b"\nf,g\nh\n")
    (tmp_path / "t.jsonl").write_bytes(b'{"url": "a", "text": "b"}\n{"url": "caf\xe9", "text": "b"}\n'
                                       + b'{"url": "' + b"x" * 400_000 + b'", "text": "b"}\n{"url": [1], "text": "b"}\n'
                                       + b'[1]\n' + b"[" * 100_000 + b"]" * 100_000 + b'\n{"url": "f", "text": "g"}\n')
    expected = {"bad_encoding": 1, "field_too_large": 1, "line_too_long": 1, "malformed": 1}
    for name, reasons in (("t.csv", expected),
                          ("t.jsonl", {**expected, "field_too_large": 0, "wrong_type": 1, "malformed": 2})):
        counts = Counter()
        rows = list(iter_table_rows(str(tmp_path / name), required=("url", "text"), counts=counts))
        assert [row["url"] for row in rows] == ["a", "f"], name
        assert counts["bad_rows"] == sum(reasons.values())
        assert {reason: counts[f"bad_rows_{reason}"] for reason in reasons} == reasons, name
        assert set(reason for reason in BAD_ROW_REASONS) >= set(reasons)


def test_a_huge_line_is_skipped_without_being_read_whole():
    lines = list(bounded_lines(io.BytesIO(b"short\n" + b"x" * (5 << 20) + b"\nlast"), 1000))
    assert lines == [b"short\n", None, b"last"]


def test_lone_surrogates_in_json_strings_come_out_replaced(tmp_path):
    # json.loads turns a "\ud800" escape into a lone surrogate, which no UTF-8 encoder (Beam's coders,
    # parquet) accepts; paired escapes make one character and stay as they are
    (tmp_path / "s.jsonl").write_bytes(b'{"url": "a", "text": "x \\ud800 y \\ud83d\\ude00", "meta": ["\\udfff"]}\n')
    [row] = iter_table_rows(str(tmp_path / "s.jsonl"))
    assert row == {"url": "a", "text": "x \ufffd y \U0001f600", "meta": ["\ufffd"]}
    row["text"].encode("utf-8")


def test_a_parquet_string_that_is_not_utf8_is_a_bad_row(tmp_path):
    raw = pa.array([b"one", b"t\xffwo", None, b"three"], pa.binary())
    text = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())   # parquet writers do not check
    pq.write_table(pa.table({"url": ["a", "b", "c", "d"], "text": text}), tmp_path / "t.parquet")
    counts = Counter()
    rows = list(iter_table_rows(str(tmp_path / "t.parquet"), required=("url", "text"), counts=counts))
    assert rows == [{"url": "a", "text": "one"}, {"url": "c", "text": None}, {"url": "d", "text": "three"}]
    assert counts == Counter(bad_rows=1, bad_rows_bad_encoding=1)
    with pytest.raises(UserError, match=r"t\.parquet: row 2: 'text' holds bytes that are not UTF-8"):
        list(iter_table_rows(str(tmp_path / "t.parquet"), strict=True))


def test_as_text_gives_numbers_as_their_text_and_counts_other_values(tmp_path):
    table = pa.table({"url": ["a", "b", "c"], "text": pa.array([1, 2, 3], pa.int64()),
                      "page_url": pa.array([None, [1], None], pa.list_(pa.int64())), "score": [0.5, 1.5, 2.5]})
    pq.write_table(table, tmp_path / "t.parquet")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(row) + "\n" for row in table.to_pylist()))
    for name in ("t.parquet", "t.jsonl"):
        counts = Counter()
        rows = list(iter_table_rows(str(tmp_path / name), columns=["url", "text", "page_url", "score"],
                                    counts=counts, as_text=True))
        assert rows == [{"url": "a", "text": "1", "page_url": None, "score": "0.5"},
                        {"url": "c", "text": "3", "page_url": None, "score": "2.5"}], name
        assert counts == Counter(bad_rows=1, bad_rows_wrong_type=1), name


def test_strict_raises_on_the_first_bad_row_naming_file_and_line(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"url": "a", "text": "b"}\n\n{not json\n')
    with pytest.raises(UserError, match=r"bad\.jsonl:3: not JSON"):
        list(iter_table_rows(str(tmp_path / "bad.jsonl"), strict=True))
    (tmp_path / "bad.tsv").write_text("url\ttext\na\tb\nc\n")
    with pytest.raises(UserError, match=r"bad\.tsv:3: 1 field\(s\) where the header has 2"):
        list(iter_table_rows(str(tmp_path / "bad.tsv"), strict=True))
    pq.write_table(pa.table({"url": [["a"], ["b"]], "text": ["x", "y"]}), tmp_path / "bad.parquet")
    with pytest.raises(UserError, match=r"bad\.parquet: row 1: 'url' is a list, not a string"):
        list(iter_table_rows(str(tmp_path / "bad.parquet"), required=("url",), strict=True))


def test_a_missing_required_column_fails_at_once(tmp_path):
    pq.write_table(pa.table({"link": ["a"], "text": ["b"]}), tmp_path / "x.parquet")
    (tmp_path / "x.csv").write_text("link,text\na,b\n")
    (tmp_path / "x.jsonl").write_text('{"link": "a", "text": "b"}\n')
    (tmp_path / "empty.csv").write_text("")
    for name in ("x.parquet", "x.csv", "x.jsonl", "empty.csv"):
        with pytest.raises(MissingColumns, match="has no column.*'url'"):
            list(iter_table_rows(str(tmp_path / name), required=("url", "text")))


def test_remote_tables_are_read_through_the_filesystems(tmp_path):
    for kind in TABLE_FORMATS:
        for compression, compress in COMPRESSORS.items():
            path = f"memfs://tables/t.{kind}{compression}"
            memfs.put(path, compress(_encoded(kind, ROWS)))
            assert list(iter_table_rows(path, required=("url", "text"))) == ROWS, path
            assert table_columns(path) == ["url", "text"]
    with pytest.raises(UserError, match="cannot open"):
        list(iter_table_rows("memfs://tables/missing.csv"))


def test_query_lists_load_from_parquet_tables_of_any_compression(tmp_path):
    buffer = io.BytesIO()
    pq.write_table(pa.table({"query": ["red circle", None, "star", "star"], "count": [3, 2, 1, 1]}), buffer)
    (tmp_path / "q.parquet").write_bytes(buffer.getvalue())
    (tmp_path / "q.pq.zst").write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    assert load_queries(str(tmp_path / "q.parquet")) == ["red circle", None, "star", "star"]   # used as they are
    assert load_query_list(str(tmp_path / "q.pq.zst")) == ["red circle", "star"]
    pq.write_table(pa.table({"text": ["x"]}), tmp_path / "no_query.parquet")
    with pytest.raises(UserError, match="no column.*'query'"):
        load_queries(str(tmp_path / "no_query.parquet"))


def test_query_lists_leave_out_over_long_lines_and_refuse_what_they_cannot_read(tmp_path):
    (tmp_path / "q.txt").write_bytes(b"red car\n" + b"a " * (1 << 20) + b"\n" + b"b" * MAX_QUERY_BYTES + b"\nhouse\n")
    skipped = Counter()
    assert load_query_list(str(tmp_path / "q.txt"), skipped=skipped) == ["red car", "b" * MAX_QUERY_BYTES, "house"]
    assert skipped == Counter(line_too_long=1)
    pq.write_table(pa.table({"query": ["red car", "x" * (MAX_QUERY_BYTES + 1)]}), tmp_path / "q.parquet")
    skipped = Counter()
    assert load_query_list(str(tmp_path / "q.parquet"), skipped=skipped) == ["red car"]
    assert skipped == Counter(line_too_long=1)
    (tmp_path / "latin1.txt").write_bytes(b"red car\ncaf\xe9\n")
    with pytest.raises(UserError, match=r"latin1\.txt:2: the query list is not UTF-8 text"):
        load_query_list(str(tmp_path / "latin1.txt"))
    with pytest.raises(UserError, match=r"http\(s\) URLs are not supported for this input"):
        load_query_list("https://example.org/queries.txt")


@pytest.fixture(scope="module")
def image_rows(sample_files):
    return [row for row in pq.read_table(sample_files.urls_table).to_pylist() if row["kind"] == "image"][:12]


def test_download_reads_a_compressed_csv(image_rows, tmp_path):
    path = tmp_path / "urls.csv.gz"
    path.write_bytes(gzip.compress(_encoded("csv", [{"url": r["url"], "text": r["text"]} for r in image_rows])))
    out = str(tmp_path / "shards")
    assert wit(["download", "--input", str(path), "--out", out, "--samples-per-shard", "5", "--timeout", "2.0",
                "--retries", "0", "--threads", "4", "--allow-private-networks"]) == 0
    statuses = [row for name in sorted(os.listdir(out)) if name.endswith(".parquet")
                for row in pq.read_table(os.path.join(out, name)).to_pylist()]
    assert sorted(row["url"] for row in statuses) == sorted(row["url"] for row in image_rows)


def test_candidates_table_source_reads_a_compressed_jsonl(tmp_path):
    records = [{"url": f"http://img.test/{i}.jpg", "text": f"a red circle and a blue square, picture {i}"}
               for i in range(20)]
    plain, packed = tmp_path / "pairs.jsonl", tmp_path / "pairs.jsonl.gz"
    plain.write_bytes(_encoded("jsonl", records))
    packed.write_bytes(gzip.compress(_encoded("jsonl", records)))
    parts = {}
    for source in (plain, packed):
        out = tmp_path / f"cand-{source.name}"
        assert wit(["candidates", "--source", "table", "--input", str(source), "--out", str(out),
                    "--lang", "any"]) == 0
        parts[source.name] = sorted(pq.read_table(out / "parts").column("url").to_pylist())
    assert parts["pairs.jsonl.gz"] == parts["pairs.jsonl"] and parts["pairs.jsonl"]


def _url_list(rows: list[dict]) -> bytes:
    return "".join(f"  {row['url']}\n\n" for row in rows).encode()   # blanks around a url and blank lines are no rows


def _json_array(rows: list[dict]) -> bytes:
    return json.dumps(rows, indent=1).encode()


@pytest.mark.parametrize("compression", list(COMPRESSORS))
def test_url_lists_and_json_arrays_read_in_every_compression_local_and_remote(tmp_path, compression):
    for base in (str(tmp_path), "memfs://lists"):
        urls, array = f"{base}/urls.txt{compression}", f"{base}/pairs.json{compression}"
        for path, data in ((urls, _url_list(ROWS)), (array, _json_array(ROWS))):
            if base.startswith("memfs"):
                memfs.put(path, COMPRESSORS[compression](data))
            else:
                with open(path, "wb") as handle:
                    handle.write(COMPRESSORS[compression](data))
        assert table_columns(urls) == ["url"]
        assert list(iter_table_rows(urls, required=["url"])) == [{"url": row["url"]} for row in ROWS]
        assert table_columns(array) == ["url", "text"]
        assert list(iter_table_rows(array, required=["url", "text"])) == ROWS


def test_json_array_items_that_are_no_objects_are_bad_rows_and_a_broken_array_is_one_error(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"url": "http://x.test/1", "text": "one"}, 7, {"url": "http://x.test/2", "text": "two"}]')
    counts = Counter()
    assert [row["url"] for row in iter_table_rows(str(path), counts=counts)] == ["http://x.test/1", "http://x.test/2"]
    assert counts == Counter(bad_rows=1, bad_rows_malformed=1)
    with pytest.raises(UserError, match=r"a\.json: item 2: not a JSON object"):
        list(iter_table_rows(str(path), strict=True))
    path.write_text('[{"url": "http://x.test/1", "text": "one"},')
    with pytest.raises(UserError, match=r"a\.json: not a JSON array"):
        list(iter_table_rows(str(path)))
    (tmp_path / "b.json").write_text('{"url": "http://x.test/1", "text": "one"}\n')   # a .json of JSON lines
    assert list(iter_table_rows(str(tmp_path / "b.json"))) == [{"url": "http://x.test/1", "text": "one"}]


def test_url_lists_count_lines_that_are_not_utf8(tmp_path):
    path = tmp_path / "urls.txt"
    path.write_bytes(b"\xef\xbb\xbfhttp://x.test/1\nhttp://x.test/caf\xe9\nhttp://x.test/2\n")
    counts = Counter()
    assert list(iter_table_rows(str(path), counts=counts)) == [{"url": "http://x.test/1"}, {"url": "http://x.test/2"}]
    assert counts == Counter(bad_rows=1, bad_rows_bad_encoding=1)


@pytest.mark.parametrize(("present", "named", "expected"), [
    (["url", "text"], (None, None), ("url", "text")),
    (["url", "caption"], (None, None), ("url", "caption")),          # img2dataset's default caption column
    (["url", "caption", "text"], (None, None), ("url", "text")),     # both: text
    (["URL", "TEXT", "WIDTH"], (None, None), ("URL", "TEXT")),       # LAION's
    (["url", "URL", "text"], (None, None), ("url", "text")),
    (["link", "alt", "text"], ("link", "alt"), ("link", "alt")),
])
def test_the_url_and_caption_columns_are_the_named_ones_else_the_first_default_there_is(present, named, expected):
    assert pick_columns("t.csv", present, *named) == expected


def test_a_missing_url_or_caption_column_lists_the_columns_there_are():
    with pytest.raises(MissingColumns, match=r"no column\(s\) 'text' \(it has: url, alt\)"):
        pick_columns("t.csv", ["url", "alt"])
    with pytest.raises(MissingColumns, match=r"no column\(s\) 'alt_text' \(it has: url, caption\)"):
        pick_columns("t.csv", ["url", "caption"], caption_col="alt_text")
    assert pick_columns("urls.txt.gz", ["url"]) == ("url", None)
    with pytest.raises(UserError, match="url list .* no caption column 'caption'"):
        pick_columns("urls.txt", ["url"], caption_col="caption")


def test_candidates_table_source_takes_caption_laion_and_named_columns(tmp_path):
    caption = "a red circle and a blue square"
    (tmp_path / "img2dataset.csv.bz2").write_bytes(bz2.compress(f"url,caption\nhttp://img.test/1.jpg,{caption}\n"
                                                                .encode()))
    (tmp_path / "laion.json").write_text(json.dumps([{"URL": "http://img.test/2.jpg", "TEXT": caption}]))
    (tmp_path / "named.tsv.zst").write_bytes(zstandard.ZstdCompressor().compress(
        f"link\talt\nhttp://img.test/3.jpg\t{caption}\n".encode()))
    runs = {"img2dataset.csv.bz2": [], "laion.json": [], "named.tsv.zst": ["--url-col", "link", "--caption-col", "alt"]}
    runs["named-by-text-col"] = ["--url-col", "link", "--text-col", "alt"]   # --text-col: the same flag
    for name, flags in runs.items():
        source = tmp_path / (name if name != "named-by-text-col" else "named.tsv.zst")
        out = tmp_path / f"cand-{name}"
        assert wit(["candidates", "--source", "table", "--input", str(source), "--out", str(out), "--lang", "any",
                    *flags]) == 0, name
        assert pq.read_table(out / "parts").column("text").to_pylist() == [caption], name


def test_download_reads_an_img2dataset_style_csv_gz_with_caption_col(image_rows, tmp_path):
    rows = [{"url": r["url"], "caption": r["text"], "uid": f"u{i}"} for i, r in enumerate(image_rows)]
    body = "url,caption,uid\n" + "".join(f'{r["url"]},"{r["caption"]}",{r["uid"]}\n' for r in rows)
    path = tmp_path / "urls.csv.gz"
    path.write_bytes(gzip.compress(body.encode()))
    out = str(tmp_path / "shards")
    assert wit(["download", "--input", str(path), "--out", out, "--caption-col", "caption", "--samples-per-shard",
                "5", "--timeout", "2.0", "--retries", "0", "--threads", "4", "--allow-private-networks"]) == 0
    captions = {}
    for name in sorted(os.listdir(out)):
        if name.endswith(".tar"):
            with tarfile.open(os.path.join(out, name)) as tar:
                for member in tar.getmembers():
                    if member.name.endswith(".json"):
                        sample = json.load(tar.extractfile(member))
                        captions[sample["url"]] = (sample.get("caption"), sample.get("uid"))
    assert captions and all(captions[r["url"]] == (r["caption"], r["uid"]) for r in rows if r["url"] in captions)


@pytest.mark.parametrize("compression", list(COMPRESSORS))
def test_candidates_table_reader_reads_every_format_compressed_from_an_object_store(compression):
    from wit_pipeline.candidates.sources.table import read_table

    for kind in TABLE_FORMATS:
        path = f"memfs://cand-tables/t.{kind}{compression}"
        memfs.put(path, COMPRESSORS[compression](_encoded(kind, ROWS)))
        counts = Counter()
        assert [(row["url"], row["text"]) for row in read_table(path, counts)] == [
            (row["url"], row["text"]) for row in ROWS], path
        assert counts["table_rows"] == len(ROWS)
    path = f"memfs://cand-tables/a.json{compression}"
    memfs.put(path, COMPRESSORS[compression](_json_array(ROWS)))
    assert [row["url"] for row in read_table(path, Counter())] == [row["url"] for row in ROWS]
