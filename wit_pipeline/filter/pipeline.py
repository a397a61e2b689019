"""``wit filter``: curate a shard set by model scores and duplicates, writing a shard set in the download format.

``run_filter(FilterOptions(shards, out, embeddings=..., rules...))`` is one Beam job::

    shards --ReadSamples (one shard per element)--> facts: key, clip score, embedding, sha256, region hashes
      --ClipScore---------> low_clip_score      (threshold: ToList of the scores, a quantile)
      --ExactDuplicates---> exact_duplicate     (GroupByKey by sha256)
      --NearDuplicates----> near_duplicate      (ToList of the signatures: MinHash LSH over the set)
      --SemanticDuplicates-> semantic_duplicate (CombineGlobally(KMeansFn) centroids, GroupByKey by cluster)
      --OffDistribution---> off_distribution    (the eval images' nearest centroids)
    drops --CoGroupByKey(shard)--> WriteShard (one shard per element): tar, status parquet, NNNNN_stats.json

Rules in ``rules.py`` (their order is the reasons' order; each step sees what the steps before kept).
Output (``OUT``), the download stage's format: every input tar under its own name, without the dropped
samples (``dedup.filter.rewrite_shard``: members and headers kept); beside it a status parquet listing
every row of the input's status parquet (or every tar sample when the input has none) with ``status`` =
``success`` or the reason and ``error_message`` = why, and ``NAME_stats.json``; ``manifest.json`` and
``sizes.json``; ``filter.html`` (``report.py``); ``stats.json`` (stage ``filter``: ``in`` = input
samples, ``out`` = samples kept, ``dropped`` = ``REASONS`` plus ``damaged_shard``, ``accounted``).

A shard that is not whole (``shardset.DamagedShard``) is not written and counts as one ``damaged_shard``.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import time
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam import pvalue

from dedup.evalsets import image_member, json_member, list_tars, text_member
from dedup.filter import rewrite_shard
from dedup.scan import shard_label, shards_root
from wit_pipeline import beam as wbeam
from wit_pipeline import fileio
from wit_pipeline.download.writer import write_status
from wit_pipeline.errors import UserError
from wit_pipeline.options import check_values, named_paths, option
from wit_pipeline.schemas import STATUS_SCHEMA
from wit_pipeline.shardset import (
    DamagedShard,
    TarSummary,
    iter_tar_keys,
    iter_tar_samples,
    manifest_entry,
    manifest_path,
    read_manifest,
    shard_digests,
    shard_stats_name,
    write_manifest,
)
from wit_pipeline.stage import StageRun, require_finished

from . import rules
from .embeddings import all_image_embeddings, parts_by_shard, shard_embeddings, vector_dim
from .report import write_report

STAGE = "filter"
WORK_DIR = "_work"
REASONS = rules.REASONS
DROPPED = "dropped"


parse_eval_sets = named_paths("--image-cluster-eval")


@dataclass(kw_only=True)
class FilterOptions:
    shards: str = option(help="the shard set: a folder of .tar (its manifest.json if present), a .tar or a glob",
                         metavar="DIR_OR_PATTERN")
    embeddings: str | None = option(None, metavar="DIR",
                                    help="`wit embed`'s output for these shards (needed by the CLIP-score, "
                                    "SemDeDup and cluster rules)")
    out: str = option(help="where the filtered shard set goes", metavar="DIR")
    clip_score_min: float | None = option(None, metavar="X", minimum=-1, maximum=1,
                                          help="drop samples whose CLIP score is below X (low_clip_score)")
    clip_score_top: float | None = option(None, metavar="F", above=0, maximum=1,
                                          help="keep the top fraction F of the whole set by CLIP score "
                                          "(DataComp's baseline; low_clip_score)")
    dedup: str | None = option(None, choices=("exact", "near"),
                               help="drop in-set duplicates, keeping the first by key: exact = same image "
                               "sha256 (exact_duplicate); near = also re-encoded, resized or slightly cropped "
                               "copies (near_duplicate)")
    near_threshold: float = option(rules.NEAR_THRESHOLD, metavar="J", above=0, maximum=1,
                                   help="--dedup near: the Jaccard similarity of region hashes from which two "
                                   "images are copies")
    semdedup_eps: float | None = option(None, metavar="E", above=0, below=1,
                                        help="SemDeDup: within a k-means cluster, drop samples whose image "
                                        "cosine to a kept one exceeds 1 - E (semantic_duplicate)")
    image_cluster_eval: dict[str, str] = option(
        {}, action="append", metavar="NAME=PATH", convert=parse_eval_sets,
        help="keep samples whose nearest k-means centroid is nearest to some image of this eval set's "
        "embeddings folder (DataComp's image-based filter; off_distribution); repeatable")
    clusters: int | None = option(None, metavar="K", minimum=1,
                                  help="k-means clusters for SemDeDup and --image-cluster-eval "
                                  "(default: about sqrt(samples))")
    seed: int = option(0, minimum=0, help="the k-means seed")
    report_samples: int = option(8, minimum=0, metavar="N",
                                 help="filter.html: samples shown just above and just below each threshold")
    allow_partial: bool = option(False, help="read an unfinished `wit download` or `wit embed` output as it is")

    def needs_embeddings(self) -> bool:
        return (self.clip_score_min is not None or self.clip_score_top is not None
                or self.semdedup_eps is not None or bool(self.image_cluster_eval))

    def needs_centroids(self) -> bool:
        return self.semdedup_eps is not None or bool(self.image_cluster_eval)

    def validate(self) -> None:
        check_values(self)
        if not (self.needs_embeddings() or self.dedup):
            raise UserError("name at least one rule: --clip-score-min, --clip-score-top, --dedup, "
                            "--semdedup-eps or --image-cluster-eval")
        if self.needs_embeddings() and not self.embeddings:
            raise UserError("--embeddings is required by --clip-score-min, --clip-score-top, --semdedup-eps "
                            "and --image-cluster-eval")


# -- reading: one shard per element ---------------------------------------------------------------------------

def _status_path(source: str) -> str:
    base = source[:-len(".tar")] if source.endswith(".tar") else source
    return base + ".parquet"


def _input_status(source: str) -> "object | None":
    """The input shard's status parquet (the download format), or None when it has none."""
    path = _status_path(source)
    if not source.endswith(".tar") or not fileio.exists(path):
        return None
    table = fileio.read_parquet(path)
    return table if {"key", "status"} <= set(table.column_names) else None


