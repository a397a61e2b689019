"""``wit demo``'s filter step: ``wit filter --clip-score-top 0.75 --dedup near`` on the downloaded shards with
the embed step's embeddings, then the result against the sample web's truth (``eval/truth.json``, ``images``):
how many mismatched pairs (an alt text describing another image) and duplicate copies (one image under
several URLs, byte for byte or re-encoded, resized, cropped) were removed, and how many good pairs kept.

``truth_figures`` is the comparison, a pure function of the output's status rows and the truth."""

from __future__ import annotations

import glob
import json
import os
from collections import defaultdict
from dataclasses import dataclass

import pyarrow.parquet as pq

from dedup.demo import image_name

from .rules import REASONS

STEP = "filter"
DEMO_CLIP_SCORE_TOP = 0.75      # the DataComp-style baseline: keep the best three quarters
DUPLICATE_REASONS = ("exact_duplicate", "near_duplicate")


@dataclass(frozen=True)
class TruthFigures:
    """A filtered shard set against the sample web's truth; every sample of the input is in one count."""

    mismatched: int = 0               # samples whose English caption describes another image
    mismatched_removed: int = 0
    copies: int = 0                   # samples beyond the first of each well-captioned image (same root image)
    copies_removed: int = 0           # copies gone, counting a group that lost every member as n - 1 removed
    good: int = 0                     # distinct well-captioned images (a copy group is one)
    good_kept: int = 0                # ... with at least one sample kept
    distinct_dropped_as_duplicate: int = 0   # single-sample images dropped as an exact or near duplicate
    other: int = 0                    # samples that are no site image, or whose caption is not English

    def line(self) -> str:
        return (f"removed {self.mismatched_removed} of {self.mismatched} mismatched pairs, {self.copies_removed} "
                f"of {self.copies} duplicate copies; kept {self.good_kept} of {self.good} good pairs "
                f"({self.distinct_dropped_as_duplicate} distinct images dropped as duplicates, "
                f"{self.other} other samples)")


def truth_figures(samples: list[tuple[str | None, str]], truth: dict[str, dict]) -> TruthFigures:
    """``samples``: ``(url, status)`` of every input sample (``success`` when kept); ``truth``: the truth
    file's ``images`` (URL -> ``id``, ``path``, ``language``, ``caption_matches``, ``copy_of``)."""
    by_name = {os.path.basename(entry["path"]): entry for entry in truth.values()}
    groups: dict[int, list[bool]] = defaultdict(list)    # root image id -> kept flag of each good sample
    mismatched = mismatched_removed = other = 0
    for url, status in samples:
        entry = by_name.get(image_name(url))
        if entry is None or entry["language"] != "en":
            other += 1
        elif not entry["caption_matches"]:
            mismatched += 1
            mismatched_removed += status != "success"
        else:
            groups[_root(entry)].append(status == "success")
    figures = {"mismatched": mismatched, "mismatched_removed": mismatched_removed, "other": other,
               "good": len(groups), "good_kept": sum(any(kept) for kept in groups.values()),
               "copies": sum(len(kept) - 1 for kept in groups.values()),
               "copies_removed": sum(len(kept) - max(sum(kept), 1) for kept in groups.values())}
    taken_for_copies = [by_name.get(image_name(url)) for url, status in samples if status in DUPLICATE_REASONS]
    figures["distinct_dropped_as_duplicate"] = sum(_single(entry, groups) for entry in taken_for_copies)
    return TruthFigures(**figures)


def _root(entry: dict) -> int:
    """The image a sample shows: the source of a near duplicate, else the image itself."""
    return entry["copy_of"] if entry["copy_of"] is not None else entry["id"]


def _single(entry: dict | None, groups: dict[int, list[bool]]) -> bool:
    """A well-captioned image with no other sample of itself in the set."""
    return bool(entry and entry["language"] == "en" and entry["caption_matches"]
                and len(groups.get(_root(entry), ())) == 1)


def filtered_samples(out: str) -> list[tuple[str | None, str]]:
    """``(url, status)`` of every sample the filter read: its status parquets' rows whose status is
    ``success`` or a filter reason (the download's own failures are no samples)."""
    samples = []
    for path in sorted(glob.glob(os.path.join(out, "*.parquet"))):
        table = pq.read_table(path, columns=["url", "status"])
        samples += [(url, status) for url, status in zip(table["url"].to_pylist(), table["status"].to_pylist(),
                                                         strict=True)
                    if status == "success" or status in REASONS]
    return samples


def demo_step(ctx) -> None:
    """Filter, then report what was dropped and the figures against the truth."""
    if "embeddings" not in ctx.outputs:
        ctx.report(STEP, "skipped", "no embeddings (the embed step did not run)")
        return
    from .pipeline import FilterOptions, run_filter

    out = ctx.path("filter")
    stats = run_filter(FilterOptions(shards=ctx.outputs["shards"], embeddings=ctx.outputs["embeddings"], out=out,
                                     clip_score_top=DEMO_CLIP_SCORE_TOP, dedup="near", seed=ctx.seed),
                       ctx.beam_args)
    ctx.outputs["filtered"] = out
    dropped = ", ".join(f"{reason} {count}" for reason, count in stats["dropped"].items() if count) or "none"
    ctx.report(STEP, "samples kept / in", f"{stats['out']} / {stats['in']} (--clip-score-top "
               f"{DEMO_CLIP_SCORE_TOP} --dedup near; dropped: {dropped})")
    with open(ctx.files.eval_truth) as handle:
        truth = json.load(handle).get("images", {})
    ctx.report(STEP, "against the truth", truth_figures(filtered_samples(out), truth).line())
    ctx.report(STEP, "report", os.path.join(out, "filter.html"))
