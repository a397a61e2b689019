"""Issue #15's "done when": a tiny model trained by `wit train` on CPU, `wit embed`, then
`wit filter --clip-score-top 0.75 --dedup near` on colour-shape shards where a quarter of the captions name
the wrong colour and some images are re-encoded, resized, slightly cropped copies of others."""

from __future__ import annotations

import io
import random

import pyarrow.parquet as pq
import pytest
from PIL import Image

from dedup.synthetic import transformed_copy
from trainer.synthetic import caption, write_shape_shards
from wit_pipeline.sampleweb.draw import COLOURS, SHAPES, draw_shape, encode

from .helpers import write_shards

IMAGE_SIZE = 128
DISTINCT = 480           # distinct images in the curated set
WRONG_FRACTION = 0.25    # of them with a caption naming another colour
COPIES = 60              # extra samples: a transformed copy of one of the distinct images (its true caption)


def curated_set(out: str, seed: int = 11) -> dict[str, dict]:
    """Write the set to filter; returns its truth: ``{key: {"wrong": bool, "copy_of": key | None}}``."""
    rng = random.Random(seed)
    samples, truth = [], {}
    originals = []
    for index in range(DISTINCT):
        colour, background = rng.sample(sorted(COLOURS), 2)
        shape = rng.choice(SHAPES)
        image = encode(draw_shape(shape, colour, background, (IMAGE_SIZE, IMAGE_SIZE), rng.randrange(1 << 30)), "jpg")
        wrong = index % 4 == 0 if WRONG_FRACTION == 0.25 else rng.random() < WRONG_FRACTION
        named = rng.choice([c for c in sorted(COLOURS) if c not in (colour, background)]) if wrong else colour
        key = f"{index:06d}"
        samples.append((key, image, caption(shape, named, background)))
        truth[key] = {"wrong": wrong, "copy_of": None}
        originals.append((key, image, caption(shape, colour, background)))
    for index, (key, image, text) in enumerate(rng.sample(originals, COPIES)):
        copy = transformed_copy(Image.open(io.BytesIO(image)), rng.randrange(1 << 30), max_crop=0.04,
                                scale=(0.75, 1.5), quality=(70, 95))
        copy_key = f"{DISTINCT + index:06d}"
        samples.append((copy_key, copy, text))
        truth[copy_key] = {"wrong": False, "copy_of": key}
    rng.shuffle(samples)
    per_shard = len(samples) // 4 + 1
    write_shards(out, {f"{s:05d}.tar": sorted(samples[s * per_shard:(s + 1) * per_shard])
                       for s in range(4)})
    return truth


def figures(truth: dict[str, dict], statuses: dict[str, str]) -> dict[str, float]:
    kept = {key for key, status in statuses.items() if status == "success"}
    wrong = [k for k, t in truth.items() if t["wrong"]]
    good = [k for k, t in truth.items() if not t["wrong"] and t["copy_of"] is None]
    copies = [(t["copy_of"], k) for k, t in truth.items() if t["copy_of"] is not None]
    copied = {original for original, _ in copies}
    return {
        "wrong_removed": sum(k not in kept for k in wrong) / len(wrong),
        "good_kept": sum(k in kept for k in good) / len(good),
        "copy_pairs_with_one_kept_at_most": sum(not (a in kept and b in kept) for a, b in copies) / len(copies),
        "distinct_dropped_as_duplicate": sum(statuses[k] in ("near_duplicate", "exact_duplicate")
                                             for k in truth if truth[k]["copy_of"] is None and k not in copied)
        / (DISTINCT - len(copied)),
    }


@pytest.mark.slow
def test_tiny_model_embed_and_filter_remove_wrong_captions_and_copies(tmp_path):
    from trainer.train import TrainOptions, run_train
    from wit_pipeline.embed.pipeline import EmbedOptions, run_embed
    from wit_pipeline.filter.pipeline import FilterOptions, run_filter

    train = str(tmp_path / "train")
    write_shape_shards(train, shards=4, samples_per_shard=400, image_size=48, seed=3)
    run_train(TrainOptions(shards=train, out=str(tmp_path / "run"), model="tiny", batch_size=64, steps=300,
                           lr=3e-3, warmup=30, workers=1, log_every=100, save_every=300))
    truth = curated_set(str(tmp_path / "set"))
    run_embed(EmbedOptions(shards=str(tmp_path / "set"), out=str(tmp_path / "emb"), checkpoint=str(tmp_path / "run"),
                           batch_size=64, workers=0, device="cpu"))
    stats = run_filter(FilterOptions(shards=str(tmp_path / "set"), embeddings=str(tmp_path / "emb"),
                                     out=str(tmp_path / "out"), clip_score_top=0.75, dedup="near"))
    statuses = {}
    for path in sorted((tmp_path / "out").glob("*.parquet")):
        table = pq.read_table(path, columns=["key", "status"])
        statuses.update(zip(table["key"].to_pylist(), table["status"].to_pylist(), strict=True))
    found = figures(truth, statuses)
    print("done-when figures:", found)
    assert stats["accounted"] and len(statuses) == len(truth)
    assert found["wrong_removed"] >= 0.8, found
    assert found["good_kept"] >= 0.85, found
    assert found["copy_pairs_with_one_kept_at_most"] >= 0.9, found
    assert found["distinct_dropped_as_duplicate"] <= 0.025, found
