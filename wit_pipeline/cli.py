"""The ``wit`` command: one subcommand per stage, each a thin wrapper over a library function.

The commands are the stage chain and the other commands of ``wit_pipeline.stages``, in that
order: each record's ``cli`` module has a ``register(subparsers)`` that adds its subcommand and
sets ``func`` (called with the parsed ``argparse.Namespace``, returning an exit status). Commands
that run Beam jobs set ``beam=True``: flags they do not know pass through to Beam's
``PipelineOptions`` as ``args.beam_args``. Errors are one line: argparse's own usage errors (exit
2), a ``UserError`` (also one raised inside a Beam worker, see ``beam.run``) and unusable paths.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from . import __version__
from .errors import UserError
from .progress import setup_logging
from .stages import cli_modules

log = logging.getLogger("wit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wit",
        description="Build CLIP-style web image-text datasets (queries -> candidates -> select -> "
        "download -> overlap) with Apache Beam, and train CLIP models on them.",
        epilog="Run 'wit COMMAND --help' for a command's options. Beam pipeline options "
        "(--runner, --direct_num_workers, --job_endpoint, ...) may follow any Beam stage's own.",
    )
    parser.add_argument("--version", action="version", version=f"wit-pipeline {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Importing Beam logs a warning about optional GCP clients on the root logger; it says
    # nothing about the user's command, so keep it off the terminal.
    logging.disable(logging.WARNING)
    try:
        for module_name in cli_modules():
            importlib.import_module(module_name).register(subparsers)
    finally:
        logging.disable(logging.NOTSET)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    extra = [arg for arg in extra if arg != "--"]  # `wit STAGE ... -- --runner X` reads the same
    if args.command is None:
        parser.print_help()
        return 2
    if extra and not getattr(args, "beam", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.beam_args = extra
    setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"wit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        print(f"wit {args.command}: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"wit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`wit shards ls DIR | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
