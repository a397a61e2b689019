"""Candidates + select through the runner at two sizes and on a WAT file, beside the same work as plain calls.

    python bench/bench_pipeline_scale.py [--rows 100000,400000] [--wat-pages 4000] [--modes in_memory,default]
                                         [--keep DIR] [--json out.json]
    python bench/bench_pipeline_scale.py --make-only --rows 100000 --out DIR    # only write the inputs

Inputs (``bench/_scale_inputs.py``, written once under the work folder and reused): the WordNet 3.0 query
list (``wit queries build --wordnet /usr/share/wordnet``), candidate parquet parts of each ``--rows`` size
(captions of 4-12 words, ~40% WordNet words, duplicates, foreign and boilerplate alt texts) and a
Common Crawl-shaped WAT file of ``--wat-pages`` pages.

The runner: ``wit candidates`` then ``wit select`` as child processes (DirectRunner) on each input, in each
``--modes`` entry: ``in_memory`` is one worker in the driver process (``--direct_num_workers 1
--direct_running_mode in_memory``); ``default`` is what a user gets with no Beam flag (multi_processing, one
worker process per core). Per child: CPU seconds (user + system of the child and its reaped workers, from
``os.wait4``), wall seconds, peak RSS of its largest process (``ru_maxrss``) and of its whole process tree
(summed, sampled from /proc every 0.2 s).

The pure stage: the same work as plain function calls in this process (read the parts or the WAT, clean
and filter, exact de-dup, Aho-Corasick matching with the automaton built once, language ID once per
distinct matched text, the per-query cap), CPU-timed; its selected uids are compared with the job's.
Printed per input: CPU s per row, rows/s/core, peak RSS, the pure figure and the runner-overhead ratio
(runner CPU / pure CPU), and the peak-RSS ratio of the largest to the smallest ``--rows`` size. The box
may be shared: CPU seconds and ratios measured in the same run are the figures to compare.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _scale_inputs as inputs  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from wit_pipeline.candidates.filters import clean_pair  # noqa: E402
from wit_pipeline.candidates.pipeline import DEFAULT_FILTERS  # noqa: E402
from wit_pipeline.candidates.sources.wat import read_wat  # noqa: E402
from wit_pipeline.language import detect_languages  # noqa: E402
from wit_pipeline.pairs import first_by_provenance  # noqa: E402
from wit_pipeline.querylist import load_query_list  # noqa: E402
from wit_pipeline.schemas import pair_uid  # noqa: E402
from wit_pipeline.select.balancing import select_top  # noqa: E402
from wit_pipeline.select.matching import QueryMatcher  # noqa: E402

MODES = {"in_memory": ["--direct_num_workers", "1", "--direct_running_mode", "in_memory"], "default": []}
CAP = 20_000
SAMPLE_S = 0.2
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
# Starts the job and reports its rusage. A child's ru_maxrss starts from its parent's RSS at fork (Linux keeps
# the old image's high-water mark across exec), and this bench holds the inputs: a small parent keeps it honest.
LAUNCHER = """
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_pid, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"code": os.waitstatus_to_exitcode(status), "cpu_s": usage.ru_utime + usage.ru_stime,
               "maxrss_kb": usage.ru_maxrss}, out)
"""


# -- one child process, measured ---------------------------------------------------------------
def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            tree.setdefault(int(fields[1]), []).append(int(name))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * PAGE_KB
    except OSError:
        return 0


class TreeRss:
    """Peak of the summed RSS of a process's descendants, sampled every ``SAMPLE_S`` seconds."""

    def __init__(self, pid: int):
        self.pid, self.peak_kb, self.done = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.done.wait(SAMPLE_S):
            tree, total = _children_of(), 0
            pids = list(tree.get(self.pid, ()))   # the launcher's children: the job and its workers
            while pids:
                pid = pids.pop()
                total += _rss_kb(pid)
                pids.extend(tree.get(pid, ()))
            self.peak_kb = max(self.peak_kb, total)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak_kb


