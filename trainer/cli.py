"""``wit train`` and ``wit eval zeroshot|linear-probe`` (also ``torchrun -m trainer``, see ``__main__.py``).

Thin wrappers: flags become a ``TrainConfig`` for ``train.train``, or the
arguments of ``zeroshot.run_zeroshot`` / ``linear_probe.run_linear_probe``.
Torch is imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os

MODELS = ("tiny", "vit-s-32", "vit-b-32", "vit-b-16", "vit-l-14")   # model.MODEL_CONFIGS, without importing torch


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    p = parser
    p.add_argument("--shards", required=True, metavar="DIR_OR_PATTERN",
                   help="shard directory (uses its manifest.json), brace pattern DIR/{00000..00099}.tar, "
                   "object-store prefix or pattern (gs://b/shards, s3://...; read through Beam's filesystems), "
                   "http(s) URL pattern, or 'pipe:COMMAND' (e.g. pipe:aws s3 cp s3://b/{00000..00099}.tar -)")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory: checkpoints/, metrics.jsonl, ...")
    p.add_argument("--model", default="vit-b-32", choices=MODELS, help="model shape (default vit-b-32)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N",
                   help="pairs per process per micro-batch (default 256); global batch = N x processes x --accum")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, metavar="N", help="optimiser steps to train")
    length.add_argument("--samples", type=int, metavar="N",
                        help="samples to see (global); default: one epoch by the shard manifest")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4)")
    p.add_argument("--warmup", type=int, metavar="STEPS", help="linear warmup steps (default 5%% of the run, max 10000)")
    p.add_argument("--weight-decay", type=float, default=0.2, help="AdamW decay on weights (default 0.2)")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.98)
    p.add_argument("--eps", type=float, default=1e-6)
    p.add_argument("--grad-clip", type=float, default=1.0, metavar="NORM", help="max gradient norm, 0 = off (default 1)")
    p.add_argument("--precision", choices=("bf16", "fp16", "fp32"),
                   help="autocast precision (default bf16 on GPU, fp32 on CPU)")
    p.add_argument("--accum", type=int, default=1, metavar="K",
                   help="gradient accumulation: K micro-batches per step, negatives from all of them (default 1)")
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), metavar="N",
                   help="data-loader worker processes per process (default min(4, cores))")
    p.add_argument("--shuffle-buffer", type=int, default=2000, metavar="N", help="samples (default 2000)")
    p.add_argument("--shards-per-round", type=int, default=4, metavar="N",
                   help="shards each data worker interleaves at a time (default 4)")
    p.add_argument("--no-resample", dest="resample", action="store_false",
                   help="split the shards by node and worker and read each once per epoch, "
                   "instead of drawing shards with replacement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=1000, metavar="STEPS", help="checkpoint interval (default 1000)")
    p.add_argument("--keep", type=int, default=2, metavar="N", help="checkpoints to keep (default 2)")
    p.add_argument("--log-every", type=int, default=10, metavar="STEPS", help="metrics interval (default 10)")
    p.add_argument("--eval", action="extend", nargs="+", default=[], metavar="NAME=PATH",
                   help="ImageFolder(s) for zero-shot eval during training (split across ranks)")
    p.add_argument("--eval-every", type=int, metavar="STEPS", help="zero-shot interval (default --save-every)")
    p.add_argument("--templates", metavar="FILE", help="prompt templates for --eval, one per line with {}")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--blocklist", metavar="FILE", help="sample keys to skip: wit overlap's overlap.json or one per line")
    p.add_argument("--tokenizer", metavar="FILE", help="tokenizer.json to use instead of training a BPE")
    p.add_argument("--vocab-size", type=int, metavar="N", help="BPE vocabulary to train (default: the model's)")
    p.add_argument("--tokenizer-captions", type=int, default=100_000, metavar="N",
                   help="captions read to train the BPE (default 100000)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda:LOCAL_RANK when available)")


def config_from_args(args: argparse.Namespace):
    from .train import TrainConfig

    return TrainConfig(
        shards=args.shards, out=args.out, model=args.model, batch_size=args.batch_size, steps=args.steps,
        samples=args.samples, lr=args.lr, warmup=args.warmup, weight_decay=args.weight_decay, beta1=args.beta1,
        beta2=args.beta2, eps=args.eps, grad_clip=args.grad_clip or None, precision=args.precision,
        accum=args.accum, grad_checkpointing=args.grad_checkpointing, compile=args.compile, workers=args.workers,
        shuffle_buffer=args.shuffle_buffer, shards_per_round=args.shards_per_round, resample=args.resample,
        seed=args.seed, save_every=args.save_every, keep=args.keep, log_every=args.log_every, eval=args.eval,
        eval_every=args.eval_every, templates=args.templates, resume=args.resume, blocklist=args.blocklist,
        tokenizer=args.tokenizer, vocab_size=args.vocab_size, tokenizer_captions=args.tokenizer_captions,
        device=args.device)


def cmd_train(args: argparse.Namespace) -> int:
    from .loss import world
    from .train import train

    if getattr(args, "verbose", 0) <= 0:
        logging.getLogger("trainer").setLevel(logging.INFO)   # step lines when no progress bar is shown
    result = train(config_from_args(args))
    if world()[0] == 0:
        losses = (f"loss {result.first_loss:.4f} -> {result.last_loss:.4f}"
                  if result.first_loss is not None and result.last_loss is not None else "no steps run")
        print(f"wit train: {result.steps} steps, {losses}; checkpoint {result.checkpoint}")
        for name, record in result.evals.items():
            print(f"  zero-shot {name}: top1 {record['top1']:.4f} top5 {record['top5']:.4f} (n={record['n']})")
    return 0


def _cmd_zeroshot(args: argparse.Namespace) -> int:
    from .zeroshot import run_zeroshot

    metrics = run_zeroshot(args.checkpoint, args.eval, args.out, templates=args.templates, device=args.device,
                           batch_size=args.batch_size)
    print(f"wit eval zeroshot: top1 {metrics['top1']:.4f} top5 {metrics['top5']:.4f} on {metrics['n']} images "
          f"({metrics['classes']} classes, chance {metrics['chance']:.4f}); wrote {args.out}/metrics.json and "
          f"{args.out}/predictions.jsonl")
    return 0


def _cmd_linear_probe(args: argparse.Namespace) -> int:
    from .linear_probe import run_linear_probe

    metrics = run_linear_probe(args.checkpoint, args.train, args.test, device=args.device)
    print(f"wit eval linear-probe: top1 {metrics['top1']:.4f} on {metrics['test_images']} test images "
          f"({metrics['classes']} classes, chance {metrics['chance']:.4f}, L2 penalty {metrics['penalty']:g})")
    if args.out:
        from wit_pipeline.fileio import write_json_atomic

        write_json_atomic(os.path.join(args.out, "metrics.json"), metrics)
    else:
        print(json.dumps({k: v for k, v in metrics.items() if k != "validation"}, indent=2))
    return 0


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="train a CLIP model on shards (CPU, one GPU, or torchrun -m trainer for many)",
        description="Train a CLIP model (ViT image encoder, causal text transformer, symmetric contrastive loss) "
        "on WebDataset shards. Under torchrun use 'torchrun --nproc_per_node N -m trainer' with the same flags.")
    add_train_arguments(train)
    train.set_defaults(func=cmd_train)

    evaluate = subparsers.add_parser("eval", help="evaluate a checkpoint: zero-shot or linear probe",
                                     description="Evaluate a trained checkpoint.")
    kinds = evaluate.add_subparsers(dest="eval_command", metavar="KIND", required=True)
    zeroshot = kinds.add_parser(
        "zeroshot", help="zero-shot classification of an ImageFolder with prompt templates",
        description="Classify an ImageFolder (class names = folder names) by prompt-ensembled text embeddings; "
        "writes DIR/metrics.json (top1, top5) and DIR/predictions.jsonl (eval_id, label, predicted, correct).")
    zeroshot.add_argument("--checkpoint", required=True, metavar="FILE", help="a step-*.pt file or a run directory")
    zeroshot.add_argument("--eval", required=True, metavar="PATH", help="ImageFolder root")
    zeroshot.add_argument("--templates", metavar="FILE", help="one template per line with {} (default: built-in)")
    zeroshot.add_argument("--out", required=True, metavar="DIR")
    zeroshot.add_argument("--batch-size", type=int, default=256)
    zeroshot.add_argument("--device")
    zeroshot.set_defaults(func=_cmd_zeroshot)
    probe = kinds.add_parser(
        "linear-probe", help="logistic regression on frozen image features",
        description="Fit a logistic-regression classifier on the frozen image features of --train and score --test.")
    probe.add_argument("--checkpoint", required=True, metavar="FILE", help="a step-*.pt file or a run directory")
    probe.add_argument("--train", required=True, metavar="PATH", help="ImageFolder to fit on")
    probe.add_argument("--test", required=True, metavar="PATH", help="ImageFolder to score (same class folders)")
    probe.add_argument("--out", metavar="DIR", help="also write DIR/metrics.json")
    probe.add_argument("--device")
    probe.set_defaults(func=_cmd_linear_probe)


DEMO_TRAIN_STEPS = 300


def sample_web_templates() -> list[str]:
    """Prompt templates in the sample web's own caption forms for its eval classes (the shape's colour),
    one per shape and background colour (both marginalised)."""
    from wit_pipeline.sampleweb.draw import COLOURS, SHAPES
    from wit_pipeline.sampleweb.site import ENGLISH_TEMPLATES

    return [form.format(c="{}", s=shape, b=background) for form in ENGLISH_TEMPLATES
            for shape in SHAPES for background in COLOURS]


def step_train(ctx) -> None:
    """Demo step: train the tiny model briefly on the downloaded shards, then zero-shot on the sample eval set."""
    if "shards" not in ctx.outputs:
        ctx.report("train", "skipped", "no shards (the download step did not run)")
        return
    from .data import resolve_shards
    from .train import TrainConfig, train
    from .zeroshot import run_zeroshot

    shards = ctx.outputs["shards"]
    out = ctx.path("train")
    eval_dir = getattr(ctx.files, "eval_dir", None)
    workers = min(2, len(resolve_shards(shards).urls))
    result = train(TrainConfig(shards=shards, out=out, model="tiny", batch_size=32, steps=DEMO_TRAIN_STEPS,
                               lr=2e-3, warmup=15, workers=workers, save_every=DEMO_TRAIN_STEPS, log_every=25,
                               seed=ctx.seed))
    ctx.outputs["checkpoint"] = result.checkpoint
    ctx.report("train", "loss", f"{result.first_loss:.3f} -> {result.last_loss:.3f} "
               f"({result.steps} steps of 32, tiny model)")
    ctx.report("train", "checkpoint", result.checkpoint)
    if eval_dir and os.path.isdir(eval_dir):
        zeroshot_out = os.path.join(out, "zeroshot")
        templates = os.path.join(out, "templates.txt")
        with open(templates, "w", encoding="utf-8") as handle:
            handle.write("\n".join(sample_web_templates()) + "\n")
        metrics = run_zeroshot(result.checkpoint, eval_dir, zeroshot_out, templates=templates)
        ctx.outputs["predictions"] = os.path.join(zeroshot_out, "predictions.jsonl")
        ctx.report("train", "zero-shot top1", f"{metrics['top1']:.3f} on {metrics['n']} eval images "
                   f"(chance {metrics['chance']:.3f})")
        ctx.report("train", "predictions", ctx.outputs["predictions"])
