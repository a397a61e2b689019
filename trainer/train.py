"""The training loop: one CPU process for tests up to many GPUs under torchrun.

``run_train(TrainOptions(...))`` is what ``wit train`` and ``torchrun -m trainer``
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

The pieces, in the order a run uses them: ``setup`` decides the ``TrainPlan``
(devices, shards, tokenizer, run length; read-only afterwards), builds a fresh
``TrainState`` (model, optimiser, schedule, scaler, step, data positions) that
``restore`` fills from a checkpoint, and starts the data loader; then per step
``train_step``, every ``log_every`` steps ``log_interval``, every ``save_every``
steps ``save`` and every ``eval_every`` steps ``run_evals``.

With ``--epochs`` the loop runs until the data of the last epoch ends
(``next_step_batches`` passes over the streams' ``done`` batches, and the ranks
agree on the end), the schedule sized on the expected kept samples; each
finished epoch's record goes to ``OUT/balance/epoch-NNNN.json``
(``write_epoch_records``, at each save and at the end; ``balance.py``,
``balance_files.py``).

Checkpoints (``checkpoint.py``) every ``save_every`` steps and at the end hold
the data streams' positions; ``resume`` continues from the latest one to the
same result as an uninterrupted run. Metrics go to ``OUT/metrics.jsonl`` (and
TensorBoard under ``OUT/tensorboard`` when it is installed, see ``metrics.py``).
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
from typing import Iterator

import torch
from tqdm import tqdm

from wit_pipeline.errors import UserError
from wit_pipeline.progress import progress_enabled
from wit_pipeline.stage import output_lock, require_finished

from . import checkpoint as ckpt
from .balance import EpochTally, merge_tallies, parse_caption_keys
from .balance_files import QueryCounts, epoch_steps, read_counts_file, shard_query_counts, write_epoch_record
from .data import (
    DataFormatError,
    ShardSet,
    ShardStream,
    check_first_samples,
    check_stream_count,
    load_blocklist,
    make_loader,
    read_captions,
    resolve_shards,
    worker_error_message,
)
from .distributed import gather_objects, init_distributed
from .loss import all_gather_cat, contrastive_loss, gather_features, with_live_slot, world
from .metrics import MetricsLog
from .model import CLIP, ModelConfig, model_config, parameter_groups
from .options import TrainOptions  # re-exported: trainer.train.TrainOptions
from .schedule import CosineWithWarmup, default_warmup
from .tokenizer import Tokenizer
from .zeroshot import ZeroShotSet, evaluate, load_templates

log = logging.getLogger(__name__)

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}   # fp32: no autocast


@dataclass
class TrainResult:
    out: str
    steps: int
    checkpoint: str
    first_loss: float | None
    last_loss: float | None
    evals: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainPlan:
    """What ``setup`` decided; the loop only reads it."""

    options: TrainOptions
    rank: int
    size: int                      # processes (world size)
    device: torch.device
    precision: str                 # bf16 | fp16 | fp32
    shards: ShardSet
    model_config: ModelConfig
    tokenizer: Tokenizer
    global_batch: int              # batch_size x size x accum
    total_steps: int
    warmup: int
    signature: dict                # what a saved data position depends on (see _stream_signature)
    resumed_from: str = ""         # the checkpoint this run continues, if any
    counts: QueryCounts | None = None            # --balance-cap's query counts
    caption_fields: tuple[tuple[str, float], ...] | None = None   # --caption-keys, parsed

    @property
    def workers(self) -> int:
        """Data streams per rank (the main process is one stream without workers)."""
        return max(1, self.options.workers)

    @property
    def by_epochs(self) -> bool:
        """--epochs: the run ends with the data, and each epoch's record is written."""
        return self.options.epochs is not None

    def autocast(self):
        """The forward passes' autocast context (none in fp32)."""
        dtype = AUTOCAST_DTYPES.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext()


@dataclass
class TrainState:
    """The model and everything a step changes: what ``save`` writes and ``restore`` loads."""

    model: CLIP                                  # the model itself: checkpoints, clamping, evals
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    run_model: torch.nn.Module | None = None     # what a step calls: ``model`` compiled and/or DDP-wrapped
    step: int = 0
    samples_seen: int = 0
    positions: dict[int, tuple[int, int]] = field(default_factory=dict)   # data stream -> (round, offset)
    skipped: Counter = field(default_factory=Counter)                     # samples skipped, by reason
    batches: int = 0                             # loader batches taken (``done`` ones too): the stream shift
    caption_fallbacks: int = 0                   # --caption-keys draws whose field was missing
    tallies: dict[int, EpochTally] = field(default_factory=dict)          # --epochs: epochs not yet recorded
    done_streams: set[int] = field(default_factory=set)                   # --epochs: streams past their last
    epoch: int = 0                               # --epochs: the latest epoch read


