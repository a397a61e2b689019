"""Balancing in the loader (--balance-cap, --epochs): select's rule per epoch, the epoch records, exact resume."""

from __future__ import annotations

import json
import os
import random
import shutil
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tests.trainer.query_shards import jpeg, write_query_shards
from trainer.balance import EpochTally, expected_kept, keeps, keys_sha256, use_id
from trainer.balance_files import count_shard_queries, read_counts_file, shard_query_counts
from trainer.checkpoint import list_checkpoints, load_checkpoint
from trainer.data import ShardStream, resolve_shards
from trainer.train import TrainOptions, run_train
from wit_pipeline.cli import main as wit_main
from wit_pipeline.errors import UserError
from wit_pipeline.schemas import QUERY_COUNTS_SCHEMA
from wit_pipeline.select.balancing import keep_probabilistic, keep_probability
from wit_pipeline.shardset import write_tar_atomic

TAILS = [f"tail{i}" for i in range(10)]


@pytest.fixture(scope="module")
def head_and_tail(tmp_path_factory):
    """The issue's set: alpha 2,000 samples, beta 500, ten tail queries 20 each (2,700), shuffled."""
    queries = [["alpha"]] * 2000 + [["beta"]] * 500 + [[tail] for tail in TAILS for _ in range(20)]
    random.Random(7).shuffle(queries)
    out = str(tmp_path_factory.mktemp("head-and-tail"))
    return out, write_query_shards(out, queries, shards=6)


def _reference_keys(keys: dict[str, list], cap: int, seed: int, epoch: int) -> list[str]:
    counts = Counter(q for queries in keys.values() for q in queries or ())
    return [key for key, queries in keys.items() if keeps(key, queries, counts, cap, seed, epoch)]


def _record(out, epoch: int) -> dict:
    with open(os.path.join(out, "balance", f"epoch-{epoch:04d}.json")) as handle:
        return json.load(handle)


# ---------------------------------------------------------------------------------------------
# The rule
# ---------------------------------------------------------------------------------------------
def test_the_coin_is_selects_probabilistic_rule_per_epoch():
    counts = {"alpha": 2000, "beta": 500, "tail": 20}
    for key in (f"k{i}" for i in range(300)):
        for queries in (["alpha"], ["beta", "tail"], ["alpha", "beta"]):
            for epoch in (0, 1, 7):
                assert keeps(key, queries, counts, 100, 3, epoch) == keep_probabilistic(
                    use_id(epoch, key), [counts[q] for q in queries], 100, 3)
    assert keeps("k", None, counts, 1, 0, 0) and keeps("k", [], counts, 1, 0, 0)        # no queries: kept
    assert keeps("k", ["unknown"], counts, 1, 0, 0)                                      # count 0: a tail


def test_keep_rates_match_the_reference_probability():
    counts = {"alpha": 2000, "beta": 500}
    for queries in (["alpha"], ["beta"], ["alpha", "beta"]):
        probability = keep_probability([counts[q] for q in queries], 100)
        kept = sum(keeps(f"key{i}", queries, counts, 100, 0, 2) for i in range(20_000))
        assert kept / 20_000 == pytest.approx(probability, abs=0.01)
    combos = {("alpha",): 2000, ("beta",): 500, (): 10}
    assert expected_kept(combos, counts, 100) == pytest.approx(100 + 100 + 10)


def test_keys_digest_is_the_sorted_keys_one_per_line():
    import hashlib

    assert keys_sha256(["b", "a"]) == hashlib.sha256(b"a\nb\n").hexdigest()
    assert keys_sha256([]) == hashlib.sha256(b"").hexdigest()
    tally = EpochTally()
    tally.add_kept("x", ["q"])
    tally.add_kept("y", None)
    assert EpochTally.from_dict(tally.to_dict()) == tally
    assert tally.record(0, 1, {})["kept_without_queries"] == 1