def _image_sha256(members: dict[str, bytes], known: str | None) -> str | None:
    if known:
        return known
    found = image_member(members)
    return hashlib.sha256(found[1]).hexdigest() if found else None


class ReadSamples(beam.DoFn):
    """One shard ``(path, name)`` -> a fact dict per sample (main output) and ``(shard, key, reason,
    message)`` for a sample the embeddings lack (``dropped``). A damaged shard yields nothing here
    (``WriteShard`` counts it)."""

    def __init__(self, options: FilterOptions, parts: dict[str, list[str]], digests: dict):
        self.options = options
        self.parts = parts
        self.digests = digests

    def process(self, item):
        source, name = item
        try:
            # A damaged shard is not written, so none of its samples may take part in the rules (a duplicate
            # kept there would cost its copy elsewhere): it is checked whole before any fact leaves it.
            for _ in iter_tar_keys(source, expected=self.digests.get(source)):
                pass
        except DamagedShard:
            return
        samples = iter_tar_samples(source, expected=self.digests.get(source))
        table = _input_status(source)
        known = dict(zip(table["key"].to_pylist(), table["sha256"].to_pylist(), strict=True)) \
            if table is not None and "sha256" in table.column_names else {}
        embedded = None
        if self.options.embeddings:
            embedded = shard_embeddings(self.options.embeddings, self.parts.get(posixpath.basename(name), []),
                                        posixpath.basename(name))
        for key, members in samples:
            fact = self._fact(name, key, members, known, embedded)
            if fact is None:
                yield pvalue.TaggedOutput(DROPPED, (name, key, "no_embedding", "no row in --embeddings"))
            else:
                yield fact

    def _fact(self, name: str, key: str, members: dict, known: dict, embedded: dict | None) -> dict | None:
        meta = json_member(members)
        fact = {"shard": name, "key": key, "caption": text_member(members, meta) or "", "score": None,
                "vector": None, "sha256": None, "codes": None}
        if embedded is not None:
            if key not in embedded:
                return None
            fact["score"], fact["vector"] = embedded[key]
        if self.options.dedup:
            fact["sha256"] = _image_sha256(members, known.get(key) or meta.get("sha256"))
        if self.options.dedup == "near":
            found = image_member(members)
            fact["codes"] = rules.near_signature(found[1]) if found else None
        return fact


