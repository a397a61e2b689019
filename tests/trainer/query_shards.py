"""Shards of tiny images whose json lists ``queries`` (the balancing and caption-keys tests)."""

from __future__ import annotations

import io
import os

from PIL import Image

from wit_pipeline.shardset import manifest_entry, write_manifest, write_tar_atomic


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 37 % 256, seed * 91 % 256, 120)).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_query_shards(out, queries: list[list[str] | None], shards: int, captions=None) -> dict[str, list]:
    """Shards of tiny images whose json lists ``queries[i]`` (None: no ``queries``), dealt round-robin onto
    ``shards`` tars with a manifest; returns {key: its queries}."""
    from wit_pipeline.download.writer import sample_members

    os.makedirs(out, exist_ok=True)
    by_shard: list[list[int]] = [[] for _ in range(shards)]
    for index in range(len(queries)):
        by_shard[index % shards].append(index)
    entries, keys = [], {}
    for shard, indices in enumerate(by_shard):
        with write_tar_atomic(os.path.join(out, f"{shard:05d}.tar")) as tar:
            for index in indices:
                key = f"{shard:05d}{index:06d}"
                metadata = {} if queries[index] is None else {"queries": queries[index]}
                metadata.update((captions or {}).get(index, {}))
                tar.add_sample(key, sample_members(jpeg(index), f"caption {index}", metadata))
                keys[key] = queries[index]
        entries.append(manifest_entry(f"{shard:05d}.tar", tar.summary, rows=len(indices)))
    write_manifest(out, {"shards": entries, "total_samples": len(queries)})
    return keys