@dataclass
class ZeroShotEvals:
    sets: list[tuple[str, ZeroShotSet]]
    templates: list[str]
    every: int                     # steps


@dataclass
class Interval:
    """The steps since the last metrics line."""

    loss: torch.Tensor             # summed on the device: reading it waits for the GPU, so once per line
    steps: int = 0
    data_wait: float = 0.0         # seconds spent waiting for batches
    started: float = field(default_factory=time.monotonic)

    def reset(self) -> None:
        self.loss.zero_()
        self.steps, self.data_wait, self.started = 0, 0.0, time.monotonic()


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------
def run_train(options: TrainOptions) -> TrainResult:
    options.validate()
    require_finished(options.shards, allow_partial=options.allow_partial)
    with _run_dir_lock(options.out):
        result = _train(options)
        _leave_together()
        return result


def _leave_together() -> None:
    """With several ranks, wait here for every one: rank 0 writes the last checkpoint after the others are
    done, and a rank that tears its process group down meanwhile can abort in gloo's teardown
    ("terminate called without an active exception", SIGABRT), failing a run that succeeded."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _run_dir_lock(out: str) -> contextlib.AbstractContextManager:
    # Every rank writes under one run directory: rank 0 (torchrun's RANK) holds its lock for them all.
    return output_lock(out, "train") if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext()


def _train(options: TrainOptions) -> TrainResult:
    plan, state, loader, evals = setup(options)
    metrics = MetricsLog(options.out, plan.rank == 0, state.step)
    bar = _progress_bar(plan, state) if plan.rank == 0 else None
    result = TrainResult(options.out, state.step, plan.resumed_from, None, None)
    interval = Interval(torch.zeros((), device=plan.device))
    state.model.train()
    try:
        while state.step < plan.total_steps or plan.by_epochs:
            waited = time.monotonic()
            micro = next_step_batches(plan, state, loader)
            interval.data_wait += time.monotonic() - waited
            if micro is None:          # --epochs: the last epoch's data has ended (on some rank)
                _finish_epochs(plan, state, interval, metrics, result)
                break
            loss, grad_norm = train_step(plan, state, micro)
            interval.loss += loss
            interval.steps += 1
            if result.first_loss is None:
                result.first_loss = loss.item()
            if bar is not None:
                bar.update(plan.global_batch)
            if _due(state.step, options.log_every, plan.total_steps):
                record = log_interval(plan, state, interval, grad_norm)
                result.last_loss = record["loss"]
                metrics.write(record)
                _show(plan, bar, record)
                interval.reset()
            if _due(state.step, options.save_every, plan.total_steps):
                result.checkpoint = save(plan, state)
            if evals.sets and _due(state.step, evals.every, plan.total_steps):
                result.evals.update(run_evals(plan, state, evals, metrics))
    finally:
        if bar is not None:
            bar.close()
        metrics.close()
    if state.skipped and plan.rank == 0:
        log.warning("skipped samples: %s", ", ".join(f"{k} {v}" for k, v in sorted(state.skipped.items())))
    result.steps = state.step
    return result


def _due(step: int, every: int, total: int) -> bool:
    return step % every == 0 or step == total


def _finish_epochs(plan: TrainPlan, state: TrainState, interval: Interval, metrics: MetricsLog,
                   result: TrainResult) -> None:
    """--epochs at the end of the data: the last metrics line unless just written, the records of every
    epoch not yet written (complete or not), and the last checkpoint."""
    if interval.steps:
        record = log_interval(plan, state, interval, None)
        result.last_loss = record["loss"]
        metrics.write(record)
    write_epoch_records(plan, state, final=True)
    if state.step:      # again when one was saved at this step: the data's end moved the streams on since
        result.checkpoint = save(plan, state)


def next_micro_batches(loader: Iterator[dict], count: int) -> list[dict]:
    try:
        return [next(loader) for _ in range(count)]
    except DataFormatError as exc:   # raised in a loader worker: say which shard, in one line
        raise DataFormatError(worker_error_message(exc)) from None


def next_step_batches(plan: TrainPlan, state: TrainState, loader: Iterator[dict]) -> list[dict] | None:
    """The ``accum`` batches of the next step. With --epochs, ``done`` batches are taken into account and
    passed over, and ``None`` says the data has ended: on this rank (every stream done) or on another (the
    ranks agree, so that none waits in a collective for the others); batches taken for a step that then
    does not run, and the rest of this rank's data when another rank ended first, are read and accounted
    ``unused`` (in the latest epoch read), so that every epoch's record is complete."""
    accum = plan.options.accum
    if not plan.by_epochs:
        return next_micro_batches(loader, accum)
    micro: list[dict] = []
    while len(micro) < accum and len(state.done_streams) < plan.workers:
        batch = next_micro_batches(loader, 1)[0]
        if batch["done"]:
            state.done_streams.add(int(batch["stream"]))
            account_batch(state, batch)
        else:
            micro.append(batch)
    if _every_rank(plan, len(micro) == accum):
        return micro
    for batch in micro:
        account_batch(state, batch, used=False)
    while len(state.done_streams) < plan.workers:    # read the rest (another rank ended first): the records count it
        batch = next_micro_batches(loader, 1)[0]
        if batch["done"]:
            state.done_streams.add(int(batch["stream"]))
        account_batch(state, batch, used=False)
    return None


