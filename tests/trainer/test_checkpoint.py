"""Checkpoint integrity: digests checked at load, old checkpoints still usable, unfinished writes cleaned up."""

from __future__ import annotations

import logging
import os
import shutil
import zipfile

import pytest
import torch

from trainer.checkpoint import (
    FORMAT,
    checkpoint_dir,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from trainer.train import TrainOptions, run_train
from wit_pipeline.cli import main as wit_main
from wit_pipeline.errors import UserError

STALE = ".step-00000001.pt.0123456789abcdef0123456789abcdef.tmp"      # fileio's temporary for step-00000001.pt
NOT_OURS = ["notes.tmp", ".other.pt.0123456789abcdef0123456789abcdef.tmp", ".step-00000001.pt.tmp",
            "step-00000001.pt.0123456789abcdef0123456789abcdef.tmp"]


@pytest.fixture(scope="module")
def trained_run(shards_dir, tmp_path_factory) -> str:
    run = str(tmp_path_factory.mktemp("ckpt") / "run")
    assert wit_main(["train", "--shards", shards_dir, "--out", run, "--model", "tiny", "--batch-size", "8",
                     "--steps", "2", "--save-every", "2", "--workers", "0", "--tokenizer-captions", "200"]) == 0
    return run


def _state() -> dict:
    return {"step": 3, "model": {"weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
                                 "flag": torch.tensor(True)},
            "optimizer": {"state": {0: {"exp_avg": torch.ones(4)}}, "param_groups": [{"betas": (0.9, 0.98)}]},
            "data": {"positions": [[0, 5], [1, 2]]}, "train_config": {"lr": 1e-3, "device": None}}


def _flip_inside_largest_tensor(path: str, count: int = 64) -> None:
    """Invert ``count`` bytes in the middle of the largest tensor stored in a torch.save zip."""
    with zipfile.ZipFile(path) as archive:
        member = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as handle:
        handle.seek(member.header_offset + 26)                        # the local header's name/extra lengths
        name_len, extra_len = (int.from_bytes(handle.read(2), "little") for _ in range(2))
        start = member.header_offset + 30 + name_len + extra_len + member.file_size // 2
        handle.seek(start)
        data = handle.read(count)
        handle.seek(start)
        handle.write(bytes(b ^ 0xFF for b in data))


def test_a_checkpoint_round_trips_with_its_digests(tmp_path):
    path = str(tmp_path / "checkpoints" / "step-00000003.pt")
    save_checkpoint(path, _state())
    state = load_checkpoint(path)
    assert set(state["digests"]) == {"model", "payload"}
    torch.testing.assert_close(state["model"]["weight"], _state()["model"]["weight"])
    assert state["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.98)


def test_flipped_bytes_in_a_weight_tensor_are_refused(tmp_path):
    path = str(tmp_path / "checkpoints" / "step-00000003.pt")
    save_checkpoint(path, {**_state(), "model": {"weight": torch.randn(256, 256)}})
    _flip_inside_largest_tensor(path)
    with pytest.raises(UserError, match=r"is damaged \(digest mismatch\): the model weights") as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value) and path in str(caught.value)


def test_a_changed_training_state_is_refused(tmp_path):
    path = str(tmp_path / "step-00000003.pt")
    save_checkpoint(path, _state())
    payload = torch.load(path, weights_only=True)
    payload["data"]["positions"][0][1] = 6                          # a data position, not a weight
    torch.save(payload, path)
    with pytest.raises(UserError, match=r"digest mismatch\): its training state"):
        load_checkpoint(path)


def test_a_checkpoint_without_digests_loads_with_one_warning(tmp_path, caplog):
    path = str(tmp_path / "step-00000003.pt")
    torch.save({"format": FORMAT, "version": 1, **_state()}, path)
    with caplog.at_level(logging.WARNING, logger="trainer.checkpoint"):
        state = load_checkpoint(path)
    assert state["step"] == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no digest" in warnings[0] and path in warnings[0]


def test_a_checkpoint_from_a_newer_version_is_refused(tmp_path):
    path = str(tmp_path / "step-00000003.pt")
    torch.save({"format": FORMAT, "version": 99, **_state()}, path)
    with pytest.raises(UserError, match=r"version 99, newer"):
        load_checkpoint(path)


def test_eval_on_a_damaged_checkpoint_fails_in_one_line(trained_run, eval_dir, tmp_path, capfd):
    damaged = str(tmp_path / "step-00000002.pt")
    shutil.copy(os.path.join(checkpoint_dir(trained_run), "step-00000002.pt"), damaged)
    _flip_inside_largest_tensor(damaged)
    capfd.readouterr()
    code = wit_main(["eval", "zeroshot", "--checkpoint", damaged, "--eval", eval_dir, "--out", str(tmp_path / "zs")])
    err = capfd.readouterr().err
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "is damaged (digest mismatch)" in errors[0] and damaged in errors[0]
    assert not os.path.exists(tmp_path / "zs" / "metrics.json")


def test_resume_removes_unfinished_checkpoint_writes(trained_run, shards_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    kept = [name for name in NOT_OURS if not name.startswith(".other")]    # other files' temporaries: stage.py's
    for name in [STALE, *kept]:
        (run / "checkpoints" / name).write_bytes(b"x" * 100)
    options = TrainOptions(shards=shards_dir, out=str(run), model="tiny", batch_size=8, steps=3, save_every=10,
                           workers=0, resume=True)
    assert run_train(options).steps == 3
    assert [s for s, _ in list_checkpoints(str(run))] == [2, 3]
    assert sorted(os.listdir(run / "checkpoints")) == sorted([*kept, "step-00000002.pt", "step-00000003.pt"])
