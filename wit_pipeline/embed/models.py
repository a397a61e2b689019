"""The models ``wit embed`` runs: a ``wit train`` checkpoint, or an OpenCLIP model from a local weights file.

``describe_model(options)`` runs on the driver: it finds the model (a run directory's latest checkpoint, or
the OpenCLIP model's config), refuses what cannot be used in one line, and returns a ``ModelSpec``: what a
worker needs to load it (``load_embedder``) and what ``embed.json`` records (name, file, sha256, dim, image
size). ``resolve_device`` / ``resolve_precision`` turn the flags' defaults into a device and a precision.

An ``Embedder`` splits the work as the job runs it: ``prepare_image(bytes)`` (decode and preprocess, in the
loader threads) and ``tokenize(captions)``, then ``encode(images, tokens)`` in the model's thread under
``torch.inference_mode`` (and bf16 autocast), returning float32 L2-normalised image and text embeddings.
The wit model's images are prepared as its zero-shot eval prepares them (``trainer.data.decode_image``:
the centre square, resized to the model's side, ``uint8``; the model normalises); an OpenCLIP model's
with its own eval transform. ``open_clip`` is imported only for ``--open-clip``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from .options import EmbedOptions

OPEN_CLIP_INSTALL = "pip install open_clip_torch"


@dataclass(frozen=True)
class ModelSpec:
    """Which model made a set of embeddings (``embed.json``'s ``model``), and how a worker loads it."""

    kind: str            # "wit" (a `wit train` checkpoint) or "open_clip"
    name: str            # the wit model's shape name, or the OpenCLIP model name
    path: str            # the checkpoint or weights file
    sha256: str          # of that file
    dim: int
    image_size: int

    def to_dict(self) -> dict:
        return asdict(self)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_device(device: str | None) -> str:
    """``--device`` (None: cuda when available); cuda on a machine without it is the user's mistake."""
    if device == "cuda" and not torch.cuda.is_available():
        build = "this torch has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise UserError(f"--device cuda: {build} (torch {torch.__version__}); use --device cpu")
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def resolve_precision(precision: str | None, device: str) -> str:
    return precision or ("bf16" if device == "cuda" else "fp32")


# -- finding the model (driver) ------------------------------------------------------------------------------

def _wit_spec(checkpoint: str) -> ModelSpec:
    from trainer.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)     # a run directory -> its latest checkpoint; digests checked
    config = state["model_config"]
    return ModelSpec("wit", str(state.get("model_name") or "wit-clip"), state["path"], file_sha256(state["path"]),
                     int(config["embed_dim"]), int(config["image_size"]))


def import_open_clip():
    try:
        import open_clip
    except ImportError:
        raise UserError(f"--open-clip needs the open_clip package: {OPEN_CLIP_INSTALL}") from None
    return open_clip


def _open_clip_spec(name: str, weights: str) -> ModelSpec:
    open_clip = import_open_clip()
    if not os.path.isfile(weights):
        raise UserError(f"--open-clip-weights {weights!r} does not exist (nothing is downloaded: give a local file)")
    config = open_clip.get_model_config(name)
    if not config:
        raise UserError(f"--open-clip {name!r}: not a model open_clip knows (see open_clip.list_models())")
    size = config.get("vision_cfg", {}).get("image_size", 224)
    size = size[0] if isinstance(size, (list, tuple)) else size
    return ModelSpec("open_clip", name, weights, file_sha256(weights), int(config["embed_dim"]), int(size))


def describe_model(options: EmbedOptions) -> ModelSpec:
    """The model the flags name, checked on the driver (a missing or damaged file is one line)."""
    options.validate()
    if options.checkpoint is not None:
        return _wit_spec(options.checkpoint)
    return _open_clip_spec(options.open_clip, options.open_clip_weights)


# -- running it (workers) ----------------------------------------------------------------------------------

class Embedder:
    """A loaded model: ``prepare_image`` (thread-safe), ``tokenize``, ``collate``, ``encode``."""

    def __init__(self, spec: ModelSpec, model: torch.nn.Module, device: str, precision: str):
        self.spec, self.model, self.device, self.precision = spec, model, torch.device(device), precision

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare_image(self, data: bytes) -> Any:
        raise NotImplementedError

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def collate(self, images: list) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Float32 L2-normalised ``(image, text)`` embeddings, ``[n, dim]`` each, on the CPU."""
        pin = self.device.type == "cuda"
        images = (images.pin_memory() if pin else images).to(self.device, non_blocking=pin)
        tokens = tokens.to(self.device, non_blocking=pin)
        with torch.inference_mode(), self.autocast():
            image_features = self.model.encode_image(images, normalize=False)
            text_features = self.model.encode_text(tokens, normalize=False)
        image_features = F.normalize(image_features.float(), dim=-1)
        text_features = F.normalize(text_features.float(), dim=-1)
        return image_features.cpu().numpy(), text_features.cpu().numpy()


class WitEmbedder(Embedder):
    """A ``wit train`` checkpoint: images as its zero-shot eval prepares them."""

    def __init__(self, spec: ModelSpec, device: str, precision: str):
        from trainer.checkpoint import load_checkpoint, model_from_checkpoint

        model, self.tokenizer = model_from_checkpoint(load_checkpoint(spec.path), device)
        super().__init__(spec, model, device, precision)

    def prepare_image(self, data: bytes) -> np.ndarray:
        from trainer.data import decode_image

        return decode_image(data, self.spec.image_size)

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        return torch.from_numpy(self.tokenizer(captions))

    def collate(self, images: list) -> torch.Tensor:
        return torch.from_numpy(np.stack(images))


class OpenClipEmbedder(Embedder):
    """An OpenCLIP model from a local weights file, with its own eval transform and tokenizer."""

    def __init__(self, spec: ModelSpec, device: str, precision: str):
        open_clip = import_open_clip()
        model, _, self.preprocess = open_clip.create_model_and_transforms(spec.name, pretrained=spec.path,
                                                                          device=device)
        self.tokenizer = open_clip.get_tokenizer(spec.name)
        super().__init__(spec, model.eval(), device, precision)

    def prepare_image(self, data: bytes) -> torch.Tensor:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return self.preprocess(image.convert("RGB"))

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        return self.tokenizer(captions)

    def collate(self, images: list) -> torch.Tensor:
        return torch.stack(images)


def load_embedder(spec: ModelSpec, device: str, precision: str) -> Embedder:
    """The model ``spec`` names, loaded on ``device`` in eval mode (once per worker)."""
    if spec.kind == "open_clip":
        return OpenClipEmbedder(spec, device, precision)
    return WitEmbedder(spec, device, precision)
