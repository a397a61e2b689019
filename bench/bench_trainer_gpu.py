"""The trainer on a GPU: samples/s and peak memory, side by side with an OpenCLIP training loop.

    python bench/bench_trainer_gpu.py [--model vit-b-32] [--batch-size 256] [--precision bf16]
                                      [--workers 8] [--steps 80] [--warmup-steps 20]
    python bench/bench_trainer_gpu.py --smoke      # tiny model on CPU: checks the script, measures nothing useful

On synthetic shards (the sample web's shapes drawn at --image-size, captions
"a red circle on a blue background", the download stage's tar layout) it
measures, after --warmup-steps:

1. ``wit train`` end to end (its own loader, loss, AdamW, clipping, autocast;
   checkpoints off): samples/s from metrics.jsonl, and peak GPU memory;
2. the same model and step on batches already on the GPU (the compute ceiling);
3. OpenCLIP's training step (``open_clip`` model and ``ClipLoss``, its
   webdataset pipeline: ResampledShards, tarfile_to_samples, shuffle, Pillow
   decode, its preprocess and tokenizer, batched) on the same shards and model
   shape, when ``open_clip`` is importable -- otherwise the row says so;
4. our data loader alone: samples/s, and per worker process.

The vocabulary is padded to CLIP's 49,408 tokens so both models have the same
shape (ViT-B/32: ~151M parameters). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("WIT_PROGRESS", "0")

import torch  # noqa: E402

from trainer.data import ShardStream, make_loader, read_captions, resolve_shards  # noqa: E402
from trainer.loss import contrastive_loss  # noqa: E402
from trainer.model import CLIP, model_config, parameter_groups  # noqa: E402
from trainer.synthetic import write_shape_shards  # noqa: E402
from trainer.tokenizer import Tokenizer  # noqa: E402
from trainer.train import TrainOptions, run_train  # noqa: E402

CLIP_VOCAB = 49408


def padded_tokenizer(captions: list[str], vocab_size: int, context_length: int) -> Tokenizer:
    """A BPE trained on ``captions`` whose vocabulary is filled up to ``vocab_size`` with unused merges."""
    tokenizer = Tokenizer.train(captions, vocab_size, context_length)
    merges = list(tokenizer.merges)
    taken = set(merges)
    a = 0
    while 256 + len(merges) + 2 < vocab_size:
        for b in range(256):
            if 256 + len(merges) + 2 >= vocab_size:
                break
            if (a, b) not in taken:
                merges.append((a, b))
        a += 1
    return Tokenizer(merges, context_length)


def bench_train(args, shards: str, work: str, tokenizer_path: str) -> dict:
    out = os.path.join(work, "run")
    steps = args.warmup_steps + args.steps
    run_train(TrainOptions(shards=shards, out=out, model=args.model, batch_size=args.batch_size, steps=steps,
                           precision=args.precision, workers=args.workers, save_every=10 ** 9,
                           log_every=args.warmup_steps, tokenizer=tokenizer_path, device=args.device))
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    timed = [r for r in rows if "loss" in r and r["step"] > args.warmup_steps]
    seconds = sum((r["step"] - p["step"]) * args.batch_size / r["samples_per_s"]
                  for p, r in zip([r for r in rows if "loss" in r], timed, strict=False))
    samples = (timed[-1]["step"] - args.warmup_steps) * args.batch_size
    return {"samples_per_s": samples / seconds, "data_wait": sum(r["data_wait"] for r in timed) / len(timed),
            "gpu_memory_gb": timed[-1].get("gpu_memory_gb"), "final_loss": timed[-1]["loss"]}


def _timed_steps(step, warmup: int, steps: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def bench_compute(args, config, device) -> dict:
    torch.manual_seed(0)
    model = CLIP(config).to(device)
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.2), lr=5e-4, betas=(0.9, 0.98), eps=1e-6,
                                  fused=device.type == "cuda")
    images = torch.randint(0, 256, (args.batch_size, 3, config.image_size, config.image_size), dtype=torch.uint8,
                           device=device)
    text = torch.randint(1, config.vocab_size - 1, (args.batch_size, config.context_length), device=device)
    text[:, 20] = config.vocab_size - 1
    autocast = _autocast(args.precision, device)

    def step():
        with autocast():
            image_f, text_f, scale = model(images, text)
        loss = contrastive_loss(image_f, text_f, scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.clamp_logit_scale()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = _timed_steps(step, args.warmup_steps, args.steps, device)
    return {"samples_per_s": args.steps * args.batch_size / seconds,
            "gpu_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
            "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6}


def bench_openclip(args, shards: list[str], device) -> dict:
    """OpenCLIP's own model, loss and webdataset pipeline, stepped like its train_one_epoch."""
    try:
        import open_clip
        import webdataset as wds
    except ImportError:
        return {"status": "open_clip is not installed here; pip install open_clip_torch and re-run"}
    name = {"vit-b-32": "ViT-B-32", "vit-b-16": "ViT-B-16", "vit-l-14": "ViT-L-14"}.get(args.model)
    if name is None:
        return {"status": f"no OpenCLIP equivalent of {args.model}"}
    model, preprocess, _ = open_clip.create_model_and_transforms(name, device=device)
    tokenizer = open_clip.get_tokenizer(name)
    loss_fn = open_clip.loss.ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)
    pipeline = wds.DataPipeline(
        wds.ResampledShards(shards), wds.tarfile_to_samples(handler=wds.warn_and_continue),
        wds.shuffle(1000, initial=1000), wds.decode("pilrgb"),
        wds.rename(image="jpg;png;jpeg;webp", text="txt"),
        wds.map_dict(image=preprocess, text=lambda t: tokenizer([t])[0]), wds.to_tuple("image", "text"),
        wds.batched(args.batch_size, partial=False))
    loader = iter(wds.WebLoader(pipeline, batch_size=None, num_workers=args.workers, persistent_workers=True))
    autocast = _autocast(args.precision, device)
    waited = [0.0]

    def step():
        started = time.perf_counter()
        images, texts = next(loader)
        images, texts = images.to(device, non_blocking=True), texts.to(device, non_blocking=True)
        waited[0] += time.perf_counter() - started
        with autocast():
            image_f, text_f, scale = model(images, texts)[:3]
            loss = loss_fn(image_f, text_f, scale)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.logit_scale.clamp_(0, 4.6052)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = _timed_steps(step, args.warmup_steps, args.steps, device)
    return {"samples_per_s": args.steps * args.batch_size / seconds,
            "gpu_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
            "status": f"open_clip {open_clip.__version__}"}


