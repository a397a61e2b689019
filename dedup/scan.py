"""``wit overlap scan``: find training samples that are near-duplicates of eval examples.

The eval side is small: it is read and signed on the driver, and the index is
built once (``index.IndexBuilder``) and written to ``OUT/_work/index.pkl``.
The training side is large: a Beam job reads the shards, one shard per
element, and every worker process loads the index file once
(``index.load_index`` in ``DoFn.setup``) and checks each sample against it.
The job writes its matches and per-shard summaries as JSON lines; the driver
gathers them into ``overlap.json``, ``overlap.md`` and ``overlap.html``::

    Shards (paths) -> ScanShards [Spread -> Check: ScanShardFn] -> ToJson -> Write (OUT/_work/scan-*.jsonl)

Thresholds are on the exact Jaccard similarity of the signature sets: image
pairs at or above the eval set's threshold (``--threshold NAME=T``, else
``--threshold T``) are flagged, and so are text pairs at or above
``--text-threshold``. Pairs from half the threshold up are kept as near
misses, so the report can show what lies just below each threshold.

The stage runs through ``StageRun`` (stage ``overlap``) and writes ``OUT/stats.json`` last. Its
records are training samples: ``in`` is every sample read plus one record for each shard that
broke off (a truncated or unreadable tar cannot say how many samples it still held), ``out`` the
samples scanned whole, and ``dropped`` the rest by reason: ``unreadable_image`` (the image could
not be decoded, so only the caption was checked) and ``unreadable_shard``.

A shard is checked whole as it is read (``shardset.DamagedShard``): its end-of-archive marker, and
its size and sha256 where the ``manifest.json`` beside it has a row for it. A damaged shard breaks
off like an unreadable one: its error names the damage, it counts ``unreadable_shard``, and the
report lists it under the shards that failed (so the set is never reported clean). An unfinished
``wit download`` / ``wit overlap filter`` output is refused as ``--shards`` unless ``--allow-partial``
(``stage.require_finished``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import apache_beam as beam
import numpy as np

from wit_pipeline import beam as wbeam
from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.options import named_paths, option
from wit_pipeline.progress import progress
from wit_pipeline.shardset import ShardDigest, iter_tar_samples, shard_digests
from wit_pipeline.stage import StageRun, dropped_counts, require_finished

from .evalsets import EvalExample, detect_format, image_member, json_member, list_tars, read_eval_set, text_member
from .index import EvalEntry, IndexBuilder, OverlapIndex, load_index, save_index
from .report import REPORT_FILES, REPORT_VERSION, thumbnail_data_uri, write_reports
from .signatures import BadImage, decode_canvas, eval_image_signature, image_codes, text_signature

log = logging.getLogger(__name__)

STAGE = "overlap"
DEFAULT_THRESHOLD = 0.15      # image pairs: exact Jaccard of region-hash sets (docs/overlap.md)
DEFAULT_TEXT_THRESHOLD = 0.7  # text pairs: exact Jaccard of character 5-gram sets
NEAR_FRACTION = 0.5           # pairs from NEAR_FRACTION x threshold up are kept as near misses
DROP_REASONS = ("unreadable_image", "unreadable_shard")


# --------------------------------------------------------------------------- options


parse_eval_sets = named_paths("--eval")


def threshold_overrides(values: list[str] | None) -> dict:
    """The option fields ``--threshold`` sets: ``threshold`` from ``T`` (every eval set), ``thresholds``
    from ``NAME=T`` (one set), in any mix; neither when the flag was not given."""
    fields: dict = {}
    for value in values or []:
        name, _, number = value.rpartition("=")
        try:
            threshold = float(number)
        except ValueError:
            raise UserError(f"--threshold {value!r}: expected T or NAME=T with T a number in (0, 1]") from None
        if name:
            fields.setdefault("thresholds", {})[name] = threshold
        else:
            fields["threshold"] = threshold
    return fields


@dataclass(kw_only=True)
class OverlapScanOptions:
    shards: str = option(help="training shards: a folder of NNNNN.tar (its manifest.json if present), a .tar or "
                         "a glob", metavar="DIR_OR_PATTERN")
    eval: dict[str, str] = option(
        help="an eval set: an ImageFolder folder (class/xxx.jpg), WebDataset tars (a .tar, a glob or a folder of "
        ".tar), or a .csv/.jsonl of image paths with optional text and label; repeatable",
        action="append", metavar="NAME=PATH", convert=parse_eval_sets)
    out: str = option(help="where the reports go", metavar="DIR")
    # One flag, two fields: the command line passes ``threshold_overrides(args.threshold_flags)``.
    threshold: float = option(
        DEFAULT_THRESHOLD, action="append", dest="threshold_flags", metavar="T|NAME=T",
        help="image similarity (exact Jaccard of region-hash sets) at which a pair is flagged: T for every eval "
        f"set (default {DEFAULT_THRESHOLD}), NAME=T for one; repeatable")
    thresholds: dict[str, float] = option({}, cli=False, help="per eval set thresholds overriding ``threshold``")
    text_threshold: float = option(
        DEFAULT_TEXT_THRESHOLD, metavar="T", above=0, maximum=1,
        help="text similarity (Jaccard of character 5-grams) at which a caption/eval-text pair is flagged "
        "(default %(default)s); texts under 16 characters are not compared")
    keep_work: bool = option(False, help="keep OUT/_work (the eval index and the job's output)")
    allow_partial: bool = option(False, help="scan an unfinished `wit download` or `wit overlap filter` output "
                                 "(no stats.json) as it is")
    near_fraction: float = option(NEAR_FRACTION, cli=False,
                                  help="pairs from this fraction of a threshold up are kept as near misses")

    def threshold_for(self, name: str) -> float:
        return self.thresholds.get(name, self.threshold)

    def lowest_threshold(self) -> float:
        return min([self.threshold, *self.thresholds.values()])

    def floors(self) -> tuple[float, float]:
        """The (image, text) similarities from which pairs are kept: the near-miss floor."""
        return self.lowest_threshold() * self.near_fraction, self.text_threshold * self.near_fraction

    def validate(self) -> None:
        if not self.eval:
            raise UserError("give at least one --eval NAME=PATH")
        for name, value in self.thresholds.items():
            if name not in self.eval:
                raise UserError(f"--threshold {name}={value}: no eval set named {name!r} "
                                f"(have: {', '.join(sorted(self.eval))})")
        for value in [self.threshold, self.text_threshold, *self.thresholds.values()]:
            if not 0.0 < value <= 1.0:
                raise UserError(f"thresholds are Jaccard similarities in (0, 1]; got {value}")


# --------------------------------------------------------------------------- shard names


def shard_label(path: str, root: str | None) -> str:
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
    """The folder ``--shards`` names (shard labels are relative to it), or None for a file or a glob."""
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


def _eval_image_codes(example: EvalExample, info: EvalSetInfo) -> np.ndarray | None:
    """The example's image signature; an unreadable image is listed in ``info`` and signs as None."""
    if example.image is not None:
        try:
            codes = eval_image_signature(example.image)
        except BadImage as exc:
            info.unreadable.append({"eval_id": example.eval_id, "reason": str(exc)})
            return None
        info.with_image += 1
        return codes
    if example.error:
        info.unreadable.append({"eval_id": example.eval_id, "reason": example.error})
    return None


