"""Joining the process group under torchrun and picking this process's device."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .loss import world


def init_distributed(device_arg: str | None) -> tuple[int, int, torch.device]:
    """``(rank, world size, device)``; joins the group when ``WORLD_SIZE`` > 1: NCCL on GPUs, gloo on CPUs.

    ``device_arg`` (``--device``) wins; otherwise ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() and (device_arg is None or device_arg.startswith("cuda"))
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank, size = world()
    if device_arg and device_arg != "cuda":
        device = torch.device(device_arg)
    elif use_cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return rank, size, device


def gather_objects(local) -> list:
    """Every rank's ``local``, in rank order (a collective: every rank must call it)."""
    _, size = world()
    if size == 1:
        return [local]
    gathered = [None] * size
    dist.all_gather_object(gathered, local)
    return gathered
