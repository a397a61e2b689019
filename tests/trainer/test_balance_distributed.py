"""--epochs --balance-cap with 2 CPU processes (gloo on 127.0.0.1): the epoch records count every rank's samples."""

from __future__ import annotations

import json
import os
import random
import socket
from collections import Counter

import torch.distributed as dist
import torch.multiprocessing as mp

from tests.trainer.query_shards import write_query_shards
from trainer.balance import keeps, keys_sha256
from trainer.checkpoint import load_checkpoint


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, port: int, shards: str, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    from trainer.train import TrainOptions, run_train

    try:
        run_train(TrainOptions(shards=shards, out=out, model="tiny", batch_size=8, lr=1e-3, warmup=2, workers=0,
                               shuffle_buffer=16, shards_per_round=1, save_every=4, log_every=2,
                               tokenizer_captions=200, epochs=2, balance_cap=30, device="cpu"))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_two_ranks_write_one_record_per_epoch_with_every_ranks_samples(tmp_path):
    queries = [["alpha"]] * 200 + [["beta"]] * 40 + [None] * 10
    random.Random(11).shuffle(queries)
    shards = str(tmp_path / "shards")
    # 3 shards on 2 ranks: rank 0 reads two, rank 1 one, so rank 1 ends first and rank 0 reads its rest untrained
    keys = write_query_shards(shards, queries, shards=3)
    out = str(tmp_path / "run")
    mp.spawn(_rank, args=(_free_port(), shards, out), nprocs=2, join=True)

    counts = Counter(q for qs in keys.values() for q in qs or ())
    kept_total, unused_total = 0, 0
    for epoch in (0, 1):
        with open(os.path.join(out, "balance", f"epoch-{epoch:04d}.json")) as handle:
            record = json.load(handle)
        reference = [key for key, qs in keys.items() if keeps(key, qs, counts, 30, 0, epoch)]
        assert record["seen"] == 250 and record["complete"] and record["kept_without_queries"] == 10
        assert record["kept"] == len(reference) and record["keys_sha256"] == keys_sha256(reference)
        kept_total += record["kept"]
        unused_total += record["unused"]
    state = load_checkpoint(out)
    assert state["samples_seen"] + unused_total == kept_total and state["samples_seen"] > 0
    assert len(state["data"]["positions"]) == 2
    assert unused_total > 2 * 8        # more than two partial batches: rank 0 read its rest after rank 1 ended
