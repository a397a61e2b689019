"""Zero-shot classification of an ImageFolder with prompt templates and ensembling.

A class's text embedding is the mean of its L2-normalised template embeddings
("a photo of a {}." and its family, or templates read from a file), normalised
again. ``wit eval zeroshot`` writes ``DIR/metrics.json`` (``top1``/``top5`` as
fractions) and ``DIR/predictions.jsonl`` (``eval_id``: the image's path
relative to the eval root, ``label``, ``predicted``, ``correct``) for
``wit overlap accuracy``. During training the images are split across ranks
and only the counts are summed, so every rank does an equal share. Images that
do not decode are left out of the accuracy and counted (``unreadable_images``);
an eval set of which none decodes is a ``UserError``, not a top-1 of 0.
"""

from __future__ import annotations

import contextlib
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.distributed as dist

from wit_pipeline.errors import UserError

from .data import load_image_file
from .options import ZeroShotOptions
from .tokenizer import Tokenizer

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")

# The paper's "a photo of a {}." family, short enough to be cheap on every class.
DEFAULT_TEMPLATES = [
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a photo of the {}.",
    "a close-up photo of a {}.",
    "a drawing of a {}.",
    "a rendering of a {}.",
    "a photo of a small {}.",
    "a photo of a large {}.",
    "a {}.",
]


def load_templates(path: str | None) -> list[str]:
    """Templates from a file (one per line, each with ``{}``; ``#`` comments), or the default family."""
    if path is None:
        return list(DEFAULT_TEMPLATES)
    from wit_pipeline.fileio import read_text  # not UTF-8: a one-line error naming the line

    lines = read_text(path).splitlines()
    templates = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    bad = [t for t in templates if "{}" not in t]
    if not templates or bad:
        raise UserError(f"--templates {path!r}: " + (f"template {bad[0]!r} has no {{}}" if bad else "no templates"))
    return templates


class ZeroShotSet:
    """An ImageFolder: ``ROOT/<class>/<image>``; class names are folder names (``_`` read as a space)."""

    def __init__(self, root: str):
        if not os.path.isdir(root):
            raise UserError(f"eval set {root!r} is not a directory")
        self.root = root
        self.classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                              and not d.startswith("."))
        self.items: list[tuple[str, int]] = []
        for index, name in enumerate(self.classes):
            for folder, _, files in sorted(os.walk(os.path.join(root, name))):
                for file in sorted(files):
                    if file.lower().endswith(IMAGE_SUFFIXES):
                        self.items.append((os.path.relpath(os.path.join(folder, file), root).replace(os.sep, "/"),
                                           index))
        if len(self.classes) < 2 or not self.items:
            raise UserError(f"eval set {root!r}: need an ImageFolder with at least 2 class folders of images "
                            f"(found {len(self.classes)} classes, {len(self.items)} images)")

    @property
    def classnames(self) -> list[str]:
        return [c.replace("_", " ") for c in self.classes]


@torch.no_grad()
def class_embeddings(model, tokenizer: Tokenizer, classnames: list[str], templates: list[str],
                     device, autocast=contextlib.nullcontext) -> torch.Tensor:
    weights = []
    for name in classnames:
        tokens = torch.from_numpy(tokenizer([t.format(name) for t in templates])).to(device)
        with autocast():
            embedding = model.encode_text(tokens).float().mean(dim=0)
        weights.append(embedding / embedding.norm())
    return torch.stack(weights)


def load_images(root: str, paths: list[str], size: int) -> tuple[list[int], list[np.ndarray], list[str]]:
    """Centre-cropped ``uint8`` arrays of ``root/path`` (8 threads): readable indices, arrays, unreadable paths."""
    def load(relpath):
        try:
            return load_image_file(os.path.join(root, relpath), size)
        except Exception:
            return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        arrays = list(pool.map(load, paths))
    ok = [i for i, a in enumerate(arrays) if a is not None]
    return ok, [arrays[i] for i in ok], [paths[i] for i, a in enumerate(arrays) if a is None]


