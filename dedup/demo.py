"""``wit demo``'s overlap step: scan the downloaded shards against the sample eval set, check that the
copies the sample web planted are what gets flagged, and split the train step's zero-shot predictions
into All / Clean / Overlap accuracy."""

from __future__ import annotations

import json
import os
import posixpath
from urllib.parse import urlparse

from wit_pipeline.errors import UserError
from wit_pipeline.shardset import iter_tar_samples

from .accuracy import overlap_accuracy
from .evalsets import json_member, list_tars
from .report import format_table, read_report
from .scan import OverlapScanOptions, run_overlap_scan

STEP = "overlap"


def demo_step(ctx) -> None:
    """Scan, then report the overlap table, the planted copies found, and the accuracy split."""
    if "shards" not in ctx.outputs:
        ctx.report(STEP, "skipped", "no shards (the download step did not run)")
        return
    out = ctx.path("overlap")
    report = scan_sample_eval_set(ctx, out)
    ctx.report(STEP, "planted copies", planted_copies_line(ctx.files.eval_truth, ctx.outputs["shards"], report))
    ctx.report(STEP, "report", os.path.join(out, "overlap.html"))
    if "predictions" in ctx.outputs:  # the train step's zero-shot predictions on the same eval set
        report_accuracy(ctx, out)


def scan_sample_eval_set(ctx, out: str) -> dict:
    options = OverlapScanOptions(shards=ctx.outputs["shards"], eval={"sample": ctx.files.eval_dir}, out=out)
    run_overlap_scan(options, ctx.beam_args)
    ctx.outputs["overlap"] = out
    report = read_report(out)
    for line in format_table(report).splitlines():
        ctx.report(STEP, "table", line)
    return report


def image_name(url) -> str:
    """The sample web serves one image under several URLs (/img/N.jpg, /media/img/N.jpg, ?w=160):
    its file name is what identifies it."""
    return posixpath.basename(urlparse(str(url or "")).path)


def planted_copies_line(truth_path: str, shards: str, report: dict) -> str:
    """How many planted copies the web has, the shards hold, and the scan flagged (and what else it flagged)."""
    with open(truth_path) as handle:
        planted = {image_name(p["url"]): p["eval_id"] for p in json.load(handle).get("planted", [])}
    in_shards = set()
    for shard in list_tars(shards):
        for _, members in iter_tar_samples(shard):
            name = image_name(json_member(members).get("url"))
            if name in planted:
                in_shards.add((planted[name], name))
    found = {(p["eval_id"], image_name(p["url"])) for p in report["eval_sets"]["sample"]["pairs"]}
    return (f"{len(planted)} on the web, {len(in_shards)} in the shards, {len(found & in_shards)} flagged; "
            f"flagged but not planted: {len(found - in_shards)}")


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1f}%"


def report_accuracy(ctx, out: str) -> None:
    try:
        rows = overlap_accuracy(out, [ctx.outputs["predictions"]])["eval_sets"]
    except UserError as exc:
        ctx.report(STEP, "accuracy", f"not computed: {exc}")
        return
    for r in rows:
        ctx.report(STEP, "zero-shot all / clean / overlap",
                   f"{_percent(r['acc_all'])} / {_percent(r['acc_clean'])} / {_percent(r['acc_overlap'])} "
                   f"({r['overlap']} of {r['examples']} overlapping; accuracy.md)")