def _every_rank(plan: TrainPlan, flag: bool) -> bool:
    """``flag`` on every rank (a collective when there are several)."""
    if plan.size == 1:
        return flag
    import torch.distributed as dist

    value = torch.tensor([int(flag)], device=plan.device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def account_batch(state: TrainState, batch: dict, used: bool = True) -> None:
    """Take a loader batch's bookkeeping into the state: its stream's position, skips, caption fallbacks and
    epoch tallies (a batch not ``used`` for a step counts its samples ``unused`` in its last epoch)."""
    state.batches += 1
    state.positions[int(batch["stream"])] = tuple(int(x) for x in batch["position"])
    state.skipped.update(batch["skipped"])
    state.caption_fallbacks += int(batch["caption_fallbacks"])
    for epoch, tally in merge_tallies([batch["tally"]]).items():
        state.tallies.setdefault(epoch, EpochTally()).merge(tally)
        state.epoch = max(state.epoch, epoch)
    if not used and "image" in batch:
        state.tallies.setdefault(state.epoch, EpochTally()).unused += int(batch["image"].shape[0])


def write_epoch_records(plan: TrainPlan, state: TrainState, final: bool = False) -> list[str]:
    """Write (rank 0) ``OUT/balance/epoch-NNNN.json`` for each epoch every stream of every rank has finished
    (``final``: for every epoch still held), gathering the ranks' tallies; every rank must call it. The
    written epochs' tallies leave the state. Returns the paths written."""
    if not plan.by_epochs:
        return []
    finished: Counter = Counter()
    for summary in gather_objects({epoch: tally.streams_done for epoch, tally in state.tallies.items()}):
        finished.update(summary)
    streams = plan.size * plan.workers
    ready = sorted(epoch for epoch in finished if final or finished[epoch] >= streams)
    if not ready:
        return []
    parts = gather_objects({epoch: state.tallies.pop(epoch).to_dict() for epoch in ready if epoch in state.tallies})
    if plan.rank != 0:
        return []
    merged = merge_tallies(parts)
    return [write_epoch_record(plan.options.out, merged[epoch].record(epoch, streams, _balance_settings(plan)))
            for epoch in ready]


def _balance_settings(plan: TrainPlan) -> dict:
    """What an epoch record says about how its samples were drawn."""
    options = plan.options
    return {"balance_cap": options.balance_cap, "counts_from": plan.counts.source if plan.counts else None,
            "seed": options.seed, "caption_keys": options.caption_keys}


def train_step(plan: TrainPlan, state: TrainState, micro: list[dict]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One optimiser step on ``micro`` (``accum`` batches); returns the detached loss and the gradient norm."""
    device, scaler, optimizer = plan.device, state.scaler, state.optimizer
    batches = [(b["image"].to(device, non_blocking=True), b["text"].to(device, non_blocking=True)) for b in micro]
    loss = forward_backward(state.run_model, batches, plan.autocast, scaler if scaler.is_enabled() else None)
    scaler.unscale_(optimizer)
    grad_clip = plan.options.grad_clip
    grad_norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), grad_clip) if grad_clip else None
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    state.scheduler.step()
    state.model.clamp_logit_scale()
    for batch in micro:
        account_batch(state, batch)
    state.step += 1
    state.samples_seen += plan.global_batch
    return loss, grad_norm


def log_interval(plan: TrainPlan, state: TrainState, interval: Interval, grad_norm: torch.Tensor | None) -> dict:
    """The metrics line for the steps since the last one."""
    elapsed = time.monotonic() - interval.started
    logit_scale = state.model.scale().item()
    record = {
        "step": state.step, "samples": state.samples_seen, "loss": interval.loss.item() / interval.steps,
        "logit_scale": logit_scale, "temperature": 1 / logit_scale,
        "lr": state.optimizer.param_groups[0]["lr"],
        "samples_per_s": interval.steps * plan.global_batch / max(elapsed, 1e-9),
        "data_wait": interval.data_wait / max(elapsed, 1e-9),
        "skipped": sum(state.skipped.values()),
    }
    if grad_norm is not None:
        record["grad_norm"] = float(grad_norm)
    if plan.device.type == "cuda":
        record["gpu_memory_gb"] = torch.cuda.max_memory_allocated(plan.device) / 2**30
    if plan.options.caption_keys:
        record["caption_fallbacks"] = state.caption_fallbacks
    if plan.by_epochs:
        record["epoch"] = state.epoch
    elif plan.shards.epoch_samples:
        record["epoch"] = state.samples_seen / plan.shards.epoch_samples
    return record


def _show(plan: TrainPlan, bar, record: dict) -> None:
    """On the progress bar when one is shown, else as a log line (rank 0 only)."""
    if bar is not None and not bar.disable:
        bar.set_postfix(loss=f"{record['loss']:.3f}", T=f"{record['temperature']:.4f}")
    elif plan.rank == 0:
        log.info("step %d/%d loss %.4f T %.4f lr %.2e %.0f samples/s data wait %.0f%%", record["step"],
                 plan.total_steps, record["loss"], record["temperature"], record["lr"], record["samples_per_s"],
                 100 * record["data_wait"])


def save(plan: TrainPlan, state: TrainState) -> str:
    """Write a checkpoint (rank 0) with every rank's data positions; every rank must call it. Returns its path."""
    options = plan.options
    write_epoch_records(plan, state)
    local = {"positions": [list(state.positions[i]) for i in range(plan.workers)], "batches": state.batches,
             "epoch": state.epoch, "tallies": {epoch: tally.to_dict() for epoch, tally in state.tallies.items()}}
    gathered = gather_objects(local)
    path = ckpt.checkpoint_path(options.out, state.step)
    if plan.rank == 0:
        ckpt.save_checkpoint(path, {
            "step": state.step, "samples_seen": state.samples_seen, "model_name": options.model,
            "model": state.model.state_dict(), "model_config": plan.model_config.to_dict(),
            "tokenizer": plan.tokenizer.to_dict(), "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(), "scaler": state.scaler.state_dict(),
            "train_config": dataclasses.asdict(options),
            "data": {"signature": plan.signature, "positions": [rank["positions"] for rank in gathered],
                     "batches": [rank["batches"] for rank in gathered], "epoch": [rank["epoch"] for rank in gathered],
                     "tallies": [rank["tallies"] for rank in gathered]},
            "skipped": dict(state.skipped), "caption_fallbacks": state.caption_fallbacks,
        }, keep=options.keep)
    return path


def run_evals(plan: TrainPlan, state: TrainState, evals: ZeroShotEvals, metrics: MetricsLog) -> dict[str, dict]:
    """Zero-shot top-1/top-5 on each eval set (images split across ranks); returns the records by set name."""
    state.model.eval()
    records = {}
    for name, eval_set in evals.sets:
        scores = evaluate(state.model, plan.tokenizer, eval_set, evals.templates, plan.device, rank=plan.rank,
                          world_size=plan.size, autocast=plan.autocast)
        record = {"step": state.step, "eval": name, "top1": scores["top1"], "top5": scores["top5"], "n": scores["n"],
                  "unreadable": scores["unreadable_images"]}     # left out of top1/top5, never silently
        records[name] = record
        metrics.write(record)
        if plan.rank == 0:
            log.info("step %d zero-shot %s: top1 %.4f top5 %.4f (n=%d, %d unreadable)", state.step, name,
                     scores["top1"], scores["top5"], scores["n"], scores["unreadable_images"])
    state.model.train()
    return records


def _progress_bar(plan: TrainPlan, state: TrainState) -> tqdm:
    return tqdm(total=plan.total_steps * plan.global_batch, initial=state.step * plan.global_batch, desc="train",
                unit="sample", unit_scale=True, dynamic_ncols=True, disable=not progress_enabled(), file=sys.stderr)


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
# Set-up
# ---------------------------------------------------------------------------------------------
def setup(options: TrainOptions) -> tuple[TrainPlan, TrainState, Iterator[dict], ZeroShotEvals]:
    """The plan, the state (restored when resuming), the started data loader and the zero-shot sets.

    The order matters for reproducibility: the model is initialised right after seeding torch, and
    the loader (which draws its base seed from torch) after the model.
    """
    eval_specs = _parse_evals(options.eval)
    rank, size, device = _init_process(options)
    shards = resolve_shards(options.shards)
    check_stream_count(shards, size, options.workers)
    check_first_samples(shards.urls[0], allow_private_networks=options.allow_private_networks)
    blocklist = load_blocklist(options.blocklist) if options.blocklist else frozenset()
    os.makedirs(options.out, exist_ok=True)
    checkpoint = _latest_checkpoint(options, rank) if options.resume else None
    config, tokenizer = _model_config_and_tokenizer(options, checkpoint, shards.urls, rank)
    global_batch = options.batch_size * size * options.accum
    counts = _query_counts(options, shards, rank) if options.balance_cap else None
    total_steps = _total_steps(options, global_batch, shards, counts)
    plan = TrainPlan(
        options, rank, size, device, precision=options.precision or ("bf16" if device.type == "cuda" else "fp32"),
        shards=shards, model_config=config, tokenizer=tokenizer, global_batch=global_batch, total_steps=total_steps,
        warmup=options.warmup if options.warmup is not None else default_warmup(total_steps),
        signature=_stream_signature(options, size, shards.urls, counts),
        resumed_from=checkpoint["path"] if checkpoint else "", counts=counts,
        caption_fields=parse_caption_keys(options.caption_keys) if options.caption_keys else None)
    state = new_state(plan)
    stream_seed, shift = restore(state, checkpoint, plan) if checkpoint is not None else (options.seed, 0)
    if rank == 0:
        _write_run_files(plan)
    state.run_model = _model_for_steps(plan, state.model)
    loader = _start_loader(plan, state, blocklist, stream_seed, shift)
    return plan, state, loader, _zero_shot_evals(options, eval_specs)


def _init_process(options: TrainOptions) -> tuple[int, int, torch.device]:
    rank, size, device = init_distributed(options.device)
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # Leave the data workers their cores: oversubscribed intra-op threads spin and run ~10x slower.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // size - options.workers))
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


def _latest_checkpoint(options: TrainOptions, rank: int) -> dict | None:
    found = ckpt.latest_checkpoint(options.out)
    if not found:
        if rank == 0:
            log.warning("--resume: no checkpoint under %s; starting from step 0", ckpt.checkpoint_dir(options.out))
        return None
    checkpoint = ckpt.load_checkpoint(found)
    if checkpoint["model_name"] != options.model:
        raise UserError(f"--resume: {found} is a {checkpoint['model_name']!r} run, not --model {options.model!r}")
    return checkpoint


def _model_config_and_tokenizer(options: TrainOptions, checkpoint: dict | None, urls: list[str],
                                rank: int) -> tuple[ModelConfig, Tokenizer]:
    """A resumed run's own; else the named shape with the vocabulary of a loaded or freshly trained BPE."""
    if checkpoint is not None:
        return ModelConfig.from_dict(checkpoint["model_config"]), Tokenizer.from_dict(checkpoint["tokenizer"])
    config = model_config(options.model)
    tokenizer = _load_tokenizer(options, urls, config, rank)
    return dataclasses.replace(config, vocab_size=tokenizer.vocab_size), tokenizer


def _load_tokenizer(options: TrainOptions, urls: list[str], config: ModelConfig, rank: int) -> Tokenizer:
    if options.tokenizer:
        with open(options.tokenizer, encoding="utf-8") as handle:
            try:
                tokenizer = Tokenizer.from_json(handle.read())
            except ValueError as exc:
                raise UserError(f"--tokenizer {options.tokenizer!r}: {exc}") from None
    else:
        # Every rank trains the same vocabulary from the same captions: no collective, no waiting.
        started = time.monotonic()
        captions = read_captions(urls, options.tokenizer_captions, options.allow_private_networks)
        if not captions:
            raise DataFormatError(f"no captions (.txt) found in the shards ({urls[0]!r} ...)")
        tokenizer = Tokenizer.train(captions, options.vocab_size or config.vocab_size, config.context_length)
        if rank == 0:
            log.info("trained BPE on %d captions: %d tokens in %.1f s", len(captions), tokenizer.vocab_size,
                     time.monotonic() - started)
    tokenizer.context_length = config.context_length
    return tokenizer


def _query_counts(options: TrainOptions, shards: ShardSet, rank: int) -> QueryCounts:
    if options.balance_counts:
        return read_counts_file(options.balance_counts)
    return shard_query_counts(options.out, shards, rank, options.allow_private_networks)


def _total_steps(options: TrainOptions, global_batch: int, shards: ShardSet, counts: QueryCounts | None = None) -> int:
    """The schedule's length: --steps, --samples, --epochs (of the expected kept samples: the run itself
    ends with the data), else one epoch by the manifest."""
    if options.epochs is not None:
        per_epoch = counts.expected_kept(options.balance_cap, shards.epoch_samples) if counts else shards.epoch_samples
        if per_epoch is None:
            raise UserError("--epochs: these shards have no manifest.json to size an epoch for the learning-rate "
                            "schedule; leave out --balance-counts (the shards are then counted) or add a manifest")
        return epoch_steps(options.epochs, per_epoch, global_batch)
    if options.steps is not None:
        total = options.steps
    elif options.samples is not None:
        total = math.ceil(options.samples / global_batch)
    elif shards.epoch_samples:
        total = math.ceil(shards.epoch_samples / global_batch)
    else:
        raise UserError("give --steps or --samples: these shards have no manifest.json to size an epoch")
    if total < 1:
        raise UserError("the run has no steps (--steps/--samples is 0)")
    return total


def _stream_signature(options: TrainOptions, size: int, urls: list[str], counts: QueryCounts | None = None) -> dict:
    """What must match for a saved stream position to mean the same thing on resume (--epochs itself may
    grow: the streams go on into the new epochs)."""
    signature = {"world_size": size, "workers": max(1, options.workers), "batch_size": options.batch_size,
                 "seed": options.seed, "resample": options.resample, "shards_per_round": options.shards_per_round,
                 "shuffle_buffer": options.shuffle_buffer, "urls_sha256": _urls_digest(urls),
                 "blocklist": options.blocklist}
    if options.epochs is not None:
        signature.update(by_epochs=True, balance_cap=options.balance_cap,
                         counts_sha256=counts.digest if counts else None)
    if options.caption_keys is not None:
        signature["caption_keys"] = options.caption_keys
    return signature


def _urls_digest(urls: list[str]) -> str:
    return hashlib.sha256("\n".join(urls).encode()).hexdigest()


def new_state(plan: TrainPlan) -> TrainState:
    """A freshly initialised model (seeded by ``--seed``), its AdamW, schedule and loss scaler."""
    options, device = plan.options, plan.device
    torch.manual_seed(options.seed)
    model = CLIP(plan.model_config).to(device)
    if options.grad_checkpointing:
        model.set_grad_checkpointing(True)
    optimizer = torch.optim.AdamW(parameter_groups(model, options.weight_decay), lr=options.lr,
                                  betas=(options.beta1, options.beta2), eps=options.eps, fused=device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, CosineWithWarmup(plan.warmup, plan.total_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=plan.precision == "fp16")
    return TrainState(model, optimizer, scheduler, scaler)


def restore(state: TrainState, checkpoint: dict, plan: TrainPlan) -> tuple[int, int]:
    """Load ``checkpoint`` into ``state``; returns the data stream's ``(seed, shift)`` to continue with.

    With the same data settings (``plan.signature``) the streams continue from their saved
    positions, so the run ends as an uninterrupted one would; otherwise they restart with a seed
    derived from the step.
    """
    options = plan.options
    state.model.load_state_dict(checkpoint["model"])
    state.optimizer.load_state_dict(checkpoint["optimizer"])
    state.scheduler.load_state_dict(checkpoint["scheduler"])
    state.scheduler.lr_lambdas[0].total = plan.total_steps   # a longer --steps on resume stretches the cosine
    state.scaler.load_state_dict(checkpoint["scaler"])
    state.step, state.samples_seen = int(checkpoint["step"]), int(checkpoint["samples_seen"])
    state.skipped.update(checkpoint.get("skipped", {}))
    state.caption_fallbacks = int(checkpoint.get("caption_fallbacks", 0))
    saved = checkpoint["data"]
    seed, shift = options.seed, 0
    if saved["signature"] == plan.signature:
        state.positions = {i: tuple(p) for i, p in enumerate(saved["positions"][plan.rank])}
        state.batches = int(saved["batches"][plan.rank]) if "batches" in saved else state.step * options.accum
        state.tallies = merge_tallies([saved["tallies"][plan.rank]]) if "tallies" in saved else {}
        state.epoch = int(saved["epoch"][plan.rank]) if "epoch" in saved else 0
        shift = state.batches % plan.workers
    else:
        changed = sorted(k for k in plan.signature if saved["signature"].get(k) != plan.signature[k])
        if plan.by_epochs:
            raise UserError(f"--resume with --epochs: the data settings changed ({', '.join(changed)}); the epochs "
                            "cannot go on where they stopped. Use the run's settings, or a new --out")
        seed = options.seed + 1_000_003 * state.step
        if plan.rank == 0:
            log.warning("--resume: data settings changed (%s); the data stream restarts with a fresh seed, "
                        "so the run will not match an uninterrupted one exactly", ", ".join(changed))
    if plan.rank == 0:
        log.info("resumed from %s at step %d", checkpoint["path"], state.step)
    return seed, shift


def _write_run_files(plan: TrainPlan) -> None:
    """``tokenizer.json`` and ``config.json`` (the options and what set-up derived from them)."""
    out = plan.options.out
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as handle:
        handle.write(plan.tokenizer.to_json())
    with open(os.path.join(out, "config.json"), "w", encoding="utf-8") as handle:
        json.dump({"train": dataclasses.asdict(plan.options), "model": plan.model_config.to_dict(),
                   "world_size": plan.size, "global_batch": plan.global_batch, "total_steps": plan.total_steps,
                   "warmup": plan.warmup, "precision": plan.precision, "epoch_samples": plan.shards.epoch_samples,
                   "epoch_samples_from": plan.shards.source, "shards": len(plan.shards.urls)}, handle, indent=2)


def _model_for_steps(plan: TrainPlan, model: CLIP) -> torch.nn.Module:
    """``model`` compiled (``--compile``) and wrapped in DDP when there are several processes."""
    run_model = torch.compile(model) if plan.options.compile else model
    if plan.size > 1:
        run_model = torch.nn.parallel.DistributedDataParallel(
            run_model, device_ids=[plan.device.index] if plan.device.type == "cuda" else None)
    return run_model


def _start_loader(plan: TrainPlan, state: TrainState, blocklist: frozenset[str], seed: int,
                  shift: int) -> Iterator[dict]:
    """This rank's batches, from the restored positions (the streams start at (0, 0) otherwise)."""
    options = plan.options
    dataset = ShardStream(plan.shards.urls, plan.tokenizer, batch_size=options.batch_size,
                          image_size=plan.model_config.image_size, seed=seed, rank=plan.rank, world_size=plan.size,
                          resample=options.resample, shards_per_round=options.shards_per_round,
                          shuffle_buffer=options.shuffle_buffer, blocklist=blocklist, positions=state.positions,
                          stream_shift=shift, digests=plan.shards.digests,
                          allow_private_networks=options.allow_private_networks, epochs=options.epochs,
                          balance_cap=options.balance_cap, query_counts=plan.counts.counts if plan.counts else None,
                          caption_fields=plan.caption_fields)
    state.positions = {i: state.positions.get(i, (0, 0)) for i in range(plan.workers)}
    if plan.by_epochs:
        streams = plan.size * plan.workers
        state.done_streams = {
            i for i, (round_index, _) in state.positions.items()
            if round_index >= dataset.rounds_per_epoch(plan.rank * plan.workers + i, streams) * options.epochs}
    return iter(make_loader(dataset, options.workers, pin_memory=plan.device.type == "cuda"))


def _zero_shot_evals(options: TrainOptions, specs: list[tuple[str, str]]) -> ZeroShotEvals:
    templates = load_templates(options.templates)
    return ZeroShotEvals([(name, ZeroShotSet(path)) for name, path in specs], templates,
                         every=options.eval_every or options.save_every)
