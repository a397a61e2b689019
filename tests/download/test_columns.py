"""What a sample's json and status row carry: the input's other columns (``--drop-columns``), ``status``,
``error_message``, ``exif`` (``--save-exif``), and ``--verify-hash``'s ``hash_mismatch``."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from wit_pipeline.cli import main as wit
from wit_pipeline.download.downloader import (
    ColumnKinds,
    carried_columns,
    hash_mismatch,
    parse_hash_check,
    status_table_rows,
)
from wit_pipeline.download.images import exif_json
from wit_pipeline.download.reader import InputRow
from wit_pipeline.errors import UserError
from wit_pipeline.sampleweb.render import web_image_bytes
from wit_pipeline.schemas import STATUS_SCHEMA, extra_column_type, is_status_reason
from wit_pipeline.shardset import iter_tar_samples

FAST = ["--timeout", "1.0", "--retries", "1", "--threads", "8", "--allow-private-networks"]


# -- pure pieces -------------------------------------------------------------------------------------------

def test_input_columns_named_like_our_fields_are_carried_as_input_name():
    extra = {"uid": "a1", "sha256": "ff", "status": "raw", "input_sha256": "ee", "queries": ["cat"]}
    assert carried_columns(extra) == {"uid": "a1", "input_input_sha256": "ff", "input_status": "raw",
                                      "input_sha256": "ee"}     # an input's own input_sha256 keeps its name


def test_drop_columns_leaves_named_input_columns_out():
    assert carried_columns({"uid": "a1", "licence": "x", "sha256": "ff"}, frozenset({"licence", "sha256"})) == {
        "uid": "a1"}


def test_carried_column_types_follow_the_values():
    assert extra_column_type(["a", None]) == pa.string()
    assert extra_column_type([1, 2, None]) == pa.int64()
    assert extra_column_type([1, 2.5]) == pa.float64()
    assert extra_column_type([True, False]) == pa.bool_()
    assert extra_column_type([["a"], ["b", "c"]]) == pa.list_(pa.string())
    assert extra_column_type([None, None]) == pa.string()
    assert extra_column_type([1 << 70]) is None
    assert extra_column_type([{"a": 1}]) is None


def test_status_table_keeps_fixed_columns_first_and_writes_mixed_columns_as_json_text():
    base = {name: None for name in STATUS_SCHEMA.names}
    rows = [{**base, "uid": "a", "score": 0.5, "meta": {"k": 1}}, {**base, "uid": "b", "score": 2, "meta": "x"}]
    schema, typed = status_table_rows(rows)
    assert schema.names == [*STATUS_SCHEMA.names, "uid", "score", "meta"]
    assert schema.field("score").type == pa.float64() and schema.field("meta").type == pa.string()
    assert [row["meta"] for row in typed] == ['{"k": 1}', "x"]
    assert pa.Table.from_pylist(typed, schema=schema).num_rows == 2


def test_verify_hash_takes_a_column_and_sha256_or_md5():
    check = parse_hash_check("sha256")
    assert (check.column, check.algorithm) == ("sha256", "sha256")
    check = parse_hash_check("digest, MD5")
    assert (check.column, check.algorithm) == ("digest", "md5")
    with pytest.raises(UserError, match=r"unknown algorithm 'crc32'"):
        parse_hash_check("digest,crc32")
    assert is_status_reason("hash_mismatch")


def test_hash_mismatch_says_why_and_an_empty_cell_fails():
    body = b"image bytes"
    check = parse_hash_check("digest,md5")
    good = hashlib.md5(body).hexdigest()
    assert hash_mismatch(body, InputRow("u", "t", {"digest": good.upper()}), check) is None
    assert "!=" in hash_mismatch(body, InputRow("u", "t", {"digest": "00"}), check)
    assert "no md5 in column 'digest'" in hash_mismatch(body, InputRow("u", "t", {"digest": ""}), check)
    assert "no md5" in hash_mismatch(body, InputRow("u", "t", {}), check)


def _jpeg_with_exif() -> bytes:
    image = Image.new("RGB", (16, 16))
    exif = image.getexif()
    exif[0x010F] = "Canon"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def test_exif_is_img2datasets_json_text_of_the_tags():
    assert json.loads(exif_json(_jpeg_with_exif())) == {"Image Make": "Canon"}
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    assert exif_json(png.getvalue()) == "{}"


# -- end to end --------------------------------------------------------------------------------------------

def _good_images(web, count: int):
    """Images of the sample web that pass the default checks, with their served bytes."""
    found = []
    for image in web.site.images:
        body = web_image_bytes(web.site, image)
        width, height = Image.open(io.BytesIO(body)).size
        if min(width, height) >= 200 and max(width, height) / min(width, height) <= 3:
            found.append((image, body))
        if len(found) == count:
            return found
    raise AssertionError("the sample web has too few good images")


@pytest.fixture(scope="module")
def uid_table(sample_web, tmp_path_factory):
    """A DataComp-like ``.csv.gz``: url, caption, uid, sha256 (row 3 wrong, row 4 empty), licence."""
    rows = []
    for index, (image, body) in enumerate(_good_images(sample_web, 5)):
        digest = hashlib.sha256(body).hexdigest()
        digest = {3: "0" * 64, 4: ""}.get(index, digest)
        rows.append({"url": sample_web.image_url(image), "caption": f"caption {index}", "uid": f"uid{index:03d}",
                     "sha256": digest, "licence": "cc-by"})
    path = tmp_path_factory.mktemp("columns") / "urls.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path), rows


def _samples(out: str) -> list[dict]:
    samples = []
    for name in sorted(os.listdir(out)):
        if name.endswith(".tar"):
            samples += [json.loads(members["json"]) for _key, members in iter_tar_samples(os.path.join(out, name))]
    return samples


def _status_rows(out: str) -> list[dict]:
    return [row for name in sorted(os.listdir(out)) if name.endswith(".parquet")
            for row in pq.read_table(os.path.join(out, name)).to_pylist()]


@pytest.fixture(scope="module")
def verified(uid_table, tmp_path_factory):
    path, _rows = uid_table
    out = str(tmp_path_factory.mktemp("verified") / "shards")
    assert wit(["download", "--input", path, "--out", out, "--caption-col", "caption", "--verify-hash", "sha256",
                "--samples-per-shard", "3", *FAST]) == 0
    return out


def test_uid_is_in_every_sample_json_and_status_row(verified, uid_table):
    _path, rows = uid_table
    samples, status = _samples(verified), _status_rows(verified)
    assert len(status) == len(rows) and [row["uid"] for row in status] == [row["uid"] for row in rows]
    assert len(samples) == 3 and all(sample["uid"] in {"uid000", "uid001", "uid002"} for sample in samples)
    assert all(sample["licence"] == "cc-by" and sample["caption"].startswith("caption ") for sample in samples)


def test_status_parquet_has_fixed_columns_first_then_the_input_ones(verified):
    schema = pq.read_schema(os.path.join(verified, "00000.parquet"))
    assert schema.names[:len(STATUS_SCHEMA)] == STATUS_SCHEMA.names
    assert set(schema.names[len(STATUS_SCHEMA):]) == {"uid", "input_sha256", "licence"}


def test_an_input_sha256_is_kept_as_input_sha256_beside_ours(verified, uid_table):
    _path, rows = uid_table
    for sample in _samples(verified):
        source = next(row for row in rows if row["uid"] == sample["uid"])
        assert sample["input_sha256"] == source["sha256"] == sample["sha256"]


def test_wrong_or_empty_hash_is_a_counted_hash_mismatch_without_a_sample(verified):
    by_uid = {row["uid"]: row for row in _status_rows(verified)}
    assert by_uid["uid003"]["status"] == by_uid["uid004"]["status"] == "hash_mismatch"
    assert "!=" in by_uid["uid003"]["error_message"] and "no sha256" in by_uid["uid004"]["error_message"]
    assert {s["uid"] for s in _samples(verified)}.isdisjoint({"uid003", "uid004"})
    stats = json.load(open(os.path.join(verified, "stats.json")))
    assert stats["dropped"].get("hash_mismatch") == 2 and stats["accounted"] is True


def test_sample_json_carries_status_error_message_and_exif(verified):
    for sample in _samples(verified):
        assert sample["status"] == "success" and sample["error_message"] is None
        assert isinstance(json.loads(sample["exif"]), dict)
    successes = [row for row in _status_rows(verified) if row["status"] == "success"]
    assert successes and all(isinstance(json.loads(row["exif"]), dict) for row in successes)


def test_drop_columns_and_no_save_exif_leave_them_out(uid_table, tmp_path):
    path, _rows = uid_table
    out = str(tmp_path / "shards")
    assert wit(["download", "--input", path, "--out", out, "--caption-col", "caption", "--drop-columns",
                "licence,sha256", "--no-save-exif", *FAST]) == 0
    samples = _samples(out)
    assert len(samples) == 5
    assert all("licence" not in s and "input_sha256" not in s and "exif" not in s and "uid" in s for s in samples)
    status = _status_rows(out)
    assert all(row["exif"] is None and "licence" not in row for row in status)


def test_verify_hash_naming_a_missing_column_is_one_error_line(uid_table, tmp_path, capsys):
    path, _rows = uid_table
    code = wit(["download", "--input", path, "--out", str(tmp_path / "o"), "--caption-col", "caption",
                "--verify-hash", "md5sum", *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [err[-1]] and "--verify-hash: the input has no column 'md5sum'" in err[-1]


def test_carried_column_types_come_from_the_whole_input():
    kinds = ColumnKinds(frozenset({"skip"}))
    for extra in ({"score": 1, "tag": "a", "skip": 1}, {"score": None, "tag": 2}, {"score": 2.5, "sha256": "ff"}):
        kinds.observe(InputRow("u", "t", extra))
    assert kinds.types() == (("score", pa.float64()), ("tag", None), ("input_sha256", pa.string()))


def test_every_shard_parquet_has_the_same_schema(tmp_path):
    rows = [{"url": "ftp://x/a.jpg", "text": "a", "score": 1, "tag": 1},
            {"url": "ftp://x/b.jpg", "text": "b", "score": None, "tag": "two"}]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = str(tmp_path / "shards")
    assert wit(["download", "--input", str(source), "--out", out, "--samples-per-shard", "1", *FAST]) == 0
    schemas = [pq.read_schema(os.path.join(out, name)).remove_metadata() for name in ("00000.parquet", "00001.parquet")]
    assert schemas[0] == schemas[1]
    assert schemas[0].field("score").type == pa.int64() and schemas[0].field("tag").type == pa.string()
    assert [row["tag"] for row in _status_rows(out)] == ["1", "two"]     # mixed: JSON text, strings as they are


def test_drop_duplicates_keeps_the_carried_columns(sample_web, tmp_path):
    (image, _body), = _good_images(sample_web, 1)
    rows = [{"url": sample_web.image_url(image), "text": "t", "uid": f"u{i}"} for i in range(2)]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = str(tmp_path / "shards")
    assert wit(["download", "--input", str(source), "--out", out, "--samples-per-shard", "1", "--drop-duplicates",
                *FAST]) == 0
    status = _status_rows(out)
    assert [(row["uid"], row["status"]) for row in status] == [("u0", "success"), ("u1", "duplicate")]
