"""The shard-set module: tar round trip, the one key rule, manifest versions, hashing."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
import webdataset as wds

from wit_pipeline.errors import UserError
from wit_pipeline.shardset import (
    MANIFEST_VERSION,
    HashingStream,
    ShardTarWriter,
    iter_tar_keys,
    iter_tar_members,
    iter_tar_samples,
    manifest_entry,
    manifest_samples,
    read_manifest,
    shard_name,
    split_member_name,
    write_manifest,
    write_tar_atomic,
)

SAMPLES = [("000000000", {"jpg": b"\xff\xd8a", "txt": b"a cat", "json": b"{}"}),
           ("000000001", {"jpg": b"\xff\xd8b", "txt": b"a dog", "json": b'{"q": 1}'})]


def _tar_bytes(samples=SAMPLES) -> tuple[bytes, object]:
    buffer = io.BytesIO()
    writer = ShardTarWriter(buffer)
    for key, members in samples:
        writer.add_sample(key, members)
    summary = writer.close()
    return buffer.getvalue(), summary


def test_written_samples_read_back_in_order_and_as_webdataset(tmp_path):
    path = str(tmp_path / "00000.tar")
    with write_tar_atomic(path) as writer:
        for key, members in SAMPLES:
            writer.add_sample(key, members)
    assert list(iter_tar_samples(path)) == SAMPLES
    theirs = [(s["__key__"], {k: v for k, v in s.items() if not k.startswith("__")})
              for s in wds.WebDataset(path, shardshuffle=False)]
    assert theirs == SAMPLES
    data = open(path, "rb").read()
    assert writer.summary.samples == 2 and writer.summary.bytes == len(data)
    assert writer.summary.sha256 == hashlib.sha256(data).hexdigest()


def test_same_samples_give_the_same_bytes():
    assert _tar_bytes()[0] == _tar_bytes()[0]
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes()[0])) as tar:
        assert tar.getnames() == ["000000000.jpg", "000000000.json", "000000000.txt",
                                  "000000001.jpg", "000000001.json", "000000001.txt"]


def test_key_is_the_path_up_to_the_basename_first_dot_and_extension_is_lower_cased():
    assert split_member_name("000000001.JPG") == ("000000001", "jpg")
    assert split_member_name("dir.v2/abc.seg.json") == ("dir.v2/abc", "seg.json")
    assert split_member_name("noextension") is None
    assert split_member_name("dir/.hidden") is None


def test_keys_and_members_stream_without_data():
    data, _ = _tar_bytes()
    assert list(iter_tar_keys(io.BytesIO(data))) == [(k, set(m)) for k, m in SAMPLES]
    members = [(m.key, m.extension) for m in iter_tar_members(io.BytesIO(data))]
    assert members[:3] == [("000000000", "jpg"), ("000000000", "json"), ("000000000", "txt")]


def test_select_reads_only_the_chosen_members():
    data, _ = _tar_bytes()
    captions = list(iter_tar_samples(io.BytesIO(data), select=lambda name: name.endswith(".txt")))
    assert captions == [("000000000", {"txt": b"a cat"}), ("000000001", {"txt": b"a dog"})]


def test_a_truncated_tar_yields_what_came_before_then_raises():
    data, _ = _tar_bytes()
    samples = []
    with pytest.raises((tarfile.TarError, EOFError)):
        for sample in iter_tar_samples(io.BytesIO(data[:4000])):
            samples.append(sample)
    assert samples[:1] == SAMPLES[:1]


def test_hashing_stream_counts_writes_and_reads_and_copies_what_it_reads():
    data, summary = _tar_bytes()
    copy = io.BytesIO()
    reading = HashingStream(io.BytesIO(data), copy_to=copy)
    assert [key for key, _ in iter_tar_keys(reading)] == ["000000000", "000000001"]
    reading.drain()
    assert (reading.size, reading.sha256) == (summary.bytes, summary.sha256) and copy.getvalue() == data
    writing = HashingStream(io.BytesIO())
    writing.write(b"abc")
    assert (writing.size, writing.sha256) == (3, hashlib.sha256(b"abc").hexdigest())


def test_copied_members_keep_their_headers():
    data, _ = _tar_bytes()
    out = io.BytesIO()
    writer = ShardTarWriter(out)
    for member in iter_tar_members(io.BytesIO(data)):
        writer.add_member(member.info, member.file)
    assert writer.close().bytes == len(data) and out.getvalue() == data


def test_manifest_round_trip_carries_the_version(tmp_path):
    _, summary = _tar_bytes()
    written = write_manifest(str(tmp_path), {"shards": [manifest_entry(f"{shard_name(0)}.tar", summary)],
                                             "total_samples": 2})
    manifest = read_manifest(str(tmp_path))
    assert manifest == written and manifest["version"] == MANIFEST_VERSION
    assert manifest_samples(manifest) == {"00000.tar": 2}
    assert read_manifest(str(tmp_path / "nothing")) is None


def test_a_newer_or_broken_manifest_is_a_user_error(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"version": MANIFEST_VERSION + 1, "shards": []}))
    with pytest.raises(UserError, match="newer"):
        read_manifest(str(tmp_path))
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="not a shard manifest"):
        read_manifest(str(tmp_path))
    with pytest.raises(UserError, match="not a shard manifest"):
        manifest_samples({"shards": [{"path": "x.tar"}]})
