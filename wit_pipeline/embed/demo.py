"""``wit demo``'s embed step: a curation model embeds every sample of the downloaded shards
(``ctx.outputs["embeddings"]``, which the filter step reads).

The curation model is a tiny CLIP that ``wit train`` trains for a few hundred CPU steps on clean pairs drawn
apart from the sample web (``write_clean_pairs``: its shapes, colours and caption forms, every caption right),
as the issue's "done when" does. The train step's model is no judge here: it trained for dozens of epochs on
these very shards, mismatched pairs included, and scores the pairs it memorised, wrong or right, alike."""

from __future__ import annotations

import hashlib
import io
import os
import random

STEP = "embed"
DEMO_BATCH = 64
DEMO_LOADER_THREADS = 2   # the demo's shards are small: more decoding threads than this only wait
CLEAN_PAIRS = 640         # clean pairs the curation model trains on, in two shards
CLEAN_IMAGE_SIZE = 64
CURATION_STEPS = 150


def write_clean_pairs(out: str, samples: int, seed: int, shards: int = 2) -> str:
    """Shards of ``samples`` shape images captioned in the sample web's English forms, every caption right."""
    import webdataset as wds

    from ..sampleweb.draw import COLOURS, SHAPES, draw_shape, encode
    from ..sampleweb.site import english_caption
    from ..shardset import write_manifest

    os.makedirs(out, exist_ok=True)
    rng = random.Random(seed)
    entries = []
    for shard in range(shards):
        buffer = io.BytesIO()
        writer = wds.TarWriter(buffer, mtime=0)
        for index in range(samples // shards):
            colour, background = rng.sample(sorted(COLOURS), 2)
            shape = rng.choice(SHAPES)
            image = draw_shape(shape, colour, background, (CLEAN_IMAGE_SIZE, CLEAN_IMAGE_SIZE), rng.randrange(1 << 30))
            writer.write({"__key__": f"{shard:04d}{index:05d}", "jpg": encode(image, "jpg"),
                          "txt": english_caption(rng, colour, shape, background)})
        writer.close()
        data = buffer.getvalue()
        with open(os.path.join(out, f"{shard:05d}.tar"), "wb") as handle:
            handle.write(data)
        entries.append({"path": f"{shard:05d}.tar", "samples": samples // shards, "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})
    write_manifest(out, {"shards": entries, "total_samples": sum(e["samples"] for e in entries)})
    return out


def train_curation_model(ctx) -> str:
    """Train the curation model under ``curation/``; returns its run directory."""
    from trainer.train import TrainOptions, run_train

    clean = write_clean_pairs(ctx.path("curation", "clean_pairs"), CLEAN_PAIRS, ctx.seed)
    run = ctx.path("curation", "train")
    result = run_train(TrainOptions(shards=clean, out=run, model="tiny", batch_size=DEMO_BATCH, steps=CURATION_STEPS,
                                    lr=3e-3, warmup=30, workers=1, log_every=50, save_every=CURATION_STEPS,
                                    seed=ctx.seed))
    ctx.report(STEP, "curation model", f"tiny, {result.steps} steps of {DEMO_BATCH} on {CLEAN_PAIRS} clean pairs "
               f"drawn apart from the web (loss {result.first_loss:.3f} -> {result.last_loss:.3f})")
    return run


def demo_step(ctx) -> None:
    """Train the curation model, embed the demo's shards with it; report how many samples and how fast."""
    if "shards" not in ctx.outputs:
        ctx.report(STEP, "skipped", "no shards (the download step did not run)")
        return
    # torch loads here, when the step runs, not when `wit demo` starts.
    from .pipeline import EmbedOptions, run_embed

    checkpoint = ctx.outputs["curation_model"] = train_curation_model(ctx)
    out = ctx.path("embed")
    stats = run_embed(EmbedOptions(shards=ctx.outputs["shards"], out=out, checkpoint=checkpoint,
                                   batch_size=DEMO_BATCH, workers=DEMO_LOADER_THREADS), ctx.beam_args)
    ctx.outputs["embeddings"] = out
    ctx.report(STEP, "samples embedded / read",
               f"{stats['out']} / {stats['in']} ({stats['dim']}-d, {stats['device']}, "
               f"{stats['samples_per_second']} samples/s)")
    ctx.report(STEP, "embeddings", out)
