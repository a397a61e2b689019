"""A `wit train`-format checkpoint of the tiny model with random weights, written in a blink (no training):
for tests that need a loadable model, not a trained one."""

from __future__ import annotations

import dataclasses

import torch

from trainer.checkpoint import checkpoint_path, save_checkpoint
from trainer.model import CLIP
from trainer.model_configs import model_config
from trainer.synthetic import write_shape_shards
from trainer.tokenizer import Tokenizer


def write_tiny_checkpoint(run: str, seed: int = 0) -> str:
    """``run/checkpoints/step-00000001.pt``; returns its path."""
    shape = model_config("tiny")
    tokenizer = Tokenizer.train(["a red circle on a blue background", "a green square on a white background"],
                                vocab_size=300, context_length=shape.context_length)
    config = dataclasses.replace(shape, vocab_size=tokenizer.vocab_size)
    torch.manual_seed(seed)
    path = checkpoint_path(run, 1)
    save_checkpoint(path, {"step": 1, "model_name": "tiny", "model": CLIP(config).state_dict(),
                           "model_config": config.to_dict(), "tokenizer": tokenizer.to_dict()})
    return path


def write_embed_inputs(root: str) -> tuple[str, str]:
    """Two small shards and a tiny checkpoint under ``root``: ``(shards folder, checkpoint path)``."""
    shards = f"{root}/embed-shards"
    write_shape_shards(shards, shards=2, samples_per_shard=4, image_size=32, seed=1)
    return shards, write_tiny_checkpoint(f"{root}/tiny-run")
