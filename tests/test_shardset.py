"""The shard-set module: tar round trip, the one key rule, manifest versions, hashing."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest
import webdataset as wds

from wit_pipeline.errors import UserError
from wit_pipeline.shardset import (
    MANIFEST_VERSION,
    DamagedShard,
    HashingStream,
    ShardDigest,
    ShardTarWriter,
    iter_tar_keys,
    iter_tar_members,
    iter_tar_samples,
    manifest_entry,
    manifest_samples,
    read_manifest,
    shard_digests,
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
    with pytest.raises(DamagedShard):
        for sample in iter_tar_samples(io.BytesIO(data[:4000])):
            samples.append(sample)
    assert samples[:1] == SAMPLES[:1]


def _four_samples() -> tuple[bytes, ShardDigest]:
    data, summary = _tar_bytes([(f"{i:04d}", {"jpg": bytes([i + 1]) * (300 + 97 * i), "txt": b"caption %d" % i})
                                for i in range(4)])
    return data, ShardDigest(summary.bytes, summary.sha256)


def test_every_cut_of_a_tar_is_damage_even_at_a_member_boundary():
    # Python's tarfile alone reads a tar cut at a member boundary as a shorter, healthy one.
    data, whole = _four_samples()
    assert len(list(iter_tar_samples(io.BytesIO(data), expected=whole))) == 4
    end = data.rindex(b"caption 3") + 512        # past the last member, into the end-of-archive marker
    for cut in [*range(0, end, 64), end + 100]:
        for read in (iter_tar_samples, iter_tar_keys):
            with pytest.raises(DamagedShard):
                list(read(io.BytesIO(data[:cut])))


def test_a_changed_byte_is_damage_against_the_manifest_row():
    data, whole = _four_samples()
    altered = bytearray(data)
    altered[data.index(b"caption 1")] = ord("K")
    assert len(list(iter_tar_samples(io.BytesIO(bytes(altered))))) == 4      # no manifest: a tar cannot tell
    with pytest.raises(DamagedShard, match="sha256"):
        list(iter_tar_samples(io.BytesIO(bytes(altered)), expected=whole))
    with pytest.raises(DamagedShard, match="bytes where its manifest says"):
        list(iter_tar_samples(io.BytesIO(data + bytes(512)), expected=whole))
    header = bytearray(data)
    header[data.index(b"0002.jpg")] = ord("X")                              # its header checksum fails
    with pytest.raises(DamagedShard, match="damaged tar header"):
        list(iter_tar_keys(io.BytesIO(bytes(header))))


def test_a_cut_gzipped_tar_is_damage_too():
    data, _ = _four_samples()
    packed = gzip.compress(data)
    assert len(list(iter_tar_samples(io.BytesIO(packed)))) == 4
    for cut in (len(packed) // 2, len(packed) - 12):
        with pytest.raises(DamagedShard):
            list(iter_tar_samples(io.BytesIO(packed[:cut])))


def test_shard_digests_are_the_rows_of_the_manifest_beside_the_shards(tmp_path):
    sha = "ab" * 32
    write_manifest(str(tmp_path), {"shards": [{"path": "00000.tar", "samples": 1, "bytes": 10, "sha256": sha},
                                              {"path": "00001.tar", "samples": 1, "bytes": "ten", "sha256": "-"},
                                              "not a row"]})
    paths = [str(tmp_path / "00000.tar"), str(tmp_path / "00001.tar"), str(tmp_path / "00002.tar"),
             str(tmp_path / "elsewhere" / "00000.tar")]
    assert shard_digests(paths) == {paths[0]: ShardDigest(10, sha)}


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


def test_write_manifest_writes_openclips_sizes_json_beside_it(tmp_path):
    from wit_pipeline.shardset import read_sizes

    write_manifest(str(tmp_path), {"shards": [{"path": "00000.tar", "samples": 3}, {"path": "00001.tar", "samples": 0}],
                                   "total_samples": 3})
    assert json.load(open(tmp_path / "sizes.json")) == {"00000.tar": 3, "00001.tar": 0}
    assert read_sizes(str(tmp_path)) == {"00000.tar": 3, "00001.tar": 0}
    (tmp_path / "sizes.json").write_text('{"00000.tar": "3"}')
    with pytest.raises(UserError, match="not OpenCLIP's sizes.json"):
        read_sizes(str(tmp_path))


def test_shard_stats_have_img2datasets_keys_and_read_back(tmp_path):
    from wit_pipeline.shardset import read_shard_stats, shard_stats_name, shard_stats_record, write_shard_stats

    record = shard_stats_record({"success": 7, "failed_to_download": 2, "failed_to_resize": 1}, 100.0, 102.5)
    assert record == {"count": 10, "successes": 7, "failed_to_download": 2, "failed_to_resize": 1, "duration": 2.5,
                      "start_time": 100.0, "end_time": 102.5,
                      "status_dict": {"failed_to_download": 2, "failed_to_resize": 1, "success": 7}}
    assert shard_stats_name("00012.tar") == "00012_stats.json"
    write_shard_stats(str(tmp_path), "00012.tar", record)
    assert read_shard_stats(str(tmp_path), "00012.tar") == record
    assert read_shard_stats(str(tmp_path), "00013.tar") is None
    (tmp_path / "00012_stats.json").write_text("[]")
    with pytest.raises(UserError, match="not a per-shard stats file"):
        read_shard_stats(str(tmp_path), "00012.tar")
