"""``wit download``: the command over ``pipeline.run_download`` (flags generated from ``DownloadOptions``)."""

from __future__ import annotations

import argparse
import json
import os

from ..errors import UserError
from ..options import add_options, from_args
from .pipeline import DownloadOptions, run_download


def _cmd_download(args: argparse.Namespace) -> int:
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out!r} exists and is not a directory")
    stats = run_download(from_args(DownloadOptions, args), beam_args=args.beam_args)
    rate = stats["out"] / max(1, stats["in"])
    seconds = stats["seconds"] + stats["plan_seconds"]
    print(f"wit download: {stats['out']} samples from {stats['in']} rows ({rate:.1%}) in {stats['shards']} "
          f"shards ({stats['done_now']} written now) in {seconds:.1f} s -> {args.out}")
    if stats["dropped"]:
        print("  failures: " + json.dumps(stats["dropped"], sort_keys=True))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "download", help="download (url, text) pairs into WebDataset shards",
        description="Fetch every row's image, check, resize and re-encode it, and write WebDataset shards "
        "OUT/{shard:05d}.tar, one status parquet per shard (every input row: success or the failure "
        "reason), manifest.json and stats.json. Re-running resumes: complete shards are skipped.")
    add_options(parser, DownloadOptions)
    parser.set_defaults(func=_cmd_download, beam=True)