def run_child(argv: list[str], log_path: str) -> dict:
    """Run ``python -m wit_pipeline ARGV`` through ``LAUNCHER``; its CPU, wall and peak RSS (largest process,
    whole tree)."""
    env = {k: v for k, v in os.environ.items() if k != "WIT_DIRECT_RUNNING_MODE"}   # the user's default
    usage_path = log_path + ".usage.json"
    wall = time.perf_counter()
    with open(log_path, "w") as log:
        launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, usage_path, sys.executable, "-m",
                                     "wit_pipeline", *argv], stdout=log, stderr=log, env=env)
        tree = TreeRss(launcher.pid)
        launcher.wait()
    tree_kb = tree.stop()
    with open(usage_path) as handle:
        usage = json.load(handle)
    if usage["code"] != 0:
        with open(log_path) as log:
            sys.exit(f"wit {argv[0]} failed ({usage['code']}):\n{log.read()[-3000:]}")
    return {"cpu_s": round(usage["cpu_s"], 2), "wall_s": round(time.perf_counter() - wall, 2),
            "peak_rss_mb": round(usage["maxrss_kb"] / 1024), "peak_tree_rss_mb": round(tree_kb / 1024)}


def run_jobs(candidates_args: list[str], queries: str, work: str, mode: str) -> dict:
    """``wit candidates`` then ``wit select`` in one runner mode; each one's figures and stats.json counts."""
    cand_out, sel_out = os.path.join(work, f"cand-{mode}"), os.path.join(work, f"sel-{mode}")
    for folder in (cand_out, sel_out):
        shutil.rmtree(folder, ignore_errors=True)
    figures = {}
    for name, argv, out in (
            ("candidates", ["candidates", *candidates_args, "--out", cand_out], cand_out),
            ("select", ["select", "--candidates", cand_out, "--queries", queries, "--out", sel_out], sel_out)):
        figures[name] = run_child([*argv, *MODES[mode]], os.path.join(work, f"{name}-{mode}.log"))
        with open(os.path.join(out, "stats.json")) as handle:
            stats = json.load(handle)
        figures[name].update(rows_in=stats["in"], rows_out=stats["out"])
    figures["selected_uids"] = selected_uids(sel_out)
    return figures


def selected_uids(sel_out: str) -> set[str]:
    return set(pq.read_table(os.path.join(sel_out, "selected"), columns=["uid"]).column("uid").to_pylist())


# -- the same work as plain calls -----------------------------------------------------------------
def timed(fn):
    cpu = time.process_time()
    result = fn()
    return result, time.process_time() - cpu


def clean_and_dedup(raw) -> list[dict]:
    """The candidate stage's work: clean + filters, then one row per (url, text) (smallest provenance)."""
    by_uid: dict[str, list[dict]] = {}
    for row in raw:
        url, text, reason = clean_pair(row["url"], row["text"], DEFAULT_FILTERS)
        if reason is None:
            row = dict(row, url=url, text=text, uid=pair_uid(url, text))
            by_uid.setdefault(row["uid"], []).append(row)
    return [first_by_provenance(rows) for rows in by_uid.values()]


def select_pure(rows: list[dict], matcher: QueryMatcher) -> tuple[set[str], dict]:
    """The select stage's work: match, language ID once per distinct matched text (English kept), cap;
    the selected uids and each step's CPU seconds."""
    def match():
        return {row["uid"]: (row["text"], found) for row in rows if (found := matcher.match(row["text"]))}

    matched, match_s = timed(match)
    texts = sorted({text for text, _found in matched.values()})
    langs, lang_s = timed(lambda: detect_languages(texts))
    english = {text for text, lang in zip(texts, langs, strict=True) if lang == "en"}
    kept, cap_s = timed(lambda: select_top({uid: q for uid, (text, q) in matched.items() if text in english}, CAP))
    return set(kept), {"match_s": round(match_s, 2), "lang_s": round(lang_s, 2), "lang_texts": len(texts),
                       "cap_s": round(cap_s, 2)}


