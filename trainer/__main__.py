"""``torchrun --nproc_per_node N -m trainer --shards ... --out ...``: ``wit train`` under torchrun."""

from __future__ import annotations

import argparse
import sys

from wit_pipeline.errors import UserError
from wit_pipeline.options import add_options
from wit_pipeline.progress import setup_logging

from .cli import cmd_train
from .options import TrainOptions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Train a CLIP model on WebDataset "
                                     "shards; the flags of 'wit train'. Run under torchrun for several processes.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    add_options(parser, TrainOptions)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return cmd_train(args)
    except UserError as exc:
        print(f"trainer: error: {exc}", file=sys.stderr)
        return 2
    finally:
        import torch.distributed as dist  # here, not at the top: --help and usage errors need no torch

        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
