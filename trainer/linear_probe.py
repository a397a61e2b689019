"""Linear probe: multinomial logistic regression on frozen image features.

Features are the model's L2-normalised image embeddings of two ImageFolders
(train and test, matched by class-folder name). The L2 penalty is chosen on a
held-out fifth of the train set from a small grid, then the classifier is
refit on the whole train set with full-batch L-BFGS and scored on the test set.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch
import torch.nn.functional as F

from wit_pipeline.errors import UserError
from wit_pipeline.fileio import write_json_atomic

from .options import LinearProbeOptions
from .zeroshot import ZeroShotSet, load_images

PENALTIES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@torch.no_grad()
def extract_features(model, eval_set: ZeroShotSet, device, autocast=contextlib.nullcontext,
                     batch_size: int = 256) -> tuple[torch.Tensor, list[str], list[str]]:
    """Features of the readable images, their class names, and the unreadable paths."""
    features, labels, unreadable = [], [], []
    for start in range(0, len(eval_set.items), batch_size):
        chunk = eval_set.items[start:start + batch_size]
        ok, arrays, bad = load_images(eval_set.root, [p for p, _ in chunk], model.config.image_size)
        unreadable.extend(bad)
        if ok:
            with autocast():
                features.append(model.encode_image(torch.from_numpy(np.stack(arrays)).to(device)).float().cpu())
            labels.extend(eval_set.classes[chunk[i][1]] for i in ok)
    if not features:
        raise UserError(f"no readable images in {eval_set.root!r}")
    return torch.cat(features), labels, unreadable


def fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, penalty: float, steps: int = 100):
    """Weights ``[D, C]`` and bias ``[C]`` minimising mean cross-entropy + ``penalty * |W|^2``."""
    weight = torch.zeros(x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def accuracy(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> float:
    return ((x @ weight + bias).argmax(-1) == y).double().mean().item()


def run_linear_probe(options: LinearProbeOptions) -> dict:
    """``wit eval linear-probe``: fit on ``--train``'s frozen image features, score ``--test``; the metrics
    (also written to ``OUT/metrics.json`` when ``--out`` is given)."""
    from .checkpoint import load_checkpoint, model_from_checkpoint

    options.validate()
    train_set, test_set = ZeroShotSet(options.train), ZeroShotSet(options.test)
    unknown = sorted(set(test_set.classes) - set(train_set.classes))
    if unknown:
        raise UserError(f"--test classes missing from --train: {', '.join(unknown[:5])}")
    state = load_checkpoint(options.checkpoint)
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, _ = model_from_checkpoint(state, device)
    autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda"
                else contextlib.nullcontext)
    index = {name: i for i, name in enumerate(train_set.classes)}
    x_train, names, bad_train = extract_features(model, train_set, device, autocast)
    y_train = torch.tensor([index[n] for n in names])
    x_test, names, bad_test = extract_features(model, test_set, device, autocast)
    y_test = torch.tensor([index[n] for n in names])
    mean, std = x_train.mean(0), x_train.std(0).clamp(min=1e-6)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(options.seed))
    held = order[: max(1, len(order) // 5)]
    fit = order[len(held):]
    classes = len(train_set.classes)
    scores = {}
    for penalty in PENALTIES:
        w, b = fit_logistic(x_train[fit], y_train[fit], classes, penalty)
        scores[penalty] = accuracy(x_train[held], y_train[held], w, b)
    best = max(PENALTIES, key=lambda p: (scores[p], p))   # ties: the stronger penalty
    w, b = fit_logistic(x_train, y_train, classes, best)
    metrics = {"top1": accuracy(x_test, y_test, w, b), "train_top1": accuracy(x_train, y_train, w, b),
               "penalty": best, "validation": {str(p): s for p, s in scores.items()},
               "train_images": len(y_train), "test_images": len(y_test), "classes": classes,
               "chance": 1 / classes, "unreadable": bad_train + bad_test, "checkpoint": state["path"],
               "train": os.path.abspath(options.train), "test": os.path.abspath(options.test)}
    if options.out:
        write_json_atomic(os.path.join(options.out, "metrics.json"), metrics)
    return metrics