def pure_figures(read_raw, matcher_build_s: float, matcher: QueryMatcher) -> dict:
    """CPU of reading, the candidate work and the select work on one input, as plain calls."""
    raw, read_s = timed(read_raw)
    rows, cand_s = timed(lambda: clean_and_dedup(raw))
    (kept, steps), select_s = timed(lambda: select_pure(rows, matcher))
    return {"raw_rows": len(raw), "read_s": round(read_s, 2), "candidates_s": round(cand_s, 2),
            "select_s": round(select_s, 2), "select_steps_s": steps, "automaton_build_s": round(matcher_build_s, 2),
            "cpu_s": round(read_s + cand_s + select_s + matcher_build_s, 2), "selected_uids": kept}


def read_parts(folder: str):
    return lambda: pq.read_table(os.path.join(folder, "parts")).to_pylist()


def read_wat_file(path: str):
    def read():
        with open(path, "rb") as handle:
            return list(read_wat(handle, path, Counter()))
    return read


# -- one input: runner in each mode, pure, ratios ----------------------------------------------
def measure_input(name: str, candidates_args: list[str], read_raw, work: str, queries: str, modes: list[str],
                  matcher: tuple[QueryMatcher, float]) -> dict:
    os.makedirs(work, exist_ok=True)
    pure = pure_figures(read_raw, matcher[1], matcher[0])
    result = {"raw_rows": pure["raw_rows"], "pure": pure, "modes": {}}
    for mode in modes:
        jobs = run_jobs(candidates_args, queries, work, mode)
        cpu = jobs["candidates"]["cpu_s"] + jobs["select"]["cpu_s"]
        jobs.update(cpu_s=round(cpu, 2), cpu_us_per_row=round(cpu / pure["raw_rows"] * 1e6, 1),
                    rows_per_s_per_core=round(pure["raw_rows"] / cpu),
                    select_rows_per_s_per_core=round(jobs["select"]["rows_in"] / jobs["select"]["cpu_s"]),
                    overhead_ratio=round(cpu / pure["cpu_s"], 2),
                    same_selected_as_pure=jobs.pop("selected_uids") == pure["selected_uids"])
        result["modes"][mode] = jobs
        print_mode(name, mode, jobs, pure)
    pure["selected"] = len(pure.pop("selected_uids"))
    return result


def print_mode(name: str, mode: str, jobs: dict, pure: dict) -> None:
    c, s = jobs["candidates"], jobs["select"]
    print(f"{name} [{mode}]: candidates {c['cpu_s']:.1f} s CPU ({c['wall_s']:.0f} s wall, peak RSS "
          f"{c['peak_rss_mb']} MB, tree {c['peak_tree_rss_mb']} MB) + select {s['cpu_s']:.1f} s CPU "
          f"({s['wall_s']:.0f} s wall, peak RSS {s['peak_rss_mb']} MB, tree {s['peak_tree_rss_mb']} MB; "
          f"{jobs['select_rows_per_s_per_core']:,} rows/s/core)", flush=True)
    print(f"  => {jobs['cpu_us_per_row']} us CPU per row, {jobs['rows_per_s_per_core']:,} rows/s/core; pure "
          f"{pure['cpu_s']:.1f} s ({round(pure['raw_rows'] / pure['cpu_s']):,} rows/s/core) -> runner overhead "
          f"x{jobs['overhead_ratio']}; same selected pairs: {jobs['same_selected_as_pure']}", flush=True)


def rss_ratios(sizes: dict, modes: list[str]) -> dict:
    """Peak RSS at the largest ``--rows`` size over that at the smallest, per mode and job."""
    small, large = sizes[min(sizes)], sizes[max(sizes)]
    return {mode: {job: {kind: round(large["modes"][mode][job][kind] / small["modes"][mode][job][kind], 2)
                         for kind in ("peak_rss_mb", "peak_tree_rss_mb")}
                   for job in ("candidates", "select")} for mode in modes}


def git_state() -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    status = subprocess.run(["git", "-C", root, "status", "--porcelain"], capture_output=True, text=True)
    return {"commit": commit.stdout.strip(), "changed_paths": len(status.stdout.splitlines())}


