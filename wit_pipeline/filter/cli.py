"""``wit filter``: the command over ``pipeline.run_filter`` (flags from ``FilterOptions``)."""

from __future__ import annotations

import argparse

from ..options import add_options, from_args
from .pipeline import FilterOptions, run_filter


def _cmd(args: argparse.Namespace) -> int:
    stats = run_filter(from_args(FilterOptions, args), args.beam_args)
    dropped = ", ".join(f"{reason} {count}" for reason, count in stats["dropped"].items() if count) or "none"
    print(f"wit filter: {stats['in']} samples, {stats['out']} kept in {stats['shards']} shards "
          f"(dropped: {dropped}) -> {stats['outputs']['shards']}; see {stats['outputs']['report']}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "filter", help="curate a shard set by CLIP score, in-set duplicates, SemDeDup and eval clusters (a Beam job)",
        description="Drop samples by rules that combine, in this order: no_embedding, low_clip_score "
        "(--clip-score-min, --clip-score-top), exact_duplicate and near_duplicate (--dedup), semantic_duplicate "
        "(--semdedup-eps) and off_distribution (--image-cluster-eval). Writes the shard set in the download "
        "format (tars, status parquets listing every input key, manifest.json, sizes.json), filter.html and "
        "stats.json.",
        epilog="Beam pipeline options (--runner, --direct_num_workers, ...) may follow.")
    add_options(parser, FilterOptions)
    parser.set_defaults(func=_cmd, beam=True)
