"""``TrainOptions``: every ``wit train`` flag, its default and its help, in one place (no torch).

``wit train`` and ``torchrun -m trainer`` generate their flags from it (``add_options``) and build it
with ``from_args``; library callers construct it directly. ``validate`` holds the checks that span
fields or that a library caller could get wrong; ``run_train`` calls it before any set-up.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass

from wit_pipeline.errors import UserError
from wit_pipeline.options import check_values, option

from .model_configs import MODEL_CONFIGS

PRECISIONS = ("bf16", "fp16", "fp32")
MIN_VOCAB = 258   # the BPE's 256 bytes and its two special tokens
DEVICE_FORM = re.compile(r"cpu|mps|cuda(:\d+)?")
DEVICE_FORMS = "cpu, cuda, cuda:N or mps"


def parse_device(text: str) -> str:
    """``--device``: one of the forms torch takes (``cpu``, ``cuda``, ``cuda:N``, ``mps``), checked as parsed."""
    if not DEVICE_FORM.fullmatch(text):
        raise argparse.ArgumentTypeError(f"--device {text!r}: use {DEVICE_FORMS}")
    return text


def check_device(device: str | None) -> None:
    """A one-line ``UserError`` when ``device`` is malformed or not present on this machine (imports torch)."""
    if device is None:
        return
    if not DEVICE_FORM.fullmatch(device):
        raise UserError(f"--device {device!r}: use {DEVICE_FORMS}")
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            found = f"{count} CUDA device(s)" if count else "no CUDA device (torch.cuda.is_available() is False)"
            raise UserError(f"--device {device}: this machine has {found}; use --device cpu or leave --device out")
    elif device == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: MPS is not available on this machine; use --device cpu or leave --device out")

def _zero_is_off(norm: float) -> float | None:
    return norm or None


@dataclass
class TrainOptions:
    shards: str = option(
        metavar="DIR_OR_PATTERN",
        help="shard directory (uses its manifest.json), brace pattern DIR/{00000..00099}.tar, "
        "object-store prefix or pattern (gs://b/shards, s3://...; read through Beam's filesystems), "
        "http(s) URL pattern, or 'pipe:COMMAND' (e.g. pipe:aws s3 cp s3://b/{00000..00099}.tar -)")
    out: str = option(metavar="DIR", help="run directory: checkpoints/, metrics.jsonl, ...")
    model: str = option("vit-b-32", choices=tuple(MODEL_CONFIGS), help="model shape (default vit-b-32)")
    batch_size: int = option(
        256, metavar="N", minimum=1,
        help="pairs per process per micro-batch (default 256); global batch = N x processes x --accum")
    # --steps and --samples exclude each other (validate); neither: one epoch by the manifest.
    steps: int | None = option(None, metavar="N", minimum=1, help="optimiser steps to train")
    samples: int | None = option(None, metavar="N", minimum=1,
                                 help="samples to see (global); default: one epoch by the shard manifest")
    # --epochs excludes --steps and --samples (validate): the run ends when the last epoch's data does.
    epochs: int | None = option(None, metavar="N", minimum=1,
                                help="passes over every shard, each without replacement (implies --no-resample); "
                                "the run ends when the last one's data ends; writes OUT/balance/epoch-NNNN.json")
    balance_cap: int | None = option(None, metavar="T", minimum=1,
                                     help="MetaCLIP balancing in the loader (needs --epochs): each epoch keeps a "
                                     "sample with probability 1 - prod(1 - T / max(count_q, T)) over its queries")
    balance_counts: str | None = option(None, metavar="FILE",
                                        help="wit select's query_counts.parquet (its 'matched' column) for "
                                        "--balance-cap; default: counted from the shards' json (cached in OUT)")
    caption_keys: str | None = option(None, metavar="SPEC",
                                      help="draw each use's caption among fields, e.g. txt=0.7,json:recaption=0.3 "
                                      "(a missing field falls back to txt, counted)")
    lr: float = option(5e-4, above=0, maximum=10, help="peak learning rate (default 5e-4)")
    warmup: int | None = option(None, metavar="STEPS", minimum=0,
                                help="linear warmup steps (default 5%% of the run, max 10000)")
    weight_decay: float = option(0.2, minimum=0, maximum=10, help="AdamW decay on weights (default 0.2)")
    beta1: float = option(0.9, minimum=0, below=1, help="AdamW beta1, in [0, 1) (default 0.9)")
    beta2: float = option(0.98, minimum=0, below=1, help="AdamW beta2, in [0, 1) (default 0.98)")
    eps: float = option(1e-6, above=0, maximum=1, help="AdamW epsilon (default 1e-6)")
    grad_clip: float | None = option(1.0, metavar="NORM", minimum=0, convert=_zero_is_off,
                                     help="max gradient norm, 0 = off (default 1)")
    precision: str | None = option(None, choices=PRECISIONS,
                                   help="autocast precision (default bf16 on GPU, fp32 on CPU)")
    accum: int = option(1, metavar="K", minimum=1,
                        help="gradient accumulation: K micro-batches per step, negatives from all of them (default 1)")
    grad_checkpointing: bool = option(False, help="recompute activations in backward")
    compile: bool = option(False, help="torch.compile the model")
    workers: int = option(min(4, os.cpu_count() or 1), metavar="N", minimum=0,
                          help="data-loader worker processes per process (default min(4, cores))")
    shuffle_buffer: int = option(2000, metavar="N", minimum=1, help="samples (default 2000)")
    shards_per_round: int = option(4, metavar="N", minimum=1,
                                   help="shards each data worker interleaves at a time (default 4)")
    resample: bool = option(True, flag="--no-resample",
                            help="split the shards by node and worker and read each once per epoch, "
                            "instead of drawing shards with replacement")
    seed: int = option(0, minimum=0, maximum=2**32 - 1)
    save_every: int = option(1000, metavar="STEPS", minimum=1, help="checkpoint interval (default 1000)")
    keep: int = option(2, metavar="N", minimum=1, help="checkpoints to keep (default 2)")
    log_every: int = option(10, metavar="STEPS", minimum=1, help="metrics interval (default 10)")
    eval: list[str] = option([], action="extend", nargs="+", metavar="NAME=PATH",
                             help="ImageFolder(s) for zero-shot eval during training (split across ranks)")
    eval_every: int | None = option(None, metavar="STEPS", minimum=1, help="zero-shot interval (default --save-every)")
    templates: str | None = option(None, metavar="FILE", help="prompt templates for --eval, one per line with {}")
    resume: bool = option(False, help="continue from the latest checkpoint in --out")
    blocklist: str | None = option(None, metavar="FILE",
                                   help="sample keys to skip: wit overlap's overlap.json or one per line")
    allow_partial: bool = option(False, help="train on an unfinished `wit download` or `wit overlap filter` "
                                 "output (no stats.json) as it is")
    tokenizer: str | None = option(None, metavar="FILE", help="tokenizer.json to use instead of training a BPE")
    vocab_size: int | None = option(None, metavar="N", minimum=MIN_VOCAB, maximum=1_000_000,
                                    help="BPE vocabulary to train (default: the model's)")
    tokenizer_captions: int = option(100_000, metavar="N", minimum=1,
                                     help="captions read to train the BPE (default 100000)")
    device: str | None = option(None, type=parse_device,
                                help="cpu, cuda, cuda:N or mps (default: cuda:LOCAL_RANK when available)")
    allow_private_networks: bool = option(False, help="read http(s) --shards from loopback/private addresses too "
                                          "(refused otherwise, like every other network read)")

    def validate(self) -> None:
        """Raise a one-line ``UserError`` for settings no run can use (the CLI checks ranges as it parses)."""
        if self.model not in MODEL_CONFIGS:
            raise UserError(f"--model {self.model!r}: unknown; known: {', '.join(MODEL_CONFIGS)}")
        if self.steps is not None and self.samples is not None:
            raise UserError("give --steps or --samples, not both")
        if self.epochs is not None and (self.steps is not None or self.samples is not None):
            raise UserError("give --epochs or --steps/--samples, not both: with --epochs the run ends with the data")
        if self.balance_cap is not None and self.epochs is None:
            raise UserError("--balance-cap needs --epochs N: the kept samples are drawn afresh for each epoch")
        if self.balance_counts is not None and self.balance_cap is None:
            raise UserError("--balance-counts needs --balance-cap T")
        if self.caption_keys is not None:
            from .balance import parse_caption_keys  # imports Beam (select's rule): only here

            parse_caption_keys(self.caption_keys)
        check_values(self)
        check_device(self.device)


@dataclass
class ZeroShotOptions:
    """``wit eval zeroshot``: every flag, its default and its help."""

    checkpoint: str = option(metavar="FILE", help="a step-*.pt file or a run directory")
    eval: str = option(metavar="PATH", help="ImageFolder root")
    out: str = option(metavar="DIR")
    templates: str | None = option(None, metavar="FILE", help="one template per line with {} (default: built-in)")
    batch_size: int = option(256, minimum=1, maximum=1 << 20)
    device: str | None = option(None, type=parse_device, help="cpu, cuda, cuda:N or mps (default: cuda if available)")

    def validate(self) -> None:
        check_values(self)
        check_device(self.device)


@dataclass
class LinearProbeOptions:
    """``wit eval linear-probe``: every flag, its default and its help."""

    checkpoint: str = option(metavar="FILE", help="a step-*.pt file or a run directory")
    train: str = option(metavar="PATH", help="ImageFolder to fit on")
    test: str = option(metavar="PATH", help="ImageFolder to score (same class folders)")
    out: str | None = option(None, metavar="DIR", help="also write DIR/metrics.json")
    device: str | None = option(None, type=parse_device, help="cpu, cuda, cuda:N or mps (default: cuda if available)")
    seed: int = option(0, cli=False)

    def validate(self) -> None:
        check_values(self)
        check_device(self.device)