def _sign_eval_set(builder: IndexBuilder, name: str, path: str) -> EvalSetInfo:
    info = EvalSetInfo(name=name, path=path, format=detect_format(path))
    for example in progress(read_eval_set(path), desc=f"signing eval set {name}", unit="img"):
        info.examples += 1
        codes = _eval_image_codes(example, info)
        text_set = text_signature(example.text)
        if len(text_set):
            info.with_text += 1
        builder.add(EvalEntry(set_name=name, eval_id=example.eval_id, label=example.label,
                              source=example.source, member=example.member), codes, text_set)
    log.info("eval set %s: %d examples, %d unreadable", name, info.examples, len(info.unreadable))
    return info


def build_eval_index(options: OverlapScanOptions) -> tuple[OverlapIndex, dict[str, EvalSetInfo]]:
    """Read and sign every eval set, then build one index over all of them."""
    builder = IndexBuilder(image_threshold=options.lowest_threshold(), text_threshold=options.text_threshold)
    infos = {name: _sign_eval_set(builder, name, path) for name, path in options.eval.items()}
    return builder.build(), infos


# --------------------------------------------------------------------------- training side (Beam)


def _sample_matches(index: OverlapIndex, shard: str, key: str, members: dict[str, bytes], summary: dict,
                    floors: tuple[float, float], check_text: bool) -> Iterator[dict]:
    """The match rows of one training sample; what it lacked is counted in the shard's ``summary``."""
    meta = json_member(members)
    image = image_member(members)
    caption = text_member(members, meta)
    codes = None
    if image is None:
        summary["no_image"] += 1
    else:
        try:
            codes = image_codes(decode_canvas(image[1]))
        except BadImage as exc:
            summary["unreadable"].append({"shard": shard, "shard_key": key, "reason": str(exc)})
    text_set = text_signature(caption) if check_text else None
    matches, checked = index.match(codes, text_set, *floors)
    summary["lsh_candidates"] += checked
    if not matches:
        return
    thumb = thumbnail_data_uri(image[1]) if image is not None else None
    for match in matches:
        entry = index.entries[match.key]
        yield {
            "type": "match", "eval_set": entry.set_name, "eval_key": match.key,
            "eval_id": entry.eval_id, "shard": shard, "shard_key": key,
            "url": meta.get("url"), "caption": caption, "kind": match.kind,
            "similarity": round(match.similarity, 4), "thumb": thumb,
        }