# ---------------------------------------------------------------------------------------------
# The "done when"
# ---------------------------------------------------------------------------------------------
def test_two_epochs_keep_about_the_cap_of_each_head_query_and_every_tail(head_and_tail, tmp_path, capsys):
    shards, keys = head_and_tail
    out = tmp_path / "run"
    assert wit_main(["train", "--shards", shards, "--out", str(out), "--model", "tiny", "--batch-size", "32",
                     "--workers", "2", "--shards-per-round", "2", "--shuffle-buffer", "64",
                     "--tokenizer-captions", "300", "--balance-cap", "100", "--epochs", "2"]) == 0
    assert "wit train:" in capsys.readouterr().out
    records = [_record(out, epoch) for epoch in (0, 1)]
    for epoch, record in enumerate(records):
        assert record["epoch"] == epoch and record["seen"] == 2700 and record["complete"]
        assert abs(record["per_query"]["alpha"] - 100) <= 30 and abs(record["per_query"]["beta"] - 100) <= 30
        assert all(record["per_query"][tail] == 20 for tail in TAILS)
        reference = _reference_keys(keys, 100, 0, epoch)
        assert record["kept"] == len(reference) and record["keys_sha256"] == keys_sha256(reference)
        assert record["kept_without_queries"] == 0 and record["balance_cap"] == 100
    assert records[0]["keys_sha256"] != records[1]["keys_sha256"]
    with open(out / "balance" / "query_counts.json") as handle:
        assert json.load(handle)["counts"]["alpha"] == 2000
    # Every kept sample was trained on but the last partial batch of each stream.
    state = load_checkpoint(str(out))
    kept = sum(r["kept"] for r in records)
    assert state["samples_seen"] == kept - sum(r["unused"] for r in records)
    assert sum(r["unused"] for r in records) < 2 * 32


# ---------------------------------------------------------------------------------------------
# Exact resume mid-epoch
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    queries = [["alpha"]] * 180 + [["beta"]] * 40 + [None] * 12 + [["alpha", "beta"]] * 8
    random.Random(3).shuffle(queries)
    out = str(tmp_path_factory.mktemp("small-set"))
    return out, write_query_shards(out, queries, shards=4)


def _config(shards, out, **kw):
    base = dict(shards=shards, out=str(out), model="tiny", batch_size=8, lr=1e-3, warmup=2, workers=2,
                shuffle_buffer=16, shards_per_round=1, save_every=3, keep=50, log_every=1, tokenizer_captions=200,
                epochs=2, balance_cap=30)
    base.update(kw)
    return TrainOptions(**base)


def _metrics(out):
    with open(os.path.join(out, "metrics.jsonl")) as handle:
        return [{k: v for k, v in json.loads(line).items() if k not in ("samples_per_s", "data_wait")}
                for line in handle]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("cut", ["first", "last"])
def test_resume_mid_epoch_with_balancing_gives_the_uninterrupted_result(small_set, tmp_path, workers, cut):
    shards, keys = small_set
    straight = tmp_path / "straight"
    result = run_train(_config(shards, straight, workers=workers, save_every=2))
    steps = [step for step, _ in list_checkpoints(str(straight))]
    assert result.steps == steps[-1] and len(steps) >= 4
    # Cut at the first checkpoint (inside epoch 0) or the one before the last (inside epoch 1): the cut
    # epoch's draw is part-way, its tally goes on in the resumed run.
    step = steps[0] if cut == "first" else steps[-2]
    saved = load_checkpoint(os.path.join(straight, "checkpoints", f"step-{step:08d}.pt"))["data"]
    open_epochs = sorted(saved["tallies"][0])
    assert open_epochs == ([0] if cut == "first" else [1])
    assert saved["tallies"][0][open_epochs[0]]["streams_done"] < max(1, workers)

    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for later in steps[steps.index(step) + 1:]:
        os.remove(resumed / "checkpoints" / f"step-{later:08d}.pt")
    for epoch in range(open_epochs[0], 2):
        os.remove(resumed / "balance" / f"epoch-{epoch:04d}.json")
    assert run_train(_config(shards, resumed, workers=workers, save_every=2, resume=True)).steps == result.steps

    a, b = load_checkpoint(str(straight)), load_checkpoint(str(resumed))
    assert a["step"] == b["step"] and a["data"] == b["data"]
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-6, atol=1e-7, msg=name)
    for epoch in (0, 1):
        assert _record(resumed, epoch) == _record(straight, epoch)
        assert _record(straight, epoch)["keys_sha256"] == keys_sha256(_reference_keys(keys, 30, 0, epoch))
        assert _record(straight, epoch)["kept_without_queries"] == 12 and _record(straight, epoch)["seen"] == 240
    for row, again in zip(_metrics(straight), _metrics(resumed), strict=True):
        assert again == pytest.approx(row)


def test_resume_after_one_stream_has_read_its_last_epoch(tmp_path):
    """3 shards on 2 workers: one stream reads 1 shard, the other 2, so one is done long before the other;
    a cut there resumes to the uninterrupted result (the loader's turn order counts the done batches)."""
    queries = [["alpha"]] * 100 + [["beta"]] * 20
    random.Random(5).shuffle(queries)
    shards = str(tmp_path / "shards")
    write_query_shards(shards, queries, shards=3)
    straight = tmp_path / "straight"
    run_train(_config(shards, straight, save_every=1, balance_cap=20))
    # stream 1 owns one shard: 1 round per epoch, done at round 2; stream 0 owns two: done at round 4
    cuts = [step for step, path in list_checkpoints(str(straight))
            if (lambda p: p[1][0] >= 2 and p[0][0] < 4)(load_checkpoint(path)["data"]["positions"][0])]
    assert cuts
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for step, path in list_checkpoints(str(resumed)):
        if step > cuts[0]:
            os.remove(path)
    shutil.rmtree(resumed / "balance")
    run_train(_config(shards, resumed, save_every=1, balance_cap=20, resume=True))
    a, b = load_checkpoint(str(straight)), load_checkpoint(str(resumed))
    assert a["step"] == b["step"] and a["data"] == b["data"]
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-6, atol=1e-7, msg=name)
    assert _record(resumed, 1) == _record(straight, 1) and _record(straight, 1)["seen"] == 120


