"""Small known shard sets and embeddings folders for the filter tests."""

from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wit_pipeline.sampleweb.draw import draw_shape, encode
from wit_pipeline.shardset import write_manifest


def shape_jpeg(seed: int, shape: str = "circle", colour: str = "red", background: str = "blue",
               size: int = 96) -> bytes:
    return encode(draw_shape(shape, colour, background, (size, size), seed), "jpg")


def write_shards(out: str, shards: dict[str, list[tuple[str, bytes, str]]]) -> list[str]:
    """``{tar name: [(key, jpeg, caption)]}`` as tars with jpg/txt/json members, and manifest.json."""
    import webdataset as wds

    os.makedirs(out, exist_ok=True)
    entries, paths = [], []
    for name, samples in sorted(shards.items()):
        buffer = io.BytesIO()
        writer = wds.TarWriter(buffer, mtime=0)
        for key, image, caption in samples:
            writer.write({"__key__": key, "jpg": image, "txt": caption,
                          "json": {"url": f"http://example.com/{key}.jpg", "caption": caption}})
        writer.close()
        data = buffer.getvalue()
        path = os.path.join(out, name)
        with open(path, "wb") as handle:
            handle.write(data)
        paths.append(path)
        entries.append({"path": name, "samples": len(samples), "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})
    write_manifest(out, {"shards": entries, "total_samples": sum(e["samples"] for e in entries)})
    return paths


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def write_embeddings(out: str, parts: list[tuple[str, list[tuple[str, float, np.ndarray]]]]) -> str:
    """An embeddings folder in ``wit embed``'s layout: one part per ``(shard name, [(key, clip score,
    image vector)])``; text vectors are the image vectors."""
    for folder in ("img_emb", "text_emb", "metadata"):
        os.makedirs(os.path.join(out, folder), exist_ok=True)
    for index, (shard, rows) in enumerate(parts):
        vectors = np.stack([unit(v) for _, _, v in rows]).astype(np.float16) if rows else np.zeros((0, 4), np.float16)
        np.save(os.path.join(out, "img_emb", f"img_emb_{index}.npy"), vectors)
        np.save(os.path.join(out, "text_emb", f"text_emb_{index}.npy"), vectors)
        pq.write_table(pa.table({
            "key": [k for k, _, _ in rows], "shard": [shard] * len(rows),
            "url": [f"http://example.com/{k}.jpg" for k, _, _ in rows], "caption": [""] * len(rows),
            "clip_score": pa.array([s for _, s, _ in rows], pa.float32())}),
            os.path.join(out, "metadata", f"metadata_{index}.parquet"))
    with open(os.path.join(out, "stats.json"), "w") as handle:
        json.dump({"stage": "embed", "accounted": True}, handle)
    return out
