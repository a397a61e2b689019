"""Overlap check: training images signed and checked per second per core, and the MinHash LSH query
against brute-force all-pairs comparison as the eval set grows.

    python bench/bench_dedup.py [--train 2000] [--sizes 10000,50000] [--queries 200] [--json FILE]

Part 1 signs and checks ``--train`` 256x256 letterboxed JPEGs (the download stage's default output)
against a 1,000-image eval index in one process: decode (JPEG draft + trim + 48 px canvas), region
hashes, MinHash + LSH query + exact verification. The work is single-threaded, so images per CPU
second is images/s/core; CPU time (process_time) is reported next to wall time because the
benchmark box is shared. Goal: at least 2,000 images/s/core.

Part 2 builds eval indexes of each ``--sizes`` (distinct synthetic images, 160 px, signed as eval
images) and answers ``--queries`` training images (half transformed copies of eval images, half
distinct) two ways, side by side: the LSH query with exact verification of its candidates, and the
brute-force exact Jaccard against every eval image (one vectorised numpy pass per query). It reports
time per query, LSH candidates per query, the LSH's recall of the pairs brute force finds at the
default threshold, index build time and the memory the LSH tables take.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # one core: the per-core figure is the point

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from dedup.index import EvalEntry, IndexBuilder  # noqa: E402
from dedup.scan import DEFAULT_THRESHOLD  # noqa: E402
from dedup.signatures import decode_canvas, eval_image_signature, image_codes  # noqa: E402
from dedup.synthetic import distinct_image, jpeg_bytes, letterbox, transformed_copy  # noqa: E402


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def build_index(n: int, size: int | None = None, seed0: int = 0):
    builder = IndexBuilder(image_threshold=DEFAULT_THRESHOLD, text_threshold=0.7)
    pictures = {}
    for i in range(n):
        picture = distinct_image(seed0 + i, size=(size, size) if size else None)
        if i < 200:
            pictures[i] = picture
        builder.add(EvalEntry("bench", f"{i:06d}.jpg"), eval_image_signature(jpeg_bytes(picture, 95)), None)
    tracemalloc.start()
    index, wall, cpu = timed(builder.build)
    lsh_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return index, pictures, wall, lsh_bytes


def part_quality(n_eval: int = 200, n_distinct: int = 1000, n_copies: int = 100) -> list[dict]:
    """Precision and recall by threshold on the quality test's set (tests/dedup/test_quality.py)."""
    evals = [distinct_image(seed) for seed in range(n_eval)]
    builder = IndexBuilder(image_threshold=DEFAULT_THRESHOLD, text_threshold=0.7)   # what a scan builds
    for i, picture in enumerate(evals):
        builder.add(EvalEntry("synthetic", f"{i:05d}.jpg"), eval_image_signature(jpeg_bytes(picture, 95)), None)
    index = builder.build()

    def found(data: bytes) -> dict[int, float]:
        return {m.key: m.similarity for m in index.match(image_codes(decode_canvas(data)), None, 0.05)[0]}

    copies = [found(transformed_copy(evals[i], seed=10_000 + i, border=i % 3 == 0)) for i in range(n_copies)]
    distinct = [found(jpeg_bytes(letterbox(distinct_image(100_000 + j)))) for j in range(n_distinct)]
    rows = []
    for threshold in (0.1, 0.12, 0.15, 0.18, 0.2, 0.25, 0.3):
        true_pos = sum(1 for i, c in enumerate(copies) if c.get(i, 0) >= threshold)
        false_pos = sum(1 for i, c in enumerate(copies) for k, v in c.items() if k != i and v >= threshold)
        false_pos += sum(1 for d in distinct for v in d.values() if v >= threshold)
        rows.append({"threshold": threshold, "recall": true_pos / n_copies,
                     "precision": true_pos / (true_pos + false_pos) if true_pos + false_pos else 1.0,
                     "false_positives": false_pos, "distinct_images": n_distinct})
    return rows


def part_throughput(n_train: int) -> dict:
    index, _, _, _ = build_index(1000)
    images = [jpeg_bytes(letterbox(distinct_image(1_000_000 + i)), 90) for i in range(n_train)]
    canvases, decode_wall, decode_cpu = timed(lambda: [decode_canvas(d) for d in images])
    codes, codes_wall, codes_cpu = timed(lambda: [image_codes(c) for c in canvases])
    _, check_wall, check_cpu = timed(lambda: [index.match(c, None, DEFAULT_THRESHOLD / 2) for c in codes])
    _, total_wall, total_cpu = timed(lambda: [index.match(image_codes(decode_canvas(d)), None, DEFAULT_THRESHOLD / 2)
                                              for d in images])
    return {
        "images": n_train,
        "us_per_image_cpu": {"decode": 1e6 * decode_cpu / n_train, "region_hashes": 1e6 * codes_cpu / n_train,
                             "minhash_lsh_verify": 1e6 * check_cpu / n_train, "total": 1e6 * total_cpu / n_train},
        "images_per_cpu_second": n_train / total_cpu,
        "images_per_wall_second": n_train / total_wall,
    }


