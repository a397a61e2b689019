"""``wit overlap filter``: rewrite training shards without the samples a scan flagged.

``run_overlap_filter(OverlapFilterOptions(shards, overlap, out))`` reads ``OVERLAP/overlap.json``, takes
every flagged pair's ``(shard, shard_key)`` (all eval sets, image and text pairs alike) and writes each
shard of ``shards`` to ``out`` under the same name: shards with nothing flagged are copied byte for byte,
the others are re-written member by member without the flagged samples (tar headers and order kept,
through ``wit_pipeline.shardset``). A Beam job does the rewriting, one shard per element.

``OUT/manifest.json`` is a shard-set manifest (``shardset.write_manifest``: ``shards`` with path,
samples, bytes, sha256; ``total_samples``) plus ``removed_samples``, ``source`` and ``overlap``, with
OpenCLIP's ``OUT/sizes.json`` beside it; each written shard has img2dataset's ``NAME_stats.json``
(``count`` = samples read, ``successes`` = samples kept, ``status_dict`` = ``{success, overlap}``);
``OUT/removed.jsonl`` lists every removed sample with the eval examples it matched; ``OUT/stats.json``
(stage ``overlap_filter``): ``in`` = samples read, ``out`` = samples written, ``dropped`` =
``{"overlap": samples removed, "damaged_shard": shards}``, extras ``shards`` and ``damaged_shards``.

A source shard that is not whole (``shardset.DamagedShard``: cut short, a broken header, or a size or
sha256 other than its manifest row's) is not written at all, not even in part: it counts as one
``damaged_shard`` record and is listed with its error in ``damaged_shards``. Unfinished inputs (``--shards``,
``--overlap``) are refused unless ``--allow-partial`` (``stage.require_finished``).
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import IO

import apache_beam as beam

from wit_pipeline import beam as wbeam
from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.options import option
from wit_pipeline.shardset import (
    DamagedShard,
    HashingStream,
    ShardDigest,
    ShardTarWriter,
    TarSummary,
    iter_tar_keys,
    iter_tar_members,
    manifest_entry,
    manifest_path,
    shard_digests,
    shard_stats_name,
    shard_stats_record,
    write_manifest,
    write_shard_stats,
)
from wit_pipeline.stage import StageRun, require_finished

from .evalsets import list_tars
from .report import REPORT_FILES, read_report
from .scan import shard_label, shards_root

STAGE = "overlap_filter"
WORK_DIR = "_work"


@dataclass(frozen=True)
class OverlapFilterOptions:
    shards: str = option(help="the shards that were scanned", metavar="DIR")
    overlap: str = option(help="the scan's output folder", metavar="DIR")
    out: str = option(help="where the filtered shards go", metavar="DIR")
    allow_partial: bool = option(False, help="read an unfinished `wit download` or `wit overlap scan` output "
                                 "(no stats.json) as it is")


def flagged_samples(overlap_dir: str) -> dict[str, dict[str, list[dict]]]:
    """``{shard: {shard_key: [{eval_set, eval_id, kind, similarity}]}}`` from ``overlap.json``."""
    data = read_report(overlap_dir)
    flagged: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for name, s in data.get("eval_sets", {}).items():
        for pair in s.get("pairs", []):
            flagged[pair["shard"]][pair["shard_key"]].append(
                {"eval_set": name, "eval_id": pair["eval_id"], "kind": pair.get("kind", "image"),
                 "similarity": pair["similarity"]})
    return flagged


# -- one shard ------------------------------------------------------------------------------------------

def _copy_shard(source: IO[bytes], target: IO[bytes], expected: ShardDigest | None = None) -> dict:
    """Copy a shard byte for byte (read once: keys counted and bytes hashed on the way)."""
    stream = HashingStream(source, copy_to=target)
    samples = len({key for key, _ in iter_tar_keys(stream, expected)})
    stream.drain()                 # the end-of-archive blocks and padding the tar reader did not need
    return {"samples": samples, "removed": 0, "bytes": stream.size, "sha256": stream.sha256}


def _drop_samples(source: IO[bytes], target: IO[bytes], drop: set[str], expected: ShardDigest | None = None) -> dict:
    """Write the shard's members again, without those of the samples in ``drop``."""
    writer = ShardTarWriter(target)
    seen: set[str] = set()
    try:
        for member in iter_tar_members(source, expected):
            if member.key is not None:
                seen.add(member.key)
                if member.key in drop:
                    continue
            writer.add_member(member.info, member.file)
    except BaseException:
        writer.abandon()              # a damaged source: the half-written target is thrown away
        raise
    summary = writer.close()
    removed = len(seen & drop)
    return {"samples": len(seen) - removed, "removed": removed, "bytes": summary.bytes, "sha256": summary.sha256}


def rewrite_shard(source: str, target: str, drop: set[str], expected: ShardDigest | None = None) -> dict:
    """Write ``source`` to ``target`` without the samples whose key is in ``drop``; returns its manifest row
    (path, samples, removed, bytes, sha256). With nothing to drop the shard is copied byte for byte.
    A damaged source (``expected``: its manifest row) raises ``DamagedShard`` and ``target`` is not written."""
    with fileio.open_read(source, decompress=False) as raw, fileio.open_write_atomic(target) as out:
        row = _drop_samples(raw, out, drop, expected) if drop else _copy_shard(raw, out, expected)
    return {"path": posixpath.basename(target), **row}


