"""The candidate stage on a generated, Common Crawl-shaped WAT file: per-core throughput and s per WAT file.

    python bench/bench_candidates.py [--pages 20000] [--beam]

What is generated: a WAT file laid out like Common Crawl's (one gzip member per
record; per crawled page a request, a response and a metadata record; response
envelopes with HTTP headers, <head> metadata, ~80 <a> links and ~12 <img>
links whose alt texts are missing, empty, boilerplate, English or foreign).
Common Crawl WAT files are ~300 MB compressed: the script generates a fraction
of one and scales its measured time linearly by compressed size to a 300 MB file
(the stage is a single pass, so time is linear in input size).

What is timed, in one process (CPU time, so per core; the box is shared):
read + parse (gzip, WARC records, JSON) -> clean + filters -> exact de-dup ->
match against a 500k-entry query list (Aho-Corasick; the one-off automaton
build is reported apart) -> language ID (the default detector) once per distinct *matched* text.
It also measures language ID on every distinct text (a sample, extrapolated),
and checks on a subset that both orders keep exactly the same pairs.
With ``--beam`` it also runs the real Beam jobs (``run_candidates``, then ``run_select``)
on the file with the DirectRunner, one worker, in memory, to show the framework's overhead.
Each job costs a fixed amount per run (pipeline construction, runner start-up,
the select job's automaton build) plus an amount per input byte; only the second
scales with a WAT file. So both jobs also run on a tiny WAT file of the same
kind (after a warm-up run that pays the one-off imports), and the per-WAT-file
figure of each job is (CPU on the file - CPU on the tiny file) x the scale;
the fixed cost is printed apart, per job run, like the automaton build above.
The ratio to the pure path is printed per job (candidates against parse + clean
+ dedup, select against match + language ID) and for both together.
CPU is the process's (all threads) plus any child processes' (``rusage``). Every timed step and job
runs ``--repeat`` times (default 3) and counts its least CPU time: on a shared box the least disturbed
run is the closest to the work's own cost, and a job's per-file figure is a difference of two runs, so
one disturbed run would otherwise move it by seconds per WAT file.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(__file__))

from _synth import EN_ADJ, EN_NOUN, alt_text, query_list, vocabulary  # noqa: E402

from wit_pipeline.candidates.filters import clean_pair  # noqa: E402
from wit_pipeline.candidates.pipeline import DEFAULT_FILTERS  # noqa: E402
from wit_pipeline.candidates.sources.wat import read_wat  # noqa: E402
from wit_pipeline.language import DEFAULT_DETECTOR, detect_language_reference, detect_languages  # noqa: E402
from wit_pipeline.schemas import pair_uid  # noqa: E402
from wit_pipeline.select.matching import QueryMatcher  # noqa: E402

CC_WAT_BYTES = 300e6   # a Common Crawl WAT file, compressed


def _record(kind: str, uri: str, payload: bytes, index: int) -> bytes:
    head = (f"WARC/1.0\r\nWARC-Type: metadata\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2024-05-18T01:58:10Z\r\n"
            f"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-{index:012d}>\r\nWARC-Refers-To: <urn:uuid:x>\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
    return gzip.compress(head + payload + b"\r\n\r\n", compresslevel=6)


def _envelope(rng: random.Random, words: list[str], page: int, kind: str) -> dict:
    host = f"www.{words[rng.randrange(5000)]}-{rng.randrange(1000)}.example.com"
    uri = f"https://{host}/{words[rng.randrange(len(words))]}/{page}.html"
    envelope = {"Format": "WARC", "WARC-Header-Length": "512",
                "WARC-Header-Metadata": {"WARC-Type": kind, "WARC-Target-URI": uri,
                                         "WARC-Date": "2024-05-18T01:58:10Z", "WARC-IP-Address": "192.0.2.1",
                                         "WARC-Record-ID": f"<urn:uuid:{page:032x}>"},
                "Actual-Content-Length": str(rng.randrange(20000, 200000)), "Block-Digest": "sha1:" + "A" * 32}
    if kind == "response":
        links = [{"path": "A@/href", "url": f"/{words[rng.randrange(len(words))]}/{rng.randrange(10**6)}",
                  "text": " ".join(words[rng.randrange(20000)] for _ in range(rng.randint(1, 4)))}
                 for _ in range(rng.randint(60, 260))]
        for _ in range(rng.randint(4, 20)):
            style = rng.random()
            name = f"{words[rng.randrange(len(words))]}-{rng.randrange(10**5)}.jpg"
            src = (f"/images/{name}" if style < 0.4 else f"//cdn.{host}/{name}" if style < 0.6
                   else f"../img/{name}" if style < 0.7 else f"https://{host}/media/{name}")
            link = {"path": "IMG@/src", "url": src}
            alt = alt_text(rng, words)
            if alt is not None:
                link["alt"] = alt
            links.insert(rng.randrange(len(links) + 1), link)
        envelope["Payload-Metadata"] = {
            "Actual-Content-Type": "application/http; msgtype=response",
            "HTTP-Response-Metadata": {
                "Response-Message": {"Version": "HTTP/1.1", "Status": "200", "Reason": "OK"},
                "Headers": {"Content-Type": "text/html; charset=UTF-8", "Server": "nginx", "Cache-Control":
                            "max-age=3600", "Date": "Sat, 18 May 2024 01:58:10 GMT", "Vary": "Accept-Encoding"},
                "HTML-Metadata": {
                    "Head": {"Title": " ".join(words[rng.randrange(30000)] for _ in range(6)),
                             "Metas": [{"name": "viewport", "content": "width=device-width"},
                                       {"property": "og:title", "content": words[rng.randrange(30000)]},
                                       {"name": "description", "content": " ".join(
                                           words[rng.randrange(50000)] for _ in range(rng.randint(10, 40)))}],
                             "Link": [{"path": "LINK@/href", "url": "/style.css", "rel": "stylesheet"}],
                             "Scripts": [{"path": "SCRIPT@/src", "url": f"/js/{i}.js"} for i in range(6)]},
                    "Links": links}},
            "Entity-Length": "50000", "Entity-Digest": "sha1:" + "B" * 32}
    else:
        envelope["Payload-Metadata"] = {"Actual-Content-Type": f"application/http; msgtype={kind}",
                                        "HTTP-Request-Metadata": {"Request-Message": {"Method": "GET"}}}
    return {"Container": {"Filename": "CC-MAIN-bench.warc.gz", "Compressed": True,
                          "Offset": str(page * 40000), "Gzip-Metadata": {"Deflate-Length": "12000"}},
            "Envelope": envelope}, uri


def generate_wat(path: str, pages: int, words: list[str], seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as out:
        out.write(gzip.compress(b"WARC/1.0\r\nWARC-Type: warcinfo\r\nContent-Length: 2\r\n\r\n{}\r\n\r\n"))
        for page in range(pages):
            for kind in ("request", "response", "metadata"):
                envelope, uri = _envelope(rng, words, page, kind)
                out.write(_record(kind, uri, json.dumps(envelope).encode(), page * 3))


def cpu_seconds() -> float:
    """User + system CPU of this process (every thread) and of its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn, repeat: int = 1):
    """``fn()``'s result, wall and CPU seconds; with ``repeat`` > 1 the least of that many runs (the run
    least disturbed by the rest of the box, timeit's rule), the result of the last."""
    best_wall = best_cpu = float("inf")
    for _ in range(max(1, repeat)):
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = fn()
        best_wall, best_cpu = min(best_wall, time.perf_counter() - wall), min(best_cpu, cpu_seconds() - cpu)
    return result, best_wall, best_cpu


