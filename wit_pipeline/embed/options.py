"""``EmbedOptions``: the flags of ``wit embed``, without torch (``wit --help`` builds them at start-up)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import UserError
from ..options import option

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


@dataclass(kw_only=True)
class EmbedOptions:
    shards: str = option(help="the shards: a folder of .tar (its manifest.json if present), a .tar or a glob; "
                         "`wit download` and `wit overlap filter` outputs and plain tar folders alike",
                         metavar="DIR_OR_PATTERN")
    out: str = option(help="the embeddings folder (img_emb/, text_emb/, metadata/, embed.json, stats.json)",
                      metavar="DIR")
    checkpoint: str | None = option(None, help="a `wit train` checkpoint file or run directory (its latest "
                                    "checkpoint)", metavar="PATH")
    open_clip: str | None = option(None, help="an OpenCLIP model name (e.g. ViT-B-32) instead of --checkpoint; "
                                   "needs open_clip_torch installed and --open-clip-weights", metavar="MODEL")
    open_clip_weights: str | None = option(None, help="the OpenCLIP model's weights, a local file (nothing is "
                                           "downloaded)", metavar="FILE")
    batch_size: int = option(256, help="samples per forward pass", minimum=1, maximum=65536)
    device: str | None = option(None, help="cpu or cuda (default: cuda when available)", choices=DEVICES)
    precision: str | None = option(None, help="fp32, or bf16 autocast (default: bf16 on cuda, fp32 on cpu); "
                                   "embeddings are normalised in float32 either way", choices=PRECISIONS)
    workers: int | None = option(None, help="threads decoding and preprocessing images while the model runs "
                                 "(default: one per core, at most 16; 0: decode in the model's thread)",
                                 minimum=0, maximum=256)
    allow_partial: bool = option(False, help="embed an unfinished `wit download` or `wit overlap filter` output "
                                 "(no stats.json) as it is")

    def validate(self) -> None:
        """The model flags: exactly one model, and OpenCLIP weights only with (and always with) --open-clip."""
        if (self.checkpoint is None) == (self.open_clip is None):
            raise UserError("give exactly one model: --checkpoint PATH (a `wit train` run) or --open-clip MODEL "
                            "--open-clip-weights FILE")
        if self.open_clip is not None and not self.open_clip_weights:
            raise UserError(f"--open-clip {self.open_clip}: give its weights with --open-clip-weights FILE "
                            "(nothing is downloaded)")
        if self.open_clip is None and self.open_clip_weights is not None:
            raise UserError("--open-clip-weights needs --open-clip MODEL")

    def loader_threads(self) -> int:
        return self.workers if self.workers is not None else min(16, os.cpu_count() or 1)
