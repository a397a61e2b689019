"""The embeddings folder: clip-retrieval's layout, one part per shard, each part written atomically.

::

    OUT/img_emb/img_emb_{i}.npy          float16 [n_i, dim], L2-normalised rows
    OUT/text_emb/text_emb_{i}.npy        float16 [n_i, dim], L2-normalised rows, row-aligned with the images
    OUT/metadata/metadata_{i}.parquet    key, shard, url, caption, clip_score (float32), row-aligned
    OUT/embed.json                       which model made the set, at what precision, from which shards
    OUT/stats.json                       the stage contract (written last)

``i`` is the shard's index in the sorted shard list, zero-padded as clip-retrieval's writer pads its
partitions (``str(i).zfill(int(log10(parts)) + 1)``: ``img_emb_0`` .. ``img_emb_9`` for up to 9 parts,
``img_emb_00`` .. for 10 to 99), so autofaiss and embedding-reader's ``parquet_npy`` format read the folder
as they read clip-retrieval's.

A part is committed by its metadata parquet, written after both ``.npy`` files: a killed run leaves either a
whole part or one without its parquet, which the next run redoes (``part_record`` says which parts are whole).
The parquet's schema metadata (``wit_embed``) keeps the part's record: its shard, its counts (``in``,
``out``, ``dropped``) and the shard's error if it broke off, so a resumed run's ``stats.json`` counts every
part, and a part whose shard broke off is redone on the next run (the shard may have been replaced).
"""

from __future__ import annotations

import json
import math
from typing import Sequence

import numpy as np
import pyarrow as pa

from .. import fileio
from ..errors import UserError

RECORD_KEY = b"wit_embed"
EMBED_JSON = "embed.json"
EMBED_FORMAT = "wit-embed"
EMBED_VERSION = 1
FOLDERS = {"img_emb": "img_emb", "text_emb": "text_emb", "metadata": "metadata"}

METADATA_SCHEMA = pa.schema([
    ("key", pa.string()), ("shard", pa.string()), ("url", pa.string()), ("caption", pa.string()),
    ("clip_score", pa.float32()),
])


def part_suffix(index: int, parts: int) -> str:
    """``index`` padded as clip-retrieval pads a partition number among ``parts``."""
    return str(index).zfill(int(math.log10(max(parts, 1))) + 1)


def part_paths(out: str, index: int, parts: int) -> dict[str, str]:
    """``{"img_emb", "text_emb", "metadata"}`` -> the files of part ``index`` of ``parts``."""
    suffix = part_suffix(index, parts)
    return {"img_emb": fileio.join(out, "img_emb", f"img_emb_{suffix}.npy"),
            "text_emb": fileio.join(out, "text_emb", f"text_emb_{suffix}.npy"),
            "metadata": fileio.join(out, "metadata", f"metadata_{suffix}.parquet")}


def _write_npy(path: str, array: np.ndarray) -> None:
    with fileio.open_write_atomic(path) as handle:
        np.save(handle, array, allow_pickle=False)


def write_part(out: str, index: int, parts: int, image: np.ndarray, text: np.ndarray, rows: dict[str, list],
               record: dict) -> None:
    """Write part ``index``: both embedding arrays (as float16), then the metadata parquet that commits it."""
    paths = part_paths(out, index, parts)
    _write_npy(paths["img_emb"], image.astype(np.float16))
    _write_npy(paths["text_emb"], text.astype(np.float16))
    table = pa.Table.from_pydict(rows, schema=METADATA_SCHEMA)
    table = table.replace_schema_metadata({RECORD_KEY: json.dumps(record, sort_keys=True).encode("utf-8")})
    fileio.write_parquet_atomic(paths["metadata"], table)


def npy_shape(path: str) -> tuple[int, ...] | None:
    """The shape in a ``.npy`` file's header, or None when there is no such readable file."""
    if not fileio.exists(path):
        return None
    try:
        with fileio.open_read(path, decompress=False) as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, _ = read_header(handle)
    except (OSError, ValueError):
        return None
    return tuple(shape)


def read_record(out: str, index: int, parts: int) -> dict | None:
    """The record kept in part ``index``'s metadata parquet (its ``rows`` added), or None when the part has no
    readable parquet (not written yet, or cut off by a kill before its parquet)."""
    path = part_paths(out, index, parts)["metadata"]
    if not fileio.exists(path):
        return None
    try:
        with fileio.open_parquet(path) as parquet:
            metadata = parquet.schema_arrow.metadata or {}
            rows = parquet.metadata.num_rows
        record = json.loads(metadata[RECORD_KEY].decode("utf-8"))
    except (UserError, KeyError, ValueError):
        return None
    return {**record, "rows": rows} if isinstance(record, dict) else None


def part_record(out: str, index: int, parts: int, shard: str, dim: int) -> dict | None:
    """The record of part ``index`` when it is whole and was made from ``shard`` without error, else None
    (missing, cut off by a kill before its parquet, made from another shard, or its shard broke off)."""
    record = read_record(out, index, parts)
    if record is None or record.get("shard") != shard or record.get("error") or record.get("out") != record["rows"]:
        return None
    paths = part_paths(out, index, parts)
    if any(npy_shape(paths[name]) != (record["rows"], dim) for name in ("img_emb", "text_emb")):
        return None
    return record


def identity(model: dict, precision: str, shards: Sequence[str]) -> dict:
    """``embed.json``: what made the set; a rerun into the folder must match it."""
    return {"format": EMBED_FORMAT, "version": EMBED_VERSION, "model": model, "precision": precision,
            "dim": model["dim"], "image_size": model["image_size"], "shards": list(shards)}


def _comparable(value, name: str):
    # A model is the same model whatever path named its file (a run directory, the file, relative or not).
    return {k: v for k, v in value.items() if k != "path"} if name == "model" and isinstance(value, dict) else value


def claim_folder(out: str, wanted: dict) -> None:
    """Write ``OUT/embed.json``, or check that the one there (a killed or finished run's) made the same set:
    parts of another model, precision or shard list are never mixed in, nor silently replaced."""
    path = fileio.join(out, EMBED_JSON)
    if fileio.exists(path):
        found = fileio.read_json(path, expect=dict)
        differs = [name for name in ("model", "precision", "shards") if _comparable(found.get(name), name) !=
                   _comparable(wanted[name], name)]
        if differs:
            raise UserError(f"{out} holds embeddings made with another {' and '.join(differs)} ({path}): use "
                            "another --out, or remove that folder to embed again")
        return
    fileio.write_json_atomic(path, wanted)
