"""End to end through the CLI: ``wit overlap scan``, ``filter`` and ``accuracy`` on a small synthetic world."""

from __future__ import annotations

import json
import os
import tarfile

import pytest

from wit_pipeline.cli import main


@pytest.fixture(scope="module")
def scanned(small_world, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("overlap"))
    code = main(["overlap", "scan", "--shards", small_world["shards"], "--eval", f"toy={small_world['eval']}",
                 "--out", out])
    assert code == 0
    with open(os.path.join(out, "overlap.json")) as handle:
        return out, json.load(handle)


def test_scan_flags_exactly_the_planted_copies(scanned, small_world):
    out, report = scanned
    toy = report["eval_sets"]["toy"]
    assert toy["examples"] == 13                      # 12 images + the unreadable one
    flagged = {(p["eval_id"], p["shard_key"]) for p in toy["pairs"]}
    expected = {(eval_id, small_world["keys"][i]) for i, eval_id in small_world["copies"].items()}
    assert flagged == expected
    assert toy["flagged"] == 4
    assert toy["percent"] == pytest.approx(100 * 4 / 13, abs=1e-3)
    for pair in toy["pairs"]:
        assert set(pair) >= {"eval_id", "shard_key", "url", "similarity"}
        assert pair["url"].startswith("http://example.test/")
        assert 0.15 <= pair["similarity"] <= 1.0
        assert pair["shard"].endswith(".tar")


def test_bad_input_is_counted_and_listed_not_fatal(scanned, small_world):
    _, report = scanned
    assert report["eval_sets"]["toy"]["unreadable"][0]["eval_id"] == "alpha/broken.jpg"
    shards = report["shards"]
    assert shards["samples"] == 30 and shards["count"] == 3
    assert shards["unreadable_images"] == 1
    assert shards["unreadable"][0]["shard_key"] == small_world["keys"][11]
    assert report["counters"]["dropped_unreadable_image"] == 1


def test_scan_writes_stats_with_every_sample_accounted(scanned):
    out, report = scanned
    stats = json.load(open(os.path.join(out, "stats.json")))
    assert stats["stage"] == "overlap" and stats["accounted"] is True
    assert stats["in"] == 30 and stats["out"] == 29
    assert stats["dropped"] == {"unreadable_image": 1, "unreadable_shard": 0}
    assert stats["shards"] == 3 and stats["flagged"] == {"toy": 4}
    assert stats["outputs"]["report"] == os.path.join(out, "overlap.json")
    assert stats["settings"]["threshold"] == 0.15
    assert stats["settings"]["eval"] == {"toy": report["eval_sets"]["toy"]["path"]}
    assert {k: stats["counters"][k] for k in ("in", "out", "pairs_kept")} == {"in": 30, "out": 29, "pairs_kept": 4}


