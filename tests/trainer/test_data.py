import io
import json
import os
import random
import shutil

import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

from trainer.data import (
    DataFormatError,
    ShardStream,
    check_first_samples,
    check_stream_count,
    decode_image,
    load_blocklist,
    make_loader,
    resolve_shards,
)
from wit_pipeline.errors import UserError


def _stream(shards_dir, tokenizer, **kw):
    kw.setdefault("batch_size", 8)
    return ShardStream(resolve_shards(shards_dir).urls, tokenizer, image_size=32, shuffle_buffer=20,
                       shards_per_round=2, **kw)


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def _same(a, b):
    return torch.equal(a["image"], b["image"]) and torch.equal(a["text"], b["text"])


def test_resolve_directory_pattern_and_counting(shards_dir, tmp_path):
    by_dir = resolve_shards(shards_dir)
    assert len(by_dir.urls) == 4 and by_dir.epoch_samples == 4 * 48 and by_dir.source == "manifest"
    by_pattern = resolve_shards(os.path.join(shards_dir, "{00000..00001}.tar"))
    assert by_pattern.urls == by_dir.urls[:2] and by_pattern.epoch_samples == 96
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(by_dir.urls[0], bare / "00000.tar")
    counted = resolve_shards(str(bare))
    assert counted.epoch_samples == 48 and counted.source == "counted"
    with pytest.raises(UserError, match="does not exist"):
        resolve_shards(os.path.join(shards_dir, "{00000..00009}.tar"))
    assert resolve_shards("pipe:cat x/{0..3}.tar").epoch_samples is None


def test_too_few_shards_for_the_streams_is_an_error(shards_dir):
    shards = resolve_shards(shards_dir)
    check_stream_count(shards, world_size=2, workers=2)
    with pytest.raises(DataFormatError, match=r"4 shard\(s\) but 2 rank\(s\) x 4 data worker\(s\) = 8 streams"):
        check_stream_count(shards, world_size=2, workers=4)


def _write_shard(path, samples):
    with wds.TarWriter(str(path), mtime=0) as writer:
        for sample in samples:
            writer.write(sample)


def _jpeg(colour=(200, 30, 30), size=(40, 30)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_sample_without_caption_stops_with_a_message(tmp_path):
    _write_shard(tmp_path / "00000.tar", [{"__key__": f"{i:09d}", "jpg": _jpeg(), "json": {}} for i in range(4)])
    with pytest.raises(DataFormatError, match=r"sample '000000000' lacks a caption \(\.txt\).*members: \.jpg, \.json"):
        check_first_samples(str(tmp_path / "00000.tar"))


def test_sample_without_image_stops_the_stream(tmp_path, tokenizer):
    good = [{"__key__": f"{i:09d}", "jpg": _jpeg(), "txt": "a red square"} for i in range(6)]
    bad = [{"__key__": f"1{i:08d}", "txt": "a caption without its image"} for i in range(6)]
    _write_shard(tmp_path / "00000.tar", good)
    _write_shard(tmp_path / "00001.tar", bad)
    stream = ShardStream([str(tmp_path / "00000.tar"), str(tmp_path / "00001.tar")], tokenizer, batch_size=4,
                         image_size=16, resample=False, shards_per_round=2)
    with pytest.raises(DataFormatError, match="lacks an image"):
        _take(iter(stream), 5)


def test_corrupt_and_blocklisted_samples_are_skipped_and_counted(tmp_path, tokenizer):
    samples = [{"__key__": f"{i:09d}", "jpg": _jpeg() if i % 4 else b"not a jpeg", "txt": f"sample {i}"}
               for i in range(16)]
    _write_shard(tmp_path / "00000.tar", samples)
    stream = ShardStream([str(tmp_path / "00000.tar")], tokenizer, batch_size=5, image_size=16, resample=False,
                         shards_per_round=1, shuffle_buffer=1, blocklist=frozenset({"000000001", "000000002"}))
    batches = _take(iter(stream), 2)                 # 16 samples: 4 corrupt, 2 blocked, 10 used
    skipped = {}
    for batch in batches:
        for reason, count in batch["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + count
    assert skipped == {"corrupt": 4, "blocklist": 2}
    assert batches[0]["image"].shape == (5, 3, 16, 16) and batches[0]["image"].dtype == torch.uint8


def test_blocklist_formats(tmp_path):
    overlap = {"sets": {"shapes": {"flagged": 2, "pairs": [{"eval_id": "circle/1.jpg", "shard_key": "000000003"},
                                                            {"eval_id": "star/2.jpg", "shard_key": "000100007"}]}}}
    (tmp_path / "overlap.json").write_text(json.dumps(overlap))
    assert load_blocklist(str(tmp_path)) == {"000000003", "000100007"}
    (tmp_path / "keys.txt").write_text("# flagged\n000000003\n\n000000009\n")
    assert load_blocklist(str(tmp_path / "keys.txt")) == {"000000003", "000000009"}


@pytest.mark.parametrize("resample", [True, False])
def test_stream_resumes_from_a_position(shards_dir, tokenizer, resample):
    straight = _take(iter(_stream(shards_dir, tokenizer, resample=resample)), 30)
    cut = 17                                          # past a round boundary (2 shards x 48 = 96 samples)
    resumed = _take(iter(_stream(shards_dir, tokenizer, resample=resample,
                                 positions={0: tuple(straight[cut - 1]["position"])})), 30 - cut)
    assert all(_same(a, b) for a, b in zip(straight[cut:], resumed, strict=True))


def test_loader_with_workers_resumes_on_the_right_stream(shards_dir, tokenizer):
    straight = _take(iter(make_loader(_stream(shards_dir, tokenizer), workers=2)), 9)
    cut = 5
    positions = {}
    for batch in straight[:cut]:
        positions[int(batch["stream"])] = tuple(int(x) for x in batch["position"])
    resumed = _take(iter(make_loader(_stream(shards_dir, tokenizer, positions=positions, stream_shift=cut % 2),
                                     workers=2)), 9 - cut)
    assert [int(b["stream"]) for b in resumed] == [int(b["stream"]) for b in straight[cut:]]
    assert all(_same(a, b) for a, b in zip(straight[cut:], resumed, strict=True))
    assert not _same(straight[0], straight[1])       # the two workers read different data


def test_without_resampling_shards_are_split_by_node_and_worker(shards_dir, tokenizer):
    urls = resolve_shards(shards_dir).urls
    stream = ShardStream(urls, tokenizer, batch_size=4, image_size=16, resample=False, shards_per_round=1)
    owned = [set(stream.round_urls(s, 4, r) [0] for r in range(3)) for s in range(4)]
    assert all(len(o) == 1 for o in owned) and set().union(*owned) == set(urls)
    two = [stream.round_urls(s, 2, r)[0] for s in range(2) for r in range(4)]
    assert sorted(two[:2]) == sorted(urls[0::2]) and sorted(two[2:4]) == sorted(urls[0::2])  # each once per epoch
    assert sorted(two[4:6]) == sorted(urls[1::2])


def test_decode_random_and_centre_square_crops():
    data = _jpeg(size=(80, 40))
    centre = decode_image(data, 16)
    assert centre.shape == (3, 16, 16) and centre.dtype == np.uint8
    crops = {decode_image(data, 16, random.Random(seed)).tobytes() for seed in range(5)}
    assert len(crops) >= 1 and all(len(c) == 3 * 16 * 16 for c in crops)
    assert np.array_equal(decode_image(data, 16, random.Random(3)), decode_image(data, 16, random.Random(3)))
