"""Integrity of outputs and inputs: the output lock, stale temporaries, unfinished inputs, damaged shards.

- One run per output directory: a second one (another process) refuses in one line naming the holder's pid,
  and leaves the first one's files alone; the lock goes with the run, also when it fails.
- A killed run's temporaries are removed by the next run of the same output, and counted.
- A downstream stage refuses an unfinished upstream output (``--allow-partial`` reads it, and says so).
- A shard that is cut (at a member boundary too) or altered is counted as damaged by every reader: the overlap
  scan (and its report does not call the set clean), the overlap filter (no short shard written), training.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from wit_pipeline.cli import main
from wit_pipeline.errors import UserError
from wit_pipeline.stage import LOCK_NAME, StageRun, output_lock, require_finished

HOLD_SECONDS = 60     # the holder process is killed by each test long before this


def _hold_lock(out: str) -> subprocess.Popen:
    """Another process holding ``out``'s lock (as a running `wit download` would) until it is killed."""
    code = ("import sys, time\n"
            "from wit_pipeline.stage import output_lock\n"
            f"with output_lock({out!r}, 'download'):\n"
            "    print('held', flush=True)\n"
            f"    time.sleep({HOLD_SECONDS})\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def _stop(holder: subprocess.Popen) -> None:
    holder.kill()
    holder.wait(timeout=30)
    holder.stdout.close()


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if ": error: " in line]


def _temporary(folder, name: str = "00000.tar") -> str:
    path = os.path.join(folder, f".{name}.{'a' * 32}.tmp")
    with open(path, "wb") as handle:
        handle.write(b"half a shard")
    return path


# -- the output lock ----------------------------------------------------------------------------------------

def test_a_second_download_into_a_busy_out_refuses_naming_the_holder_and_leaves_its_files(tmp_path, capfd):
    out = tmp_path / "out"
    rows = tmp_path / "rows.csv"
    with open(rows, "w", newline="") as handle:
        csv.writer(handle).writerows([["url", "text"], ["http://example.com/a.jpg", "a cat on a mat"]])
    holder = _hold_lock(str(out))
    try:
        in_progress = _temporary(out)            # the first run's shard, being written
        code = main(["download", "--input", str(rows), "--out", str(out)])
        err = capfd.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert len(_error_lines(err)) == 1
        assert f"is in use by another wit run (pid {holder.pid} on " in err and "use another --out" in err
        assert os.path.exists(in_progress)
        assert not (out / "stats.json").exists()
    finally:
        _stop(holder)


def test_the_lock_names_its_holder_and_goes_with_the_run_also_when_it_fails(tmp_path):
    out = str(tmp_path / "out")
    with pytest.raises(RuntimeError):
        with StageRun("select", out):
            record = json.loads((tmp_path / "out" / LOCK_NAME).read_text())
            assert record["pid"] == os.getpid() and record["stage"] == "select" and record["host"]
            with pytest.raises(UserError, match=rf"in use by another wit run \(pid {os.getpid()} on "):
                with output_lock(out, "select"):
                    pass
            raise RuntimeError("the stage failed")
    with StageRun("select", out) as stage:           # released: the next run goes ahead
        stage.finish(records_in=0, records_out=0, dropped={})
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["accounted"] is True


def test_an_out_that_is_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"cannot write to --out .*file.*give a directory"):
        with output_lock(str(tmp_path / "file"), "select"):
            pass


# -- stale temporaries ----------------------------------------------------------------------------------------

def test_a_killed_runs_temporaries_are_removed_and_counted_on_the_next_run(tmp_path):
    out = tmp_path / "out"
    (out / "parts").mkdir(parents=True)
    stale = [_temporary(out), _temporary(out / "parts", "part-00000.parquet"), _temporary(out, "manifest.json")]
    kept = [out / ".hidden", out / "notes.tmp", out / "00000.tar"]
    for path in kept:
        path.write_text("mine")
    with StageRun("candidates", str(out)) as stage:
        stats = stage.finish(records_in=0, records_out=0, dropped={})
    assert not any(os.path.exists(path) for path in stale)
    assert all(path.exists() for path in kept)
    assert stats["stale_temporaries"] == 3