def test_the_draw_does_not_depend_on_the_worker_count(small_set, tmp_path):
    shards, _ = small_set
    for workers in (0, 2):
        run_train(_config(shards, tmp_path / f"w{workers}", workers=workers, epochs=1, save_every=100))
    assert _record(tmp_path / "w0", 0)["keys_sha256"] == _record(tmp_path / "w2", 0)["keys_sha256"]


def test_resume_with_other_data_settings_is_refused_with_epochs(small_set, tmp_path):
    shards, _ = small_set
    run_train(_config(shards, tmp_path / "run", epochs=1, save_every=2, workers=0))
    with pytest.raises(UserError, match=r"--resume with --epochs: the data settings changed \(balance_cap\)"):
        run_train(_config(shards, tmp_path / "run", epochs=1, workers=0, balance_cap=10, resume=True))


# ---------------------------------------------------------------------------------------------
# Counts: select's file, or one pass over the shards cached in OUT
# ---------------------------------------------------------------------------------------------
def test_counts_from_the_shards_are_cached_for_that_shard_list(small_set, tmp_path):
    shards, keys = small_set
    counted = count_shard_queries(resolve_shards(shards).urls)
    assert counted.counts == {"alpha": 188, "beta": 48} and counted.samples == 240
    assert counted.combos[()] == 12 and counted.combos[("alpha", "beta")] == 8
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    first = shard_query_counts(str(tmp_path / "out"), resolve_shards(str(copy)), rank=0)
    cache = tmp_path / "out" / "balance" / "query_counts.json"
    assert first.counts == counted.counts and cache.exists()
    # A different shard list is counted again, not read from the cache.
    fewer = resolve_shards(os.path.join(str(copy), "{00000..00002}.tar"))
    assert shard_query_counts(str(tmp_path / "out"), fewer, rank=0).samples == 180


def test_counts_file_uses_selects_matched_column(small_set, tmp_path):
    shards, _ = small_set
    path = tmp_path / "query_counts.parquet"
    pq.write_table(pa.table({"lang": [None, None], "query": ["alpha", "beta"], "matched": [5000, 40], "kept": [30, 30],
                             "selected": [31, 30]}, schema=QUERY_COUNTS_SCHEMA), path)
    assert read_counts_file(str(path)).counts == {"alpha": 5000, "beta": 40}
    out = tmp_path / "run"
    run_train(_config(shards, out, epochs=1, save_every=100, workers=0, balance_counts=str(path)))
    record = _record(out, 0)
    assert record["counts_from"] == str(path) and record["seen"] == 240
    assert not (out / "balance" / "query_counts.json").exists()


def test_stream_counts_samples_with_bad_json_as_skips(tmp_path):
    write_query_shards(str(tmp_path), [["alpha"]] * 6, shards=1)
    from wit_pipeline.download.writer import sample_members

    with write_tar_atomic(str(tmp_path / "00001.tar")) as tar:
        for index in range(4):
            members = sample_members(jpeg(index), "caption", {})
            members["json"] = b'{"queries": "alpha"}' if index % 2 else b"not json"
            tar.add_sample(f"bad{index}", members)
    urls = [str(tmp_path / "00000.tar"), str(tmp_path / "00001.tar")]

    class Tokens:
        def __call__(self, captions):
            import numpy as np

            return np.zeros((len(captions), 4), dtype=np.int64)

    stream = ShardStream(urls, Tokens(), batch_size=2, image_size=8, epochs=1, balance_cap=100,
                         query_counts={"alpha": 6}, shards_per_round=2, shuffle_buffer=1)
    batches = []
    for batch in stream:
        batches.append(batch)
        if batch["done"]:
            break
    skipped = Counter()
    for batch in batches:
        skipped.update(batch["skipped"])
    assert skipped == {"bad_json": 4}
    tally = EpochTally()
    for batch in batches:
        for data in batch["tally"].values():
            tally.merge(EpochTally.from_dict(data))
    assert tally.seen == 10 and tally.kept == 6 and tally.streams_done == 1
