"""The training loop: one CPU process for tests up to many GPUs under torchrun.

``train(TrainConfig(...))`` is what ``wit train`` and ``torchrun -m trainer``
call. Under torchrun (``WORLD_SIZE`` > 1) it joins the process group itself:
NCCL on GPUs, gloo on CPUs. Each step:

1. takes ``accum`` batches of ``batch_size`` from this rank's data stream;
2. computes the contrastive loss over the global batch (``batch_size x world
   x accum`` pairs: features are all-gathered, see ``loss.py``; with ``accum``
   > 1 a no-grad pass first computes every micro-batch's features, then each
   micro-batch is recomputed with gradients against all the others, so
   accumulation gives the large-batch gradient, negatives included);
3. clips the gradient norm, takes an AdamW step (no decay on gains, biases and
   the temperature), advances the warmup + cosine schedule, clamps the
   temperature.

Checkpoints (``checkpoint.py``) every ``save_every`` steps and at the end hold
the data streams' positions; ``resume`` continues from the latest one to the
same result as an uninterrupted run. Metrics go to ``OUT/metrics.jsonl`` (and
TensorBoard under ``OUT/tensorboard`` when it is installed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from wit_pipeline.errors import UserError

from . import checkpoint as ckpt
from .data import (DataFormatError, ShardStream, check_first_samples, check_stream_count, load_blocklist,
                   make_loader, read_captions, resolve_shards, worker_error_message)
from .loss import all_gather_cat, contrastive_loss, gather_features, with_live_slot, world
from .model import CLIP, MODEL_CONFIGS, ModelConfig, model_config, parameter_groups
from .tokenizer import Tokenizer

log = logging.getLogger(__name__)

PRECISIONS = ("bf16", "fp16", "fp32")


@dataclass
class TrainConfig:
    shards: str                          # directory, brace pattern, http(s) URL or pipe: command
    out: str                             # run directory: checkpoints/, metrics.jsonl, tokenizer.json, config.json
    model: str = "tiny"                  # a name in model.MODEL_CONFIGS
    batch_size: int = 64                 # per process and micro-batch; global = batch_size x world x accum
    steps: int | None = None             # optimiser steps; or
    samples: int | None = None           # samples seen (global); neither: one epoch by the manifest
    lr: float = 5e-4
    warmup: int | None = None            # linear warmup steps; default 5% of the run, at most 10,000
    weight_decay: float = 0.2
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    grad_clip: float | None = 1.0        # max global gradient norm; None or 0: no clipping
    precision: str | None = None         # bf16 | fp16 | fp32; default bf16 on GPU, fp32 on CPU
    accum: int = 1                       # micro-batches per step
    grad_checkpointing: bool = False
    compile: bool = False
    workers: int = 4                     # data-loader workers per process
    shuffle_buffer: int = 2000
    shards_per_round: int = 4
    resample: bool = True                # draw shards with replacement (else split by node and worker)
    seed: int = 0
    save_every: int = 1000
    keep: int = 2                        # checkpoints kept
    log_every: int = 10
    eval: list[str] = field(default_factory=list)   # NAME=PATH of ImageFolder zero-shot sets
    eval_every: int | None = None        # default: save_every
    templates: str | None = None         # prompt templates file for --eval (one per line, with {})
    resume: bool = False
    blocklist: str | None = None         # keys to skip (wit overlap's overlap.json, or one key per line)
    tokenizer: str | None = None         # a tokenizer.json to use instead of training one
    vocab_size: int | None = None        # BPE vocabulary to train (default: the model's)
    tokenizer_captions: int = 100_000    # captions read to train the BPE
    device: str | None = None


@dataclass
class TrainResult:
    out: str
    steps: int
    checkpoint: str
    first_loss: float | None
    last_loss: float | None
    evals: dict[str, dict] = field(default_factory=dict)


class CosineWithWarmup:
    """LR factor: linear warmup over ``warmup`` steps, then cosine down to 0 at ``total``."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# ---------------------------------------------------------------------------------------------
