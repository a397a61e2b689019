"""``wit shards ls|stats|verify|show|urls DIR``: inspect a shard set: what ``wit download`` or ``wit overlap
filter`` built, img2dataset's webdataset output, or a folder of ``NNNNN.tar`` alone.

``urls`` prints only the brace pattern on stdout (the sample count goes to stderr)."""

from __future__ import annotations

import argparse
import json
import sys

from ..options import checked_type
from .shards import brace_urls, list_shard_rows, read_manifest_checked, shard_stats, verify, write_contact_sheet


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _cmd_ls(args: argparse.Namespace) -> int:
    rows = list_shard_rows(args.dir)
    print(f"{'shard':<12} {'rows':>8} {'samples':>8} {'bytes':>10} {'success':>8}")
    for row in rows:
        if row.problem:
            print(f"{row.shard:<12} {'?':>8} {'?':>8} {'?':>10} {'?':>8}")
            continue
        print(f"{row.shard:<12} {row.rows:>8} {row.samples:>8} {_human(row.bytes):>10} {row.success_rate:>8.1%}")
    total_rows, total_samples = sum(r.rows for r in rows), sum(r.samples for r in rows)
    rate = total_samples / total_rows if total_rows else 0.0
    print(f"{'total':<12} {total_rows:>8} {total_samples:>8} {_human(sum(r.bytes for r in rows)):>10} {rate:>8.1%}")
    _report_problems("ls", [row.problem for row in rows if row.problem], "left out of the total")
    return 0


def _report_problems(command: str, problems: list[str], consequence: str) -> None:
    """Damage met while reading: one line each on stderr, then how many and what it means for the output."""
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"wit shards {command}: {len(problems)} problem(s) with damaged files, {consequence}; "
              "'wit shards verify' checks the whole directory", file=sys.stderr)


def _cmd_stats(args: argparse.Namespace) -> int:
    stats = shard_stats(args.dir, top=args.top)
    if args.json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
        return 0
    if stats["unreadable"]:
        print(f"unreadable status parquets: {len(stats['unreadable'])} (their rows are not counted below)")
    print(f"rows {stats['rows']}, samples {stats['samples']} ({stats['success_rate']:.1%})")
    print("failures:")
    for reason, n in stats["failures"].items():
        if reason not in stats["opt_outs"]:
            print(f"  {reason:<22} {n:>8}")
    print("opt-outs:")        # rows an opt-out signal or the blocklist refused: nothing of them is stored
    for reason, n in stats["opt_outs"].items():
        print(f"  {reason:<22} {n:>8}")
    print("original shorter side (successes):")
    for bucket, n in stats["shorter_side_histogram"].items():
        print(f"  {bucket:>10} px {n:>8}")
    if stats["queries"]:
        print(f"queries: {stats['queries']}")
        print("  top:    " + ", ".join(f"{q} ({n})" for q, n in stats["top_queries"]))
        print("  bottom: " + ", ".join(f"{q} ({n})" for q, n in stats["bottom_queries"]))
    _report_problems("stats", stats["unreadable"], "left out of the statistics")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    problems = verify(args.dir)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"wit shards verify: {len(problems)} problem(s) in {args.dir}", file=sys.stderr)
        return 1
    print(f"wit shards verify: {args.dir} is consistent (tars, status parquets, manifest)")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    problems = write_contact_sheet(args.dir, args.html, n=args.n)
    print(args.html)
    _report_problems("show", problems, "listed on the page too")
    return 0


def _cmd_urls(args: argparse.Namespace) -> int:
    pattern, samples = brace_urls(args.dir)
    _, unreadable = read_manifest_checked(args.dir)
    if unreadable:
        _report_problems("urls", [unreadable], "the sample count is the shards' own sum")
    print(pattern)         # alone on stdout: "$(wit shards urls DIR)" is the pattern, for OpenCLIP or webdataset
    if not args.quiet:
        print(f"{samples} samples", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("shards", help="inspect, check and list the shards 'wit download' wrote",
                                   description="Inspect a shard directory: 'wit download' output, img2dataset's "
                                   "webdataset output, or NNNNN.tar files alone.")
    commands = parser.add_subparsers(dest="shards_command", metavar="ACTION", required=True)

    def add(name, func, help_text):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("dir", metavar="DIR", help="the shard directory (the --out of 'wit download', "
                         "img2dataset's output_folder, ...)")
        sub.set_defaults(func=func)
        return sub

    add("ls", _cmd_ls, "a table of shards: rows, samples, bytes, success rate")
    stats = add("stats", _cmd_stats, "totals, failure reasons, opt-outs per signal, image size histogram, "
                "top and bottom queries")
    stats.add_argument("--top", type=checked_type(int, "--top", minimum=0), default=10,
                       help="how many top/bottom queries (default 10)")
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")
    add("verify", _cmd_verify, "check every tar against its status parquet and manifest.json; exit 1 on a mismatch")
    show = add("show", _cmd_show, "write an HTML contact sheet of thumbnails with captions and matched queries")
    show.add_argument("--html", required=True, metavar="FILE", help="the HTML file to write")
    show.add_argument("--n", type=checked_type(int, "--n", minimum=1), default=100,
                      help="how many samples (default 100)")
    urls = add("urls", _cmd_urls, "the brace pattern (DIR/{00000..00041}.tar) webdataset and OpenCLIP take")
    urls.add_argument("--quiet", action="store_true", help="leave out the sample count (printed on stderr)")
