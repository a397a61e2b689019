"""``wit embed``: the command over ``pipeline.run_embed`` (flags from ``EmbedOptions``).

torch and Beam are imported when the command runs: ``wit --help`` and the other commands start without them.
"""

from __future__ import annotations

import argparse

from ..options import add_options, from_args
from .options import EmbedOptions


def _cmd(args: argparse.Namespace) -> int:
    from .pipeline import run_embed

    stats = run_embed(from_args(EmbedOptions, args), args.beam_args)
    dropped = ", ".join(f"{reason} {count}" for reason, count in stats["dropped"].items() if count) or "none"
    print(f"wit embed: {stats['out']} of {stats['in']} samples embedded ({stats['model']['name']}, dim "
          f"{stats['dim']}, {stats['precision']} on {stats['device']}; dropped: {dropped}); {stats['parts']} parts, "
          f"{stats['parts_resumed']} kept from an earlier run; {stats['samples_per_second']} samples/s "
          f"-> {stats['outputs']['embeddings']}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed", help="image and text embeddings of every sample (clip-retrieval's embeddings folder)",
        description="Embed the image and caption of every sample of a shard set with a `wit train` checkpoint or "
        "an OpenCLIP model: OUT/img_emb/img_emb_{i}.npy and OUT/text_emb/text_emb_{i}.npy (float16, "
        "L2-normalised, row-aligned) and OUT/metadata/metadata_{i}.parquet (key, shard, url, caption, clip_score), "
        "one part per shard; a rerun redoes only the parts that are missing. Writes embed.json and stats.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_options(parser, EmbedOptions)
    parser.set_defaults(func=_cmd, beam=True)
