"""``wit overlap scan|filter|accuracy``: thin wrappers over ``scan_overlap``, ``filter_shards`` and
``overlap_accuracy``."""

from __future__ import annotations

import argparse

from wit_pipeline.errors import UserError


def _threshold_args(values: list[str] | None) -> tuple[float | None, dict[str, float]]:
    """``--threshold T`` (every set) and ``--threshold NAME=T`` (one set), in any mix."""
    default, per_set = None, {}
    for value in values or []:
        name, _, number = value.rpartition("=")
        try:
            threshold = float(number)
        except ValueError:
            raise UserError(f"--threshold {value!r}: expected T or NAME=T with T a number in (0, 1]") from None
        if name:
            per_set[name] = threshold
        else:
            default = threshold
    return default, per_set


def _eval_args(values: list[str]) -> dict[str, str]:
    evals: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--eval {value!r}: expected NAME=PATH")
        if name in evals:
            raise UserError(f"--eval {name} given twice")
        evals[name] = path
    return evals


def _cmd_scan(args: argparse.Namespace) -> int:
    from .report import format_table
    from .scan import DEFAULT_THRESHOLD, ScanSettings, scan_overlap

    default, per_set = _threshold_args(args.threshold)
    settings = ScanSettings(threshold=default if default is not None else DEFAULT_THRESHOLD, thresholds=per_set,
                            text_threshold=args.text_threshold)
    result = scan_overlap(args.shards, _eval_args(args.eval), args.out, settings, beam_args=args.beam_args,
                          keep_work=args.keep_work)
    print(format_table(result))
    print(f"wrote overlap.json, overlap.md, overlap.html and overlap.png to {args.out}")
    return 0


def _cmd_filter(args: argparse.Namespace) -> int:
    from .filter import filter_shards

    manifest = filter_shards(args.shards, args.overlap, args.out, beam_args=args.beam_args)
    print(f"wrote {len(manifest['shards'])} shards with {manifest['total_samples']} samples to {args.out} "
          f"({manifest['removed_samples']} flagged samples removed; see removed.jsonl)")
    return 0


def _cmd_accuracy(args: argparse.Namespace) -> int:
    from .accuracy import markdown, overlap_accuracy

    result = overlap_accuracy(args.overlap, args.predictions, args.out)
    print(markdown(result))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "overlap",
        help="near-duplicates of eval examples in the training shards, and accuracy on clean/overlap splits",
        description="MinHash (datasketch) near-duplicate checks of training shards against eval sets, as in "
        "the CLIP paper's overlap analysis: 'scan' finds and reports them, 'filter' writes shards without them, "
        "'accuracy' splits zero-shot predictions into All / Clean / Overlap.",
    )
    commands = parser.add_subparsers(dest="overlap_command", metavar="COMMAND", parser_class=type(parser))
    commands.required = True

    scan = commands.add_parser(
        "scan", help="find training samples that near-duplicate eval examples (a Beam job)",
        description="Sign every eval example (region hashes of the image, character 5-grams of its text), index "
        "the eval sets with MinHash LSH, then check every training sample in a Beam job and confirm each "
        "candidate with the exact Jaccard similarity. Writes overlap.json, overlap.md, overlap.html (thumbnails "
        "of each pair, the pairs just above and below each threshold) and overlap.png to --out.",
        epilog="Beam pipeline options (--runner, --direct_num_workers, ...) may follow.")
    scan.add_argument("--shards", required=True, metavar="DIR_OR_PATTERN",
                      help="training shards: a folder of NNNNN.tar (its manifest.json if present), a .tar or a glob")
    scan.add_argument("--eval", action="append", required=True, metavar="NAME=PATH",
                      help="an eval set: an ImageFolder folder (class/xxx.jpg), WebDataset tars (a .tar, a glob or "
                      "a folder of .tar), or a .csv/.jsonl of image paths with optional text and label; repeatable")
    scan.add_argument("--out", required=True, metavar="DIR", help="where the reports go")
    scan.add_argument("--threshold", action="append", metavar="T|NAME=T",
                      help="image similarity (exact Jaccard of region-hash sets) at which a pair is flagged: T for "
                      "every eval set (default 0.15), NAME=T for one; repeatable")
    scan.add_argument("--text-threshold", type=float, default=0.7, metavar="T",
                      help="text similarity (Jaccard of character 5-grams) at which a caption/eval-text pair is "
                      "flagged (default 0.7); texts under 16 characters are not compared")
    scan.add_argument("--keep-work", action="store_true", help="keep OUT/_work (the eval index and the job's output)")
    scan.set_defaults(func=_cmd_scan, beam=True)

    filt = commands.add_parser(
        "filter", help="write the shards again without the flagged training samples (a Beam job)",
        description="Rewrite every shard without the samples flagged in OVERLAP/overlap.json (shards with none "
        "are copied as they are), with manifest.json and removed.jsonl, so training can use a decontaminated set.",
        epilog="Beam pipeline options may follow.")
    filt.add_argument("--shards", required=True, metavar="DIR", help="the shards that were scanned")
    filt.add_argument("--overlap", required=True, metavar="DIR", help="the scan's output folder")
    filt.add_argument("--out", required=True, metavar="DIR", help="where the filtered shards go")
    filt.set_defaults(func=_cmd_filter, beam=True)

    acc = commands.add_parser(
        "accuracy", help="zero-shot accuracy on All / Clean / Overlap eval examples, with significance tests",
        description="Split per-example predictions (predictions.jsonl rows: eval_id, label, predicted, correct) "
        "by the overlap report: accuracy on All, Clean and Overlap, All - Clean, 99.5%% Clopper-Pearson "
        "intervals, and a one-tailed binomial test (Clean accuracy as the null, the Overlap subset as the "
        "sample) with Bonferroni correction across eval sets. Writes accuracy.json and accuracy.md.")
    acc.add_argument("--overlap", required=True, metavar="DIR", help="the scan's output folder")
    acc.add_argument("--predictions", required=True, action="append", metavar="FILE|NAME=FILE",
                     help="predictions.jsonl; rows name their eval set in 'eval_set', or give NAME=FILE; repeatable")
    acc.add_argument("--out", metavar="DIR", help="where accuracy.json/md go (default: the --overlap folder)")
    acc.set_defaults(func=_cmd_accuracy, beam=False)