# -- the rules, each over what the rules before kept -------------------------------------------------------

def _near_duplicates(items: list, threshold: float) -> dict:
    """``(key, region hashes, sample ref)`` of the whole set -> ``{"dropped": {key: (kept, similarity)},
    "pairs": [(ref, ref, similarity)]}`` (the pairs for filter.html)."""
    refs = {key: ref for key, _, ref in items}
    dropped, pairs = rules.near_duplicates([(key, codes) for key, codes, _ in items], threshold)
    return {"dropped": dropped, "pairs": [(refs[a], refs[b], similarity) for a, b, similarity in pairs]}


class KMeansFn(beam.CombineFn):
    """``(key, embedding)`` of the whole set -> unit centroids, fitted on the ``KMEANS_SAMPLE`` keys of
    smallest ``rules.sample_rank`` (a sample independent of order and split)."""

    def __init__(self, clusters: int | None, seed: int, sample: int = rules.KMEANS_SAMPLE):
        self.clusters, self.seed, self.sample = clusters, seed, sample

    def create_accumulator(self):
        return (0, [])

    def add_input(self, accumulator, item):
        count, kept = accumulator
        kept.append((rules.sample_rank(item[0]), item[0], item[1]))
        if len(kept) > 2 * self.sample:
            kept = sorted(kept, key=lambda entry: entry[:2])[:self.sample]
        return count + 1, kept

    def merge_accumulators(self, accumulators):
        count, kept = 0, []
        for more, entries in accumulators:
            count += more
            kept = sorted(kept + entries, key=lambda entry: entry[:2])[:self.sample]
        return count, kept

    def extract_output(self, accumulator):
        count, kept = accumulator
        kept = sorted(kept, key=lambda entry: entry[:2])[:self.sample]
        if not kept:
            return np.zeros((0, 0), np.float32)
        clusters = self.clusters or rules.default_clusters(count)
        return rules.kmeans(np.stack([entry[2] for entry in kept]), clusters, self.seed)


def _clip_rule(fact: dict, threshold: float | None, minimum: float | None):
    problem = rules.clip_score_problem(fact["score"], minimum, threshold)
    if problem:
        yield pvalue.TaggedOutput(DROPPED, (fact["shard"], fact["key"], "low_clip_score", problem))
    else:
        yield fact


def _first_of_sha(item):
    sha, facts = item
    facts = sorted(facts, key=lambda f: f["key"])
    if sha is None:
        yield from facts
        return
    yield facts[0]
    for fact in facts[1:]:
        yield pvalue.TaggedOutput(DROPPED, (fact["shard"], fact["key"], "exact_duplicate",
                                            f"same sha256 as {facts[0]['key']}"))


def _drop_listed(fact: dict, found: dict, reason: str):
    hit = found["dropped"].get(fact["key"])
    if hit is None:
        yield fact
    else:
        yield pvalue.TaggedOutput(DROPPED, (fact["shard"], fact["key"], reason,
                                            f"copy of {hit[0]} (similarity {hit[1]:.3f})"))


def _semdedup_cluster(item, eps: float):
    cluster, facts = item
    by_key = {f["key"]: f for f in facts}
    dropped, nearest = rules.semantic_duplicates([(f["key"], f["vector"]) for f in facts], eps)
    for key, fact in sorted(by_key.items()):
        hit = dropped.get(key)
        if hit is None:
            yield fact
        else:
            yield pvalue.TaggedOutput(DROPPED, (fact["shard"], key, "semantic_duplicate",
                                                f"cosine {hit[1]:.4f} to {hit[0]} (cluster {cluster})"))
    for kept, key, cosine in nearest:
        yield pvalue.TaggedOutput("report", {"rule": "semantic", "a": _ref(by_key[kept]), "b": _ref(by_key[key]),
                                             "value": cosine})


def _off_distribution(fact: dict, centroids: np.ndarray, wanted: set[int]):
    cluster = int(rules.nearest_centroid(fact["vector"][None, :], centroids)[0]) if len(centroids) else -1
    if cluster in wanted:
        yield fact
    else:
        yield pvalue.TaggedOutput(DROPPED, (fact["shard"], fact["key"], "off_distribution",
                                            f"cluster {cluster} is nearest to no eval image"))


