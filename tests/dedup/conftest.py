"""Fixtures for the dedup tests: synthetic eval sets and WebDataset shards written with webdataset.TarWriter."""

from __future__ import annotations

import json
import os

import pytest
import webdataset as wds

from dedup.synthetic import distinct_image, jpeg_bytes, letterbox, transformed_copy

CLASSES = ("alpha", "beta", "gamma")


def write_shards(folder: str, samples: list[dict], per_shard: int = 10) -> list[str]:
    """Write ``samples`` ({"key", "jpg", "txt", "json"}) as DIR/{shard:05d}.tar plus manifest.json."""
    os.makedirs(folder, exist_ok=True)
    paths, rows = [], []
    for shard in range((len(samples) + per_shard - 1) // per_shard):
        path = os.path.join(folder, f"{shard:05d}.tar")
        chunk = samples[shard * per_shard:(shard + 1) * per_shard]
        with wds.TarWriter(path, mtime=0) as sink:
            for sample in chunk:
                sink.write({"__key__": sample["key"], **{k: v for k, v in sample.items() if k != "key"}})
        paths.append(path)
        rows.append({"path": os.path.basename(path), "samples": len(chunk), "bytes": os.path.getsize(path),
                     "sha256": "-"})
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump({"shards": rows, "total_samples": len(samples)}, handle)
    return paths


def sample(key: str, image: bytes, caption: str = "a picture", url: str | None = None) -> dict:
    return {"key": key, "jpg": image, "txt": caption,
            "json": {"url": url or f"http://example.test/{key}.jpg", "caption": caption, "queries": []}}


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """An ImageFolder eval set of 12 images, and 30 training samples in 3 shards: 4 of them transformed
    copies of eval images, one caption copying an eval text, one unreadable image."""
    root = tmp_path_factory.mktemp("dedup-world")
    eval_dir = root / "eval"
    eval_images = {}
    for i in range(12):
        rel = f"{CLASSES[i % 3]}/{i:05d}.jpg"
        os.makedirs(eval_dir / CLASSES[i % 3], exist_ok=True)
        picture = distinct_image(500 + i)
        (eval_dir / rel).write_bytes(jpeg_bytes(picture, 95))
        eval_images[rel] = picture
    (eval_dir / "alpha" / "broken.jpg").write_bytes(b"not a jpeg at all")
    copies = {2: "alpha/00000.jpg", 7: "beta/00004.jpg", 15: "gamma/00008.jpg", 26: "alpha/00009.jpg"}
    samples = []
    for i in range(30):
        key = f"{i // 10:05d}{i % 10:04d}"
        if i in copies:
            image = transformed_copy(eval_images[copies[i]], seed=i, border=True)
        elif i == 11:
            image = b"\xff\xd8\xff garbage"
        else:
            image = jpeg_bytes(letterbox(distinct_image(9000 + i)))
        samples.append(sample(key, image, caption=f"training picture number {i} of a test world"))
    shards = root / "shards"
    write_shards(str(shards), samples)
    return {"root": root, "eval": str(eval_dir), "shards": str(shards), "copies": copies,
            "keys": [s["key"] for s in samples]}
