"""Reading an embeddings folder (``wit embed``'s output, clip-retrieval's layout).

``DIR/metadata/metadata_{i}.parquet`` (``key``, ``shard``, ``url``, ``caption``, ``clip_score``) is
row-aligned with ``DIR/img_emb/img_emb_{i}.npy`` (float16 ``(n_i, d)``, L2-normalised); one part per shard.
Parts are matched to shards by their ``shard`` column (compared by file name), never by position alone.
"""

from __future__ import annotations

import io
import posixpath
import re

import numpy as np

from wit_pipeline import fileio
from wit_pipeline.errors import UserError

PART = re.compile(r"^metadata_(\d+)\.parquet$")


def part_paths(folder: str, index: str) -> tuple[str, str]:
    """The metadata parquet and image embeddings of part ``index`` (its digits as the file names spell them)."""
    return (fileio.join(folder, "metadata", f"metadata_{index}.parquet"),
            fileio.join(folder, "img_emb", f"img_emb_{index}.npy"))


def list_parts(folder: str) -> list[str]:
    """The part indices (as spelled in the file names) of an embeddings folder; a UserError without any."""
    try:
        names = fileio.expand(fileio.join(folder, "metadata", "metadata_*.parquet"), what="--embeddings")
    except UserError:
        names = []
    parts = sorted((m.group(1) for m in (PART.match(posixpath.basename(n)) for n in names) if m), key=int)
    if not parts:
        raise UserError(f"--embeddings {folder!r}: no metadata/metadata_*.parquet (is it a `wit embed` output?)")
    return parts


def shard_name(value: str) -> str:
    """How shards are compared across folders: the file name."""
    return posixpath.basename(str(value).rstrip("/"))


def parts_by_shard(folder: str) -> dict[str, list[str]]:
    """``{shard file name: [part index]}`` from the metadata parts' ``shard`` column."""
    found: dict[str, list[str]] = {}
    for index in list_parts(folder):
        path, _ = part_paths(folder, index)
        table = _read_metadata(path, ["shard"])
        for name in sorted({shard_name(s) for s in table["shard"].to_pylist() if s is not None}):
            found.setdefault(name, []).append(index)
    return found


def _read_metadata(path: str, columns: list[str]):
    try:
        table = fileio.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's folder, said in one line
        raise UserError(f"{path}: not a readable metadata parquet ({type(exc).__name__})") from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise UserError(f"{path}: no {', '.join(missing)} column (is it a `wit embed` metadata part?)")
    return table


def read_vectors(path: str, rows: int) -> np.ndarray:
    """An ``img_emb_{i}.npy`` as float32; a UserError when it does not read or has not ``rows`` rows."""
    try:
        vectors = np.load(io.BytesIO(fileio.read_bytes(path)), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a missing or damaged part is one line, not a traceback
        raise UserError(f"{path}: not a readable embeddings array ({type(exc).__name__})") from None
    if vectors.ndim != 2 or len(vectors) != rows:
        raise UserError(f"{path}: shape {vectors.shape} is not ({rows}, d) like its metadata part")
    return vectors.astype(np.float32)


def shard_embeddings(folder: str, parts: list[str], shard: str) -> dict[str, tuple[float, np.ndarray]]:
    """``{key: (clip_score, image embedding)}`` of one shard's samples, from the parts that list it."""
    found: dict[str, tuple[float, np.ndarray]] = {}
    for index in parts:
        meta_path, vectors_path = part_paths(folder, index)
        table = _read_metadata(meta_path, ["key", "shard", "clip_score"])
        vectors = read_vectors(vectors_path, table.num_rows)
        for row, (key, name, score) in enumerate(zip(table["key"].to_pylist(), table["shard"].to_pylist(),
                                                     table["clip_score"].to_pylist(), strict=True)):
            if key is not None and score is not None and shard_name(name) == shard:
                found[str(key)] = (float(score), vectors[row])
    return found


def all_image_embeddings(folder: str) -> np.ndarray:
    """Every image embedding of a folder (an eval set's), as one float32 array."""
    arrays = []
    for index in list_parts(folder):
        meta_path, vectors_path = part_paths(folder, index)
        arrays.append(read_vectors(vectors_path, _read_metadata(meta_path, ["key"]).num_rows))
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        raise UserError(f"{folder!r}: no image embeddings")
    return np.concatenate(arrays)


def vector_dim(folder: str) -> int | None:
    """The image embeddings' width of a folder (its first non-empty part), None when every part is empty."""
    for index in list_parts(folder):
        meta_path, vectors_path = part_paths(folder, index)
        rows = _read_metadata(meta_path, ["key"]).num_rows
        if rows:
            return int(read_vectors(vectors_path, rows).shape[1])
    return None
