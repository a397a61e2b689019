"""The symmetric contrastive loss over the global batch, and the all-gather that feeds it.

Every process gathers the image and text features of all ranks (and of all
micro-batches, under gradient accumulation), puts its own live features back in
their slot so gradients reach them, and computes the loss over the full N x N
similarity matrix. Each process then holds the exact gradient of the global
loss with respect to its own features; summed over processes (DDP averages, so
the caller scales the loss by the world size) that is the gradient of one
process seeing the whole batch.

The temperature appears in every row, so it would be counted once per process.
``live`` names the rows this process owns: only those rows see the temperature
with its gradient, the others see a detached copy, and the temperature's
gradients also sum to the single-process one.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank along dim 0 (no gradient); rank order."""
    rank, size = world()
    if size == 1:
        return tensor.detach()
    parts = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(parts, tensor.detach().contiguous())
    return torch.cat(parts)


def with_live_slot(gathered: torch.Tensor, live: torch.Tensor, start: int) -> torch.Tensor:
    """``gathered`` with rows ``start : start + len(live)`` replaced by ``live`` (which keeps its graph)."""
    return torch.cat([gathered[:start], live, gathered[start + live.shape[0]:]])


def gather_features(image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, slice | None]:
    """All ranks' features with this rank's slot live; the slice of live rows (``None`` alone)."""
    rank, size = world()
    if size == 1:
        return image, text, None
    start = rank * image.shape[0]
    all_image = with_live_slot(all_gather_cat(image), image, start)
    all_text = with_live_slot(all_gather_cat(text), text, start)
    return all_image, all_text, slice(start, start + image.shape[0])


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor,
                     live: slice | None = None) -> torch.Tensor:
    """Mean of the image->text and text->image cross-entropies of ``scale * image @ text.T``.

    ``image`` and ``text`` are L2-normalised ``[N, D]`` features where row ``i`` of
    each is a matching pair. ``live`` (see the module docstring) restricts the
    temperature's gradient to those rows; ``None`` means all rows.
    """
    image, text = image.float(), text.float()
    scale = scale.float()
    if live is not None:
        rows = torch.zeros(image.shape[0], 1, dtype=torch.bool, device=image.device)
        rows[live] = True
        scale = torch.where(rows, scale, scale.detach())
    logits_per_image = scale * (image @ text.T)
    logits_per_text = scale * (text @ image.T)
    labels = torch.arange(image.shape[0], device=image.device)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2
