"""Eval-set readers: ImageFolder, WebDataset tars, CSV and JSONL."""

from __future__ import annotations

import json
import os

import pytest
import webdataset as wds

from dedup.evalsets import detect_format, list_tars, read_eval_set
from dedup.synthetic import distinct_image, jpeg_bytes
from wit_pipeline.errors import UserError
from wit_pipeline.shardset import iter_tar_samples


def test_imagefolder_ids_are_paths_relative_to_the_root(small_world):
    examples = list(read_eval_set(small_world["eval"]))
    ids = [e.eval_id for e in examples]
    assert ids == sorted(ids) and "alpha/00000.jpg" in ids and "gamma/00008.jpg" in ids
    first = next(e for e in examples if e.eval_id == "beta/00001.jpg")
    assert first.label == "beta" and first.image[:2] == b"\xff\xd8" and first.error is None
    assert detect_format(small_world["eval"]) == "imagefolder"


def test_webdataset_eval_set(tmp_path):
    for shard in range(2):
        with wds.TarWriter(str(tmp_path / f"eval-{shard}.tar"), mtime=0) as sink:
            for i in range(3):
                sink.write({"__key__": f"s{shard}x{i}", "jpg": jpeg_bytes(distinct_image(i)),
                            "txt": f"caption {shard} {i}", "cls": str(i)})
    assert detect_format(str(tmp_path)) == "webdataset"
    examples = list(read_eval_set(str(tmp_path)))
    assert [e.eval_id for e in examples] == ["s0x0", "s0x1", "s0x2", "s1x0", "s1x1", "s1x2"]
    assert examples[4].text == "caption 1 1" and examples[4].label == "1" and examples[4].member == "s1x1"
    assert [e.eval_id for e in read_eval_set(str(tmp_path / "eval-1.tar"))] == ["s1x0", "s1x1", "s1x2"]


def test_csv_and_jsonl_lists(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(jpeg_bytes(distinct_image(1)))
    (tmp_path / "list.csv").write_text("image,caption,label\nimg/a.jpg,a drawing,one\nimg/missing.jpg,,two\n"
                                       ",only a text caption here,three\n")
    examples = list(read_eval_set(str(tmp_path / "list.csv")))
    assert [e.eval_id for e in examples] == ["img/a.jpg", "img/missing.jpg", "row3"]
    assert examples[0].image and examples[0].text == "a drawing" and examples[0].label == "one"
    assert examples[1].image is None and "No such file" in examples[1].error
    assert examples[2].image is None and examples[2].error is None and examples[2].text
    rows = [{"id": "x1", "path": "img/a.jpg", "text": "t"}, {"path": "img/a.jpg"}]
    (tmp_path / "list.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [e.eval_id for e in read_eval_set(str(tmp_path / "list.jsonl"))] == ["x1", "img/a.jpg"]


def test_tar_samples_group_members_by_key(small_world):
    path = os.path.join(small_world["shards"], "00001.tar")
    samples = list(iter_tar_samples(path))
    assert [k for k, _ in samples] == small_world["keys"][10:20]
    assert set(samples[0][1]) == {"jpg", "txt", "json"}


def test_list_tars_prefers_the_manifest_and_errors_on_nothing(small_world, tmp_path):
    assert [os.path.basename(p) for p in list_tars(small_world["shards"])] == ["00000.tar", "00001.tar", "00002.tar"]
    with pytest.raises(UserError):
        list_tars(str(tmp_path))
    with pytest.raises(UserError):
        detect_format(str(tmp_path / "nothing-here"))
