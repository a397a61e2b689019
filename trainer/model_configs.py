"""The model shapes by name, without torch: ``wit train --model`` lists them at CLI start-up.

``ModelConfig`` is one shape (widths, depths, heads, patch and image size, context length,
vocabulary); ``MODEL_CONFIGS`` the named ones; ``model.py`` builds a ``CLIP`` from a config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class ModelConfig:
    embed_dim: int
    image_size: int
    patch_size: int
    vision_width: int
    vision_layers: int
    vision_heads: int
    text_width: int
    text_layers: int
    text_heads: int
    context_length: int = 77
    vocab_size: int = 49408      # replaced by the tokenizer's own size when a model is built
    mlp_ratio: float = 4.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return cls(**data)


# Named shapes. ``tiny`` is for CPU tests and the demo: 32 px images of the sample web's shapes in
# 8 px patches, and a 32-token context (its captions are short; the text transformer would otherwise
# cost twice the image side). The ViT shapes use CLIP's 77-token context and 49,408-token vocabulary.
MODEL_CONFIGS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(embed_dim=64, image_size=32, patch_size=8, vision_width=64, vision_layers=3,
                        vision_heads=2, text_width=64, text_layers=2, text_heads=2, context_length=32,
                        vocab_size=1024),
    "vit-s-32": ModelConfig(embed_dim=384, image_size=224, patch_size=32, vision_width=384, vision_layers=12,
                            vision_heads=6, text_width=384, text_layers=12, text_heads=6),
    "vit-b-32": ModelConfig(embed_dim=512, image_size=224, patch_size=32, vision_width=768, vision_layers=12,
                            vision_heads=12, text_width=512, text_layers=12, text_heads=8),
    "vit-b-16": ModelConfig(embed_dim=512, image_size=224, patch_size=16, vision_width=768, vision_layers=12,
                            vision_heads=12, text_width=512, text_layers=12, text_heads=8),
    "vit-l-14": ModelConfig(embed_dim=768, image_size=224, patch_size=14, vision_width=1024, vision_layers=24,
                            vision_heads=16, text_width=768, text_layers=12, text_heads=12),
}


def model_config(name: str, **overrides) -> ModelConfig:
    try:
        config = MODEL_CONFIGS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODEL_CONFIGS)}") from None
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
