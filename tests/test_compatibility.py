"""Our shards handed to the tools users already have, end to end on the loopback sample web.

One img2dataset-shaped input (a ``.csv.gz`` with ``url``, ``caption`` and ``uid`` columns) goes
through ``wit download``; the output is then read the way docs/compatibility.md tells users to read
it: webdataset on the pattern ``wit shards urls`` prints, wids from ``sizes.json``, img2dataset's
per-shard stats files. img2dataset itself downloads the same input, and both tools keep the same URLs.
The docs' side-by-side option table is checked against ``wit_pipeline/img2dataset_options.py``.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import tarfile

import pyarrow.parquet as pq
import pytest
import webdataset as wds
import wids

from wit_pipeline.cli import main as wit
from wit_pipeline.img2dataset_options import rows as img2dataset_option_rows

# Every sample-web image is kept (no size or aspect filter), so the two tools' outcomes are comparable.
IMAGE_ARGS = ["--image-size", "64", "--min-image-size", "0", "--max-aspect-ratio", "100"]
FAILING_KINDS = ("not_found", "html_as_image")     # fail fast, one at the fetch, one at the decode
N_IMAGES = 8
PER_SHARD = 4
DOCS = os.path.join(os.path.dirname(__file__), "..", "docs", "compatibility.md")
IMG2DATASET_CLASSES = {"success", "failed_to_download", "failed_to_resize"}


def _status_rows(folder: str) -> list[dict]:
    rows = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".parquet"):
            rows += pq.read_table(os.path.join(folder, name)).to_pylist()
    return rows


def _tar_samples(path: str) -> int:
    with tarfile.open(path) as tar:       # not WebDataset: it refuses a tar with no samples
        return len({member.name.split(".", 1)[0] for member in tar.getmembers()})


def _tar_names(folder: str) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tar"))


@pytest.fixture(scope="module")
def input_rows(sample_files) -> list[dict]:
    table = pq.read_table(sample_files.urls_table).to_pylist()
    chosen = [row for row in table if row["kind"] == "image"][:N_IMAGES]
    chosen += [row for row in table if row["kind"] in FAILING_KINDS]
    return [{"url": row["url"], "caption": row["text"], "uid": f"uid-{i:03d}"} for i, row in enumerate(chosen)]


@pytest.fixture(scope="module")
def csv_gz(input_rows, tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("input") / "urls.csv.gz")
    with gzip.open(path, "wt", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["url", "caption", "uid"])
        writer.writeheader()
        writer.writerows(input_rows)
    return path


@pytest.fixture(scope="module")
def shards(csv_gz, sample_web, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("wit") / "shards")
    code = wit(["download", "--input", csv_gz, "--out", out, "--caption-col", "caption",
                "--samples-per-shard", str(PER_SHARD), "--timeout", "5", "--retries", "0", "--threads", "4",
                "--allow-private-networks", *IMAGE_ARGS])
    assert code == 0
    return out


def test_csv_gz_with_caption_col_carries_uid_into_every_sample_json_and_status_row(shards, input_rows):
    uid_of = {row["url"]: row["uid"] for row in input_rows}
    caption_of = {row["url"]: row["caption"] for row in input_rows}
    statuses = _status_rows(shards)
    assert sorted(row["url"] for row in statuses) == sorted(uid_of)
    assert all(row["uid"] == uid_of[row["url"]] for row in statuses)
    assert sum(row["status"] == "success" for row in statuses) == N_IMAGES
    samples = list(wds.WebDataset(os.path.join(shards, "{00000..00002}.tar"), shardshuffle=False))
    assert len(samples) == N_IMAGES
    for sample in samples:
        meta = json.loads(sample["json"])
        assert meta["uid"] == uid_of[meta["url"]]
        assert meta["status"] == "success"
        assert sample["txt"].decode() == caption_of[meta["url"]]


def test_webdataset_iterates_the_pattern_wit_shards_urls_prints(shards, capsys):
    capsys.readouterr()
    assert wit(["shards", "urls", shards]) == 0
    pattern = capsys.readouterr().out
    assert pattern.count("\n") == 1                    # one line: usable as "$(wit shards urls DIR)"
    samples = list(wds.WebDataset(pattern.strip(), shardshuffle=False))
    succeeded = sorted(row["key"] for row in _status_rows(shards) if row["status"] == "success")
    assert sorted(sample["__key__"] for sample in samples) == succeeded
    assert all({"jpg", "txt", "json"} <= set(sample) for sample in samples)


def test_sizes_json_and_per_shard_stats_match_the_tars(shards):
    counts = {name: _tar_samples(os.path.join(shards, name)) for name in _tar_names(shards)}
    with open(os.path.join(shards, "sizes.json"), encoding="utf-8") as f:
        assert json.load(f) == counts
    for name, samples in counts.items():
        rows = pq.read_table(os.path.join(shards, name.replace(".tar", ".parquet"))).to_pylist()
        with open(os.path.join(shards, name.replace(".tar", "_stats.json")), encoding="utf-8") as f:
            stats = json.load(f)
        assert (stats["count"], stats["successes"]) == (len(rows), samples)
        assert stats["successes"] + stats["failed_to_download"] + stats["failed_to_resize"] == stats["count"]
        assert set(stats["status_dict"]) <= IMG2DATASET_CLASSES
        assert sum(stats["status_dict"].values()) == stats["count"]
        assert stats["status_dict"].get("success", 0) == samples


def test_wids_reads_the_shards_from_sizes_json(shards, tmp_path):
    with open(os.path.join(shards, "sizes.json"), encoding="utf-8") as f:
        sizes = json.load(f)
    spec = [{"url": os.path.join(shards, name), "nsamples": n} for name, n in sizes.items()]
    dataset = wids.ShardListDataset(spec, cache_dir=str(tmp_path))
    assert len(dataset) == N_IMAGES
    assert all({".jpg", ".txt", ".json"} <= set(dataset[i]) for i in range(len(dataset)))


def test_img2dataset_and_wit_keep_the_same_urls_from_one_input(shards, csv_gz, tmp_path, capsys):
    import img2dataset

    theirs = str(tmp_path / "img2dataset")
    img2dataset.download(url_list=csv_gz, input_format="csv.gz", url_col="url", caption_col="caption",
                         save_additional_columns=["uid"], output_folder=theirs, output_format="webdataset",
                         processes_count=1, thread_count=4, number_sample_per_shard=PER_SHARD, image_size=64,
                         timeout=5, retries=0)

    def kept(folder):
        return sorted(row["url"] for row in _status_rows(folder) if row["status"] == "success")

    assert kept(theirs) == kept(shards)
    assert len(kept(shards)) == N_IMAGES
    capsys.readouterr()
    assert wit(["shards", "stats", "--json", theirs]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["rows"], stats["samples"]) == (N_IMAGES + len(FAILING_KINDS), N_IMAGES)


def test_docs_list_every_img2dataset_option_beside_ours():
    with open(DOCS, encoding="utf-8") as f:
        doc = f.read()
    for row in img2dataset_option_rows():
        ours = f"`{row['wit']}`" if row["wit"] else "none"
        assert f"| `{row['img2dataset']}` | {ours} | {row['note']} |" in doc
