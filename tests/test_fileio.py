from __future__ import annotations

import gzip
import os

import pytest

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


def test_atomic_write_leaves_old_content_when_the_writer_fails(tmp_path):
    target = tmp_path / "out" / "stats.json"
    fileio.write_json_atomic(str(target), {"a": 1})
    with pytest.raises(RuntimeError):
        with fileio.open_write_atomic(str(target)) as handle:
            handle.write(b"half a file")
            raise RuntimeError("killed")
    assert fileio.read_json(str(target)) == {"a": 1}
    assert os.listdir(target.parent) == ["stats.json"]  # no temporary left behind
