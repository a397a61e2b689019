"""`wit embed --open-clip`: the model loads through open_clip's own API from a local file (a stand-in module
here: open_clip is not a test dependency), and without open_clip the flag is one line naming the package."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch

from wit_pipeline.embed.pipeline import EmbedOptions, run_embed
from wit_pipeline.errors import UserError

DIM = 8


class _FakeClip(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.image = torch.nn.Linear(3 * 16 * 16, DIM)
        self.text = torch.nn.EmbeddingBag(100, DIM)

    def encode_image(self, images, normalize=False):
        return self.image(images.flatten(1))

    def encode_text(self, tokens, normalize=False):
        return self.text(tokens)


def _fake_open_clip(seen: dict) -> types.ModuleType:
    module = types.ModuleType("open_clip")
    module.get_model_config = lambda name: {"embed_dim": DIM, "vision_cfg": {"image_size": 16}} if name == "Fake-B" \
        else None

    def create_model_and_transforms(name, pretrained=None, device="cpu"):
        seen["pretrained"] = pretrained
        torch.manual_seed(0)

        def preprocess(image):
            return torch.from_numpy(np.asarray(image.resize((16, 16)), dtype=np.float32) / 255).permute(2, 0, 1)

        return _FakeClip().to(device), None, preprocess

    module.create_model_and_transforms = create_model_and_transforms
    module.get_tokenizer = lambda name: (lambda texts: torch.tensor([[len(t) % 100, 1, 2] for t in texts]))
    return module


def test_an_open_clip_model_is_loaded_from_the_given_file_and_embeds_the_set(embed_shards, tmp_path, monkeypatch):
    seen: dict = {}
    monkeypatch.setitem(sys.modules, "open_clip", _fake_open_clip(seen))
    weights = tmp_path / "fake.pt"
    weights.write_bytes(b"weights")
    stats = run_embed(EmbedOptions(shards=embed_shards, out=str(tmp_path / "emb"), open_clip="Fake-B",
                                   open_clip_weights=str(weights), batch_size=7, workers=2))
    assert seen["pretrained"] == str(weights)
    assert stats["out"] == 30 and stats["dim"] == DIM and stats["accounted"]
    image = np.load(tmp_path / "emb" / "img_emb" / "img_emb_0.npy")
    assert image.shape == (10, DIM) and np.allclose(np.linalg.norm(image.astype(np.float32), axis=1), 1, atol=2e-3)
    model = json.loads((tmp_path / "emb" / "embed.json").read_text())["model"]
    assert model["kind"] == "open_clip" and model["name"] == "Fake-B" and model["image_size"] == 16


def test_open_clip_flags_without_the_package_or_a_known_model_are_one_line_errors(embed_shards, tmp_path,
                                                                                 monkeypatch):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"w")
    options = dict(shards=embed_shards, out=str(tmp_path / "emb"), open_clip_weights=str(weights))
    monkeypatch.setitem(sys.modules, "open_clip", None)          # `import open_clip` raises ImportError
    with pytest.raises(UserError, match=r"--open-clip needs the open_clip package: pip install open_clip_torch"):
        run_embed(EmbedOptions(open_clip="ViT-B-32", **options))
    monkeypatch.setitem(sys.modules, "open_clip", _fake_open_clip({}))
    with pytest.raises(UserError, match=r"--open-clip 'ViT-Q-99': not a model open_clip knows"):
        run_embed(EmbedOptions(open_clip="ViT-Q-99", **options))
    with pytest.raises(UserError, match=r"--open-clip ViT-B-32: give its weights with --open-clip-weights"):
        run_embed(EmbedOptions(shards=embed_shards, out=str(tmp_path / "emb"), open_clip="ViT-B-32"))
