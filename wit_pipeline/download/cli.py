"""``wit download``: the command-line wrapper over ``pipeline.download``, and its ``wit demo`` step."""

from __future__ import annotations

import argparse
import json
import os

from ..errors import UserError
from .pipeline import DownloadOptions, download
from .resize import RESIZE_MODES


def _size(text: str) -> int:
    """Bytes, with an optional K/M/G suffix (binary)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r}") from None


def _reasons(text: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in text.split(",") if r.strip() and r.strip() != "all")


def options_from_args(args: argparse.Namespace) -> DownloadOptions:
    return DownloadOptions(
        input=args.input, out=args.out, image_size=args.image_size, resize_mode=args.resize_mode,
        samples_per_shard=args.samples_per_shard, processes=args.processes, threads=args.threads,
        timeout=args.timeout, retries=args.retries, max_bytes=args.max_bytes, min_image_size=args.min_image_size,
        max_aspect_ratio=args.max_aspect_ratio, allow_private_networks=args.allow_private_networks,
        retry_failed=args.retry_failed, drop_duplicates=args.drop_duplicates, per_host_limit=args.per_host_limit,
        encode_quality=args.encode_quality)


def _cmd_download(args: argparse.Namespace) -> int:
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out!r} exists and is not a directory")
    result = download(options_from_args(args), beam_args=args.beam_args)
    rate = result.statuses.get("success", 0) / max(1, result.rows)
    print(f"wit download: {result.samples} samples from {result.rows} rows ({rate:.1%}) in {result.shards} "
          f"shards ({result.done_now} written now) in {result.seconds:.1f} s -> {result.out}")
    failures = {k: v for k, v in result.statuses.items() if k != "success"}
    if failures:
        print("  failures: " + json.dumps(failures, sort_keys=True))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "download", help="download (url, text) pairs into WebDataset shards",
        description="Fetch every row's image, check, resize and re-encode it, and write WebDataset shards "
        "OUT/{shard:05d}.tar, one status parquet per shard (every input row: success or the failure "
        "reason), manifest.json and stats.json. Re-running resumes: complete shards are skipped.")
    parser.add_argument("--input", required=True, metavar="PATH_OR_DIR",
                        help="parquet/CSV/TSV/JSONL file(s) or directory (e.g. wit select's output) with url "
                        "and text columns; other columns go into each sample's .json")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (local or remote)")
    parser.add_argument("--image-size", type=int, default=256, help="output side in pixels (default 256)")
    parser.add_argument("--resize-mode", choices=RESIZE_MODES, default="border",
                        help="img2dataset's resize modes (default border)")
    parser.add_argument("--samples-per-shard", type=int, default=10000, help="input rows per shard (default 10000)")
    parser.add_argument("--processes", type=int, default=None,
                        help="worker processes (Beam DirectRunner workers; default: one per core)")
    parser.add_argument("--threads", type=int, default=32, help="download threads per process (default 32)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="connect and read timeout in seconds (default 10)")
    parser.add_argument("--retries", type=int, default=2,
                        help="retries on timeouts, connection errors, 429 and 5xx, with backoff (default 2)")
    parser.add_argument("--max-bytes", type=_size, default=20 << 20,
                        help="largest body accepted, e.g. 20M (default 20 MiB)")
    parser.add_argument("--min-image-size", type=int, default=200,
                        help="drop images whose shorter side is smaller (default 200)")
    parser.add_argument("--max-aspect-ratio", type=float, default=3.0,
                        help="drop images whose long/short side ratio is larger (default 3)")
    parser.add_argument("--allow-private-networks", action="store_true",
                        help="allow loopback/private addresses (test servers such as the sample web only)")
    parser.add_argument("--retry-failed", nargs="?", const=(), type=_reasons, default=None, metavar="REASONS",
                        help="also redo failed rows of complete shards (all failures, or only the "
                        "comma-separated REASONS, e.g. timeout,http_503); successes are kept, not refetched")
    parser.add_argument("--drop-duplicates", action="store_true",
                        help="drop exact duplicate images (same sha256) across the output, keeping the lowest key")
    parser.add_argument("--per-host-limit", type=int, default=16,
                        help="concurrent requests to one host per process (default 16)")
    parser.add_argument("--encode-quality", type=int, default=95, help="JPEG quality of the output (default 95)")
    parser.set_defaults(func=_cmd_download, beam=True)


def step_download(ctx) -> None:
    """Demo step: download the selected pairs (or the sample web's URL table) from the loopback sample web."""
    from .shards import write_contact_sheet

    source = ctx.outputs.get("selected") or ctx.files.urls_table
    out = ctx.path("shards")
    # A short timeout and no retries keep the sample web's slow fault page from dominating the demo.
    options = DownloadOptions(input=source, out=out, samples_per_shard=64, processes=1, threads=16, timeout=1.0,
                              retries=1, allow_private_networks=True)
    result = download(options, beam_args=ctx.beam_args)
    ctx.outputs["shards"] = out
    sheet = write_contact_sheet(out, os.path.join(out, "report", "contact_sheet.html"), n=100)
    ctx.report("download", "samples / rows", f"{result.samples} / {result.rows} in {result.shards} shards")
    failures = {k: v for k, v in result.statuses.items() if k != "success"}
    ctx.report("download", "failures", ", ".join(f"{k} {v}" for k, v in sorted(failures.items())) or "none")
    ctx.report("download", "shards", out)
    ctx.report("download", "contact sheet", sheet)