# -- command line ---------------------------------------------------------------------------------
def make_inputs(out: str, rows: list[int], wat_pages: int) -> dict:
    """Write (or reuse) the query list, the candidate parts of each size and the WAT file under ``out``."""
    queries = inputs.query_list_dir(out)
    lemmas = inputs.query_lemmas(queries)
    made = {"queries": queries, "rows": {}, "wat": None}
    for n in rows:
        folder = os.path.join(out, f"rows-{n}")
        if not os.path.isfile(os.path.join(folder, "READY")):
            shutil.rmtree(folder, ignore_errors=True)
            inputs.write_candidates(folder, n, lemmas)
            open(os.path.join(folder, "READY"), "w").close()
        made["rows"][n] = folder
    if wat_pages:
        path = os.path.join(out, f"wat-{wat_pages}", "CC-BENCH.warc.wat.gz")
        if not os.path.isfile(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            inputs.write_wat(path + ".tmp", wat_pages)
            os.replace(path + ".tmp", path)
        made["wat"] = path
    return made


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="100000,400000",
                        help="candidate rows of each scale input, comma list ('': none, the WAT file alone)")
    parser.add_argument("--wat-pages", type=int, default=4000, help="pages of the generated WAT file (0: none)")
    parser.add_argument("--modes", default="in_memory,default",
                        help=f"runner modes, comma list of {', '.join(MODES)}")
    parser.add_argument("--keep", "--out", dest="keep", default=None, metavar="DIR",
                        help="work folder: inputs are written (or reused) and job outputs kept here "
                        "(default: a temporary folder, removed)")
    parser.add_argument("--make-only", action="store_true", help="only write the inputs into --out")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        args.rows = sorted({int(n) for n in args.rows.split(",") if n.strip()})
    except ValueError:
        parser.error("--rows takes positive integers, comma-separated")
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in MODES for m in args.modes) or not args.modes:
        parser.error(f"--modes takes {', '.join(MODES)}")
    if any(n < 1 for n in args.rows) or not (args.rows or args.wat_pages):
        parser.error("--rows takes positive integers ('' with --wat-pages N: the WAT file alone)")
    if args.make_only and not args.keep:
        parser.error("--make-only needs --out DIR")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = args.keep or tempfile.mkdtemp(prefix="bench-scale-")
    try:
        made = make_inputs(work, args.rows, args.wat_pages)
        if args.make_only:
            print(json.dumps(made, indent=2))
            return
        measure(args, made, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def save(figures: dict, path: str | None) -> None:
    """Write the figures so far (after each input: a run stopped half-way keeps what it measured)."""
    if path:
        with open(path + ".tmp", "w") as handle:
            json.dump(figures, handle, indent=2)
        os.replace(path + ".tmp", path)


def measure(args: argparse.Namespace, made: dict, work: str) -> dict:
    queries = made["queries"]
    matcher, build_s = timed(lambda: QueryMatcher(load_query_list(queries)))
    figures = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
               "git": git_state(), "machine": {"cores": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
               "queries": len(matcher), "cap": CAP, "sizes": {}}
    print(f"{len(matcher):,} queries (WordNet 3.0); automaton built in {build_s:.1f} s CPU; git {figures['git']}")
    for n, folder in made["rows"].items():
        figures["sizes"][n] = measure_input(
            f"{n:,} rows", ["--source", "table", "--input", os.path.join(folder, "parts")], read_parts(folder),
            os.path.join(work, f"jobs-{n}"), queries, args.modes, (matcher, build_s))
        save(figures, args.json)
    if len(figures["sizes"]) > 1:
        figures["rss_ratio_largest_to_smallest"] = rss_ratios(figures["sizes"], args.modes)
        print(f"peak RSS ratio, {max(args.rows):,} / {min(args.rows):,} rows: "
              f"{json.dumps(figures['rss_ratio_largest_to_smallest'])}")
    if made["wat"]:
        figures["wat"] = measure_input(
            f"WAT ({args.wat_pages:,} pages)", ["--source", "wat", "--input", made["wat"]], read_wat_file(made["wat"]),
            os.path.join(work, "jobs-wat"), queries, args.modes, (matcher, build_s))
        figures["wat"]["mb_compressed"] = round(os.path.getsize(made["wat"]) / 1e6, 1)
    figures["machine"]["load_avg_1m_after"] = os.getloadavg()[0]
    save(figures, args.json)
    return figures


if __name__ == "__main__":
    main()