def _ref(fact: dict) -> dict:
    return {"shard": fact["shard"], "key": fact["key"], "caption": fact["caption"]}


def _with_cluster(fact: dict, centroids: np.ndarray):
    return int(rules.nearest_centroid(fact["vector"][None, :], centroids)[0]), fact


class ApplyRules(beam.PTransform):
    """facts -> (kept facts, [dropped PCollections], [report PCollections]), the rules in ``REASONS`` order."""

    def __init__(self, options: FilterOptions, eval_vectors: list[np.ndarray]):
        super().__init__()
        self.options = options
        self.eval_vectors = eval_vectors

    def expand(self, facts):
        options, dropped, report = self.options, [], []
        kept = facts
        if options.clip_score_min is not None or options.clip_score_top is not None:
            report.append(facts | "ScoresForReport" >> beam.Map(lambda f: {"rule": "clip", **_ref(f),
                                                                           "value": f["score"]}))
            threshold = None
            if options.clip_score_top is not None:
                # every score is gathered on one worker for the quantile
                threshold = pvalue.AsSingleton(facts | "Scores" >> beam.Map(lambda f: f["score"])
                                               | "AllScores" >> beam.combiners.ToList()
                                               | "TopFraction" >> beam.Map(rules.top_fraction_threshold,
                                                                           options.clip_score_top))
                report.append(threshold.pvalue | "ThresholdForReport" >> beam.Map(
                    lambda t: {"rule": "clip_threshold", "value": t}))
            kept, out = self._split(kept, "ClipScore", beam.ParDo(_clip_rule, threshold, options.clip_score_min))
            dropped.append(out)
        if options.dedup:
            groups = (kept | "BySha256" >> beam.Map(lambda f: (f["sha256"], f))
                      | "GroupSha256" >> beam.GroupByKey())
            kept, out = self._split(groups, "ExactDuplicates", beam.FlatMap(_first_of_sha))
            dropped.append(out)
        if options.dedup == "near":
            found = (kept | "Signatures" >> beam.Filter(lambda f: f["codes"] is not None)
                     | "KeyCodes" >> beam.Map(lambda f: (f["key"], f["codes"], _ref(f)))
                     | "AllCodes" >> beam.combiners.ToList()
                     | "NearDuplicates" >> beam.Map(_near_duplicates, options.near_threshold))
            report.append(found | "NearPairs" >> beam.FlatMap(
                lambda r: [{"rule": "near", "a": a, "b": b, "value": s} for a, b, s in r["pairs"]]))
            kept, out = self._split(kept, "DropNear", beam.FlatMap(_drop_listed, pvalue.AsSingleton(found),
                                                                   "near_duplicate"))
            dropped.append(out)
        if options.needs_centroids():
            centroids = pvalue.AsSingleton(
                facts | "KeyVectors" >> beam.Map(lambda f: (f["key"], f["vector"]))
                | "KMeans" >> beam.CombineGlobally(KMeansFn(options.clusters, options.seed)))
            if options.semdedup_eps is not None:
                clustered = (kept | "Cluster" >> beam.Map(_with_cluster, centroids)
                             | "GroupCluster" >> beam.GroupByKey())
                results = clustered | "SemDeDup" >> beam.FlatMap(
                    _semdedup_cluster, options.semdedup_eps).with_outputs(DROPPED, "report", main="kept")
                kept = results.kept
                dropped.append(results[DROPPED])
                report.append(results.report)
            if options.image_cluster_eval:
                eval_vectors = np.concatenate(self.eval_vectors)
                wanted = pvalue.AsSingleton(centroids.pvalue | "EvalCentroids" >> beam.Map(
                    lambda c: rules.eval_centroids(eval_vectors, c) if len(c) else set()))
                kept, out = self._split(kept, "OffDistribution", beam.FlatMap(_off_distribution, centroids, wanted))
                dropped.append(out)
        return kept, dropped, report

    @staticmethod
    def _split(pcoll, label, transform):
        results = pcoll | label >> transform.with_outputs(DROPPED, main="kept")
        return results.kept, results[DROPPED]


# -- writing: one shard per element -----------------------------------------------------------------------

