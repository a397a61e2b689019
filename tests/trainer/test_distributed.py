"""The gathered loss with 2 CPU processes (gloo on 127.0.0.1) equals one process with the whole batch."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from trainer.model import CLIP, model_config
from trainer.train import forward_backward

CONFIG = model_config("tiny", vocab_size=300, context_length=12)
BATCH = 8


def _batch():
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (BATCH, 3, CONFIG.image_size, CONFIG.image_size), dtype=torch.uint8,
                           generator=generator)
    text = torch.randint(1, 290, (BATCH, CONFIG.context_length), generator=generator)
    text[:, 0], text[torch.arange(BATCH), torch.arange(BATCH) % 6 + 3] = 298, 299   # [SOS] ... [EOS] at 3..8
    text[torch.arange(CONFIG.context_length)[None, :] > (torch.arange(BATCH) % 6 + 3)[:, None]] = 0
    return images, text


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _single(accum: int):
    torch.manual_seed(0)
    model = CLIP(CONFIG)
    images, text = _batch()
    step = BATCH // accum
    micro = [(images[i * step:(i + 1) * step], text[i * step:(i + 1) * step]) for i in range(accum)]
    loss = forward_backward(model, micro)
    return loss.item(), _grads(model)


def _rank(rank: int, port: int, accum: int, out: str) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(CLIP(CONFIG))
        images, text = _batch()
        half = BATCH // 2
        images, text = images[rank * half:(rank + 1) * half], text[rank * half:(rank + 1) * half]
        step = half // accum
        micro = [(images[i * step:(i + 1) * step], text[i * step:(i + 1) * step]) for i in range(accum)]
        loss = forward_backward(model, micro)
        torch.save({"loss": loss.item(), "grads": _grads(model.module)}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _close(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    """Equal within float32 summation-order noise, measured against the tensor's scale."""
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()) + 1e-8,
                               msg=name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("accum", [1, 2])
def test_two_processes_match_one_process_with_the_whole_batch(tmp_path, accum):
    reference_loss, reference_grads = _single(1)
    mp.spawn(_rank, args=(_free_port(), accum, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["loss"] == pytest.approx(reference_loss, rel=1e-5)
        assert result["grads"].keys() == reference_grads.keys()
        for name, grad in reference_grads.items():
            _close(result["grads"][name], grad, name)


def test_accumulation_matches_one_big_batch():
    reference_loss, reference_grads = _single(1)
    loss, grads = _single(4)
    assert loss == pytest.approx(reference_loss, rel=1e-5)
    for name, grad in reference_grads.items():
        _close(grads[name], grad, name)
