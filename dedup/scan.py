"""``wit overlap scan``: find training samples that are near-duplicates of eval examples.

The eval side is small: it is read and signed on the driver, and the index is
built once (``index.IndexBuilder``) and written to ``OUT/_work/index.pkl``.
The training side is large: a Beam job reads the shards, one shard per
element, and every worker process loads the index file once
(``index.load_index`` in ``DoFn.setup``) and checks each sample against it.
The job writes its matches and per-shard counts as JSON lines; the driver
gathers them into ``overlap.json``, ``overlap.md`` and ``overlap.html``.

Thresholds are on the exact Jaccard similarity of the signature sets: image
pairs at or above the eval set's threshold (``--threshold NAME=T``, else
``--threshold T``) are flagged, and so are text pairs at or above
``--text-threshold``. Pairs from half the threshold up are kept as near
misses, so the report can show what lies just below each threshold.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from typing import Iterable

import apache_beam as beam
import numpy as np
from PIL import Image

from wit_pipeline import beam as wbeam
from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.progress import progress

from wit_pipeline.tario import iter_tar_samples

from .evalsets import (detect_format, image_member, json_member, list_tars, read_eval_set,
                       text_member)
from .index import EvalEntry, IndexBuilder, OverlapIndex, load_index, save_index
from .signatures import BadImage, decode_canvas, eval_image_signature, image_codes, text_signature

log = logging.getLogger(__name__)

STAGE = "overlap"
DEFAULT_THRESHOLD = 0.15      # image pairs: exact Jaccard of region-hash sets (README, "Overlap analysis")
DEFAULT_TEXT_THRESHOLD = 0.7  # text pairs: exact Jaccard of character 5-gram sets
NEAR_FRACTION = 0.5           # pairs from NEAR_FRACTION x threshold up are kept as near misses
THUMB_SIDE = 128


@dataclass
class ScanSettings:
    threshold: float = DEFAULT_THRESHOLD
    thresholds: dict[str, float] = field(default_factory=dict)   # per eval set, overriding ``threshold``
    text_threshold: float = DEFAULT_TEXT_THRESHOLD
    near_fraction: float = NEAR_FRACTION

    def for_set(self, name: str) -> float:
        return self.thresholds.get(name, self.threshold)

    def validate(self, names: Iterable[str]) -> None:
        names = set(names)
        for name, value in self.thresholds.items():
            if name not in names:
                raise UserError(f"--threshold {name}={value}: no eval set named {name!r} (have: {', '.join(sorted(names))})")
        for value in [self.threshold, self.text_threshold, *self.thresholds.values()]:
            if not 0.0 < value <= 1.0:
                raise UserError(f"thresholds are Jaccard similarities in (0, 1]; got {value}")


def thumbnail_data_uri(data: bytes, side: int = THUMB_SIDE) -> str | None:
    """A small JPEG of an image as a ``data:`` URI for the HTML report (None if it cannot be read)."""
    try:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (side, side))
        image = image.convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
    except Exception:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def shard_name(path: str, root: str | None) -> str:
    """How a shard is named in overlap.json: its path relative to the shards folder, else as given."""
    if root:
        prefix = root.rstrip("/") + "/"
        if path.startswith(prefix):
            return path[len(prefix):]
        if not fileio.is_remote(path):
            rel = os.path.relpath(path, root)
            if not rel.startswith(".."):
                return rel.replace(os.sep, "/")
    return path


def shards_root(spec: str) -> str | None:
    if (not fileio.is_remote(spec) and os.path.isdir(spec)) or (fileio.is_remote(spec) and spec.endswith("/")):
        return spec
    return None


# --------------------------------------------------------------------------- eval side (driver)


@dataclass
class EvalSetInfo:
    name: str
    path: str
    format: str
    examples: int = 0
    with_image: int = 0
    with_text: int = 0
    unreadable: list[dict] = field(default_factory=list)


def build_eval_index(evals: dict[str, str], settings: ScanSettings) -> tuple[OverlapIndex, dict[str, EvalSetInfo]]:
    """Read and sign every eval set, then build one index over all of them."""
    lowest = min([settings.threshold, *settings.thresholds.values()])
    builder = IndexBuilder(image_threshold=lowest, text_threshold=settings.text_threshold)
    infos: dict[str, EvalSetInfo] = {}
    for name, path in evals.items():
        info = infos[name] = EvalSetInfo(name=name, path=path, format=detect_format(path))
        for example in progress(read_eval_set(path), desc=f"signing eval set {name}", unit="img"):
            info.examples += 1
            codes = None
            if example.image is not None:
                try:
                    codes = eval_image_signature(example.image)
                    info.with_image += 1
                except BadImage as exc:
                    info.unreadable.append({"eval_id": example.eval_id, "reason": str(exc)})
            elif example.error:
                info.unreadable.append({"eval_id": example.eval_id, "reason": example.error})
            text_set = text_signature(example.text)
            if len(text_set):
                info.with_text += 1
            builder.add(EvalEntry(set_name=name, eval_id=example.eval_id, label=example.label,
                                  source=example.source, member=example.member), codes, text_set)
        log.info("eval set %s: %d examples, %d unreadable", name, info.examples, len(info.unreadable))
    return builder.build(), infos


# --------------------------------------------------------------------------- training side (Beam)


class ScanShardFn(beam.DoFn):
    """Checks every sample of one shard against the eval index; yields JSON lines.

    Lines are ``{"type": "match", ...}`` for every verified pair above the
    near-miss floor and one ``{"type": "shard", ...}`` summary per shard.
    """

    def __init__(self, index_path: str, root: str | None, image_floor: float, text_floor: float):
        self.index_path = index_path
        self.root = root
        self.image_floor = image_floor
        self.text_floor = text_floor
        self.index: OverlapIndex | None = None

    def setup(self):
        self.index = load_index(self.index_path)
        self.samples = wbeam.counter(STAGE, "samples")
        self.unreadable = wbeam.counter(STAGE, "images_unreadable")
        self.no_image = wbeam.counter(STAGE, "samples_without_image")
        self.candidates = wbeam.counter(STAGE, "lsh_candidates")
        self.matched = wbeam.counter(STAGE, "pairs_kept")
        self.failed = wbeam.counter(STAGE, "shards_unreadable")

    def process(self, shard_path: str):
        name = shard_name(shard_path, self.root)
        check_text = len(self.index.texts.codes) > 0
        summary = {"type": "shard", "shard": name, "samples": 0, "unreadable": [], "no_image": 0, "error": None}
        try:
            for key, members in iter_tar_samples(shard_path):
                summary["samples"] += 1
                self.samples.inc()
                meta = json_member(members)
                image = image_member(members)
                caption = text_member(members, meta)
                codes = None
                if image is None:
                    summary["no_image"] += 1
                    self.no_image.inc()
                else:
                    try:
                        codes = image_codes(decode_canvas(image[1]))
                    except BadImage as exc:
                        summary["unreadable"].append({"shard": name, "shard_key": key, "reason": str(exc)})
                        self.unreadable.inc()
                text_set = text_signature(caption) if check_text else None
                matches, checked = self.index.match(codes, text_set, self.image_floor, self.text_floor)
                self.candidates.inc(checked)
                if not matches:
                    continue
                thumb = thumbnail_data_uri(image[1]) if image is not None else None
                for match in matches:
                    entry = self.index.entries[match.key]
                    self.matched.inc()
                    yield json.dumps({
                        "type": "match", "eval_set": entry.set_name, "eval_key": match.key,
                        "eval_id": entry.eval_id, "shard": name, "shard_key": key,
                        "url": meta.get("url"), "caption": caption, "kind": match.kind,
                        "similarity": round(match.similarity, 4), "thumb": thumb,
                    }, ensure_ascii=False)
        except (tarfile.TarError, EOFError, OSError, UserError) as exc:
            summary["error"] = f"{exc.__class__.__name__}: {exc}".splitlines()[0][:300]
            self.failed.inc()
        yield json.dumps(summary, ensure_ascii=False)


def _run_scan_job(shards: list[str], root: str | None, index_path: str, parts_prefix: str,
                  image_floor: float, text_floor: float, beam_args: list[str] | None) -> dict[str, int]:
    pipeline = wbeam.make_pipeline(beam_args)
    _ = (
        pipeline
        | "Shards" >> beam.Create(shards)
        | "Spread" >> beam.Reshuffle()
        | "Check" >> beam.ParDo(ScanShardFn(index_path, root, image_floor, text_floor))
        | "Write" >> beam.io.WriteToText(parts_prefix, file_name_suffix=".jsonl")
    )
    return wbeam.run(pipeline, stage=STAGE)


def _read_parts(prefix: str) -> Iterable[dict]:
    for path in fileio.expand(prefix + "*", what="scan output"):
        for line in fileio.read_text(path).splitlines():
            if line.strip():
                yield json.loads(line)


# --------------------------------------------------------------------------- the whole scan


def scan_overlap(shards: str, evals: dict[str, str], out: str, settings: ScanSettings | None = None,
                 beam_args: list[str] | None = None, keep_work: bool = False) -> dict:
    """Scan training ``shards`` against the ``evals`` (name -> path) and write the reports to ``out``.

    Returns the overlap.json object.
    """
    from .report import write_reports

    settings = settings or ScanSettings()
    if not evals:
        raise UserError("give at least one --eval NAME=PATH")
    settings.validate(evals)
    started = time.monotonic()
    shard_paths = list_tars(shards)
    root = shards_root(shards)
    fileio.makedirs(out)
    work = fileio.join(out, "_work")
    if not fileio.is_remote(work):
        shutil.rmtree(work, ignore_errors=True)   # no stale job output from an earlier run
    fileio.makedirs(work)

    index, infos = build_eval_index(evals, settings)
    index_path = fileio.join(work, "index.pkl")
    save_index(index, index_path)
    lowest = min([settings.threshold, *settings.thresholds.values()])
    counters = _run_scan_job(shard_paths, root, index_path, fileio.join(work, "scan"),
                             image_floor=lowest * settings.near_fraction,
                             text_floor=settings.text_threshold * settings.near_fraction, beam_args=beam_args)

    matches: list[dict] = []
    shard_rows: list[dict] = []
    for row in _read_parts(fileio.join(work, "scan")):
        (matches if row.get("type") == "match" else shard_rows).append(row)
    result = summarise(shards, shard_paths, infos, index, settings, matches, shard_rows, counters)
    result["seconds"] = round(time.monotonic() - started, 2)
    write_reports(result, out, index=index, matches=matches)
    if not keep_work and not fileio.is_remote(work):
        shutil.rmtree(work, ignore_errors=True)
    return result


def _pair(row: dict) -> dict:
    return {"eval_id": row["eval_id"], "shard_key": row["shard_key"], "url": row.get("url"),
            "similarity": row["similarity"], "kind": row["kind"], "shard": row["shard"],
            "caption": row.get("caption")}


def summarise(shards_spec: str, shard_paths: list[str], infos: dict[str, EvalSetInfo], index: OverlapIndex,
              settings: ScanSettings, matches: list[dict], shard_rows: list[dict], counters: dict) -> dict:
    """The overlap.json object from the job's match and shard lines."""
    shard_rows = sorted(shard_rows, key=lambda r: r["shard"])
    unreadable = [u for r in shard_rows for u in r["unreadable"]]
    eval_sets: dict[str, dict] = {}
    percents = []
    for name, info in infos.items():
        threshold = settings.for_set(name)
        rows = [m for m in matches if m["eval_set"] == name]
        flagged_rows, near_rows = [], []
        for row in rows:
            limit = threshold if row["kind"] == "image" else settings.text_threshold
            (flagged_rows if row["similarity"] >= limit else near_rows).append(row)
        order = lambda r: (-r["similarity"], r["eval_id"], r["shard"], r["shard_key"], r["kind"])  # noqa: E731
        flagged_rows.sort(key=order)
        near_rows.sort(key=order)
        flagged_ids = sorted({r["eval_id"] for r in flagged_rows})
        by_kind = {kind: len({r["eval_id"] for r in flagged_rows if r["kind"] == kind}) for kind in ("image", "text")}
        percent = 100.0 * len(flagged_ids) / info.examples if info.examples else 0.0
        percents.append(percent)
        eval_sets[name] = {
            "path": info.path, "format": info.format, "threshold": threshold,
            "text_threshold": settings.text_threshold,
            "examples": info.examples, "flagged": len(flagged_ids), "percent": round(percent, 4),
            "flagged_by": by_kind, "with_image": info.with_image, "with_text": info.with_text,
            "flagged_ids": flagged_ids,
            "pairs": [_pair(r) for r in flagged_rows],
            "near_misses": [_pair(r) for r in near_rows],
            "unreadable": info.unreadable,
        }
    return {
        "version": 1,
        "shards": {
            "spec": shards_spec, "count": len(shard_paths),
            "samples": sum(r["samples"] for r in shard_rows),
            "samples_without_image": sum(r["no_image"] for r in shard_rows),
            "unreadable_images": len(unreadable), "unreadable": unreadable,
            "failed": [{"shard": r["shard"], "error": r["error"]} for r in shard_rows if r["error"]],
        },
        "settings": {
            "threshold": settings.threshold, "thresholds": dict(settings.thresholds),
            "text_threshold": settings.text_threshold, "near_fraction": settings.near_fraction,
            "num_perm": index.num_perm, "lsh_bands_rows": index.lsh_params, "lsh_weights": list(index.weights),
            "stop_elements": int(len(index.stop_codes)),
            "similarity": "exact Jaccard similarity of the signature sets (images: region hashes; "
                          "texts: character 5-grams)",
        },
        "eval_sets": eval_sets,
        "summary": {
            "eval_sets": len(eval_sets),
            "median_percent": round(float(np.median(percents)), 4) if percents else 0.0,
            "mean_percent": round(float(np.mean(percents)), 4) if percents else 0.0,
            "without_overlap": sum(1 for s in eval_sets.values() if s["flagged"] == 0),
        },
        "counters": counters,
    }
