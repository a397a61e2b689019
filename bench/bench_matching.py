"""Caption matching: the Aho–Corasick matcher vs the naive ``query in text`` loop, 500k queries.

    python bench/bench_matching.py [--queries 500000] [--captions 200000] [--naive-captions 60]

Per-core figures (best of ``--repeat`` passes): the matcher is single-threaded, so captions/s here is captions/s/core;
CPU time (process_time) is reported next to wall time because the benchmark box is shared.
The naive loop is MetaCLIP's straightforward port (for each entry: ``f" {entry} " in text``);
it runs on a few captions and its rate is extrapolated; both must give the same matches.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _synth import captions, query_list, vocabulary  # noqa: E402

from wit_pipeline.select.matching import QueryMatcher, naive_match  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=500_000)
    parser.add_argument("--captions", type=int, default=200_000)
    parser.add_argument("--naive-captions", type=int, default=60)
    parser.add_argument("--mode", choices=("word", "substring"), default="word")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the captions; the best counts")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    words = vocabulary(args.queries * 2)
    queries = query_list(words, args.queries)
    texts = captions(words, args.captions, seed=7)
    base_rss = rss_mb()
    matcher, build_wall, build_cpu = timed(lambda: QueryMatcher(queries, mode=args.mode))
    automaton_mb = rss_mb() - base_rss

    runs = [timed(lambda: [matcher.match(t) for t in texts]) for _ in range(args.repeat)]   # what the job calls
    found, wall, cpu = min(runs, key=lambda run: run[2])      # best of N, as timeit does: the box is shared
    matches = sum(map(len, found))
    matched_texts = sum(1 for f in found if f)

    sample = texts[: args.naive_captions]
    naive, naive_wall, naive_cpu = timed(lambda: [naive_match(queries, t, args.mode) for t in sample])
    same = naive == [matcher.match(t) for t in sample]

    figures = {
        "queries": len(queries), "captions": len(texts), "mode": args.mode,
        "automaton_build_s": round(build_wall, 2), "automaton_rss_mb": round(automaton_mb),
        "ac_captions_per_s_cpu": round(len(texts) / cpu), "ac_captions_per_s_wall": round(len(texts) / wall),
        "naive_captions_per_s_cpu": round(len(sample) / naive_cpu, 1),
        "speedup_cpu": round((len(texts) / cpu) / (len(sample) / naive_cpu)),
        "matches_per_caption": round(matches / len(texts), 2),
        "share_of_captions_matching": round(matched_texts / len(texts), 3),
        "naive_agrees_on_sample": same,
    }
    print(f"{len(queries):,} queries ({args.mode} mode); automaton built in {build_wall:.1f} s, "
          f"~{automaton_mb:.0f} MB")
    print(f"Aho-Corasick : {len(texts):,} captions in {cpu:.2f} s CPU ({wall:.2f} s wall) -> "
          f"{figures['ac_captions_per_s_cpu']:,} captions/s/core (CPU), {figures['ac_captions_per_s_wall']:,} wall")
    print(f"naive loop   : {len(sample)} captions in {naive_cpu:.2f} s CPU -> "
          f"{figures['naive_captions_per_s_cpu']} captions/s/core; speed-up x{figures['speedup_cpu']:,}")
    print(f"matches per caption {figures['matches_per_caption']}, captions with a match "
          f"{figures['share_of_captions_matching']:.1%}; naive and automaton agree on the sample: {same}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
