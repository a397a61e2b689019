"""Small shards and eval sets drawn with the sample web's shapes, made once per test session."""

from __future__ import annotations

import pytest
import torch

from trainer.synthetic import write_shape_imagefolder, write_shape_shards

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def shards_dir(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("trainer-shards"))
    write_shape_shards(out, shards=4, samples_per_shard=48, image_size=48, seed=0)
    return out


@pytest.fixture(scope="session")
def eval_dir(tmp_path_factory) -> str:
    return write_shape_imagefolder(str(tmp_path_factory.mktemp("trainer-eval")), per_class=4, image_size=48)


@pytest.fixture(scope="session")
def tokenizer(shards_dir):
    from trainer.data import read_captions, resolve_shards
    from trainer.tokenizer import Tokenizer

    return Tokenizer.train(read_captions(resolve_shards(shards_dir).urls, 1000), vocab_size=512)
