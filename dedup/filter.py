"""``wit overlap filter``: rewrite training shards without the samples a scan flagged.

Reads ``OVERLAP/overlap.json``, takes every flagged pair's ``(shard, shard_key)``
(all eval sets, image and text pairs alike) and writes each shard of
``--shards`` to ``--out`` under the same name: shards with nothing flagged are
copied byte for byte, the others are re-written member by member without the
flagged samples (tar headers, order and mtimes kept). A Beam job does the
rewriting, one shard per element. ``OUT/manifest.json`` has the download
stage's format (``shards``: path, samples, bytes, sha256; ``total_samples``)
plus what was removed; ``OUT/removed.jsonl`` lists every removed sample with
the eval examples it matched.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import tarfile
from collections import defaultdict

import apache_beam as beam

from wit_pipeline import beam as wbeam
from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.tario import split_member_name

from .evalsets import list_tars
from .scan import shard_name, shards_root

STAGE = "overlap_filter"


class _HashingWriter:
    """A write-only file object that counts and hashes what passes through."""

    def __init__(self, handle):
        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.bytes += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def flagged_samples(overlap_dir: str) -> dict[str, dict[str, list[dict]]]:
    """``{shard: {shard_key: [{eval_set, eval_id, kind, similarity}]}}`` from ``overlap.json``."""
    path = fileio.join(overlap_dir, "overlap.json")
    if not fileio.exists(path):
        raise UserError(f"--overlap {overlap_dir!r} has no overlap.json (run 'wit overlap scan' first)")
    data = fileio.read_json(path)
    flagged: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for name, s in data.get("eval_sets", {}).items():
        for pair in s.get("pairs", []):
            flagged[pair["shard"]][pair["shard_key"]].append(
                {"eval_set": name, "eval_id": pair["eval_id"], "kind": pair.get("kind", "image"),
                 "similarity": pair["similarity"]})
    return flagged


class _TeeReader:
    """A read-only file object that copies everything read through it to ``writer``."""

    def __init__(self, raw, writer: _HashingWriter):
        self.raw = raw
        self.writer = writer

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        if data:
            self.writer.write(data)
        return data


def _sample_key(info: tarfile.TarInfo) -> str | None:
    parts = split_member_name(info.name) if info.isfile() else None
    return parts[0] if parts else None


def rewrite_shard(source: str, target: str, drop: set[str]) -> dict:
    """Write ``source`` to ``target`` without the samples whose key is in ``drop``; returns its manifest row.

    With nothing to drop the shard is copied byte for byte (read once, counted on the way).
    """
    kept, removed, seen = 0, 0, set()
    with fileio.open_read(source, decompress=False) as raw, fileio.open_write_atomic(target) as out:
        writer = _HashingWriter(out)
        if not drop:
            tee = _TeeReader(raw, writer)
            with tarfile.open(fileobj=tee, mode="r|*") as tar:
                for info in tar:
                    key = _sample_key(info)
                    if key is not None and key not in seen:
                        seen.add(key)
            while tee.read(1 << 20):   # the end-of-archive blocks and padding tarfile did not need
                pass
            kept = len(seen)
        else:
            with tarfile.open(fileobj=raw, mode="r|*") as tar_in, \
                    tarfile.open(fileobj=writer, mode="w|", format=tarfile.GNU_FORMAT) as tar_out:
                for info in tar_in:
                    key = _sample_key(info)
                    if key is not None and key not in seen:
                        seen.add(key)
                        if key in drop:
                            removed += 1
                        else:
                            kept += 1
                    if key is not None and key in drop:
                        continue
                    tar_out.addfile(info, tar_in.extractfile(info) if info.isfile() else None)
    return {"path": posixpath.basename(target), "samples": kept, "removed": removed,
            "bytes": writer.bytes, "sha256": writer.sha256.hexdigest()}


class _FilterShardFn(beam.DoFn):
    def __init__(self, out: str, drops: dict[str, list[str]]):
        self.out = out
        self.drops = drops

    def setup(self):
        self.kept = wbeam.counter(STAGE, "samples_kept")
        self.removed = wbeam.counter(STAGE, "samples_removed")

    def process(self, item):
        source, name = item
        row = rewrite_shard(source, fileio.join(self.out, posixpath.basename(name)), set(self.drops.get(name, ())))
        self.kept.inc(row["samples"])
        self.removed.inc(row["removed"])
        row["source"] = name
        yield json.dumps(row)


def filter_shards(shards: str, overlap: str, out: str, beam_args: list[str] | None = None) -> dict:
    """Write ``shards`` without the samples flagged in ``overlap`` to ``out``; returns the manifest."""
    flagged = flagged_samples(overlap)
    paths = list_tars(shards)
    root = shards_root(shards)
    names = [shard_name(p, root) for p in paths]
    basenames = [posixpath.basename(n) for n in names]
    if len(set(basenames)) != len(basenames):
        raise UserError(f"shards under {shards!r} share file names; filter writes them side by side")
    if not fileio.is_remote(out) and os.path.abspath(out) in {os.path.abspath(os.path.dirname(p)) for p in paths}:
        raise UserError("--out must not be the folder the shards are read from")
    drops: dict[str, list[str]] = {}
    unknown = set(flagged)
    for name in names:
        for candidate in (name, posixpath.basename(name)):
            if candidate in flagged:
                drops[name] = sorted(flagged[candidate])
                unknown.discard(candidate)
    if unknown:
        raise UserError(f"overlap.json flags samples in shards not under {shards!r}: {', '.join(sorted(unknown)[:5])}")
    fileio.makedirs(out)
    if not fileio.is_remote(out):
        shutil.rmtree(fileio.join(out, "_work"), ignore_errors=True)
    parts = fileio.join(out, "_work", "filter")
    pipeline = wbeam.make_pipeline(beam_args)
    _ = (
        pipeline
        | "Shards" >> beam.Create(list(zip(paths, names)))
        | "Spread" >> beam.Reshuffle()
        | "Rewrite" >> beam.ParDo(_FilterShardFn(out, drops))
        | "Write" >> beam.io.WriteToText(parts, file_name_suffix=".jsonl")
    )
    counters = wbeam.run(pipeline, stage=STAGE)
    rows = [json.loads(line) for path in fileio.expand(parts + "*", what="filter output")
            for line in fileio.read_text(path).splitlines() if line.strip()]
    rows.sort(key=lambda r: r["path"])
    removed = []
    for name, keys in sorted(drops.items()):
        base = posixpath.basename(name)
        for key in keys:
            removed.append({"shard": name, "shard_key": key, "matches": flagged[name if name in flagged else base][key]})
    manifest = {
        "shards": [{"path": r["path"], "samples": r["samples"], "bytes": r["bytes"], "sha256": r["sha256"]} for r in rows],
        "total_samples": sum(r["samples"] for r in rows),
        "removed_samples": sum(r["removed"] for r in rows),
        "source": shards,
        "overlap": fileio.join(overlap, "overlap.json"),
        "counters": counters,
    }
    fileio.write_text_atomic(fileio.join(out, "removed.jsonl"),
                             "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in removed))
    fileio.write_json_atomic(fileio.join(out, "manifest.json"), manifest)
    if not fileio.is_remote(out):
        shutil.rmtree(fileio.join(out, "_work"), ignore_errors=True)
    return manifest
