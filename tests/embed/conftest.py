"""Small colour-shape shards and a tiny `wit train` run to embed them with, made once per test session."""

from __future__ import annotations

import pytest
import torch

from trainer.synthetic import write_shape_shards
from wit_pipeline.cli import main as wit_main


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One thread (`wit train` sets its own count): on a busy shared CPU, torch's two-thread kernels wait on
    each other far longer than they compute."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def embed_shards(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("embed-shards"))
    write_shape_shards(out, shards=3, samples_per_shard=10, image_size=40, seed=3)
    return out


@pytest.fixture(scope="session")
def tiny_run(embed_shards, tmp_path_factory) -> str:
    """A `wit train` run directory (two steps of the tiny model): what `wit embed --checkpoint` takes."""
    run = str(tmp_path_factory.mktemp("embed-train") / "run")
    assert wit_main(["train", "--shards", embed_shards, "--out", run, "--model", "tiny", "--batch-size", "8",
                     "--steps", "2", "--save-every", "2", "--workers", "0", "--tokenizer-captions", "200"]) == 0
    return run