def _tar_rows(source: str, expected) -> list[dict]:
    """Status rows of an input without a status parquet: one ``success`` row per tar sample."""
    rows = []
    for key, members in iter_tar_samples(source, expected=expected):
        meta = json_member(members)
        url = meta.get("url")
        rows.append({**{name: None for name in STATUS_SCHEMA.names}, "key": key,
                     "url": url if isinstance(url, str) else None, "caption": text_member(members, meta),
                     "status": "success"})
    return rows


class WriteShard(beam.DoFn):
    """``(name, {"source": [path], "dropped": [(key, reason, message)]})`` -> the shard's tar, status
    parquet and stats in ``out``; yields its manifest row as JSON (a damaged shard: ``{path, damaged}``)."""

    def __init__(self, out: str, digests: dict):
        self.out = out
        self.digests = digests

    def setup(self):
        self.counters = {name: wbeam.counter(STAGE, name) for name in ("in", "out", "dropped_damaged_shard")}
        self.counters.update({reason: wbeam.counter(STAGE, f"dropped_{reason}") for reason in REASONS})

    def process(self, item):
        name, grouped = item
        source = grouped["source"][0]
        drops = {key: (reason, message) for key, reason, message in grouped["dropped"]}
        tar_name = posixpath.basename(name)
        target = fileio.join(self.out, tar_name)
        started = time.time()
        try:
            row = rewrite_shard(source, target, set(drops), self.digests.get(source))
            table = _input_status(source)
            rows = table.to_pylist() if table is not None else _tar_rows(source, self.digests.get(source))
        except DamagedShard as exc:
            for path in (target, fileio.join(self.out, shard_stats_name(tar_name)), _status_path(target)):
                fileio.remove(path)
            self.counters["in"].inc()
            self.counters["dropped_damaged_shard"].inc()
            yield json.dumps({"path": tar_name, "source": name, "damaged": str(exc)})
            return
        schema = table.schema.remove_metadata() if table is not None else STATUS_SCHEMA
        reasons = Counter()
        for status_row in rows:
            hit = drops.get(status_row["key"]) if status_row["status"] == "success" else None
            if hit is not None:
                status_row["status"], status_row["error_message"] = hit
                reasons[hit[0]] += 1
        write_status(_status_path(target), rows, TarSummary(row["samples"], row["bytes"], row["sha256"]),
                     {"start_time": started}, schema=schema)
        self.counters["in"].inc(row["samples"] + row["removed"])
        self.counters["out"].inc(row["samples"])
        for reason, count in reasons.items():
            self.counters[reason].inc(count)
        yield json.dumps({**row, "rows": len(rows), "source": name, "reasons": dict(reasons)})


# -- the run ------------------------------------------------------------------------------------------------

def _shards(options: FilterOptions) -> tuple[list[str], list[str]]:
    paths = list_tars(options.shards)
    root = shards_root(options.shards)
    names = [shard_label(p, root) for p in paths]
    if len({posixpath.basename(n) for n in names}) != len(names):
        raise UserError(f"shards under {options.shards!r} share file names; filter writes them side by side")
    out = options.out
    if not fileio.is_remote(out) and os.path.abspath(out) in {os.path.abspath(os.path.dirname(p)) for p in paths}:
        raise UserError("--out must not be the folder the shards are read from")
    return paths, names


def filter_graph(pipeline, options: FilterOptions, paths: list[str], names: list[str], parts: dict,
                 eval_vectors: list[np.ndarray], work: str) -> None:
    digests = shard_digests(paths)
    shards = pipeline | "Shards" >> beam.Create(list(zip(paths, names, strict=True)))
    read = (shards | "Spread" >> beam.Reshuffle()
            | "ReadSamples" >> beam.ParDo(ReadSamples(options, parts, digests)).with_outputs(DROPPED, main="facts"))
    _, dropped, report = read.facts | "Rules" >> ApplyRules(options, eval_vectors)
    drops = ((read[DROPPED], *dropped) | "AllDropped" >> beam.Flatten()
             | "ByShard" >> beam.Map(lambda d: (d[0], tuple(d[1:]))))
    sources = shards | "SourceByShard" >> beam.Map(lambda item: (item[1], item[0]))
    _ = ({"source": sources, "dropped": drops} | "Join" >> beam.CoGroupByKey()
         | "WriteShard" >> beam.ParDo(WriteShard(options.out, digests))
         | "WriteRows" >> beam.io.WriteToText(fileio.join(work, "shards"), file_name_suffix=".jsonl"))
    if report:
        _ = (tuple(report) | "AllReport" >> beam.Flatten() | "ReportJson" >> beam.Map(json.dumps)
             | "WriteReport" >> beam.io.WriteToText(fileio.join(work, "report"), file_name_suffix=".jsonl"))
    else:
        _ = pipeline | "NoReport" >> beam.Create([]) | "WriteReport" >> beam.io.WriteToText(
            fileio.join(work, "report"), file_name_suffix=".jsonl")


