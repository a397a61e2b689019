"""``wit filter`` on small known sets: each rule, their order, every key accounted, the output format."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from dedup.synthetic import transformed_copy
from wit_pipeline.cli import main
from wit_pipeline.download.shards import verify
from wit_pipeline.filter.pipeline import FilterOptions, run_filter
from wit_pipeline.shardset import iter_tar_keys

from .helpers import shape_jpeg, unit, write_embeddings, write_shards


def _statuses(out) -> dict[str, str]:
    found = {}
    for path in sorted(out.glob("*.parquet")):
        table = pq.read_table(path, columns=["key", "status"])
        found.update(zip(table["key"].to_pylist(), table["status"].to_pylist(), strict=True))
    return found


def _kept_keys(out) -> set[str]:
    return {key for path in out.glob("*.tar") for key, _ in iter_tar_keys(str(path))}


def _axis(i: int, d: int = 8) -> np.ndarray:
    vector = np.zeros(d, np.float32)
    vector[i] = 1.0
    return vector


@pytest.fixture
def scored_set(tmp_path):
    """Ten distinct samples in two shards with CLIP scores 0.0 .. 0.9 and spread-out embeddings."""
    rng = np.random.default_rng(0)
    shards, parts = {}, []
    for shard in range(2):
        samples, rows = [], []
        for index in range(5):
            n = shard * 5 + index
            key = f"{shard:05d}{index:04d}"
            samples.append((key, shape_jpeg(n), f"caption {n}"))
            rows.append((key, n / 10, rng.normal(size=16)))
        shards[f"{shard:05d}.tar"] = samples
        parts.append((f"{shard:05d}.tar", rows))
    write_shards(str(tmp_path / "in"), shards)
    write_embeddings(str(tmp_path / "emb"), parts)
    return tmp_path


def _run(tmp_path, **rules) -> dict:
    return run_filter(FilterOptions(shards=str(tmp_path / "in"), embeddings=str(tmp_path / "emb"),
                                    out=str(tmp_path / "out"), **rules))


def test_clip_score_min_drops_samples_below_it_and_lists_every_key(scored_set):
    stats = _run(scored_set, clip_score_min=0.45)
    statuses = _statuses(scored_set / "out")
    assert len(statuses) == 10
    assert sorted(k for k, s in statuses.items() if s == "low_clip_score") == \
        ["000000000", "000000001", "000000002", "000000003", "000000004"]
    assert stats["accounted"] and stats["in"] == 10 and stats["out"] == 5
    assert stats["dropped"]["low_clip_score"] == 5
    assert _kept_keys(scored_set / "out") == {k for k, s in statuses.items() if s == "success"}


def test_clip_score_top_keeps_the_top_fraction_of_the_whole_set(scored_set):
    stats = _run(scored_set, clip_score_top=0.3)
    assert stats["out"] == 3
    assert _kept_keys(scored_set / "out") == {"000010002", "000010003", "000010004"}


def test_output_is_a_download_format_shard_set_that_verifies(scored_set):
    _run(scored_set, clip_score_top=0.5)
    out = scored_set / "out"
    assert verify(str(out)) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["total_samples"] == 5
    sizes = json.loads((out / "sizes.json").read_text())
    assert sum(sizes.values()) == 5
    stats = json.loads((out / "00000_stats.json").read_text())
    assert stats["count"] == 5 and stats["successes"] == len(_kept_keys(out) & {f"00000{i:04d}" for i in range(5)})
    assert main(["shards", "verify", str(out)]) == 0


def test_exact_duplicates_keep_the_first_by_key(tmp_path):
    image, other = shape_jpeg(1), shape_jpeg(2, "square", "green", "white")
    write_shards(str(tmp_path / "in"), {"00000.tar": [("b", image, "x"), ("c", other, "y")],
                                        "00001.tar": [("a", image, "z")]})
    stats = run_filter(FilterOptions(shards=str(tmp_path / "in"), out=str(tmp_path / "out"), dedup="exact"))
    assert _statuses(tmp_path / "out") == {"a": "success", "b": "exact_duplicate", "c": "success"}
    assert stats["dropped"]["exact_duplicate"] == 1 and stats["accounted"]


def test_near_duplicates_drop_a_resized_recompressed_cropped_copy_but_not_distinct_images(tmp_path):
    originals = [shape_jpeg(seed, shape, colour, background) for seed, (shape, colour, background) in enumerate(
        [("star", "yellow", "black"), ("circle", "red", "blue"), ("square", "green", "white"),
         ("triangle", "purple", "orange")])]
    copy = transformed_copy(Image.open(io.BytesIO(originals[0])), 3, max_crop=0.03, scale=(0.9, 1.2),
                            quality=(80, 95))
    write_shards(str(tmp_path / "in"), {"00000.tar": [(f"k{i}", image, "") for i, image in enumerate(originals)]
                                        + [("k9", copy, "")]})
    stats = run_filter(FilterOptions(shards=str(tmp_path / "in"), out=str(tmp_path / "out"), dedup="near"))
    assert _statuses(tmp_path / "out") == {"k0": "success", "k1": "success", "k2": "success", "k3": "success",
                                           "k9": "near_duplicate"}
    assert stats["dropped"] == {**stats["dropped"], "near_duplicate": 1, "exact_duplicate": 0}


def test_semdedup_drops_samples_too_close_to_a_kept_one_in_their_cluster(tmp_path):
    images = {f"k{i}": shape_jpeg(i) for i in range(4)}
    write_shards(str(tmp_path / "in"), {"00000.tar": [(k, v, "") for k, v in images.items()]})
    close = unit(_axis(0) + 0.01 * _axis(1))
    write_embeddings(str(tmp_path / "emb"), [("00000.tar", [("k0", 0.5, _axis(0)), ("k1", 0.5, close),
                                                            ("k2", 0.5, _axis(2)), ("k3", 0.5, _axis(3))])])
    stats = _run(tmp_path, semdedup_eps=0.01, clusters=2)
    assert _statuses(tmp_path / "out") == {"k0": "success", "k1": "semantic_duplicate", "k2": "success",
                                           "k3": "success"}
    assert stats["accounted"]


def test_image_cluster_eval_keeps_the_clusters_nearest_the_eval_images(tmp_path):
    rng = np.random.default_rng(1)
    keys = [f"k{i}" for i in range(12)]
    write_shards(str(tmp_path / "in"), {"00000.tar": [(k, shape_jpeg(i), "") for i, k in enumerate(keys)]})
    # Three tight groups of four around three axes; the eval set sits on the first axis only.
    vectors = [unit(_axis(i // 4) + 0.05 * rng.normal(size=8)) for i in range(12)]
    write_embeddings(str(tmp_path / "emb"), [("00000.tar", [(k, 0.5, v) for k, v in zip(keys, vectors, strict=True)])])
    write_embeddings(str(tmp_path / "eval"), [("eval.tar", [(f"e{i}", 0.5, unit(_axis(0) + 0.05 * rng.normal(
        size=8))) for i in range(3)])])
    stats = run_filter(FilterOptions(shards=str(tmp_path / "in"), embeddings=str(tmp_path / "emb"),
                                     out=str(tmp_path / "out"), image_cluster_eval={"probe": str(tmp_path / "eval")},
                                     clusters=3))
    statuses = _statuses(tmp_path / "out")
    assert {k for k, s in statuses.items() if s == "success"} == set(keys[:4])
    assert stats["dropped"]["off_distribution"] == 8


def test_rules_apply_in_order_and_a_group_keeps_its_first_surviving_member(tmp_path):
    image = shape_jpeg(7)
    write_shards(str(tmp_path / "in"), {"00000.tar": [("a", image, ""), ("b", image, ""), ("c", image, ""),
                                                      ("d", shape_jpeg(8), "")]})
    # a: low score and a duplicate -> low_clip_score; b is then the first survivor and is kept; c a duplicate;
    # d has no embedding row.
    write_embeddings(str(tmp_path / "emb"), [("00000.tar", [("a", 0.1, _axis(0)), ("b", 0.9, _axis(1)),
                                                            ("c", 0.9, _axis(2))])])
    stats = _run(tmp_path, clip_score_min=0.5, dedup="exact")
    assert _statuses(tmp_path / "out") == {"a": "low_clip_score", "b": "success", "c": "exact_duplicate",
                                           "d": "no_embedding"}
    assert stats["accounted"] and stats["in"] == 4 and stats["out"] == 1


def test_download_status_columns_are_kept_and_failed_rows_stay(tmp_path, sample_web):
    """A `wit download` output: its status rows (failures too) all come through, with their columns."""
    from wit_pipeline.download.pipeline import DownloadOptions, run_download

    urls = tmp_path / "urls.txt"
    urls.write_text("".join(sample_web.url(f"/img/{i:05d}.jpg") + "\n" for i in range(6))
                    + sample_web.url("/missing.jpg") + "\n")
    run_download(DownloadOptions(input=str(urls), out=str(tmp_path / "shards")))
    source = pq.read_table(tmp_path / "shards" / "00000.parquet")
    successes = [k for k, s in zip(source["key"].to_pylist(), source["status"].to_pylist(), strict=True)
                 if s == "success"]
    stats = run_filter(FilterOptions(shards=str(tmp_path / "shards"), out=str(tmp_path / "out"), dedup="exact"))
    written = pq.read_table(tmp_path / "out" / "00000.parquet")
    assert written.column_names == source.column_names
    assert written.num_rows == source.num_rows
    assert stats["in"] == len(successes) and stats["accounted"]
    assert verify(str(tmp_path / "out")) == []


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.images = [], 0

    def handle_starttag(self, tag, attrs):
        self.images += tag == "img" and dict(attrs).get("src", "").startswith("data:image/jpeg;base64,")

    def handle_data(self, data):
        self.text.append(data)


def test_filter_html_shows_the_samples_just_above_and_below_the_threshold(scored_set):
    _run(scored_set, clip_score_min=0.45, report_samples=2)
    page = _Page()
    page.feed((scored_set / "out" / "filter.html").read_text())
    text = " ".join(page.text)
    assert "threshold 0.4500" in text
    # just above: scores 0.5 and 0.6 (keys 000010000, 000010001); just below: 0.4 and 0.3
    for key in ("000010000", "000010001", "000000004", "000000003"):
        assert key in text
    assert "000000000" not in text and "000010004" not in text
    assert page.images == 4


def test_a_damaged_shard_is_counted_and_not_written(scored_set, capsys):
    tar = scored_set / "in" / "00001.tar"
    tar.write_bytes(tar.read_bytes()[:3000])
    code = main(["filter", "--shards", str(scored_set / "in"), "--embeddings", str(scored_set / "emb"),
                 "--out", str(scored_set / "out"), "--clip-score-min", "0.2", "--allow-partial"])
    assert code == 0
    stats = json.loads((scored_set / "out" / "stats.json").read_text())
    assert stats["accounted"] and stats["dropped"]["damaged_shard"] == 1
    assert stats["in"] == 6 and stats["out"] == 3
    assert not (scored_set / "out" / "00001.tar").exists()
    assert "wit filter: 6 samples, 3 kept" in capsys.readouterr().out
