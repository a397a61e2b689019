"""The candidates + select stages on one generated WAT file, per runner: wall, CPU per row, peak RSS.

    python bench/bench_engines.py [--pages 4000] [--runner direct] [--runner prism=PRISM_BINARY] ...

Each runner runs ``wit candidates`` then ``wit select`` (the framework-heavy part of the chain: a parse,
a group-by, a combine) as child processes on the same generated, Common Crawl-shaped WAT file
(``bench_candidates.generate_wat``) and the same query list. Measured per runner, both stages together:
wall seconds; CPU seconds of the whole process tree (driver, worker processes, the Prism binary) per
candidate row read; peak RSS of the process tree, summed over its processes (sampled from /proc every
0.1 s). Runners: ``direct`` (the DirectRunner as users get it: multi-process, one worker per core),
``direct-inmemory`` (one process), ``prism=BINARY`` (PrismRunner, LOOPBACK workers). The outputs of
every runner are compared with the first one's (same selected rows).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))

from _synth import EN_ADJ, EN_NOUN, query_list, vocabulary  # noqa: E402
from bench_candidates import generate_wat  # noqa: E402


def runner_flags(spec: str) -> list[str]:
    if spec == "direct":
        return ["--runner", "DirectRunner", "--direct_running_mode", "multi_processing"]
    if spec == "direct-inmemory":
        return ["--runner", "DirectRunner", "--direct_running_mode", "in_memory"]
    if spec.startswith("prism="):
        return ["--runner", "PrismRunner", "--prism_location", spec.split("=", 1)[1], "--environment_type",
                "LOOPBACK", "--prism_log_level", "warn"]
    raise SystemExit(f"unknown runner {spec!r}")


def tree_rss_bytes(root: int) -> int:
    """Summed RSS of ``root`` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            parents[int(stat.split("/")[2])] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def measured(argv: list[str]) -> tuple[float, float, int]:
    """Run ``argv``; its wall seconds, CPU seconds (all waited-for descendants) and peak tree RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss_bytes(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = process.communicate()
    sampler.join()
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{err.decode(errors='replace')[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, peak[0]


def selected_rows(out: str) -> list[str]:
    import pyarrow.parquet as pq

    rows = []
    for path in sorted(glob.glob(os.path.join(out, "selected", "*.parquet"))):
        rows += [json.dumps(r, sort_keys=True, default=str) for r in pq.read_table(path).to_pylist()]
    return sorted(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=4000, help="crawled pages in the generated WAT file")
    parser.add_argument("--queries", type=int, default=50_000)
    parser.add_argument("--runner", action="append", help="direct, direct-inmemory or prism=BINARY; repeatable")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    runners = args.runner or ["direct", "direct-inmemory"]

    tmp = tempfile.mkdtemp(prefix="bench-engines-")
    words = vocabulary(200_000)
    queries = list(dict.fromkeys(EN_NOUN + EN_ADJ + query_list(words, args.queries)))[: args.queries]
    wat = os.path.join(tmp, "CC-BENCH.warc.wat.gz")
    generate_wat(wat, args.pages, words)
    from queries.output import write_query_files

    qdir = os.path.join(tmp, "queries")
    write_query_files([{"query": q, "sources": ["bench"], "count": 0} for q in queries], qdir)

    figures, reference = {}, None
    wit = [sys.executable, "-m", "wit_pipeline"]
    for spec in runners:
        out = os.path.join(tmp, spec.split("=")[0])
        flags = runner_flags(spec)
        wall_c, cpu_c, rss_c = measured([*wit, "candidates", "--source", "wat", "--input", wat,
                                         "--out", f"{out}/cand", *flags])
        wall_s, cpu_s, rss_s = measured([*wit, "select", "--candidates", f"{out}/cand", "--queries", qdir,
                                         "--out", f"{out}/sel", *flags])
        rows_in = json.load(open(f"{out}/cand/stats.json"))["in"]
        rows = selected_rows(f"{out}/sel")
        reference = rows if reference is None else reference
        figures[spec.split("=")[0]] = {
            "wall_s": round(wall_c + wall_s, 1), "cpu_s": round(cpu_c + cpu_s, 1), "rows_in": rows_in,
            "cpu_ms_per_row": round(1000 * (cpu_c + cpu_s) / max(rows_in, 1), 3),
            "peak_rss_mb": round(max(rss_c, rss_s) / 2**20), "selected": len(rows), "same_as_first": rows == reference}
        print(spec.split("=")[0], figures[spec.split("=")[0]], flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
