"""``wit sampleweb serve|write``: run the sample web by hand, or write its files.

``serve --consent`` serves the three-origin consent web of ``consent_web.py`` instead (its URL table and
blocklist go to ``--write DIR``)."""

from __future__ import annotations

import argparse
import json
import time

from ..options import checked_type
from . import serve_sample_web


def _wait_for_ctrl_c() -> int:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def _serve_consent(args: argparse.Namespace) -> int:
    from .consent_web import serve_consent_web

    with serve_consent_web() as web:
        print("consent web at " + " ".join(origin.base_url + "/" for origin in web.origins), flush=True)
        if args.write:
            files = web.write_files(args.write)
            print(f"urls: {files.urls_table}\nblocklist: {files.blocklist}", flush=True)
        print("Ctrl-C stops it", flush=True)
        return _wait_for_ctrl_c()


def _cmd_serve(args: argparse.Namespace) -> int:
    if args.consent:
        return _serve_consent(args)
    with serve_sample_web(args.seed, faults=not args.no_faults, latency_s=args.latency, port=args.port,
                          n_images=args.images) as web:
        if args.write:
            web.write_files(args.write)
        print(f"sample web (seed {args.seed}) at {web.base_url}/ ; Ctrl-C stops it", flush=True)
        return _wait_for_ctrl_c()


def _cmd_write(args: argparse.Namespace) -> int:
    with serve_sample_web(args.seed, faults=not args.no_faults, n_images=args.images) as web:
        files = web.write_files(args.out)
    print(json.dumps(files.__dict__, indent=2))
    print("note: URLs in these files point at a server that has now stopped; "
          "'wit sampleweb serve --write DIR' keeps one running", flush=True)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("sampleweb", help="serve the built-in sample web on loopback, or write its files",
                                   description="The deterministic sample web that 'wit demo' and the tests use.")
    commands = parser.add_subparsers(dest="sampleweb_command", metavar="ACTION", required=True)

    def common(p):
        p.add_argument("--seed", type=int, default=0, help="content seed (default 0)")
        p.add_argument("--images", type=checked_type(int, "--images", minimum=1), default=240,
                       help="number of images of the mostly English web (default 240); the German, Chinese and "
                       "Japanese pages add 1/24 of it each")
        p.add_argument("--no-faults", action="store_true", help="switch the fault pages off")

    serve = commands.add_parser("serve", help="serve on 127.0.0.1 until Ctrl-C")
    common(serve)
    serve.add_argument("--port", type=checked_type(int, "--port", minimum=0, maximum=65535), default=0,
                       help="port (default: a free one)")
    serve.add_argument("--latency", type=checked_type(float, "--latency", minimum=0, maximum=3600), default=0.0,
                       help="added seconds per response")
    serve.add_argument("--write", metavar="DIR", help="also write its files (WAT, WARC, eval set, ...) to DIR")
    serve.add_argument("--consent", action="store_true",
                       help="serve the three-origin consent web instead (opt-out signals and blocklisted images, "
                       "on free ports; the other options but --write do not apply: --write DIR gets its "
                       "urls.parquet and blocklist.txt)")
    serve.set_defaults(func=_cmd_serve)
    write = commands.add_parser("write", help="write the sample web's files to a directory")
    common(write)
    write.add_argument("out", metavar="DIR")
    write.set_defaults(func=_cmd_write)
