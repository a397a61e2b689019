"""Files other tools read beside our shards (OpenCLIP's ``sizes.json``, img2dataset's ``NNNNN_stats.json``), and
``wit shards`` on shard sets other tools wrote (img2dataset's own output, tars alone)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from dedup.filter import OverlapFilterOptions, run_overlap_filter
from wit_pipeline.cli import main as wit
from wit_pipeline.download.shards import list_shard_rows, shard_stats, verify
from wit_pipeline.download.writer import IMG2DATASET_CLASSES, img2dataset_class
from wit_pipeline.sampleweb import FAULTS
from wit_pipeline.schemas import STATUS_REASONS
from wit_pipeline.shardset import ShardTarWriter, iter_tar_keys, iter_tar_samples, write_tar_atomic

FAST = ["--timeout", "1.0", "--retries", "0", "--threads", "4", "--allow-private-networks", "--image-size", "64",
        "--min-image-size", "0", "--max-aspect-ratio", "100"]


def _urls(web) -> list[str]:
    """Ten images and two failures (a 404, an image that does not decode) of the sample web."""
    return ([web.image_url(image) for image in web.site.images[:10]]
            + [web.url(FAULTS["not_found"].path), web.url(FAULTS["corrupt"].path)])


def _tar_samples(out: str) -> dict[str, int]:
    return {name: len({key for key, _ in iter_tar_keys(os.path.join(out, name))})
            for name in sorted(os.listdir(out)) if name.endswith(".tar")}


def _write_tar(path: str, keys: list[str]) -> None:
    buffer = io.BytesIO()
    writer = ShardTarWriter(buffer)
    for key in keys:
        writer.add_sample(key, {"png": b"\x89PNG" + key.encode(), "txt": key.encode()})
    writer.close()
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue())


@pytest.fixture(scope="module")
def downloaded(sample_web, tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    urls = _urls(sample_web)
    table = str(root / "urls.parquet")
    pq.write_table(pa.table({"url": urls, "text": [f"caption {i}" for i in range(len(urls))]}), table)
    out = str(root / "shards")
    assert wit(["download", "--input", table, "--out", out, "--samples-per-shard", "5", *FAST]) == 0
    return out, table


@pytest.fixture(scope="module")
def img2dataset_output(sample_web, tmp_path_factory):
    """img2dataset 1.47 itself, run on the loopback sample web (it does not refuse loopback)."""
    import img2dataset

    root = tmp_path_factory.mktemp("img2dataset")
    url_list = str(root / "urls.csv")
    with open(url_list, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "caption"])
        writer.writerows([url, f"caption {i}"] for i, url in enumerate(_urls(sample_web)))
    out = str(root / "out")
    img2dataset.download(url_list=url_list, input_format="csv", url_col="url", caption_col="caption",
                         output_folder=out, output_format="webdataset", processes_count=1, thread_count=4,
                         image_size=64, number_sample_per_shard=5, timeout=3, retries=0,
                         disallowed_header_directives=[], enable_wandb=False)
    return out


# -- what we write --------------------------------------------------------------------------------------------

def test_sizes_json_is_openclips_count_of_every_tar(downloaded):
    out, _ = downloaded
    sizes = json.load(open(os.path.join(out, "sizes.json")))
    assert sizes == _tar_samples(out) and set(sizes) == {"00000.tar", "00001.tar", "00002.tar"}
    assert sum(sizes.values()) == json.load(open(os.path.join(out, "manifest.json")))["total_samples"] == 10


def test_per_shard_stats_have_img2datasets_shape_and_match_tars_and_status(downloaded):
    out, _ = downloaded
    tars = _tar_samples(out)
    for shard in ("00000", "00001", "00002"):
        stats = json.load(open(os.path.join(out, f"{shard}_stats.json")))
        statuses = pq.read_table(os.path.join(out, f"{shard}.parquet"))["status"].to_pylist()
        assert stats["successes"] == tars[f"{shard}.tar"] == statuses.count("success")
        assert stats["count"] == len(statuses)
        assert stats["count"] == stats["successes"] + stats["failed_to_download"] + stats["failed_to_resize"]
        assert stats["status_dict"] == dict(Counter(img2dataset_class(s) for s in statuses))
        assert stats["reasons"] == dict(Counter(statuses))
        assert stats["end_time"] >= stats["start_time"] and stats["duration"] >= 0
    last = json.load(open(os.path.join(out, "00002_stats.json")))     # the 404 and the undecodable image
    assert last["status_dict"] == {"failed_to_download": 1, "failed_to_resize": 1}
    assert last["reasons"] == {"http_404": 1, "decode_error": 1}


def test_every_status_reason_has_an_img2dataset_class():
    assert set(STATUS_REASONS) <= set(IMG2DATASET_CLASSES)
    assert set(IMG2DATASET_CLASSES.values()) == {"success", "failed_to_download", "failed_to_resize"}
    assert img2dataset_class("http_503") == "failed_to_download"
    assert img2dataset_class("decode_error") == "failed_to_resize"


def test_a_resumed_output_gets_missing_stats_and_sizes_rebuilt(downloaded, tmp_path):
    out, table = downloaded
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    kept = open(os.path.join(copy, "00000_stats.json")).read()
    lost = open(os.path.join(copy, "00001_stats.json")).read()
    os.remove(os.path.join(copy, "00001_stats.json"))
    os.remove(os.path.join(copy, "sizes.json"))
    assert wit(["download", "--input", table, "--out", copy, "--samples-per-shard", "5", *FAST]) == 0
    assert json.load(open(os.path.join(copy, "stats.json")))["done_now"] == 0      # nothing downloaded again
    assert open(os.path.join(copy, "00000_stats.json")).read() == kept
    assert json.loads(open(os.path.join(copy, "00001_stats.json")).read()) == json.loads(lost)
    assert json.load(open(os.path.join(copy, "sizes.json"))) == _tar_samples(copy)


def test_overlap_filter_writes_sizes_and_per_shard_stats(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    _write_tar(str(shards / "00000.tar"), [f"00000{i:04d}" for i in range(4)])
    _write_tar(str(shards / "00001.tar"), [f"00001{i:04d}" for i in range(3)])
    overlap = tmp_path / "overlap"
    overlap.mkdir()
    pair = {"shard": "00001.tar", "shard_key": "000010002", "eval_id": "e1", "similarity": 0.9}
    (overlap / "overlap.json").write_text(json.dumps({"eval_sets": {"toy": {"pairs": [pair]}}}))
    out = str(tmp_path / "clean")
    run_overlap_filter(OverlapFilterOptions(shards=str(shards), overlap=str(overlap), out=out))
    assert json.load(open(os.path.join(out, "sizes.json"))) == _tar_samples(out) == {"00000.tar": 4, "00001.tar": 2}
    stats = json.load(open(os.path.join(out, "00001_stats.json")))
    assert (stats["count"], stats["successes"], stats["status_dict"]) == (3, 2, {"success": 2, "overlap": 1})
    assert json.load(open(os.path.join(out, "00000_stats.json")))["successes"] == 4
    assert verify(out) == []


def test_verify_reports_a_sizes_json_or_shard_stats_that_disagrees_with_the_tars(downloaded, tmp_path):
    out, _ = downloaded
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    assert verify(copy) == []
    sizes = json.load(open(os.path.join(copy, "sizes.json")))
    sizes["00000.tar"] += 1
    json.dump(sizes, open(os.path.join(copy, "sizes.json"), "w"))
    stats = json.load(open(os.path.join(copy, "00001_stats.json")))
    stats["successes"] -= 1
    json.dump(stats, open(os.path.join(copy, "00001_stats.json"), "w"))
    problems = verify(copy)
    assert len(problems) == 2
    assert problems[0].startswith("sizes.json: 00000.tar has") and problems[1].startswith("00001_stats.json: says")


# -- wit shards urls: the pattern alone -------------------------------------------------------------------

def test_urls_prints_only_the_pattern_and_webdataset_iterates_it(downloaded):
    out, _ = downloaded
    done = subprocess.run([sys.executable, "-m", "wit_pipeline", "shards", "urls", out],
                          capture_output=True, text=True, timeout=120, check=True)
    pattern = done.stdout.strip()
    assert done.stdout == pattern + "\n" and pattern == f"{out}/{{00000..00002}}.tar"
    assert "10 samples" in done.stderr
    keys = [sample["__key__"] for sample in wds.WebDataset(pattern, shardshuffle=False)]
    assert len(keys) == len(set(keys)) == 10


# -- img2dataset's own output ---------------------------------------------------------------------------------

def test_shards_ls_and_stats_report_img2datasets_output(img2dataset_output, capsys):
    out = img2dataset_output
    assert not os.path.exists(os.path.join(out, "manifest.json"))      # what makes it another tool's output
    rows = list_shard_rows(out)
    assert [(r.shard, r.rows, r.samples) for r in rows] == [("00000.tar", 5, 5), ("00001.tar", 5, 5),
                                                            ("00002.tar", 2, 0)]
    assert all(r.problem is None and r.bytes > 0 for r in rows)
    assert wit(["shards", "ls", out]) == 0
    total = capsys.readouterr().out.splitlines()[-1].split()
    assert total[:3] == ["total", "12", "10"]
    assert wit(["shards", "stats", out, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["rows"], stats["samples"], stats["queries"]) == (12, 10, 0)
    assert stats["failures"] == {"failed_to_download": 1, "failed_to_resize": 1}     # img2dataset's classes
    assert sum(stats["shorter_side_histogram"].values()) == 10 and stats["unreadable"] == []


def test_shards_verify_show_and_urls_work_on_img2datasets_output(img2dataset_output, capsys, tmp_path):
    out = img2dataset_output
    assert verify(out) == []
    assert wit(["shards", "verify", out]) == 0
    sheet = str(tmp_path / "sheet.html")
    assert wit(["shards", "show", out, "--html", sheet, "--n", "4"]) == 0
    assert open(sheet).read().count("<figure>") == 4
    capsys.readouterr()
    assert wit(["shards", "urls", out]) == 0
    printed = capsys.readouterr()
    assert printed.out == f"{out}/{{00000..00002}}.tar\n" and printed.err == "10 samples\n"


# -- tars alone ----------------------------------------------------------------------------------------------

def test_shards_commands_count_a_folder_of_tars_alone(tmp_path, capsys):
    out = str(tmp_path)
    _write_tar(os.path.join(out, "00000.tar"), ["a0", "a1", "a2"])
    _write_tar(os.path.join(out, "00001.tar"), ["b0", "b1"])
    assert [(r.shard, r.rows, r.samples) for r in list_shard_rows(out)] == [("00000.tar", 3, 3), ("00001.tar", 2, 2)]
    stats = shard_stats(out)
    assert (stats["rows"], stats["samples"], stats["failures"]) == (5, 5, {})
    assert verify(out) == []
    assert wit(["shards", "urls", out]) == 0
    assert capsys.readouterr().out == f"{out}/{{00000..00001}}.tar\n"
    sheet = str(tmp_path / "sheet.html")
    assert wit(["shards", "show", out, "--html", sheet]) == 0
    assert open(sheet).read().count("<figure>") == 5


def test_a_damaged_tar_alone_is_reported_not_raised(tmp_path, capsys):
    out = str(tmp_path)
    _write_tar(os.path.join(out, "00000.tar"), ["a0", "a1"])
    with open(os.path.join(out, "00001.tar"), "wb") as handle:
        handle.write(b"not a tar at all" * 64)
    rows = list_shard_rows(out)
    assert rows[0].samples == 2 and rows[1].problem and rows[1].problem.startswith("00001.tar: damaged")
    assert wit(["shards", "ls", out]) == 0
    assert "00001.tar: damaged" in capsys.readouterr().err
    problems = verify(out)
    assert len(problems) == 1 and problems[0].startswith("00001.tar: does not open as a tar")


def test_verify_holds_our_own_output_to_its_manifests_members(downloaded, tmp_path):
    out, _ = downloaded
    copy = str(tmp_path / "copy")
    shutil.copytree(out, copy)
    tar = os.path.join(copy, "00000.tar")
    samples = [(key, {ext: data for ext, data in members.items() if ext != "txt"})
               for key, members in iter_tar_samples(tar)]
    with write_tar_atomic(tar) as writer:
        for key, members in samples:
            writer.add_sample(key, members)
    problems = verify(copy)
    assert f"00000.tar: key {samples[0][0]} lacks .txt" in problems
    assert "00000.tar: sha256 differs from manifest.json" in problems