def _clear_work(out: str) -> None:
    if not fileio.is_remote(out):
        shutil.rmtree(fileio.join(out, WORK_DIR), ignore_errors=True)


def _write_manifest(options: FilterOptions, rows: list[dict]) -> dict:
    source = read_manifest(options.shards) if shards_root(options.shards) else None
    members = (source or {}).get("members") or ["jpg", "txt", "json"]
    entries = [manifest_entry(r["path"], TarSummary(r["samples"], r["bytes"], r["sha256"]), rows=r["rows"])
               for r in rows]
    settings = {k: v for k, v in vars(options).items() if k not in ("out", "allow_partial")}
    return write_manifest(options.out, {
        "shards": entries, "total_samples": sum(e["samples"] for e in entries),
        "total_rows": sum(r["rows"] for r in rows), "total_bytes": sum(e["bytes"] for e in entries),
        "removed_samples": sum(r["removed"] for r in rows), "format": "webdataset", "members": members,
        "source": options.shards, "embeddings": options.embeddings, "settings": settings})


def _eval_vectors(options: FilterOptions) -> list[np.ndarray]:
    """Each --image-cluster-eval folder's image embeddings; a UserError when their width is not the set's."""
    found = [all_image_embeddings(path) for path in options.image_cluster_eval.values()]
    width = vector_dim(options.embeddings) if found else None
    for (name, path), vectors in zip(options.image_cluster_eval.items(), found, strict=True):
        if width is not None and vectors.shape[1] != width:
            raise UserError(f"--image-cluster-eval {name}={path}: embeddings of width {vectors.shape[1]}, the "
                            f"set's are {width} (embed both with the same model)")
    return found


def run_filter(options: FilterOptions, beam_args: list[str] | None = None) -> dict:
    """Filter ``options.shards`` into ``options.out``; returns the stats record written to ``OUT/stats.json``."""
    options.validate()
    partial = require_finished([p for p in (options.shards, options.embeddings) if p],
                               allow_partial=options.allow_partial)
    paths, names = _shards(options)
    parts = parts_by_shard(options.embeddings) if options.embeddings else {}
    eval_vectors = _eval_vectors(options)
    with StageRun(STAGE, options.out, settings=options, partial_inputs=partial) as stage:
        _clear_work(options.out)
        work = fileio.join(options.out, WORK_DIR)
        pipeline = stage.pipeline(beam_args)
        filter_graph(pipeline, options, paths, names, parts, eval_vectors, work)
        stage.run(pipeline)
        rows = sorted(fileio.read_json_lines(fileio.join(work, "shards"), what="filter output"),
                      key=lambda r: r["path"])
        damaged = [{"shard": r["source"], "error": r["damaged"]} for r in rows if "damaged" in r]
        rows = [r for r in rows if "damaged" not in r]
        reasons = Counter()
        for row in rows:
            reasons.update(row["reasons"])
        kept = sum(r["samples"] for r in rows)
        manifest = _write_manifest(options, rows)
        report = list(fileio.read_json_lines(fileio.join(work, "report"), what="filter report"))
        html_path = fileio.join(options.out, "filter.html")
        write_report(html_path, options, report, dict(zip(names, paths, strict=True)))
        _clear_work(options.out)
        dropped = {reason: reasons.get(reason, 0) for reason in REASONS}
        dropped["damaged_shard"] = len(damaged)
        return stage.finish(records_in=kept + sum(reasons.values()) + len(damaged), records_out=kept,
                            dropped=dropped, shards=len(rows), damaged_shards=damaged,
                            outputs={"shards": options.out, "manifest": manifest_path(options.out),
                                     "report": html_path},
                            bytes=manifest["total_bytes"])