@torch.no_grad()
def evaluate(model, tokenizer: Tokenizer, eval_set: ZeroShotSet, templates: list[str], device, *,
             rank: int = 0, world_size: int = 1, autocast=contextlib.nullcontext, batch_size: int = 256,
             with_predictions: bool = False) -> dict:
    """Top-1/top-5 accuracy (fractions) over the images this rank owns, summed over ranks.

    Unreadable images are left out of the accuracy and counted: ``unreadable_images`` (all ranks) and
    ``unreadable`` (this rank's paths).
    """
    weights = class_embeddings(model, tokenizer, eval_set.classnames, templates, device, autocast)
    k = min(5, len(eval_set.classes))
    mine = eval_set.items[rank::world_size]
    counts = torch.zeros(4, dtype=torch.float64, device=device)   # top1 hits, top5 hits, images, unreadable
    predictions, unreadable = [], []
    size = model.config.image_size
    for start in range(0, len(mine), batch_size):
        chunk = mine[start:start + batch_size]
        ok, arrays, bad = load_images(eval_set.root, [p for p, _ in chunk], size)
        unreadable.extend(bad)
        counts[3] += len(bad)
        if not ok:
            continue
        labels = torch.tensor([chunk[i][1] for i in ok], device=device)
        with autocast():
            features = model.encode_image(torch.from_numpy(np.stack(arrays)).to(device)).float()
        top = (features @ weights.T).topk(k, dim=-1).indices
        hit1 = top[:, 0] == labels
        counts[:3] += torch.stack([hit1.sum(), (top == labels[:, None]).any(-1).sum(),
                                   torch.tensor(len(ok), device=device)]).double()
        if with_predictions:
            for i, index in enumerate(ok):
                relpath, label = chunk[index]
                predictions.append({"eval_id": relpath, "label": eval_set.classes[label],
                                    "predicted": eval_set.classes[int(top[i, 0])], "correct": bool(hit1[i])})
    if world_size > 1:
        dist.all_reduce(counts)
    top1, top5, n, bad_images = counts.tolist()
    result = {"top1": top1 / n if n else 0.0, "top5": top5 / n if n else 0.0, "n": int(n),
              "classes": len(eval_set.classes), "templates": len(templates), "unreadable": unreadable,
              "unreadable_images": int(bad_images)}
    if with_predictions:
        result["predictions"] = predictions
    return result


def run_zeroshot(options: ZeroShotOptions) -> dict:
    """``wit eval zeroshot``: writes ``OUT/metrics.json`` and ``OUT/predictions.jsonl``; returns the metrics."""
    from wit_pipeline.fileio import write_json_atomic, write_text_atomic

    from .checkpoint import load_checkpoint, model_from_checkpoint

    options.validate()
    eval_path, out = options.eval, options.out
    os.makedirs(out, exist_ok=True)   # an unusable --out fails now, not after the evaluation
    eval_set = ZeroShotSet(eval_path)
    template_list = load_templates(options.templates)
    state = load_checkpoint(options.checkpoint)
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, tokenizer = model_from_checkpoint(state, device)
    autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda"
                else contextlib.nullcontext)
    result = evaluate(model, tokenizer, eval_set, template_list, device, autocast=autocast,
                      batch_size=options.batch_size, with_predictions=True)
    predictions = result.pop("predictions")
    if not result["n"]:
        raise UserError(f"eval set {eval_path!r}: none of its {len(eval_set.items)} images could be read "
                        f"(first: {result['unreadable'][0]}); nothing was evaluated")
    metrics = {**result, "checkpoint": state["path"], "step": state["step"], "eval": os.path.abspath(eval_path),
               "chance": 1 / len(eval_set.classes)}
    write_text_atomic(os.path.join(out, "predictions.jsonl"),
                      "".join(json.dumps(p, sort_keys=True) + "\n" for p in predictions))
    write_json_atomic(os.path.join(out, "metrics.json"), metrics)
    return metrics