# -- unfinished inputs -----------------------------------------------------------------------------------------

def _candidates_run(tmp_path) -> str:
    rows = tmp_path / "rows.csv"
    with open(rows, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "text"])
        writer.writerows([f"http://img.example.com/{i}.jpg", f"a photo of a red dog number {i} by the sea"]
                         for i in range(40))
    out = tmp_path / "cands"
    assert main(["candidates", "--source", "table", "--input", str(rows), "--out", str(out),
                 "--rows-per-part", "10"]) == 0
    return str(out)


def test_select_refuses_a_killed_candidates_output_and_reads_it_with_allow_partial(tmp_path, capfd):
    cands = _candidates_run(tmp_path)
    parts = sorted(os.listdir(os.path.join(cands, "parts")))
    assert len(parts) > 1
    os.remove(os.path.join(cands, "stats.json"))             # as if killed before it finished writing
    os.remove(os.path.join(cands, "parts", parts[-1]))
    (tmp_path / "q.txt").write_text("dog\n")
    argv = ["select", "--candidates", cands, "--queries", str(tmp_path / "q.txt"), "--out", str(tmp_path / "sel"),
            "--lang", "any"]
    capfd.readouterr()
    assert main(argv) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err and len(_error_lines(err)) == 1
    assert f"{cands} is an unfinished `wit candidates` output" in err and "--allow-partial" in err
    assert not (tmp_path / "sel" / "stats.json").exists()

    assert main([*argv, "--allow-partial"]) == 0
    stats = json.loads((tmp_path / "sel" / "stats.json").read_text())
    assert stats["partial_inputs"] == [cands] and stats["accounted"] is True
    assert 0 < stats["in"] < 40


def test_finished_outputs_and_plain_folders_pass(tmp_path):
    out = str(tmp_path / "done")
    with StageRun("candidates", out) as stage:
        stage.finish(records_in=0, records_out=0, dropped={})
    os.makedirs(tmp_path / "mine")
    assert require_finished([out, os.path.join(out, "parts", "*.parquet"), str(tmp_path / "mine")]) == []


def test_a_still_running_input_is_named_as_running(tmp_path):
    out = tmp_path / "shards"
    holder = _hold_lock(str(out))
    try:
        with pytest.raises(UserError, match=rf"still running, pid {holder.pid} on .*--allow-partial"):
            require_finished(str(out / "00000.tar"))
    finally:
        _stop(holder)


# -- damaged shards -------------------------------------------------------------------------------------------

def _shape_shards(folder, shards: int = 2, samples: int = 8) -> list[str]:
    from trainer.synthetic import write_shape_shards

    return write_shape_shards(str(folder), shards=shards, samples_per_shard=samples, image_size=32, seed=3)


def _member_offsets(path: str) -> list[tuple[str, int, int]]:
    """``(name, header offset, data offset)`` of every member."""
    with tarfile.open(path) as archive:
        return [(info.name, info.offset, info.offset_data) for info in archive.getmembers()]


def _cut_at_sample(path: str, index: int) -> None:
    """Cut the tar right before the header of sample ``index``: a member boundary, so tarfile reads it quietly."""
    keys = []
    for name, offset, _ in _member_offsets(path):
        key = name.split(".", 1)[0]
        if key not in keys:
            keys.append(key)
            if len(keys) == index + 1:
                with open(path, "r+b") as handle:
                    handle.truncate(offset)
                return
    raise AssertionError("no such sample")


def _alter_caption(path: str) -> None:
    """Change one letter of the last caption: still a valid tar, but no longer the bytes its manifest lists."""
    _, _, data_at = [m for m in _member_offsets(path) if m[0].endswith(".txt")][-1]
    with open(path, "r+b") as handle:
        handle.seek(data_at)
        letter = handle.read(1)
        handle.seek(data_at)
        handle.write(b"Y" if letter == b"X" else b"X")


