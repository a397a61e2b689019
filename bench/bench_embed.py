"""`wit embed`: embeddings/s through ``run_embed`` against a naive single-process loop, and ViT-B/32 on a GPU.

    python bench/bench_embed.py [--shards 8] [--samples 256] [--image-size 64] [--batch-size 256] [--workers 4]
    python bench/bench_embed.py --open-clip-weights ViT-B-32.pt [--gpu-samples 20000]   # adds the GPU row

On synthetic shards (the sample web's shapes, the download stage's tar layout) with the tiny model (a
`wit train` checkpoint of random weights: speed does not depend on what the weights learned) it measures

1. ``run_embed`` end to end (Beam job, model load, loader threads, batches, parts written): samples/s over the
   whole run;
2. a naive loop over the same shards in one thread: read a sample, decode it, run the model on it alone;

and prints their ratio. With a CUDA device, ``open_clip`` importable and ``--open-clip-weights`` (a local
file: nothing is downloaded), it adds ``run_embed --open-clip ViT-B-32 --device cuda --precision bf16`` on
``--gpu-samples`` samples at 224 px. What it skips, it says. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("WIT_PROGRESS", "0")
os.environ.setdefault("WIT_DIRECT_RUNNING_MODE", "in_memory")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tests.embed.helpers import write_tiny_checkpoint  # noqa: E402
from trainer.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from trainer.data import decode_image  # noqa: E402
from trainer.synthetic import write_shape_shards  # noqa: E402
from wit_pipeline.embed.pipeline import EmbedOptions, run_embed  # noqa: E402
from wit_pipeline.shardset import iter_tar_samples  # noqa: E402


def naive_loop(shards: list[str], checkpoint: str) -> tuple[int, float]:
    """One sample at a time, decoded and embedded in one thread: ``(samples, seconds)``."""
    started = time.perf_counter()
    model, tokenizer = model_from_checkpoint(load_checkpoint(checkpoint))
    count = 0
    with torch.inference_mode():
        for shard in shards:
            for _, members in iter_tar_samples(shard):
                image = torch.from_numpy(decode_image(members["jpg"], model.config.image_size)[None])
                tokens = torch.from_numpy(tokenizer([members["txt"].decode()]))
                image_embedding, text_embedding = model.encode_image(image), model.encode_text(tokens)
                float((image_embedding * text_embedding).sum())
                count += 1
    return count, time.perf_counter() - started


def ours(shards_dir: str, out: str, args, **model) -> tuple[int, float]:
    started = time.perf_counter()
    stats = run_embed(EmbedOptions(shards=shards_dir, out=out, batch_size=args.batch_size, workers=args.workers,
                                   **model))
    return stats["out"], time.perf_counter() - started


def gpu_row(args, root: str) -> dict:
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    if importlib.util.find_spec("open_clip") is None:
        return {"skipped": "open_clip is not installed (pip install open_clip_torch)"}
    if not args.open_clip_weights:
        return {"skipped": "no --open-clip-weights FILE (ViT-B-32 weights, a local file)"}
    shards = os.path.join(root, "gpu-shards")
    per_shard = 1000
    write_shape_shards(shards, shards=max(1, args.gpu_samples // per_shard), samples_per_shard=per_shard,
                       image_size=256, seed=2)
    samples, seconds = ours(shards, os.path.join(root, "gpu-emb"), args, open_clip="ViT-B-32",
                            open_clip_weights=args.open_clip_weights, device="cuda", precision="bf16")
    return {"samples": samples, "seconds": round(seconds, 2), "per_second": round(samples / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--samples", type=int, default=256, help="samples per shard")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--open-clip-weights", default=None)
    parser.add_argument("--gpu-samples", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        shards_dir = os.path.join(root, "shards")
        shards = write_shape_shards(shards_dir, shards=args.shards, samples_per_shard=args.samples,
                                    image_size=args.image_size, seed=1)
        checkpoint = write_tiny_checkpoint(os.path.join(root, "run"))
        naive_samples, naive_seconds = naive_loop(shards, checkpoint)
        our_samples, our_seconds = ours(shards_dir, os.path.join(root, "emb"), args,
                                        checkpoint=checkpoint, device="cpu")
        assert our_samples == naive_samples, (our_samples, naive_samples)
        gpu = gpu_row(args, root)
    naive_rate, our_rate = naive_samples / naive_seconds, our_samples / our_seconds
    print(f"{'tiny model, CPU':<28}{'samples':>9}{'seconds':>9}{'samples/s':>11}")
    print(f"{'naive loop (1 at a time)':<28}{naive_samples:>9}{naive_seconds:>9.2f}{naive_rate:>11.1f}")
    print(f"{'run_embed':<28}{our_samples:>9}{our_seconds:>9.2f}{our_rate:>11.1f}")
    print(f"ratio run_embed / naive: {our_rate / naive_rate:.2f}x  (torch threads {torch.get_num_threads()}, "
          f"batch {args.batch_size}, loader threads {args.workers}, {args.image_size} px jpegs)")
    print("ViT-B/32 on GPU: " + (gpu["skipped"] if "skipped" in gpu else
                                 f"{gpu['samples']} samples in {gpu['seconds']} s = {gpu['per_second']} samples/s"))
    print(json.dumps({"cpu": {"naive_per_second": round(naive_rate, 1), "run_embed_per_second": round(our_rate, 1),
                              "ratio": round(our_rate / naive_rate, 2), "samples": our_samples,
                              "torch_threads": torch.get_num_threads(), "batch_size": args.batch_size,
                              "workers": args.workers},
                      "gpu_vit_b_32": gpu, "numpy": np.__version__, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
