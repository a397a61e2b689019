"""Synthetic shards and eval sets drawn with the sample web's shapes (for tests, the benchmark, the demo).

Shards follow the download stage's format: ``DIR/{shard:05d}.tar`` with samples
``KEY.jpg``/``KEY.txt``/``KEY.json`` (keys: shard number then zero-padded index,
no dots) and ``DIR/manifest.json``. The eval set is an ImageFolder whose class
names are the shape names.
"""

from __future__ import annotations

import hashlib
import io
import os
import random

from wit_pipeline.sampleweb.draw import COLOURS, SHAPES, draw_shape, encode
from wit_pipeline.shardset import write_manifest


def caption(shape: str, colour: str, background: str) -> str:
    return f"a {colour} {shape} on a {background} background"


def _pick(rng: random.Random, colours: list[str] | None = None) -> tuple[str, str, str]:
    colour, background = rng.sample(sorted(colours or COLOURS), 2)
    return rng.choice(SHAPES), colour, background


def write_shape_shards(out: str, shards: int, samples_per_shard: int, image_size: int = 64,
                       seed: int = 0, colours: list[str] | None = None) -> list[str]:
    """Write ``shards`` tars of captioned shape images and ``manifest.json``; returns the tar paths.

    ``colours`` restricts the palette (default: all of the sample web's colours).
    """
    import webdataset as wds

    os.makedirs(out, exist_ok=True)
    rng = random.Random(seed)
    entries, paths = [], []
    for shard in range(shards):
        path = os.path.join(out, f"{shard:05d}.tar")
        buffer = io.BytesIO()
        writer = wds.TarWriter(buffer, mtime=0)
        for index in range(samples_per_shard):
            shape, colour, background = _pick(rng, colours)
            image = draw_shape(shape, colour, background, (image_size, image_size), rng.randrange(1 << 30))
            writer.write({"__key__": f"{shard:04d}{index:05d}", "jpg": encode(image, "jpg"),
                          "txt": caption(shape, colour, background),
                          "json": {"shape": shape, "colour": colour, "background": background}})
        writer.close()
        data = buffer.getvalue()
        with open(path, "wb") as handle:
            handle.write(data)
        paths.append(path)
        entries.append({"path": os.path.basename(path), "samples": samples_per_shard, "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})
    write_manifest(out, {"shards": entries, "total_samples": shards * samples_per_shard})
    return paths


def write_shape_imagefolder(out: str, per_class: int, image_size: int = 64, seed: int = 1,
                            colours: list[str] | None = None) -> str:
    """An ImageFolder ``out/<shape>/<nnnnn>.jpg`` with ``per_class`` images of every shape."""
    rng = random.Random(seed)
    for shape in SHAPES:
        os.makedirs(os.path.join(out, shape), exist_ok=True)
        for index in range(per_class):
            _, colour, background = _pick(rng, colours)
            image = draw_shape(shape, colour, background, (image_size, image_size), rng.randrange(1 << 30))
            with open(os.path.join(out, shape, f"{index:05d}.jpg"), "wb") as handle:
                handle.write(encode(image, "jpg"))
    return out