# One step's forward and backward
# ---------------------------------------------------------------------------------------------
def forward_backward(model, micro_batches: list[tuple[torch.Tensor, torch.Tensor]], autocast=None,
                     scaler=None) -> torch.Tensor:
    """Loss of the global batch; leaves in ``.grad`` its gradient summed with the other ranks'.

    ``model`` may be DDP-wrapped (which averages gradients over ranks: the loss is
    scaled by the world size so the average is the sum). Returns the detached loss.
    """
    rank, size = world()
    autocast = autocast or contextlib.nullcontext

    def backward(loss: torch.Tensor) -> None:
        loss = loss * size
        (scaler.scale(loss) if scaler is not None else loss).backward()

    if len(micro_batches) == 1:
        images, texts = micro_batches[0]
        with autocast():
            image_f, text_f, scale = model(images, texts)
        all_image, all_text, live = gather_features(image_f, text_f)
        loss = contrastive_loss(all_image, all_text, scale, live)
        backward(loss)
        return loss.detach()

    with torch.no_grad(), autocast():
        cached = [model(images, texts)[:2] for images, texts in micro_batches]
    all_image = all_gather_cat(torch.cat([c[0] for c in cached]))
    all_text = all_gather_cat(torch.cat([c[1] for c in cached]))
    base = rank * sum(images.shape[0] for images, _ in micro_batches)
    for index, (images, texts) in enumerate(micro_batches):
        last = index == len(micro_batches) - 1
        sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with autocast():
                image_f, text_f, scale = model(images, texts)
            start = base + index * images.shape[0]
            live = slice(start, start + images.shape[0])
            loss = contrastive_loss(with_live_slot(all_image, image_f, start),
                                    with_live_slot(all_text, text_f, start), scale, live)
            backward(loss)
    return loss.detach()


# ---------------------------------------------------------------------------------------------
# Set-up helpers
# ---------------------------------------------------------------------------------------------
def _init_distributed(device_arg: str | None) -> tuple[int, int, torch.device]:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() and (device_arg is None or device_arg.startswith("cuda"))
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank, size = world()
    if device_arg and device_arg != "cuda":
        device = torch.device(device_arg)
    elif use_cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return rank, size, device


def _parse_evals(specs: list[str]) -> list[tuple[str, str]]:
    evals = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = os.path.basename(os.path.normpath(spec)), spec
        if not os.path.isdir(path):
            raise UserError(f"--eval {spec!r}: {path!r} is not a directory (an ImageFolder: CLASS/IMAGE)")
        evals.append((name, path))
    return evals


def _urls_digest(urls: list[str]) -> str:
    return hashlib.sha256("\n".join(urls).encode()).hexdigest()


def _stream_signature(cfg: TrainConfig, size: int, urls: list[str]) -> dict:
    """What must match for a saved stream position to mean the same thing on resume."""
    return {"world_size": size, "workers": max(1, cfg.workers), "batch_size": cfg.batch_size, "seed": cfg.seed,
            "resample": cfg.resample, "shards_per_round": cfg.shards_per_round,
            "shuffle_buffer": cfg.shuffle_buffer, "urls_sha256": _urls_digest(urls),
            "blocklist": cfg.blocklist}


def _load_tokenizer(cfg: TrainConfig, urls: list[str], config: ModelConfig, rank: int) -> Tokenizer:
    if cfg.tokenizer:
        with open(cfg.tokenizer, encoding="utf-8") as handle:
            try:
                tokenizer = Tokenizer.from_json(handle.read())
            except ValueError as exc:
                raise UserError(f"--tokenizer {cfg.tokenizer!r}: {exc}") from None
    else:
        # Every rank trains the same vocabulary from the same captions: no collective, no waiting.
        started = time.monotonic()
        captions = read_captions(urls, cfg.tokenizer_captions)
        if not captions:
            raise DataFormatError(f"no captions (.txt) found in the shards ({urls[0]!r} ...)")
        tokenizer = Tokenizer.train(captions, cfg.vocab_size or config.vocab_size, config.context_length)
        if rank == 0:
            log.info("trained BPE on %d captions: %d tokens in %.1f s", len(captions), tokenizer.vocab_size,
                     time.monotonic() - started)
    tokenizer.context_length = config.context_length
    return tokenizer