def scan_shard(index: OverlapIndex, shard: str, samples: Iterable[tuple[str, dict[str, bytes]]],
               floors: tuple[float, float]) -> Iterator[dict]:
    """Match rows for the samples of one shard, then the shard's summary row (always, and last).

    A shard that breaks off (a truncated or corrupt tar, an unreadable file) keeps the rows of the
    samples before the damage; its summary's ``error`` says what went wrong.
    """
    check_text = len(index.texts.codes) > 0
    summary = {"type": "shard", "shard": shard, "samples": 0, "unreadable": [], "no_image": 0, "error": None,
               "lsh_candidates": 0}
    try:
        for key, members in samples:
            summary["samples"] += 1
            yield from _sample_matches(index, shard, key, members, summary, floors, check_text)
    except (tarfile.TarError, EOFError, OSError, UserError) as exc:
        summary["error"] = f"{exc.__class__.__name__}: {exc}".splitlines()[0][:300]
    yield summary


def shard_counts(summary: dict) -> dict[str, int]:
    """What one shard's summary row adds to the stage's counts (see the module docstring)."""
    broken = int(summary["error"] is not None)
    unreadable = len(summary["unreadable"])
    return {"in": summary["samples"] + broken, "out": summary["samples"] - unreadable,
            "dropped_unreadable_image": unreadable, "dropped_unreadable_shard": broken,
            "samples_without_image": summary["no_image"], "lsh_candidates": summary["lsh_candidates"]}


class ScanShardFn(beam.DoFn):
    """Checks every sample of one shard against the eval index: a row per kept pair, then the shard's summary.

    ``index`` is the path of a saved index (each worker process loads it once, and the job graph
    stays small) or, for small tests, the index itself. ``read_samples(path)`` iterates a shard;
    ``read_samples(path, expected=digest)`` for a shard with a row in ``digests`` (its manifest's).
    """

    COUNTERS = ("in", "out", *(f"dropped_{reason}" for reason in DROP_REASONS), "samples_without_image",
                "lsh_candidates")

    def __init__(self, index: OverlapIndex | str, root: str | None, floors: tuple[float, float],
                 read_samples: Callable[..., Iterable[tuple[str, dict[str, bytes]]]] = iter_tar_samples,
                 digests: dict[str, ShardDigest] | None = None):
        self.index_source = index
        self.root = root
        self.floors = floors
        self.read_samples = read_samples
        self.digests = dict(digests or {})
        self.index: OverlapIndex | None = None

    def setup(self):
        source = self.index_source
        self.index = load_index(source) if isinstance(source, str) else source
        self.counters = {name: wbeam.counter(STAGE, name) for name in self.COUNTERS}
        self.pairs_kept = wbeam.counter(STAGE, "pairs_kept")

    def process(self, shard_path: str):
        shard = shard_label(shard_path, self.root)
        digest = self.digests.get(shard_path)
        samples = self.read_samples(shard_path) if digest is None else self.read_samples(shard_path, expected=digest)
        for row in scan_shard(self.index, shard, samples, self.floors):
            if row["type"] == "match":
                self.pairs_kept.inc()
            else:
                for name, value in shard_counts(row).items():
                    self.counters[name].inc(value)
            yield row