def test_a_tar_cut_at_a_member_boundary_used_to_read_as_a_shorter_healthy_tar(tmp_path):
    path = _shape_shards(tmp_path)[0]
    _cut_at_sample(path, 5)
    with tarfile.open(path) as archive:          # what Python's tarfile alone makes of it
        assert len(archive.getmembers()) == 5 * 3


def test_overlap_scan_counts_damaged_shards_and_does_not_call_the_set_clean(tmp_path, capfd):
    from trainer.synthetic import write_shape_imagefolder

    shards = tmp_path / "shards"
    cut, altered = _shape_shards(shards)
    _cut_at_sample(cut, 5)
    _alter_caption(altered)
    eval_dir = write_shape_imagefolder(str(tmp_path / "eval"), per_class=1, image_size=32)
    out = tmp_path / "overlap"
    assert main(["overlap", "scan", "--shards", str(shards), "--eval", f"toy={eval_dir}", "--out", str(out)]) == 0
    printed = capfd.readouterr().out
    report = json.loads((out / "overlap.json").read_text())
    failed = {f["shard"]: f["error"] for f in report["shards"]["failed"]}
    assert set(failed) == {"00000.tar", "00001.tar"}
    assert "DamagedShard: truncated" in failed["00000.tar"] and "sha256" in failed["00001.tar"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["dropped"]["unreadable_shard"] == 2 and stats["accounted"] is True
    assert "Incomplete scan: 2 of 2 shards" in (out / "overlap.md").read_text()
    assert "2 unreadable or damaged shards" in printed and "INCOMPLETE" in printed


def test_overlap_filter_writes_no_short_shard_for_a_damaged_one(tmp_path):
    from dedup.filter import OverlapFilterOptions, run_overlap_filter

    shards = tmp_path / "shards"
    good, cut, altered = _shape_shards(shards, shards=3)
    _cut_at_sample(cut, 3)
    _alter_caption(altered)
    overlap = tmp_path / "overlap"
    overlap.mkdir()
    pair = {"shard": "00002.tar", "shard_key": "000200003", "eval_id": "e1", "similarity": 0.9}
    (overlap / "overlap.json").write_text(json.dumps({"eval_sets": {"toy": {"pairs": [pair]}}}))
    out = tmp_path / "clean"
    os.makedirs(out)
    (out / "00001.tar").write_bytes(b"an earlier run's copy")
    stats = run_overlap_filter(OverlapFilterOptions(shards=str(shards), overlap=str(overlap), out=str(out)))
    assert sorted(n for n in os.listdir(out) if n.endswith(".tar")) == ["00000.tar"]
    assert (stats["in"], stats["out"], stats["dropped"]) == (8 + 2, 8, {"overlap": 0, "damaged_shard": 2})
    assert stats["accounted"] is True
    assert sorted(d["shard"] for d in stats["damaged_shards"]) == ["00001.tar", "00002.tar"]
    assert json.loads((out / "manifest.json").read_text())["total_samples"] == 8
    assert (out / "00000.tar").read_bytes() == Path(good).read_bytes()


def test_training_counts_damaged_shards(tmp_path):
    from trainer.data import ShardStream, read_captions, resolve_shards
    from trainer.tokenizer import Tokenizer

    cut, altered = _shape_shards(tmp_path, samples=12)
    _cut_at_sample(cut, 6)
    _alter_caption(altered)
    shards = resolve_shards(str(tmp_path))
    assert set(shards.digests) == {cut, altered}
    tokenizer = Tokenizer.train(read_captions(shards.urls, 100), vocab_size=300)
    stream = ShardStream(shards.urls, tokenizer, batch_size=4, image_size=16, resample=False, shards_per_round=2,
                         shuffle_buffer=1, digests=shards.digests)
    skipped: dict[str, int] = {}
    for batch in iter(stream):
        for reason, count in batch["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + count
        if batch["position"][0] >= 1:          # the first batch after the round that read both shards
            break
    assert skipped == {"damaged_shard": 2}