class FilterShard(beam.DoFn):
    """Rewrites one shard (``(path, label)``) into ``out``; yields its manifest row as JSON (a damaged
    shard: ``{path, source, damaged: error}``, nothing written)."""

    def __init__(self, out: str, drops: dict[str, list[str]], digests: dict[str, ShardDigest] | None = None):
        self.out = out
        self.drops = drops
        self.digests = dict(digests or {})

    def setup(self):
        self.samples_in = wbeam.counter(STAGE, "in")
        self.samples_out = wbeam.counter(STAGE, "out")
        self.removed = wbeam.counter(STAGE, "dropped_overlap")
        self.damaged = wbeam.counter(STAGE, "dropped_damaged_shard")

    def process(self, item):
        source, name = item
        target = fileio.join(self.out, posixpath.basename(name))
        started = time.time()
        try:
            row = rewrite_shard(source, target, set(self.drops.get(name, ())), self.digests.get(source))
        except DamagedShard as exc:
            fileio.remove(target)         # neither a short shard nor an earlier run's copy under its name
            fileio.remove(fileio.join(self.out, shard_stats_name(target)))
            self.samples_in.inc()
            self.damaged.inc()
            yield json.dumps({"path": posixpath.basename(target), "source": name, "damaged": str(exc)})
            return
        self.samples_in.inc(row["samples"] + row["removed"])
        self.samples_out.inc(row["samples"])
        self.removed.inc(row["removed"])
        write_shard_stats(self.out, row["path"], shard_stats_record(
            {"success": row["samples"], "overlap": row["removed"]}, started, time.time()))
        row["source"] = name
        yield json.dumps(row)


# -- the run --------------------------------------------------------------------------------------------

def _drops_by_shard(shards: str, names: list[str], flagged: dict) -> dict[str, list[str]]:
    """``{shard label: [flagged keys]}``; overlap.json may name a shard by its label or its file name."""
    drops: dict[str, list[str]] = {}
    unknown = set(flagged)
    for name in names:
        for candidate in (name, posixpath.basename(name)):
            if candidate in flagged:
                drops[name] = sorted(flagged[candidate])
                unknown.discard(candidate)
    if unknown:
        raise UserError(f"overlap.json flags samples in shards not under {shards!r}: {', '.join(sorted(unknown)[:5])}")
    return drops


def _shards_to_filter(options: OverlapFilterOptions) -> tuple[list[str], list[str]]:
    """The shard paths and their labels; refuses names that would collide in ``out``, or ``out`` = the source."""
    paths = list_tars(options.shards)
    root = shards_root(options.shards)
    names = [shard_label(p, root) for p in paths]
    basenames = [posixpath.basename(n) for n in names]
    if len(set(basenames)) != len(basenames):
        raise UserError(f"shards under {options.shards!r} share file names; filter writes them side by side")
    out = options.out
    if not fileio.is_remote(out) and os.path.abspath(out) in {os.path.abspath(os.path.dirname(p)) for p in paths}:
        raise UserError("--out must not be the folder the shards are read from")
    return paths, names


def _removed_rows(drops: dict[str, list[str]], flagged: dict) -> list[dict]:
    removed = []
    for name, keys in sorted(drops.items()):
        matches = flagged[name if name in flagged else posixpath.basename(name)]
        removed += [{"shard": name, "shard_key": key, "matches": matches[key]} for key in keys]
    return removed


def _clear_work(out: str) -> None:
    if not fileio.is_remote(out):
        shutil.rmtree(fileio.join(out, WORK_DIR), ignore_errors=True)


def run_overlap_filter(options: OverlapFilterOptions, beam_args: list[str] | None = None) -> dict:
    """Write ``options.shards`` without the samples flagged in ``options.overlap`` to ``options.out``;
    returns the stats record written to ``OUT/stats.json``."""
    partial = require_finished([options.shards, options.overlap], allow_partial=options.allow_partial)
    flagged = flagged_samples(options.overlap)
    paths, names = _shards_to_filter(options)
    drops = _drops_by_shard(options.shards, names, flagged)
    with StageRun(STAGE, options.out, settings=options, partial_inputs=partial) as stage:
        _clear_work(options.out)
        parts = fileio.join(options.out, WORK_DIR, "filter")
        pipeline = stage.pipeline(beam_args)
        _ = (
            pipeline
            | "Shards" >> beam.Create(list(zip(paths, names, strict=True)))
            | "Spread" >> beam.Reshuffle()
            | "Rewrite" >> beam.ParDo(FilterShard(options.out, drops, shard_digests(paths)))
            | "Write" >> beam.io.WriteToText(parts, file_name_suffix=".jsonl")
        )
        stage.run(pipeline)
        rows = sorted(fileio.read_json_lines(parts, what="filter output"), key=lambda r: r["path"])
        damaged = [{"shard": r["source"], "error": r["damaged"]} for r in rows if "damaged" in r]
        rows = [r for r in rows if "damaged" not in r]
        kept, removed = sum(r["samples"] for r in rows), sum(r["removed"] for r in rows)
        fileio.write_text_atomic(fileio.join(options.out, "removed.jsonl"), "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in _removed_rows(drops, flagged)))
        write_manifest(options.out, {
            "shards": [manifest_entry(r["path"], TarSummary(r["samples"], r["bytes"], r["sha256"])) for r in rows],
            "total_samples": kept, "removed_samples": removed, "source": options.shards,
            "overlap": fileio.join(options.overlap, REPORT_FILES["report"])})
        _clear_work(options.out)
        return stage.finish(records_in=kept + removed + len(damaged), records_out=kept,
                            dropped={"overlap": removed, "damaged_shard": len(damaged)},
                            outputs={"shards": options.out, "manifest": manifest_path(options.out),
                                     "removed": fileio.join(options.out, "removed.jsonl")},
                            shards=len(rows), damaged_shards=damaged)