def _scaling_row(n: int, n_queries: int) -> dict:
    """One eval-set size: LSH query + verification against brute force, on half copies, half distinct images."""
    started = time.perf_counter()
    index, pictures, build_wall, lsh_bytes = build_index(n, size=160)
    sign_wall = time.perf_counter() - started - build_wall
    half = n_queries // 2
    queries = [transformed_copy(pictures[i], seed=77 + i, border=i % 3 == 0) for i in range(half)]
    queries += [jpeg_bytes(letterbox(distinct_image(2_000_000 + j)), 90) for j in range(n_queries - half)]
    codes = [image_codes(decode_canvas(q)) for q in queries]
    lsh, lsh_wall, lsh_cpu = timed(lambda: [index.match(c, None, DEFAULT_THRESHOLD) for c in codes])
    brute, brute_wall, brute_cpu = timed(lambda: [index.brute_force_image(c) for c in codes])
    truth = [set(np.flatnonzero(b >= DEFAULT_THRESHOLD).tolist()) for b in brute]
    found = [{m.key for m in matches} for matches, _ in lsh]
    true_pairs = sum(len(t) for t in truth)
    recall = sum(len(t & f) for t, f in zip(truth, found, strict=True)) / true_pairs if true_pairs else 1.0
    return {
        "eval_images": n, "queries": n_queries, "sign_eval_s": sign_wall, "build_index_s": build_wall,
        "lsh_tables_mb": lsh_bytes / 1e6,
        "lsh_ms_per_query": 1e3 * lsh_cpu / n_queries, "brute_ms_per_query": 1e3 * brute_cpu / n_queries,
        "speedup": brute_cpu / max(lsh_cpu, 1e-9),
        "candidates_per_query": float(np.mean([checked for _, checked in lsh])),
        "pairs_at_threshold": true_pairs, "lsh_recall_vs_brute": recall,
        "copies_found": sum(1 for i in range(half) if i in found[i]) / half,
    }


def part_scaling(sizes: list[int], n_queries: int) -> list[dict]:
    rows = []
    for n in sizes:
        started = time.perf_counter()
        rows.append(_scaling_row(n, n_queries))
        print(f"  {n} eval images done ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    return rows


def print_quality(rows: list[dict]) -> None:
    print("precision / recall by --threshold: 200 eval images, 100 transformed copies, 1,000 distinct images")
    print(f"  {'threshold':>9} {'recall':>7} {'precision':>9} {'false pos.':>10}")
    for r in rows:
        print(f"  {r['threshold']:>9.2f} {r['recall']:>7.3f} {r['precision']:>9.3f} {r['false_positives']:>10}")
    print()


def print_throughput(t: dict) -> None:
    us = t["us_per_image_cpu"]
    print(f"sign + check, one process, {t['images']} images of 256x256 (1,000-image eval index):")
    print(f"  decode {us['decode']:.0f} us, region hashes {us['region_hashes']:.0f} us, "
          f"MinHash + LSH + verify {us['minhash_lsh_verify']:.0f} us; total {us['total']:.0f} us CPU per image")
    print(f"  {t['images_per_cpu_second']:.0f} images/s/core (CPU time), "
          f"{t['images_per_wall_second']:.0f} images/s wall (goal: 2,000 images/s/core)")


def print_scaling(rows: list[dict], n_queries: int) -> None:
    print(f"\nLSH query + exact verification vs brute-force exact Jaccard, {n_queries} queries, "
          f"threshold {DEFAULT_THRESHOLD}:")
    print(f"  {'eval images':>11} {'LSH ms/q':>9} {'brute ms/q':>11} {'speedup':>8} {'cand/q':>7} "
          f"{'LSH recall':>10} {'copies found':>12} {'build s':>8} {'LSH MB':>7}")
    for r in rows:
        print(f"  {r['eval_images']:>11} {r['lsh_ms_per_query']:>9.2f} {r['brute_ms_per_query']:>11.2f} "
              f"{r['speedup']:>7.0f}x {r['candidates_per_query']:>7.1f} {r['lsh_recall_vs_brute']:>10.3f} "
              f"{r['copies_found']:>12.3f} {r['build_index_s']:>8.1f} {r['lsh_tables_mb']:>7.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=2000, help="training images signed and checked (part 1)")
    parser.add_argument("--sizes", default="10000,50000", help="eval set sizes for part 2, comma-separated")
    parser.add_argument("--queries", type=int, default=200, help="training images queried per size (part 2)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    result = {"threshold": DEFAULT_THRESHOLD}
    if not args.skip_quality:
        result["quality"] = part_quality()
        print_quality(result["quality"])
    result["throughput"] = part_throughput(args.train)
    print_throughput(result["throughput"])
    if not args.skip_scaling:
        result["scaling"] = part_scaling([int(s) for s in args.sizes.split(",") if s], args.queries)
        print_scaling(result["scaling"], args.queries)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