class ScanShards(beam.PTransform):
    """Shard paths -> rows: one per verified pair above the near-miss floor, one summary per shard."""

    def __init__(self, index: OverlapIndex | str, root: str | None, floors: tuple[float, float],
                 read_samples: Callable[..., Iterable[tuple[str, dict[str, bytes]]]] = iter_tar_samples,
                 digests: dict[str, ShardDigest] | None = None):
        super().__init__()
        self.check = ScanShardFn(index, root, floors, read_samples, digests)

    def expand(self, paths):
        return (
            paths
            | "Spread" >> beam.Reshuffle()   # shards are few and large: spread them before the heavy work
            | "Check" >> beam.ParDo(self.check)
        )


def _json_line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False)


def build_scan(pipeline: beam.Pipeline, shard_paths: list[str], root: str | None, index_path: str,
               floors: tuple[float, float], parts_prefix: str, digests: dict[str, ShardDigest] | None = None) -> None:
    _ = (
        pipeline
        | "Shards" >> beam.Create(shard_paths)
        | "Scan" >> ScanShards(index_path, root, floors, digests=digests)
        | "ToJson" >> beam.Map(_json_line)
        | "Write" >> beam.io.WriteToText(parts_prefix, file_name_suffix=".jsonl")
    )


# --------------------------------------------------------------------------- the whole scan


def _fresh_work_dir(out: str) -> str:
    work = fileio.join(out, "_work")
    if not fileio.is_remote(work):
        shutil.rmtree(work, ignore_errors=True)   # no stale job output from an earlier run
    fileio.makedirs(work)
    return work


def run_overlap_scan(options: OverlapScanOptions, beam_args: list[str] | None = None) -> dict:
    """Scan the training shards against the eval sets; write the reports and ``OUT/stats.json``.

    Returns the stats record; the report itself is ``OUT/overlap.json`` (``report.read_report``).
    """
    options.validate()
    shard_paths = list_tars(options.shards)
    partial = require_finished(options.shards, allow_partial=options.allow_partial)
    digests = shard_digests(shard_paths)
    with StageRun(STAGE, options.out, settings=options, partial_inputs=partial) as stage:
        work = _fresh_work_dir(options.out)
        index, infos = build_eval_index(options)
        index_path = fileio.join(work, "index.pkl")
        save_index(index, index_path)
        pipeline = stage.pipeline(beam_args)
        build_scan(pipeline, shard_paths, shards_root(options.shards), index_path, options.floors(),
                   fileio.join(work, "scan"), digests)
        counters = stage.run(pipeline)

        matches: list[dict] = []
        shard_rows: list[dict] = []
        for row in fileio.read_json_lines(fileio.join(work, "scan"), what="scan output"):
            (matches if row.get("type") == "match" else shard_rows).append(row)
        report = summarise(options, shard_paths, infos, index, matches, shard_rows, counters)
        report["seconds"] = round(stage.seconds, 2)
        write_reports(report, options.out, index=index, matches=matches)
        if not options.keep_work and not fileio.is_remote(work):
            shutil.rmtree(work, ignore_errors=True)
        totals = sum((Counter(shard_counts(row)) for row in shard_rows), Counter())
        return stage.finish(
            records_in=totals["in"], records_out=totals["out"], dropped=dropped_counts(totals, DROP_REASONS),
            outputs={name: fileio.join(options.out, file) for name, file in REPORT_FILES.items()},
            shards=len(shard_paths),
            flagged={name: s["flagged"] for name, s in report["eval_sets"].items()})


# --------------------------------------------------------------------------- overlap.json


def _pair(row: dict) -> dict:
    return {"eval_id": row["eval_id"], "shard_key": row["shard_key"], "url": row.get("url"),
            "similarity": row["similarity"], "kind": row["kind"], "shard": row["shard"],
            "caption": row.get("caption")}


