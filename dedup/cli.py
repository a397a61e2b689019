"""``wit overlap scan|filter|accuracy``: the command line of ``run_overlap_scan`` (scan.py),
``run_overlap_filter`` (filter.py) and ``overlap_accuracy`` (accuracy.py).

Each subcommand's flags, defaults and help come from its options class (``wit_pipeline.options``).
"""

from __future__ import annotations

import argparse

from wit_pipeline.options import add_options, from_args

from .accuracy import AccuracyOptions, markdown, overlap_accuracy
from .filter import OverlapFilterOptions, run_overlap_filter
from .report import format_table, read_report
from .scan import OverlapScanOptions, run_overlap_scan, threshold_overrides


def _cmd_scan(args: argparse.Namespace) -> int:
    options = from_args(OverlapScanOptions, args, **threshold_overrides(args.threshold_flags))
    run_overlap_scan(options, args.beam_args)
    print(format_table(read_report(options.out)))
    print(f"wrote overlap.json, overlap.md, overlap.html and overlap.png to {options.out}")
    return 0


def _cmd_filter(args: argparse.Namespace) -> int:
    stats = run_overlap_filter(from_args(OverlapFilterOptions, args), args.beam_args)
    print(f"wrote {stats['shards']} shards with {stats['out']} samples to {args.out} "
          f"({stats['dropped']['overlap']} flagged samples removed; see removed.jsonl)")
    return 0


def _cmd_accuracy(args: argparse.Namespace) -> int:
    options = from_args(AccuracyOptions, args)
    print(markdown(overlap_accuracy(options.overlap, options.predictions, options.out)))
    return 0


SCAN = dict(
    help="find training samples that near-duplicate eval examples (a Beam job)",
    description="Sign every eval example (region hashes of the image, character 5-grams of its text), index "
    "the eval sets with MinHash LSH, then check every training sample in a Beam job and confirm each "
    "candidate with the exact Jaccard similarity. Writes overlap.json, overlap.md, overlap.html (thumbnails "
    "of each pair, the pairs just above and below each threshold) and overlap.png to --out.",
    epilog="Beam pipeline options (--runner, --direct_num_workers, ...) may follow.")
FILTER = dict(
    help="write the shards again without the flagged training samples (a Beam job)",
    description="Rewrite every shard without the samples flagged in OVERLAP/overlap.json (shards with none "
    "are copied as they are), with manifest.json and removed.jsonl, so training can use a decontaminated set.",
    epilog="Beam pipeline options may follow.")
ACCURACY = dict(
    help="zero-shot accuracy on All / Clean / Overlap eval examples, with significance tests",
    description="Split per-example predictions (predictions.jsonl rows: eval_id, label, predicted, correct) "
    "by the overlap report: accuracy on All, Clean and Overlap, All - Clean, 99.5% Clopper-Pearson "
    "intervals, and a one-tailed binomial test (Clean accuracy as the null, the Overlap subset as the "
    "sample) with Bonferroni correction across eval sets. Writes accuracy.json and accuracy.md.")

# (name, options class: its flags, command, takes Beam options, parser texts)
COMMANDS = (
    ("scan", OverlapScanOptions, _cmd_scan, True, SCAN),
    ("filter", OverlapFilterOptions, _cmd_filter, True, FILTER),
    ("accuracy", AccuracyOptions, _cmd_accuracy, False, ACCURACY),
)


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
    for name, options_class, func, beam, texts in COMMANDS:
        command = commands.add_parser(name, **texts)
        add_options(command, options_class)
        command.set_defaults(func=func, beam=beam)
