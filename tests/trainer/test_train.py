import json
import os
import shutil

import pytest
import torch

from trainer.checkpoint import list_checkpoints, load_checkpoint
from trainer.train import TrainOptions, run_train
from wit_pipeline.cli import main as wit_main
from wit_pipeline.errors import UserError


def _config(shards_dir, out, **kw):
    base = dict(shards=shards_dir, out=str(out), model="tiny", batch_size=8, steps=6, lr=1e-3, warmup=2,
                workers=2, shuffle_buffer=16, shards_per_round=2, save_every=3, keep=5, log_every=1,
                tokenizer_captions=500)
    base.update(kw)
    return TrainOptions(**base)


def _metrics(out):
    with open(os.path.join(out, "metrics.jsonl")) as handle:
        return [json.loads(line) for line in handle]


TIMING = ("samples_per_s", "data_wait")


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_resume_gives_the_uninterrupted_result(shards_dir, tmp_path):
    straight = tmp_path / "straight"
    run_train(_config(shards_dir, straight))
    assert [s for s, _ in list_checkpoints(str(straight))] == [3, 6]

    # Interrupt after step 3: keep only that checkpoint and what was logged up to it, plus a stray line.
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    os.remove(resumed / "checkpoints" / "step-00000006.pt")
    result = run_train(_config(shards_dir, resumed, resume=True))
    assert result.steps == 6

    a, b = load_checkpoint(str(straight)), load_checkpoint(str(resumed))
    assert a["step"] == b["step"] == 6 and a["data"] == b["data"]
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-6, atol=1e-7, msg=name)
    for slot, state in a["optimizer"]["state"].items():
        torch.testing.assert_close(b["optimizer"]["state"][slot]["exp_avg"], state["exp_avg"], rtol=1e-6, atol=1e-8)
    assert a["scheduler"] == b["scheduler"]
    # Row by row: pytest.approx compares flat dicts, not lists of them.
    for row, again in zip(_without_timing(_metrics(straight)), _without_timing(_metrics(resumed)), strict=True):
        assert again == pytest.approx(row)
    assert [r["step"] for r in _metrics(resumed)] == [1, 2, 3, 4, 5, 6]


def test_run_writes_checkpoints_metrics_tokenizer_and_evals(shards_dir, eval_dir, tmp_path):
    out = tmp_path / "run"
    result = run_train(_config(shards_dir, out, steps=4, save_every=2, keep=1, workers=0, log_every=2,
                           eval=[f"shapes={eval_dir}"], accum=2))
    assert [s for s, _ in list_checkpoints(str(out))] == [4]           # keep=1 removed step 2
    state = load_checkpoint(result.checkpoint)
    assert state["samples_seen"] == 4 * 16 and state["tokenizer"]["format"] == "wit-bpe"
    assert {"model", "optimizer", "scheduler", "scaler", "model_config", "train_config", "data"} <= state.keys()
    rows = _metrics(out)
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [2, 4]
    assert {"loss", "temperature", "lr", "samples_per_s", "data_wait", "logit_scale", "epoch"} <= train_rows[0].keys()
    evals = [r for r in rows if r.get("eval") == "shapes"]
    assert [r["step"] for r in evals] == [2, 4] and 0 <= evals[-1]["top1"] <= evals[-1]["top5"] <= 1
    assert os.path.exists(out / "tokenizer.json") and json.load(open(out / "config.json"))["global_batch"] == 16


def test_the_gpu_settings_run_on_cpu_too(shards_dir, tmp_path):
    """bf16 autocast, gradient checkpointing and accumulation together: the path a GPU run takes."""
    result = run_train(_config(shards_dir, tmp_path / "bf16", steps=3, precision="bf16", grad_checkpointing=True,
                           accum=2, save_every=10))
    losses = [r["loss"] for r in _metrics(tmp_path / "bf16") if "loss" in r]
    assert result.steps == 3 and len(losses) == 3 and all(map(torch.isfinite, map(torch.tensor, losses)))
    with open(tmp_path / "bf16" / "config.json") as handle:
        assert json.load(handle)["precision"] == "bf16"


