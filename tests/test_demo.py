"""`wit demo` runs every stage end to end on the sample web, exits 0, and its model learns."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from wit_pipeline.stage import COMMON_KEYS


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WIT_PROGRESS": "0"}
    result = subprocess.run([sys.executable, "-m", "wit_pipeline", "demo", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert result.stdout.startswith("wit demo: finished in")
    for step in ("sample web", "queries", "candidates", "select", "download", "train", "overlap", "embed", "filter"):
        assert f"\n  {step} " in result.stdout, step
    assert (out / "queries" / "queries.parquet").exists()
    assert (out / "shards" / "manifest.json").exists()
    assert (out / "overlap" / "overlap.json").exists()

    # Worldwide: one query list over the four dumps, and select --lang all keeps pairs in every language.
    for step, what in (("queries", "per language"), ("select", "selected per language")):
        line = next(line for line in result.stdout.splitlines() if line.startswith(f"  {step} ") and what in line)
        counts = {lang: int(n) for lang, n in re.findall(r"\b([a-z]{2}) (\d+)", line.split(what, 1)[1])}
        assert set(counts) == {"en", "de", "zh", "ja"}, line
        assert min(counts.values()) >= 5 and counts["en"] == max(counts.values()), line

    # The download step names every opt-out signal's count, and its consent check shows each one refusing.
    from wit_pipeline.sampleweb import FAULTS
    from wit_pipeline.sampleweb.faults import SIGNAL_FAULTS

    opt_outs = next(line for line in result.stdout.splitlines() if " opt-outs " in line)
    assert "robots 0, noai 0, tdmrep 0, content_usage 0, ai_txt 0, metadata 0, c2pa 0, blocklisted 0" in opt_outs
    check = next(line for line in result.stdout.splitlines() if "consent check" in line)
    declared = [FAULTS[kind].expected for kind in SIGNAL_FAULTS]
    for reason in ("robots", "noai", "tdmrep", "content_usage", "ai_txt", "metadata", "c2pa"):
        assert f"{reason} {declared.count('opt_out_' + reason)}" in check, check
    assert f"{declared.count('success')} kept" in check, check

    # Every stage that wrote output says so in one stats.json shape, with every record accounted for.
    for folder in ("queries", "candidates/wat", "candidates/search", "select", "shards", "overlap", "embed",
                   "filter"):
        stats = json.load(open(out / folder / "stats.json"))
        assert set(COMMON_KEYS) <= set(stats), (folder, sorted(set(COMMON_KEYS) - set(stats)))
        assert stats["accounted"] is True, (folder, stats["in"], stats["out"], stats["dropped"])

    # The tiny CLIP learns from the downloaded pairs: loss falls, zero-shot beats chance clearly.
    losses = [json.loads(line)["loss"] for line in open(out / "train" / "metrics.jsonl") if '"loss"' in line]
    assert losses[-1] < losses[0] - 1.0
    zeroshot = json.load(open(out / "train" / "zeroshot" / "metrics.json"))
    assert zeroshot["top1"] >= 2 * zeroshot["chance"], zeroshot

    # The filter step, against the sample web's truth: the mismatched pairs and the duplicate copies in the shards
    # mostly go, the good pairs mostly stay, and no image without a copy in the set is taken for a duplicate.
    truth = next(line for line in result.stdout.splitlines() if " against the truth " in line)
    numbers = re.search(r"removed (\d+) of (\d+) mismatched pairs, (\d+) of (\d+) duplicate copies; "
                        r"kept (\d+) of (\d+) good pairs \((\d+) distinct", truth)
    assert numbers, truth
    mismatched_removed, mismatched, copies_removed, copies, good_kept, good, distinct_dropped = map(
        int, numbers.groups())
    assert mismatched >= 10 and copies >= 10 and good >= 50, truth
    assert mismatched_removed >= 0.7 * mismatched, truth
    assert copies_removed >= 0.9 * copies, truth
    assert good_kept >= 0.75 * good, truth
    assert distinct_dropped <= 2, truth
    assert (out / "filter" / "filter.html").exists()


def test_filter_figures_count_each_sample_once_against_the_truth():
    from wit_pipeline.filter.demo import truth_figures

    def entry(image_id, matches=True, copy_of=None, language="en"):
        return {"id": image_id, "path": f"/img/{image_id:05d}.jpg", "language": language,
                "caption_matches": matches, "caption_of": None if matches else 99, "copy_of": copy_of}

    truth = {f"http://web/img/{e['id']:05d}.jpg": e for e in (
        entry(1), entry(2), entry(3, copy_of=2), entry(4, matches=False), entry(5, matches=False), entry(6),
        entry(7, language="xx"))}
    samples = [("http://web/img/00001.jpg", "success"),
               ("http://web/media/img/00001.jpg", "exact_duplicate"),    # the same image under another URL form
               ("http://web/img/00002.jpg?w=160", "low_clip_score"),     # a copy group that lost both members
               ("http://web/img/00003.jpg", "near_duplicate"),
               ("http://web/img/00004.jpg", "low_clip_score"), ("http://web/img/00005.jpg", "success"),
               ("http://web/img/00006.jpg", "near_duplicate"),           # a distinct image taken for a copy
               ("http://web/img/00007.jpg", "success"), ("http://web/fault/slow.jpg", "success")]
    figures = truth_figures(samples, truth)
    assert (figures.mismatched, figures.mismatched_removed) == (2, 1)
    assert (figures.copies, figures.copies_removed) == (2, 2)
    assert (figures.good, figures.good_kept) == (3, 1)
    assert figures.distinct_dropped_as_duplicate == 1 and figures.other == 2
    assert figures.line().startswith("removed 1 of 2 mismatched pairs, 2 of 2 duplicate copies; kept 1 of 3 good")