# --------------------------------------------------------------------------- wit demo


def demo_step(ctx) -> None:
    """``wit demo``: scan the downloaded shards against the sample eval set and check the planted copies."""
    import json
    import os
    import posixpath
    from urllib.parse import urlparse

    from wit_pipeline.tario import iter_tar_samples

    from .evalsets import json_member, list_tars
    from .report import format_table
    from .scan import ScanSettings, scan_overlap

    if "shards" not in ctx.outputs:
        ctx.report("overlap", "skipped", "no shards (the download step did not run)")
        return
    out = ctx.path("overlap")
    result = scan_overlap(ctx.outputs["shards"], {"sample": ctx.files.eval_dir}, out, ScanSettings(),
                          beam_args=ctx.beam_args)
    ctx.outputs["overlap"] = out
    for line in format_table(result).splitlines():
        ctx.report("overlap", "table", line)
    with open(ctx.files.eval_truth) as handle:
        truth = json.load(handle)

    def image_name(url) -> str:
        # The sample web serves one image under several URLs (/img/N.jpg, /media/img/N.jpg, ?w=160):
        # its file name is what identifies it.
        return posixpath.basename(urlparse(str(url or "")).path)

    planted = {image_name(p["url"]): p["eval_id"] for p in truth.get("planted", [])}
    in_shards = set()
    for shard in list_tars(ctx.outputs["shards"]):
        for _, members in iter_tar_samples(shard):
            name = image_name(json_member(members).get("url"))
            if name in planted:
                in_shards.add((planted[name], name))
    found = {(p["eval_id"], image_name(p["url"])) for p in result["eval_sets"]["sample"]["pairs"]}
    ctx.report("overlap", "planted copies",
               f"{len(planted)} on the web, {len(in_shards)} in the shards, {len(found & in_shards)} flagged; "
               f"flagged but not planted: {len(found - in_shards)}")
    ctx.report("overlap", "report", os.path.join(out, "overlap.html"))
    if "predictions" in ctx.outputs:  # the train step's zero-shot predictions on the same eval set
        from .accuracy import overlap_accuracy

        try:
            rows = overlap_accuracy(out, [ctx.outputs["predictions"]])["eval_sets"]
        except UserError as exc:
            ctx.report("overlap", "accuracy", f"not computed: {exc}")
            return
        for r in rows:
            fmt = lambda v: "-" if v is None else f"{v:.1f}%"  # noqa: E731
            ctx.report("overlap", "zero-shot all / clean / overlap",
                       f"{fmt(r['acc_all'])} / {fmt(r['acc_clean'])} / {fmt(r['acc_overlap'])} "
                       f"({r['overlap']} of {r['examples']} overlapping; accuracy.md)")