def test_bad_inputs_are_one_line_errors(shards_dir, tmp_path, capsys):
    with pytest.raises(UserError, match="unknown"):
        run_train(_config(shards_dir, tmp_path / "x", model="resnet"))
    with pytest.raises(UserError, match="streams"):
        run_train(_config(shards_dir, tmp_path / "x", workers=8))
    code = wit_main(["train", "--shards", str(tmp_path / "missing"), "--out", str(tmp_path / "y"), "--model", "tiny"])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_missing_captions_in_a_later_shard_stop_the_run(tmp_path, shards_dir):
    import webdataset as wds

    shards = tmp_path / "shards"
    shards.mkdir()
    shutil.copy(os.path.join(shards_dir, "00000.tar"), shards / "00000.tar")
    with wds.TarWriter(str(shards / "00001.tar"), mtime=0) as writer:
        for i in range(20):
            writer.write({"__key__": f"0001{i:05d}", "jpg": open(os.path.join(shards_dir, "00000.tar"), "rb").read(64),
                          "json": {}})
    with pytest.raises(UserError, match=r"lacks a caption \(\.txt\)") as info:
        run_train(_config(str(shards), tmp_path / "run", workers=2, steps=40, resample=False, shards_per_round=1))
    assert "\n" not in str(info.value) and "00001.tar" in str(info.value)


def test_wit_eval_zeroshot_and_linear_probe(shards_dir, eval_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert wit_main(["train", "--shards", shards_dir, "--out", str(run), "--model", "tiny", "--batch-size", "8",
                     "--steps", "2", "--workers", "0", "--tokenizer-captions", "200"]) == 0
    assert "wit train: 2 steps" in capsys.readouterr().out
    templates = tmp_path / "templates.txt"
    templates.write_text("# mine\na {}.\na drawing of a {}.\n")
    out = tmp_path / "zs"
    assert wit_main(["eval", "zeroshot", "--checkpoint", str(run), "--eval", eval_dir, "--templates",
                     str(templates), "--out", str(out)]) == 0
    metrics = json.load(open(out / "metrics.json"))
    assert metrics["n"] == 24 and metrics["templates"] == 2 and 0 <= metrics["top1"] <= metrics["top5"] <= 1
    rows = [json.loads(line) for line in open(out / "predictions.jsonl")]
    assert len(rows) == 24 and set(rows[0]) == {"eval_id", "label", "predicted", "correct"}
    assert all(r["eval_id"] == f"{r['label']}/{r['eval_id'].split('/')[1]}" for r in rows)
    assert os.path.isfile(os.path.join(eval_dir, rows[0]["eval_id"]))
    assert sum(r["correct"] for r in rows) / 24 == pytest.approx(metrics["top1"])
    assert wit_main(["eval", "linear-probe", "--checkpoint", str(run / "checkpoints" / "step-00000002.pt"),
                     "--train", eval_dir, "--test", eval_dir, "--out", str(tmp_path / "probe")]) == 0
    probe = json.load(open(tmp_path / "probe" / "metrics.json"))
    assert 0 <= probe["top1"] <= 1 and probe["classes"] == 6 and probe["test_images"] == 24

    # Unreadable images are left out of the accuracy and counted; a set with none readable is an error.
    damaged = tmp_path / "damaged"
    shutil.copytree(eval_dir, damaged)
    first_class = sorted(os.listdir(damaged))[0]
    (damaged / first_class / "zz-broken.jpg").write_bytes(b"not an image")
    capsys.readouterr()
    assert wit_main(["eval", "zeroshot", "--checkpoint", str(run), "--eval", str(damaged),
                     "--out", str(tmp_path / "zs-damaged")]) == 0
    assert "(1 unreadable left out;" in capsys.readouterr().out
    metrics = json.load(open(tmp_path / "zs-damaged" / "metrics.json"))
    assert metrics["n"] == 24 and metrics["unreadable_images"] == 1 and metrics["unreadable"] == [
        f"{first_class}/zz-broken.jpg"]
    unreadable = tmp_path / "unreadable"
    for name in ("a", "b"):
        (unreadable / name).mkdir(parents=True)
        (unreadable / name / "x.jpg").write_bytes(b"not an image")
    assert wit_main(["eval", "zeroshot", "--checkpoint", str(run), "--eval", str(unreadable),
                     "--out", str(tmp_path / "zs-unreadable")]) == 2
    err = capsys.readouterr().err
    assert "none of its 2 images could be read" in err and len(err.strip().splitlines()) == 1


def test_demo_step_skips_without_shards_and_is_registered():
    from types import SimpleNamespace

    from trainer.demo import demo_step
    from wit_pipeline.stages import load, stage

    assert load(stage("train").demo) is demo_step
    rows = []
    ctx = SimpleNamespace(outputs={}, files=None, report=lambda *row: rows.append(row))
    demo_step(ctx)
    assert rows == [("train", "skipped", "no shards (the download step did not run)")]
