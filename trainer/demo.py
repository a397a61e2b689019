"""``wit demo``'s train step: the tiny model trained briefly on the demo's shards, then zero-shot on its eval set."""

from __future__ import annotations

import os

from wit_pipeline.sampleweb.draw import COLOURS, SHAPES
from wit_pipeline.sampleweb.site import ENGLISH_TEMPLATES

from .options import TrainOptions

DEMO_TRAIN_STEPS = 300
DEMO_BATCH = 32


def sample_web_templates() -> list[str]:
    """Prompt templates in the sample web's own caption forms for its eval classes (the shape's colour),
    one per shape and background colour (both marginalised)."""
    return [form.format(c="{}", s=shape, b=background) for form in ENGLISH_TEMPLATES
            for shape in SHAPES for background in COLOURS]


def demo_options(shards: str, out: str, seed: int, workers: int) -> TrainOptions:
    return TrainOptions(shards=shards, out=out, model="tiny", batch_size=DEMO_BATCH, steps=DEMO_TRAIN_STEPS, lr=2e-3,
                        warmup=15, workers=workers, save_every=DEMO_TRAIN_STEPS, log_every=25, seed=seed)


def demo_step(ctx) -> None:
    """Train (reports the loss and checkpoint), then zero-shot on the sample eval set when there is one."""
    if "shards" not in ctx.outputs:
        ctx.report("train", "skipped", "no shards (the download step did not run)")
        return
    # torch loads here, when the step runs, not when `wit demo` starts.
    from .data import resolve_shards
    from .train import run_train

    shards = ctx.outputs["shards"]
    out = ctx.path("train")
    workers = min(2, len(resolve_shards(shards).urls))
    result = run_train(demo_options(shards, out, ctx.seed, workers))
    ctx.outputs["checkpoint"] = result.checkpoint
    ctx.report("train", "loss", f"{result.first_loss:.3f} -> {result.last_loss:.3f} "
               f"({result.steps} steps of {DEMO_BATCH}, tiny model)")
    ctx.report("train", "checkpoint", result.checkpoint)
    eval_dir = getattr(ctx.files, "eval_dir", None)
    if eval_dir and os.path.isdir(eval_dir):
        _zero_shot(ctx, result.checkpoint, eval_dir, out)


def _zero_shot(ctx, checkpoint: str, eval_dir: str, out: str) -> None:
    from .options import ZeroShotOptions
    from .zeroshot import run_zeroshot

    zeroshot_out = os.path.join(out, "zeroshot")
    templates = os.path.join(out, "templates.txt")
    with open(templates, "w", encoding="utf-8") as handle:
        handle.write("\n".join(sample_web_templates()) + "\n")
    metrics = run_zeroshot(ZeroShotOptions(checkpoint=checkpoint, eval=eval_dir, out=zeroshot_out,
                                           templates=templates))
    ctx.outputs["predictions"] = os.path.join(zeroshot_out, "predictions.jsonl")
    ctx.report("train", "zero-shot top1", f"{metrics['top1']:.3f} on {metrics['n']} eval images "
               f"(chance {metrics['chance']:.3f})")
    ctx.report("train", "predictions", ctx.outputs["predictions"])
