"""Step checkpoints: written atomically under ``OUT/checkpoints/step-NNNNNNNN.pt``, found, checked, loaded.

A checkpoint holds everything a run needs to go on exactly where it stopped:
model, optimiser, scheduler and grad-scaler states, step and samples seen, the
tokenizer, the model and training configurations, and every data stream's
position. It only holds plain containers and tensors, so it loads with
``torch.load(weights_only=True)``.

Integrity: ``digests`` holds two sha256 (``state_digest``): of the model's
weights, and of the whole payload (every other entry too). ``load_checkpoint``
recomputes both; a mismatch (a flipped byte in a tensor, a damaged pickle) is a
``UserError`` naming the file, never a silently wrong model. A checkpoint from
before digests (``VERSION`` 1) loads with a one-line warning.

A checkpoint write killed half-way leaves its temporary file (``fileio``'s
``.step-NNNNNNNN.pt.<hex>.tmp``) in ``checkpoints/``: the next run of the same
directory removes it when it takes the directory's lock (``stage.output_lock``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re

import torch

from wit_pipeline import fileio
from wit_pipeline.errors import UserError

from .model import CLIP, ModelConfig
from .tokenizer import Tokenizer

log = logging.getLogger(__name__)

FORMAT = "wit-clip"
VERSION = 2                       # 2: ``digests``; 1 (no digests) still loads, with a warning
_NAME = re.compile(r"^step-(\d{8,})\.pt$")
_DIGESTS = "digests"


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


# -- digests ---------------------------------------------------------------------------------------------

def _feed(hasher, value) -> None:
    """Hash ``value`` unambiguously: type tags, lengths and keys around tensors' raw bytes and scalars' reprs.
    Lists and tuples hash alike, so a container type changed by a save/load round trip is no mismatch."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        hasher.update(f"T{tensor.dtype}{tuple(tensor.shape)}|".encode())
        hasher.update(tensor.contiguous().reshape(-1).view(torch.uint8).cpu().numpy().data)
    elif isinstance(value, dict):
        hasher.update(f"D{len(value)}|".encode())
        for key, item in value.items():
            _feed(hasher, key)
            _feed(hasher, item)
    elif isinstance(value, (list, tuple)):
        hasher.update(f"L{len(value)}|".encode())
        for item in value:
            _feed(hasher, item)
    else:
        hasher.update(f"S{type(value).__name__}:{value!r}|".encode())


def state_digest(value) -> str:
    """sha256 of a checkpoint entry (or of a whole payload): tensors by their bytes, dtype and shape."""
    hasher = hashlib.sha256()
    _feed(hasher, value)
    return hasher.hexdigest()


def _digests(payload: dict) -> dict[str, str]:
    model = state_digest(payload["model"])
    # The payload's digest covers the weights through their digest: each tensor is hashed once.
    rest = {key: model if key == "model" else value for key, value in payload.items() if key != _DIGESTS}
    return {"model": model, "payload": state_digest(rest)}


def _check_digests(path: str, state: dict) -> None:
    stored = state.get(_DIGESTS)
    if stored is None:
        log.warning("checkpoint %s has no digest (written before version %d): loading it unchecked", path, VERSION)
        return
    computed = _digests(state)
    damaged = [name for name in ("model", "payload") if not isinstance(stored, dict) or stored.get(name) !=
               computed[name]]
    if damaged:
        what = "the model weights" if "model" in damaged else "its training state (optimizer, data positions ...)"
        raise UserError(f"checkpoint {path} is damaged (digest mismatch): {what} differ from what was saved; "
                        "use an earlier checkpoint or retrain")


# -- save and load ---------------------------------------------------------------------------------------

def save_checkpoint(path: str, state: dict, keep: int | None = None) -> None:
    """Write ``state`` so that ``path`` is either absent or complete; then keep only the newest ``keep``."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    payload[_DIGESTS] = _digests(payload)
    with fileio.open_write_atomic(path) as handle:
        torch.save(payload, handle)
    if keep:
        out = os.path.dirname(os.path.dirname(path))
        for _, old in list_checkpoints(out)[:-keep]:
            os.remove(old)


def load_checkpoint(path: str) -> dict:
    """A checkpoint file, or the latest checkpoint of a run directory (``OUT`` or ``OUT/checkpoints``), its
    digests checked."""
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
    if not isinstance(state.get("version"), int) or state["version"] > VERSION:
        raise UserError(f"checkpoint {path} has version {state.get('version')!r}, newer than this wit reads "
                        f"({VERSION}); upgrade wit")
    _check_digests(path, state)
    state["path"] = path
    return state


def model_from_checkpoint(state: dict, device: str | torch.device = "cpu") -> tuple[CLIP, Tokenizer]:
    """The model (in eval mode, on ``device``) and tokenizer stored in a loaded checkpoint."""
    model = CLIP(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), Tokenizer.from_dict(state["tokenizer"])