def test_reports_are_written(scanned):
    out, report = scanned
    md = open(os.path.join(out, "overlap.md")).read()
    assert "| toy | 13 | 4 | 30.77 |" in md
    page = open(os.path.join(out, "overlap.html")).read()
    assert page.count("data:image/jpeg;base64,") >= 8     # both sides of every flagged pair
    assert "Just above the threshold" in page and "Just below the threshold" in page
    assert 'src="overlap.png"' in page
    with open(os.path.join(out, "overlap.png"), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not os.path.exists(os.path.join(out, "_work"))


def test_per_set_threshold_changes_what_is_flagged(small_world, tmp_path):
    out = str(tmp_path / "strict")
    assert main(["overlap", "scan", "--shards", os.path.join(small_world["shards"], "*.tar"),
                 "--eval", f"toy={small_world['eval']}", "--eval", f"same={small_world['eval']}",
                 "--threshold", "toy=0.99", "--out", out]) == 0
    report = json.load(open(os.path.join(out, "overlap.json")))
    assert report["eval_sets"]["toy"]["threshold"] == 0.99
    assert report["eval_sets"]["toy"]["flagged"] == 0
    assert report["eval_sets"]["same"]["flagged"] == 4
    # what the strict threshold no longer flags is still shown as "just below"
    assert len(report["eval_sets"]["toy"]["near_misses"]) >= 4


def test_unknown_threshold_name_is_a_user_error(small_world, tmp_path, capsys):
    code = main(["overlap", "scan", "--shards", small_world["shards"], "--eval", f"toy={small_world['eval']}",
                 "--threshold", "nope=0.2", "--out", str(tmp_path / "x")])
    assert code == 2
    assert "no eval set named 'nope'" in capsys.readouterr().err


def test_filter_removes_flagged_samples_and_writes_a_manifest(scanned, small_world, tmp_path):
    out, _ = scanned
    target = str(tmp_path / "clean")
    assert main(["overlap", "filter", "--shards", small_world["shards"], "--overlap", out, "--out", target]) == 0
    manifest = json.load(open(os.path.join(target, "manifest.json")))
    assert manifest["total_samples"] == 26 and manifest["removed_samples"] == 4
    removed = {small_world["keys"][i] for i in small_world["copies"]}
    seen = set()
    for row in manifest["shards"]:
        path = os.path.join(target, row["path"])
        assert os.path.getsize(path) == row["bytes"]
        with tarfile.open(path) as tar:
            keys = {m.name.split(".", 1)[0] for m in tar.getmembers()}
            names = tar.getnames()
        assert len(keys) == row["samples"]
        assert all(f"{k}.jpg" in names and f"{k}.txt" in names and f"{k}.json" in names for k in keys)
        seen |= keys
    assert seen == set(small_world["keys"]) - removed
    # a shard with nothing flagged is copied byte for byte
    untouched = [r for r in manifest["shards"] if r["path"] == "00000.tar"]
    assert untouched and open(os.path.join(target, "00000.tar"), "rb").read() != b""
    lines = open(os.path.join(target, "removed.jsonl")).read().splitlines()
    assert {json.loads(line)["shard_key"] for line in lines} == removed


def test_accuracy_splits_predictions_by_the_report(scanned, tmp_path, capsys):
    out, report = scanned
    flagged = set(report["eval_sets"]["toy"]["flagged_ids"])
    predictions = tmp_path / "predictions.jsonl"
    rows = []
    for i in range(12):
        eval_id = f"{('alpha', 'beta', 'gamma')[i % 3]}/{i:05d}.jpg"
        correct = 1 if eval_id in flagged else int(i % 2 == 0)
        rows.append({"eval_id": eval_id, "label": "x", "predicted": "x" if correct else "y", "correct": correct})
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["overlap", "accuracy", "--overlap", out, "--predictions", str(predictions),
                 "--out", str(tmp_path / "acc")]) == 0
    result = json.load(open(tmp_path / "acc" / "accuracy.json"))
    toy = result["eval_sets"][0]
    assert toy["examples"] == 12 and toy["overlap"] == 4
    assert toy["acc_overlap"] == 100.0
    clean_correct = sum(r["correct"] for r in rows if r["eval_id"] not in flagged)
    assert toy["acc_clean"] == pytest.approx(100 * clean_correct / 8)
    assert toy["all_minus_clean"] == pytest.approx(toy["acc_all"] - toy["acc_clean"])
    assert toy["p_value"] == pytest.approx((clean_correct / 8) ** 4)   # P(4 of 4 | p = clean accuracy)
    assert "| toy | 12 |" in capsys.readouterr().out


def test_demo_step_reports_the_table_and_planted_copies(small_world, tmp_path):
    from types import SimpleNamespace

    from dedup.demo import demo_step

    truth = tmp_path / "truth.json"
    planted = [{"eval_id": eval_id, "url": f"http://example.test/{small_world['keys'][i]}.jpg"}
               for i, eval_id in small_world["copies"].items()]
    truth.write_text(json.dumps({"planted": planted + [{"eval_id": "beta/00001.jpg", "url": "http://x/unseen.jpg"}]}))
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"eval_id": f"{('alpha', 'beta', 'gamma')[i % 3]}/{i:05d}.jpg",
                                               "label": "a", "predicted": "a", "correct": 1}) + "\n"
                                   for i in range(12)))
    rows = []
    ctx = SimpleNamespace(outputs={"shards": small_world["shards"], "predictions": str(predictions)}, beam_args=[],
                          files=SimpleNamespace(eval_dir=small_world["eval"], eval_truth=str(truth)),
                          path=lambda *parts: str(tmp_path.joinpath(*parts)),
                          report=lambda step, what, value: rows.append((step, what, str(value))))
    demo_step(ctx)
    assert ctx.outputs["overlap"] == str(tmp_path / "overlap")
    table = [v for _, what, v in rows if what == "table"]
    assert table[0].split() == ["eval", "set", "examples", "flagged", "overlap", "%", "threshold"]
    assert table[1].split()[:3] == ["sample", "13", "4"]
    assert ("overlap", "planted copies", "5 on the web, 4 in the shards, 4 flagged; flagged but not planted: 0") in rows
    assert ("overlap", "zero-shot all / clean / overlap",
            "100.0% / 100.0% / 100.0% (4 of 12 overlapping; accuracy.md)") in rows

    skipped = []
    demo_step(SimpleNamespace(outputs={}, report=lambda *row: skipped.append(row)))
    assert skipped[0][1] == "skipped"
