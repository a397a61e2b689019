"""``wit train`` and ``wit eval zeroshot|linear-probe`` (also ``torchrun -m trainer``, see ``__main__.py``).

Thin wrappers: each command's flags are generated from its options class in ``options.py``
(``TrainOptions``, ``ZeroShotOptions``, ``LinearProbeOptions``) and become the options of
``train.run_train``, ``zeroshot.run_zeroshot`` or ``linear_probe.run_linear_probe``. The demo step is in ``demo.py``.
"""

from __future__ import annotations

import argparse
import json
import logging

from wit_pipeline.options import add_options, from_args

from .options import LinearProbeOptions, TrainOptions, ZeroShotOptions

# torch is imported inside the commands only: `wit --help` and every other command start without it.


def cmd_train(args: argparse.Namespace) -> int:
    options = from_args(TrainOptions, args)
    options.validate()   # a bad combination is a one-line error before torch loads and the process group forms
    from .loss import world
    from .train import run_train

    if getattr(args, "verbose", 0) <= 0:
        logging.getLogger("trainer").setLevel(logging.INFO)   # step lines when no progress bar is shown
    result = run_train(options)
    if world()[0] == 0:
        losses = (f"loss {result.first_loss:.4f} -> {result.last_loss:.4f}"
                  if result.first_loss is not None and result.last_loss is not None else "no steps run")
        print(f"wit train: {result.steps} steps, {losses}; checkpoint {result.checkpoint}")
        for name, record in result.evals.items():
            print(f"  zero-shot {name}: top1 {record['top1']:.4f} top5 {record['top5']:.4f} (n={record['n']}, "
                  f"{record['unreadable']} unreadable images left out)")
    return 0


def _cmd_zeroshot(args: argparse.Namespace) -> int:
    from .zeroshot import run_zeroshot

    options = from_args(ZeroShotOptions, args)
    metrics = run_zeroshot(options)
    print(f"wit eval zeroshot: top1 {metrics['top1']:.4f} top5 {metrics['top5']:.4f} on {metrics['n']} images "
          f"({metrics['unreadable_images']} unreadable left out; {metrics['classes']} classes, chance "
          f"{metrics['chance']:.4f}); wrote {options.out}/metrics.json and "
          f"{options.out}/predictions.jsonl")
    return 0


def _cmd_linear_probe(args: argparse.Namespace) -> int:
    from .linear_probe import run_linear_probe

    options = from_args(LinearProbeOptions, args)
    metrics = run_linear_probe(options)
    print(f"wit eval linear-probe: top1 {metrics['top1']:.4f} on {metrics['test_images']} test images "
          f"({len(metrics['unreadable'])} unreadable left out; {metrics['classes']} classes, "
          f"chance {metrics['chance']:.4f}, L2 penalty {metrics['penalty']:g})")
    if not options.out:
        print(json.dumps({k: v for k, v in metrics.items() if k != "validation"}, indent=2))
    return 0


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train a CLIP model on shards (CPU, one GPU, or torchrun -m trainer for many)",
        description="Train a CLIP model (ViT image encoder, causal text transformer, symmetric contrastive loss) "
        "on WebDataset shards. Under torchrun use 'torchrun --nproc_per_node N -m trainer' with the same flags.")
    add_options(train, TrainOptions)
    train.set_defaults(func=cmd_train)

    evaluate = subparsers.add_parser("eval", help="evaluate a checkpoint: zero-shot or linear probe",
                                     description="Evaluate a trained checkpoint.")
    kinds = evaluate.add_subparsers(dest="eval_command", metavar="KIND", required=True)
    zeroshot = kinds.add_parser(
        "zeroshot", help="zero-shot classification of an ImageFolder with prompt templates",
        description="Classify an ImageFolder (class names = folder names) by prompt-ensembled text embeddings; "
        "writes DIR/metrics.json (top1, top5) and DIR/predictions.jsonl (eval_id, label, predicted, correct).")
    add_options(zeroshot, ZeroShotOptions)
    zeroshot.set_defaults(func=_cmd_zeroshot)
    probe = kinds.add_parser(
        "linear-probe", help="logistic regression on frozen image features",
        description="Fit a logistic-regression classifier on the frozen image features of --train and score --test.")
    add_options(probe, LinearProbeOptions)
    probe.set_defaults(func=_cmd_linear_probe)

