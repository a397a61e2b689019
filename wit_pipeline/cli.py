"""The ``wit`` command: one subcommand per stage, each a thin wrapper over a library function.

The commands are the stage chain and the other commands of ``wit_pipeline.stages``, in that
order: each record's ``cli`` module has a ``register(subparsers)`` that adds its subcommand and
sets ``func`` (called with the parsed ``argparse.Namespace``, returning an exit status). Commands
that run Beam jobs set ``beam=True``: flags they do not know pass through to Beam's
``PipelineOptions`` as ``args.beam_args``, except img2dataset's option names (``--image_size``), which
get a line naming ours (``wit_pipeline.img2dataset_options``). Errors are one line, exit 2: argparse's own usage errors,
a ``UserError`` (also one raised inside a Beam worker, see ``beam.run``), unusable paths (missing,
a file where a directory is needed, no permission) and a full or read-only disk
(``errors.disk_error_message``: the path, the bytes free, what to do).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from . import __version__, img2dataset_options
from .errors import UserError, disk_error_message
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
    img2dataset_name = img2dataset_options.hint(args.command, extra)
    if img2dataset_name:   # before Beam's "unknown option": name the flag of ours that does it
        print(f"wit {args.command}: error: {img2dataset_name}", file=sys.stderr)
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
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError) as exc:
        print(f"wit {args.command}: error: {path_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"wit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`wit shards ls DIR | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:       # a full or read-only disk; any other OSError keeps its traceback
        message = disk_error_message(exc, getattr(args, "out", None))
        if message is None:
            raise
        print(f"wit {args.command}: error: {message}", file=sys.stderr)
        return 2


def path_error_message(exc: OSError) -> str:
    """One line for a path that cannot be used as given: what is wrong with which path, and what to do."""
    path = exc.filename
    blocking = _file_in_the_way(path) if isinstance(exc, (FileExistsError, NotADirectoryError)) else None
    if blocking:
        return f"{blocking} is a file, not a directory (needed to write {path}): give a directory path"
    if isinstance(exc, PermissionError):
        return f"permission denied: {path}: make it readable/writable for this user or choose another path"
    return f"{exc.strerror or exc}: {path}"


def _file_in_the_way(path) -> str | None:
    """``path`` or the nearest of its parents that exists, when that is a file (so no folder can be made)."""
    if not isinstance(path, str):
        return None
    current = os.path.abspath(path)
    while not os.path.exists(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    return current if os.path.isfile(current) else None


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
