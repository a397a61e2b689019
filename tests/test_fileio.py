from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tests import memfs
from wit_pipeline import fileio
from wit_pipeline.errors import UserError


def test_expand_files_directories_and_globs(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("b.txt", "a.txt", ".hidden", "_SUCCESS"):
        (tmp_path / "d" / name).write_text(name)
    assert fileio.expand(str(tmp_path / "d")) == [str(tmp_path / "d" / "a.txt"), str(tmp_path / "d" / "b.txt")]
    assert fileio.expand(str(tmp_path / "d" / "*.txt")) == [str(tmp_path / "d" / n) for n in ("a.txt", "b.txt")]
    with pytest.raises(UserError, match="matches no files"):
        fileio.expand(str(tmp_path / "nothing-*.wat.gz"), what="--input")


def test_open_read_decompresses_by_extension(tmp_path):
    path = tmp_path / "x.txt.gz"
    path.write_bytes(gzip.compress(b"hello"))
    with fileio.open_read(str(path)) as handle:
        assert handle.read() == b"hello"
    with pytest.raises(UserError, match="cannot open"):
        with fileio.open_read(str(tmp_path / "missing.gz")):
            pass


@pytest.mark.parametrize("suffix, compress", [
    (".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress),
    (".zst", lambda data: zstandard.ZstdCompressor().compress(data)),
])
def test_decompressed_files_are_real_io_streams(tmp_path, suffix, compress):
    """Text wrappers and csv need a real ``io`` stream (Beam's CompressedFile has no ``writable``)."""
    path = str(tmp_path / f"t.csv{suffix}")
    with open(path, "wb") as handle:
        handle.write(compress(b"url,text\nhttp://a/1.jpg,one\n") + compress(b"http://a/2.jpg,two\n"))
    with fileio.open_read(path) as handle:
        rows = list(csv.reader(io.TextIOWrapper(handle, encoding="utf-8", newline="")))
    assert rows == [["url", "text"], ["http://a/1.jpg", "one"], ["http://a/2.jpg", "two"]]
    memfs.put("memfs://f/t.csv" + suffix, open(path, "rb").read())
    with fileio.open_read("memfs://f/t.csv" + suffix) as handle:
        assert handle.read().splitlines()[-1] == b"http://a/2.jpg,two"


def test_parquet_reads_and_writes_locally_remotely_and_compressed(tmp_path):
    table = pa.table({"url": ["a", "b"], "n": [1, 2]})
    for path in (str(tmp_path / "t.parquet"), "memfs://f/t.parquet"):
        fileio.write_parquet_atomic(path, table)
        assert fileio.read_parquet(path).equals(table)
        assert fileio.read_parquet(path, columns=["n"]).column("n").to_pylist() == [1, 2]
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    (tmp_path / "t.pq.gz").write_bytes(gzip.compress(buffer.getvalue()))
    with fileio.open_parquet(str(tmp_path / "t.pq.gz")) as parquet:
        assert parquet.schema_arrow.names == ["url", "n"] and parquet.read().equals(table)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(UserError, match="broken.parquet: not a readable parquet file"):
        fileio.read_parquet(str(tmp_path / "broken.parquet"))


def test_atomic_write_leaves_old_content_when_the_writer_fails(tmp_path):
    target = tmp_path / "out" / "stats.json"
    fileio.write_json_atomic(str(target), {"a": 1})
    with pytest.raises(RuntimeError):
        with fileio.open_write_atomic(str(target)) as handle:
            handle.write(b"half a file")
            raise RuntimeError("killed")
    assert fileio.read_json(str(target)) == {"a": 1}
    assert os.listdir(target.parent) == ["stats.json"]  # no temporary left behind


def test_text_that_is_not_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "list.txt"
    path.write_bytes(b"fine\nalso fine\ncaf\xe9\n")
    with pytest.raises(UserError, match=r"list\.txt:3: not UTF-8 text \(byte 18 is 0xe9\)"):
        fileio.read_text(str(path))


@pytest.mark.parametrize("content, expect, message", [
    (b'{"a": 1,\n "b": }\n', None, r"x\.json:2: not JSON \(Expecting value"),
    (b"[1, 2]", dict, r"x\.json: is JSON an array where an object is expected"),
    (b'{"a": 1}', list, r"x\.json: is JSON an object where an array is expected"),
    (b"[" * 100_000, None, r"x\.json:1: (JSON nested too deeply|not JSON)"),
])
def test_broken_json_is_a_one_line_error_naming_file_and_line(tmp_path, content, expect, message):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        fileio.read_json(str(path), expect=expect)


def test_json_lines_name_the_line_that_is_broken(tmp_path):
    (tmp_path / "part-00000").write_text('{"a": 1}\n\n{"a": \n')
    rows = fileio.read_json_lines(str(tmp_path / "part-"), what="job output")
    assert next(rows) == {"a": 1}
    with pytest.raises(UserError, match=r"part-00000:3: not JSON"):
        next(rows)