class _Metrics:
    """``metrics.jsonl`` (and TensorBoard when installed), written by rank 0 only."""

    def __init__(self, out: str, enabled: bool, resume_step: int):
        self.enabled = enabled
        self.path = os.path.join(out, "metrics.jsonl")
        self.board = None
        if not enabled:
            return
        kept = []
        if resume_step and os.path.exists(self.path):   # drop what the interrupted run logged past its checkpoint
            with open(self.path, encoding="utf-8") as handle:
                kept = [line for line in handle if line.strip() and json.loads(line).get("step", 0) <= resume_step]
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.writelines(kept)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.board = SummaryWriter(os.path.join(out, "tensorboard"))
        except ImportError:
            pass

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
        if self.board is not None:
            prefix = f"eval/{record['eval']}/" if "eval" in record else "train/"
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.board.add_scalar(prefix + key, value, record["step"])

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------
def train(cfg: TrainConfig) -> TrainResult:
    if cfg.model not in MODEL_CONFIGS:
        raise UserError(f"--model {cfg.model!r}: unknown; known: {', '.join(MODEL_CONFIGS)}")
    if cfg.steps is not None and cfg.samples is not None:
        raise UserError("give --steps or --samples, not both")
    for name in ("batch_size", "accum", "save_every", "log_every", "keep", "shards_per_round", "shuffle_buffer"):
        if getattr(cfg, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if cfg.precision is not None and cfg.precision not in PRECISIONS:
        raise UserError(f"--precision {cfg.precision!r}: one of {', '.join(PRECISIONS)}")
    evals = _parse_evals(cfg.eval)

    rank, size, device = _init_distributed(cfg.device)
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # Leave the data workers their cores: oversubscribed intra-op threads spin and run ~10x slower.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // size - cfg.workers))
    precision = cfg.precision or ("bf16" if device.type == "cuda" else "fp32")
    shards = resolve_shards(cfg.shards)
    check_stream_count(shards, size, cfg.workers)
    check_first_samples(shards.urls[0])
    blocklist = load_blocklist(cfg.blocklist) if cfg.blocklist else frozenset()
    os.makedirs(cfg.out, exist_ok=True)

    state = None
    if cfg.resume:
        found = ckpt.latest_checkpoint(cfg.out)
        if found:
            state = ckpt.load_checkpoint(found)
            if state["model_name"] != cfg.model:
                raise UserError(f"--resume: {found} is a {state['model_name']!r} run, not --model {cfg.model!r}")
        elif rank == 0:
            log.warning("--resume: no checkpoint under %s; starting from step 0", ckpt.checkpoint_dir(cfg.out))

    if state is not None:
        config = ModelConfig.from_dict(state["model_config"])
        tokenizer = Tokenizer.from_dict(state["tokenizer"])
    else:
        config = model_config(cfg.model)
        tokenizer = _load_tokenizer(cfg, shards.urls, config, rank)
        config = dataclasses.replace(config, vocab_size=tokenizer.vocab_size)

    global_batch = cfg.batch_size * size * cfg.accum
    if cfg.steps is not None:
        total_steps = cfg.steps
    elif cfg.samples is not None:
        total_steps = math.ceil(cfg.samples / global_batch)
    elif shards.epoch_samples:
        total_steps = math.ceil(shards.epoch_samples / global_batch)
    else:
        raise UserError("give --steps or --samples: these shards have no manifest.json to size an epoch")
    if total_steps < 1:
        raise UserError("the run has no steps (--steps/--samples is 0)")
    warmup = cfg.warmup if cfg.warmup is not None else min(10_000, max(1, round(0.05 * total_steps)))

    torch.manual_seed(cfg.seed)
    model = CLIP(config).to(device)
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.lr,
                                  betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                                  fused=device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, CosineWithWarmup(warmup, total_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    step, samples_seen, skipped = 0, 0, Counter()
    signature = _stream_signature(cfg, size, shards.urls)
    positions: dict[int, tuple[int, int]] = {}
    stream_seed, shift = cfg.seed, 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scheduler.lr_lambdas[0].total = total_steps   # a longer --steps on resume stretches the cosine
        scaler.load_state_dict(state["scaler"])
        step, samples_seen = int(state["step"]), int(state["samples_seen"])
        skipped.update(state.get("skipped", {}))
        saved = state["data"]
        if saved["signature"] == signature:
            positions = {i: tuple(p) for i, p in enumerate(saved["positions"][rank])}
            shift = (step * cfg.accum) % max(1, cfg.workers)
        else:
            changed = sorted(k for k in signature if saved["signature"].get(k) != signature[k])
            stream_seed = cfg.seed + 1_000_003 * step
            if rank == 0:
                log.warning("--resume: data settings changed (%s); the data stream restarts with a fresh seed, "
                            "so the run will not match an uninterrupted one exactly", ", ".join(changed))
        if rank == 0:
            log.info("resumed from %s at step %d", state["path"], step)

    if rank == 0:
        with open(os.path.join(cfg.out, "tokenizer.json"), "w", encoding="utf-8") as handle:
            handle.write(tokenizer.to_json())
        with open(os.path.join(cfg.out, "config.json"), "w", encoding="utf-8") as handle:
            json.dump({"train": dataclasses.asdict(cfg), "model": config.to_dict(), "world_size": size,
                       "global_batch": global_batch, "total_steps": total_steps, "warmup": warmup,
                       "precision": precision, "epoch_samples": shards.epoch_samples,
                       "epoch_samples_from": shards.source, "shards": len(shards.urls)}, handle, indent=2)

    run_model = model
    if cfg.compile:
        run_model = torch.compile(run_model)
    if size > 1:
        run_model = torch.nn.parallel.DistributedDataParallel(
            run_model, device_ids=[device.index] if device.type == "cuda" else None)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext

    dataset = ShardStream(shards.urls, tokenizer, batch_size=cfg.batch_size, image_size=config.image_size,
                          seed=stream_seed, rank=rank, world_size=size, resample=cfg.resample,
                          shards_per_round=cfg.shards_per_round, shuffle_buffer=cfg.shuffle_buffer,
                          blocklist=blocklist, positions=positions, stream_shift=shift)
    streams = max(1, cfg.workers)
    positions = {i: positions.get(i, (0, 0)) for i in range(streams)}
    loader = iter(make_loader(dataset, cfg.workers, pin_memory=device.type == "cuda"))

    from .zeroshot import ZeroShotSet, load_templates

    templates = load_templates(cfg.templates)
    eval_sets = [(name, ZeroShotSet(path)) for name, path in evals]
    eval_every = cfg.eval_every or cfg.save_every
    metrics = _Metrics(cfg.out, rank == 0, step)
    bar = _progress_bar(total_steps * global_batch, step * global_batch) if rank == 0 else None
    result = TrainResult(cfg.out, step, state["path"] if state else "", None, None)

    def save() -> str:
        local = [list(positions[i]) for i in range(streams)]
        gathered = [local] if size == 1 else [None] * size
        if size > 1:
            dist.all_gather_object(gathered, local)
        path = ckpt.checkpoint_path(cfg.out, step)
        if rank == 0:
            ckpt.save_checkpoint(path, {
                "step": step, "samples_seen": samples_seen, "model_name": cfg.model,
                "model": model.state_dict(), "model_config": config.to_dict(), "tokenizer": tokenizer.to_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "train_config": dataclasses.asdict(cfg),
                "data": {"signature": signature, "positions": gathered}, "skipped": dict(skipped),
            }, keep=cfg.keep)
        return path

    def run_evals() -> None:
        from .zeroshot import evaluate

        model.eval()
        for name, eval_set in eval_sets:
            scores = evaluate(model, tokenizer, eval_set, templates, device, rank=rank, world_size=size,
                              autocast=autocast)
            record = {"step": step, "eval": name, "top1": scores["top1"], "top5": scores["top5"], "n": scores["n"]}
            result.evals[name] = record
            metrics.write(record)
            if rank == 0:
                log.info("step %d zero-shot %s: top1 %.4f top5 %.4f (n=%d)", step, name, scores["top1"],
                         scores["top5"], scores["n"])
        model.train()

    model.train()
    interval_loss = torch.zeros((), device=device)
    interval_steps, interval_wait, interval_start = 0, 0.0, time.monotonic()
    try:
        while step < total_steps:
            waited = time.monotonic()
            try:
                micro = [next(loader) for _ in range(cfg.accum)]
            except DataFormatError as exc:
                raise DataFormatError(worker_error_message(exc)) from None
            interval_wait += time.monotonic() - waited
            batches = [(b["image"].to(device, non_blocking=True), b["text"].to(device, non_blocking=True))
                       for b in micro]
            loss = forward_backward(run_model, batches, autocast, scaler if scaler.is_enabled() else None)
            scaler.unscale_(optimizer)
            grad_norm = (torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                         if cfg.grad_clip else None)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            model.clamp_logit_scale()
            for b in micro:
                positions[int(b["stream"])] = tuple(int(x) for x in b["position"])
                skipped.update(b["skipped"])
            step += 1
            samples_seen += global_batch
            interval_loss += loss
            interval_steps += 1
            if result.first_loss is None:
                result.first_loss = loss.item()
            if bar is not None:
                bar.update(global_batch)
            if step % cfg.log_every == 0 or step == total_steps:
                elapsed = time.monotonic() - interval_start
                logit_scale = model.scale().item()
                record = {
                    "step": step, "samples": samples_seen, "loss": interval_loss.item() / interval_steps,
                    "logit_scale": logit_scale, "temperature": 1 / logit_scale,
                    "lr": optimizer.param_groups[0]["lr"],
                    "samples_per_s": interval_steps * global_batch / max(elapsed, 1e-9),
                    "data_wait": interval_wait / max(elapsed, 1e-9),
                    "skipped": sum(skipped.values()),
                }
                if grad_norm is not None:
                    record["grad_norm"] = float(grad_norm)
                if device.type == "cuda":
                    record["gpu_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
                if shards.epoch_samples:
                    record["epoch"] = samples_seen / shards.epoch_samples
                result.last_loss = record["loss"]
                metrics.write(record)
                if bar is not None and not bar.disable:
                    bar.set_postfix(loss=f"{record['loss']:.3f}", T=f"{record['temperature']:.4f}")
                elif rank == 0:
                    log.info("step %d/%d loss %.4f T %.4f lr %.2e %.0f samples/s data wait %.0f%%", step,
                             total_steps, record["loss"], record["temperature"], record["lr"],
                             record["samples_per_s"], 100 * record["data_wait"])
                interval_loss.zero_()
                interval_steps, interval_wait, interval_start = 0, 0.0, time.monotonic()
            if step % cfg.save_every == 0 or step == total_steps:
                result.checkpoint = save()
            if eval_sets and (step % eval_every == 0 or step == total_steps):
                run_evals()
    finally:
        if bar is not None:
            bar.close()
        metrics.close()
    if result.checkpoint == "" and state is not None:
        result.checkpoint = state["path"]
    if skipped and rank == 0:
        log.warning("skipped samples: %s", ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))
    result.steps = step
    return result


def _progress_bar(total: int, initial: int):
    from tqdm import tqdm

    from wit_pipeline.progress import progress_enabled

    return tqdm(total=total, initial=initial, desc="train", unit="sample", unit_scale=True, dynamic_ncols=True,
                disable=not progress_enabled(), file=sys.stderr)