def beam_jobs(path: str, qfile: str, out: str, repeat: int = 1) -> dict:
    """``run_candidates`` then ``run_select`` on one WAT file (DirectRunner, one worker, in memory):
    their stats and each job's wall and CPU seconds (the least of ``repeat`` runs)."""
    from wit_pipeline.candidates.pipeline import CandidateOptions, run_candidates
    from wit_pipeline.select.pipeline import SelectOptions, run_select

    beam_args = ["--direct_num_workers", "1", "--direct_running_mode", "in_memory"]
    cand, wall_c, cpu_c = timed(lambda: run_candidates(
        CandidateOptions(source="wat", inputs=[path], out=os.path.join(out, "cand")), beam_args), repeat)
    sel, wall_s, cpu_s = timed(lambda: run_select(
        SelectOptions(candidates=[os.path.join(out, "cand")], queries=qfile, out=os.path.join(out, "sel")),
        beam_args), repeat)
    return {"candidates": cand, "select": sel, "wall": {"candidates": wall_c, "select": wall_s},
            "cpu": {"candidates": cpu_c, "select": cpu_s}}


def beam_figures(path: str, queries: list[str], words: list[str], tmp: str, scale: float, pure_cpu: dict,
                 distinct_pairs: int, kept_pairs: int, repeat: int = 1) -> dict:
    """The Beam jobs on the file and on a tiny one: CPU per WAT file of each job, its fixed cost per run,
    and the ratios to the pure path's figures (``pure_cpu``: the in-process CPU seconds by step)."""
    from queries.output import write_query_files

    qfile = os.path.join(tmp, "queries")   # a queries DIR, as `wit queries build` writes it
    write_query_files([{"query": q, "sources": ["bench"], "count": 0} for q in queries], qfile)
    tiny = os.path.join(tmp, "tiny.warc.wat.gz")
    generate_wat(tiny, 20, words, seed=1)
    beam_jobs(tiny, qfile, os.path.join(tmp, "warm-up"))   # one-off imports and caches, paid once per process
    fixed = beam_jobs(tiny, qfile, os.path.join(tmp, "tiny"), repeat)
    run = beam_jobs(path, qfile, os.path.join(tmp, "beam"), repeat)
    assert run["candidates"]["out"] == distinct_pairs and run["select"]["out"] == kept_pairs, \
        (run["candidates"]["out"], run["select"]["out"])
    pure = {"candidates": pure_cpu["parse"] + pure_cpu["clean"] + pure_cpu["dedup"],
            "select": pure_cpu["match"] + pure_cpu["language_id_matched"]}
    figures: dict = {"wall_s": {}, "cpu_s": {}, "fixed_cpu_s_per_run": {}, "s_per_300MB_wat": {},
                     "pure_s_per_300MB_wat": {}, "ratio_to_pure": {}}
    for job in ("candidates", "select"):
        per_file = max(0.0, run["cpu"][job] - fixed["cpu"][job])
        figures["wall_s"][job] = round(run["wall"][job], 1)
        figures["cpu_s"][job] = round(run["cpu"][job], 2)
        figures["fixed_cpu_s_per_run"][job] = round(fixed["cpu"][job], 2)
        figures["s_per_300MB_wat"][job] = round(per_file * scale, 1)
        figures["pure_s_per_300MB_wat"][job] = round(pure[job] * scale, 1)
        figures["ratio_to_pure"][job] = round(per_file / pure[job], 2)
        print(f"Beam {job}: {run['cpu'][job]:.2f} s CPU ({run['wall'][job]:.1f} s wall), of which "
              f"{fixed['cpu'][job]:.2f} s fixed per run -> {figures['s_per_300MB_wat'][job]} s per 300 MB WAT "
              f"file per core; pure {figures['pure_s_per_300MB_wat'][job]} s: x{figures['ratio_to_pure'][job]}")
    both, pure_both = sum(figures["s_per_300MB_wat"].values()), sum(figures["pure_s_per_300MB_wat"].values())
    figures["s_per_300MB_wat"]["both"] = round(both, 1)
    figures["ratio_to_pure"]["both"] = round(both / pure_both, 2)
    naive = sum(run["cpu"].values()) * scale
    figures["s_per_300MB_wat_with_fixed_costs_scaled"] = round(naive, 1)
    print(f"Beam DirectRunner, one worker, candidates + select: {both:.1f} s per 300 MB WAT file per core "
          f"(pure {pure_both:.1f} s): x{figures['ratio_to_pure']['both']} the pure path; fixed "
          f"{sum(fixed['cpu'].values()):.1f} s CPU per pair of job runs (scaled with the file as well: "
          f"{naive:.1f} s); same pairs as the in-process path")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=20_000, help="crawled pages in the generated file")
    parser.add_argument("--queries", type=int, default=500_000)
    parser.add_argument("--lang-sample", type=int, default=3000, help="texts for the language-ID-on-all rate")
    parser.add_argument("--check-pairs", type=int, default=6000, help="pairs for the same-kept-set check")
    parser.add_argument("--beam", action="store_true", help="also time the Beam jobs on the file")
    parser.add_argument("--repeat", type=int, default=3,
                        help="time each step and each job this many times and take the least (default 3)")
    parser.add_argument("--keep", default=None, help="write the WAT file here (default: a temp dir)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    words = vocabulary(1_000_000)
    queries = query_list(words, args.queries)
    queries = list(dict.fromkeys(EN_NOUN + EN_ADJ + queries))[: args.queries]   # real words are queries too
    tmp = tempfile.mkdtemp()
    path = args.keep or os.path.join(tmp, "CC-BENCH.warc.wat.gz")
    _, gen_wall, _ = timed(lambda: generate_wat(path, args.pages, words))
    size = os.path.getsize(path)
    scale = CC_WAT_BYTES / size
    print(f"generated {args.pages:,} pages ({3 * args.pages:,} WAT records), {size / 1e6:.1f} MB compressed "
          f"in {gen_wall:.0f} s; a 300 MB Common Crawl WAT file is x{scale:.1f} this")

    matcher, build_wall, _ = timed(lambda: QueryMatcher(queries))
    counts = Counter()

    def parse():
        counts.clear()
        with open(path, "rb") as handle:
            return list(read_wat(handle, path, counts))

    raw, _, t_parse = timed(parse, args.repeat)

    def clean():
        kept = []
        for row in raw:
            url, text, reason = clean_pair(row["url"], row["text"], DEFAULT_FILTERS)
            if reason is None:
                kept.append((url, text))
            else:
                counts[f"dropped_{reason}"] += 1
        return kept

    cleaned, _, t_clean = timed(clean, args.repeat)
    pairs, _, t_dedup = timed(lambda: list({pair_uid(u, t): (u, t) for u, t in cleaned}.values()),
                               args.repeat)
    matched, _, t_match = timed(lambda: [(u, t, q) for u, t in pairs if (q := matcher.match(t))],
                                 args.repeat)
    distinct_matched = sorted({t for _u, t, _q in matched})
    language, _, t_lang = timed(lambda: dict(zip(distinct_matched, detect_languages(distinct_matched),
                                                     strict=True)), args.repeat)
    kept = [(u, t, q) for u, t, q in matched if language[t] == "en"]
    total_cpu = t_parse + t_clean + t_dedup + t_match + t_lang

    distinct_all = sorted({t for _u, t in pairs})
    sample = distinct_all[: args.lang_sample]
    _, _, t_sample = timed(lambda: detect_languages(sample))
    lang_rate = len(sample) / t_sample   # the default detector, as the jobs run it
    ours, _, t_ours = timed(lambda: detect_languages(sample, detector="langdetect"))
    langdetect_rate = len(sample) / t_ours
    reference, _, t_reference = timed(lambda: [detect_language_reference(t) for t in sample])
    reference_rate = len(sample) / t_reference
    assert ours == reference, "the numpy langdetect must answer exactly as langdetect"
    lang_all_cpu = len(distinct_all) / lang_rate

    # Same kept set: language on every text first, then match -- vs -- match, then language on matched texts.
    subset = pairs[: args.check_pairs]
    every = sorted({t for _u, t in subset})
    on_every = dict(zip(every, detect_languages(every), strict=True))
    lang_first = {(u, t) for u, t in subset if on_every[t] == "en" and matcher.match(t)}
    match_first = {(u, t) for u, t in subset if matcher.match(t)}
    matched_texts = sorted({t for _u, t in match_first})
    decided = dict(zip(matched_texts, detect_languages(matched_texts), strict=True))
    match_first = {(u, t) for u, t in match_first if decided[t] == "en"}
    same = lang_first == match_first

    figures = {
        "pages": args.pages, "wat_mb_compressed": round(size / 1e6, 1), "raw_pairs": len(raw),
        "clean_pairs": len(cleaned), "distinct_pairs": len(pairs), "matched_pairs": len(matched),
        "distinct_matched_texts": len(distinct_matched), "kept_pairs": len(kept),
        "cpu_s": {"parse": round(t_parse, 2), "clean": round(t_clean, 2), "dedup": round(t_dedup, 2),
                  "match": round(t_match, 2), "language_id_matched": round(t_lang, 2)},
        "automaton_build_s": round(build_wall, 1),
        "pairs_per_s_per_core": round(len(raw) / total_cpu),
        "s_per_300MB_wat_per_core": round(total_cpu * scale, 1),
        "s_per_300MB_wat_extraction_only": round((total_cpu - t_lang) * scale, 1),
        "detector": DEFAULT_DETECTOR, "language_id_texts_per_s": round(lang_rate),
        "langdetect_texts_per_s": round(langdetect_rate), "langdetect_reference_texts_per_s": round(reference_rate),
        "implied_pages_per_300MB_wat": round(args.pages * scale),
        "s_per_300MB_wat_if_language_id_on_every_text": round((total_cpu - t_lang + lang_all_cpu) * scale, 1),
        "same_kept_set_on_subset": same, "subset_pairs": len(subset),
        "subset_calls_every_vs_matched": [len(every), len(matched_texts)],
        "file_counters": {k: v for k, v in counts.items() if not k.startswith("dropped_")},
    }
    print(f"pairs: {len(raw):,} raw -> {len(cleaned):,} clean -> {len(pairs):,} distinct -> {len(matched):,} "
          f"matched ({len(distinct_matched):,} distinct texts) -> {len(kept):,} English")
    print("CPU seconds: " + ", ".join(f"{k} {v}" for k, v in figures["cpu_s"].items())
          + f" (automaton build {build_wall:.1f} s once per worker)")
    print(f"=> {figures['pairs_per_s_per_core']:,} raw pairs/s/core; "
          f"{figures['s_per_300MB_wat_per_core']} s per 300 MB WAT file per core, of which extraction "
          f"(parse, clean, dedup, match) {figures['s_per_300MB_wat_extraction_only']} s "
          f"(cc2dataset: ~50 s, extraction only, no matching or language ID)")
    print(f"language ID: {lang_rate:.0f} texts/s/core with {DEFAULT_DETECTOR} (the default); {langdetect_rate:.0f} "
          f"with our batched langdetect ({reference_rate:.0f} with langdetect's own, same answers on "
          f"{len(sample):,} texts)")
    print(f"language filter on every distinct text instead would be "
          f"{figures['s_per_300MB_wat_if_language_id_on_every_text']} s per WAT file "
          f"({len(distinct_all):,} calls here instead of {len(distinct_matched):,})")
    print(f"same kept set (language ID on all, then match vs match, then language ID), {len(subset):,} pairs: "
          f"{same} ({len(every):,} vs {len(matched_texts):,} language ID calls)")

    if args.beam:
        figures["beam"] = beam_figures(path, queries, words, tmp, scale, figures["cpu_s"], len(pairs), len(kept),
                                       args.repeat)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