def bench_loader(args, shards: list[str], tokenizer: Tokenizer, image_size: int) -> dict:
    stream = ShardStream(shards, tokenizer, batch_size=args.batch_size, image_size=image_size)
    loader = iter(make_loader(stream, args.workers))
    for _ in range(max(2, args.workers)):
        next(loader)
    batches = max(10, args.steps // 2)
    started = time.perf_counter()
    for _ in range(batches):
        next(loader)
    rate = batches * args.batch_size / (time.perf_counter() - started)
    return {"samples_per_s": rate, "per_worker": rate / max(1, args.workers), "workers": args.workers}


def _autocast(precision: str, device: torch.device):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit-b-32")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp16", "fp32"))
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--steps", type=int, default=80, help="timed steps")
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--samples-per-shard", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=256, help="stored image side (the download default)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny model, tiny sizes, CPU: checks the script only")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.batch_size, args.precision, args.workers = "tiny", 16, "fp32", 2
        args.steps, args.warmup_steps, args.shards, args.samples_per_shard, args.image_size = 4, 2, 4, 48, 64
        args.device = args.device or "cpu"
    return args


def run_benches(args, device: torch.device, work: str) -> dict:
    """Synthetic shards and a padded tokenizer under ``work``, then the four measurements."""
    shard_dir = os.path.join(work, "shards")
    started = time.perf_counter()
    write_shape_shards(shard_dir, args.shards, args.samples_per_shard, image_size=args.image_size)
    print(f"wrote {args.shards} x {args.samples_per_shard} samples in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    urls = resolve_shards(shard_dir).urls
    config = model_config(args.model)
    vocab = CLIP_VOCAB if not args.smoke else config.vocab_size
    tokenizer = padded_tokenizer(read_captions(urls, 5000), vocab, config.context_length)
    config = model_config(args.model, vocab_size=tokenizer.vocab_size)
    tokenizer_path = os.path.join(work, "tokenizer.json")
    with open(tokenizer_path, "w") as handle:
        handle.write(tokenizer.to_json())
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "model": args.model, "batch_size": args.batch_size, "precision": args.precision,
        "workers": args.workers, "torch": torch.__version__,
        "ours_end_to_end": bench_train(args, shard_dir, work, tokenizer_path),
        "ours_compute_only": bench_compute(args, config, device),
        "openclip": bench_openclip(args, urls, device),
        "loader": bench_loader(args, urls, tokenizer, config.image_size),
    }


def print_table(args, results: dict, device: torch.device) -> None:
    print(f"\n{args.model}, batch {args.batch_size}, {args.precision}, {args.workers} workers on {results['device']}")
    print(f"{'loop':<24}{'samples/s':>12}{'peak GiB':>10}")
    for key in ("ours_end_to_end", "ours_compute_only", "openclip"):
        row = results[key]
        rate = f"{row['samples_per_s']:.0f}" if "samples_per_s" in row else "-"
        memory = f"{row['gpu_memory_gb']:.1f}" if row.get("gpu_memory_gb") else "-"
        print(f"{key:<24}{rate:>12}{memory:>10}  {row.get('status', '')}")
    loader = results["loader"]
    print(f"{'loader alone':<24}{loader['samples_per_s']:>12.0f}{'':>10}  {loader['per_worker']:.0f} per worker")
    if device.type != "cuda":
        print("no GPU here: these CPU figures only show the script runs; GPU figures are pending a GPU machine")


def main() -> int:
    args = parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as work:
        results = run_benches(args, device, work)
    print_table(args, results, device)
    print(json.dumps(results))
    return 0

if __name__ == "__main__":
    sys.exit(main())