def _pair_order(row: dict) -> tuple:
    return -row["similarity"], row["eval_id"], row["shard"], row["shard_key"], row["kind"]


def _percent(flagged: int, examples: int) -> float:
    return 100.0 * flagged / examples if examples else 0.0


def eval_set_report(info: EvalSetInfo, rows: list[dict], threshold: float, text_threshold: float) -> dict:
    """One eval set's entry in overlap.json from its match rows: flagged pairs and near misses."""
    flagged_rows, near_rows = [], []
    for row in rows:
        limit = threshold if row["kind"] == "image" else text_threshold
        (flagged_rows if row["similarity"] >= limit else near_rows).append(row)
    flagged_rows.sort(key=_pair_order)
    near_rows.sort(key=_pair_order)
    flagged_ids = sorted({r["eval_id"] for r in flagged_rows})
    by_kind = {kind: len({r["eval_id"] for r in flagged_rows if r["kind"] == kind}) for kind in ("image", "text")}
    return {
        "path": info.path, "format": info.format, "threshold": threshold,
        "text_threshold": text_threshold,
        "examples": info.examples, "flagged": len(flagged_ids),
        "percent": round(_percent(len(flagged_ids), info.examples), 4),
        "flagged_by": by_kind, "with_image": info.with_image, "with_text": info.with_text,
        "flagged_ids": flagged_ids,
        "pairs": [_pair(r) for r in flagged_rows],
        "near_misses": [_pair(r) for r in near_rows],
        "unreadable": info.unreadable,
    }


def shards_report(spec: str, shard_paths: list[str], shard_rows: list[dict]) -> dict:
    """overlap.json's ``shards``: what was read, and what could not be."""
    shard_rows = sorted(shard_rows, key=lambda r: r["shard"])
    unreadable = [u for r in shard_rows for u in r["unreadable"]]
    return {
        "spec": spec, "count": len(shard_paths),
        "samples": sum(r["samples"] for r in shard_rows),
        "samples_without_image": sum(r["no_image"] for r in shard_rows),
        "unreadable_images": len(unreadable), "unreadable": unreadable,
        "failed": [{"shard": r["shard"], "error": r["error"]} for r in shard_rows if r["error"]],
    }


def settings_report(options: OverlapScanOptions, index: OverlapIndex) -> dict:
    return {
        "threshold": options.threshold, "thresholds": dict(options.thresholds),
        "text_threshold": options.text_threshold, "near_fraction": options.near_fraction,
        "num_perm": index.num_perm, "lsh_bands_rows": index.lsh_params, "lsh_weights": list(index.weights),
        "stop_elements": int(len(index.stop_codes)),
        "similarity": "exact Jaccard similarity of the signature sets (images: region hashes; "
                      "texts: character 5-grams)",
    }


def overall_report(eval_sets: dict[str, dict]) -> dict:
    """overlap.json's ``summary``: median and mean overlap over the eval sets."""
    percents = [_percent(s["flagged"], s["examples"]) for s in eval_sets.values()]
    return {
        "eval_sets": len(eval_sets),
        "median_percent": round(float(np.median(percents)), 4) if percents else 0.0,
        "mean_percent": round(float(np.mean(percents)), 4) if percents else 0.0,
        "without_overlap": sum(1 for s in eval_sets.values() if s["flagged"] == 0),
    }


def summarise(options: OverlapScanOptions, shard_paths: list[str], infos: dict[str, EvalSetInfo],
              index: OverlapIndex, matches: list[dict], shard_rows: list[dict], counters: dict) -> dict:
    """The overlap.json object from the job's match and shard rows."""
    eval_sets = {
        name: eval_set_report(info, [m for m in matches if m["eval_set"] == name], options.threshold_for(name),
                              options.text_threshold)
        for name, info in infos.items()
    }
    return {
        "version": REPORT_VERSION,
        "shards": shards_report(options.shards, shard_paths, shard_rows),
        "settings": settings_report(options, index),
        "eval_sets": eval_sets,
        "summary": overall_report(eval_sets),
        "counters": counters,
    }
