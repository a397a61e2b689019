"""Step checkpoints: written atomically under ``OUT/checkpoints/step-NNNNNNNN.pt``, found, loaded.

A checkpoint holds everything a run needs to go on exactly where it stopped:
model, optimiser, scheduler and grad-scaler states, step and samples seen, the
tokenizer, the model and training configurations, and every data stream's
position. It only holds plain containers and tensors, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import re

import torch

from wit_pipeline.errors import UserError

from .model import CLIP, ModelConfig
from .tokenizer import Tokenizer

FORMAT = "wit-clip"
VERSION = 1
_NAME = re.compile(r"^step-(\d{8,})\.pt$")


def checkpoint_dir(out: str) -> str:
    return os.path.join(out, "checkpoints")


def checkpoint_path(out: str, step: int) -> str:
    return os.path.join(checkpoint_dir(out), f"step-{step:08d}.pt")


def list_checkpoints(out: str) -> list[tuple[int, str]]:
    """``(step, path)`` of every finished checkpoint of a run, oldest first."""
    directory = checkpoint_dir(out)
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _NAME.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name)))
    return sorted(found)


def latest_checkpoint(out: str) -> str | None:
    found = list_checkpoints(out)
    return found[-1][1] if found else None


def save_checkpoint(path: str, state: dict, keep: int | None = None) -> None:
    """Write ``state`` so that ``path`` is either absent or complete; then keep only the newest ``keep``."""
    from wit_pipeline.fileio import open_write_atomic

    with open_write_atomic(path) as handle:
        torch.save({"format": FORMAT, "version": VERSION, **state}, handle)
    if keep:
        out = os.path.dirname(os.path.dirname(path))
        for _, old in list_checkpoints(out)[:-keep]:
            os.remove(old)


def load_checkpoint(path: str) -> dict:
    """A checkpoint file, or the latest checkpoint of a run directory (``OUT`` or ``OUT/checkpoints``)."""
    if os.path.isdir(path):
        run = path if os.path.isdir(checkpoint_dir(path)) else os.path.dirname(path.rstrip("/"))
        found = latest_checkpoint(run)
        if found is None:
            raise UserError(f"no checkpoints (step-*.pt) under {path!r}")
        path = found
    if not os.path.isfile(path):
        raise UserError(f"checkpoint {path!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot load checkpoint {path!r}: {exc}".splitlines()[0]) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path!r} is not a wit-clip checkpoint")
    state["path"] = path
    return state


def model_from_checkpoint(state: dict, device: str | torch.device = "cpu") -> tuple[CLIP, Tokenizer]:
    """The model (in eval mode, on ``device``) and tokenizer stored in a loaded checkpoint."""
    model = CLIP(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), Tokenizer.from_dict(state["tokenizer"])
