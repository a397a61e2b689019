"""Caption matching: the Aho–Corasick matcher vs the naive ``query in text`` loop, 500k queries.

    python bench/bench_matching.py [--queries 500000] [--captions 200000] [--naive-captions 60]
    python bench/bench_matching.py --per-language [--queries 200000] [--captions 100000]

Per-core figures (best of ``--repeat`` passes): the matcher is single-threaded, so captions/s here is captions/s/core;
CPU time (process_time) is reported next to wall time because the benchmark box is shared.
The naive loop is MetaCLIP's straightforward port (for each entry: ``f" {entry} " in text``);
it runs on a few captions and its rate is extrapolated; both must give the same matches.

``--per-language``: one list of ``--queries`` entries per language, en (spaced pseudo-words, the
word rule), zh and ja (pseudo-words of Han characters, and of kanji, hiragana and katakana,
written without spaces: the substring rule, ``matching.language_mode``), each with ``--captions``
captions of its own language; per language, the matcher of that language alone on its captions
(what a caption routed to its language costs), then ``matching.QueryIndex`` over the three lists on
all the captions (what ``wit select --lang all`` pays per caption before routing: every language's
automaton runs). Naive loops check the matches on a sample, per language.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _synth import Zipf, captions, query_list, vocabulary  # noqa: E402

from wit_pipeline.select.matching import QueryIndex, QueryMatcher, language_mode, naive_match  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


# -- per-language mode: pseudo-words in scripts written without spaces ---------------------------------
HAN = [chr(0x4E00 + i) for i in range(3000)]                  # as many Han characters as common Chinese uses
KANJI = [chr(0x4E00 + 3000 + i) for i in range(2000)]
HIRAGANA = [chr(c) for c in range(0x3041, 0x3094)]
KATAKANA = [chr(c) for c in range(0x30A1, 0x30F7)]


def _zh_word(rng: random.Random, rank: int) -> str:
    size = 1 if rank < 1500 else 2 if rank < 60_000 or rng.random() < 0.7 else rng.choice((3, 4))
    return "".join(rng.choice(HAN) for _ in range(size))


def _ja_word(rng: random.Random, rank: int) -> str:
    if rank < 80:                                   # particles and endings: short hiragana
        return "".join(rng.choice(HIRAGANA) for _ in range(rng.choice((1, 2))))
    if rng.random() < 0.3:                          # loanwords in katakana
        return "".join(rng.choice(KATAKANA) for _ in range(rng.randint(2, 5)))
    stem = "".join(rng.choice(KANJI) for _ in range(1 if rank < 1000 else rng.choice((1, 2, 2))))
    return stem + "".join(rng.choice(HIRAGANA) for _ in range(rng.choice((0, 0, 1, 2))))


def unspaced_vocabulary(lang: str, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct pseudo-words of ``lang`` (zh or ja), most frequent (and shortest) first."""
    rng, make = random.Random(seed), {"zh": _zh_word, "ja": _ja_word}[lang]
    words, seen = [], set()
    while len(words) < n:
        word = make(rng, len(words))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def unspaced_captions(words: list[str], n: int, seed: int = 0, mean_words: int = 9) -> list[str]:
    """``n`` captions of Zipf-drawn words written without spaces, some ending in punctuation."""
    rng, zipf = random.Random(seed), Zipf(len(words), seed=seed + 2)
    return ["".join(words[zipf.draw()] for _ in range(max(1, int(rng.gauss(mean_words, 4)))))
            + rng.choice(["", "。", "、2019", "！"]) for _ in range(n)]


def language_workload(lang: str, n_queries: int, n_captions: int) -> tuple[list[str], list[str]]:
    """(query list, captions) of one language; the lists of zh and ja drop the space inside bigrams."""
    if lang == "en":
        words = vocabulary(n_queries * 2)
        return query_list(words, n_queries), captions(words, n_captions, seed=7)
    words = unspaced_vocabulary(lang, n_queries * 2)
    return [q.replace(" ", "") for q in query_list(words, n_queries)], unspaced_captions(words, n_captions, seed=7)


def measure_language(lang: str, queries: list[str], texts: list[str], args) -> dict:
    """One language's matcher (its rule) on its own captions: rate, matches, naive agreement."""
    mode = language_mode(lang, "word")
    matcher, build_wall, _ = timed(lambda: QueryMatcher(queries, mode=mode))
    runs = [timed(lambda: [matcher.match(t) for t in texts]) for _ in range(args.repeat)]
    found, wall, cpu = min(runs, key=lambda run: run[2])
    sample = texts[: args.naive_captions]
    same = [naive_match(queries, t, mode) for t in sample] == [matcher.match(t) for t in sample]
    row = {"rule": mode, "queries": len(matcher), "captions": len(texts), "automaton_build_s": round(build_wall, 2),
           "captions_per_s_cpu": round(len(texts) / cpu), "captions_per_s_wall": round(len(texts) / wall),
           "matches_per_caption": round(sum(map(len, found)) / len(found), 2),
           "share_of_captions_matching": round(sum(1 for f in found if f) / len(found), 3),
           "naive_agrees_on_sample": same}
    print(f"{lang} ({mode:9s}): {row['captions_per_s_cpu']:>8,} captions/s/core (CPU), "
          f"{row['matches_per_caption']} matches per caption, {row['share_of_captions_matching']:.1%} "
          f"matching; automaton {build_wall:.1f} s; naive agrees on {len(sample)}: {same}")
    return row


def measure_index(lists: dict[str, list[str]], texts: list[str], repeat: int) -> dict:
    """``QueryIndex`` over every language's list, on every caption: the cost before routing."""
    index, build_wall, _ = timed(lambda: QueryIndex(lists))
    runs = [timed(lambda: [index.match_ids(t) for t in texts]) for _ in range(repeat)]
    _found, wall, cpu = min(runs, key=lambda run: run[2])
    row = {"entries": len(index), "captions": len(texts), "build_s": round(build_wall, 2),
           "captions_per_s_cpu": round(len(texts) / cpu), "captions_per_s_wall": round(len(texts) / wall)}
    print(f"QueryIndex over {'+'.join(lists)} ({len(index):,} entries): {row['captions_per_s_cpu']:,} "
          f"captions/s/core (CPU) on the {len(texts):,} captions of all of them")
    return row


def per_language(args) -> dict:
    """Matching captions/s/core per language (its own matcher) and over the three-language index."""
    lists, texts, rows = {}, {}, {}
    for lang in ("en", "zh", "ja"):
        lists[lang], texts[lang] = language_workload(lang, args.queries, args.captions)
        rows[lang] = measure_language(lang, lists[lang], texts[lang], args)
    index = measure_index(lists, [t for lang in lists for t in texts[lang]], args.repeat)
    return {"queries_per_language": args.queries, "languages": rows, "index_all_languages": index,
            "naive_agrees_on_samples": all(row["naive_agrees_on_sample"] for row in rows.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=None, help="entries per list (500,000; per language 200,000)")
    parser.add_argument("--captions", type=int, default=None, help="captions (200,000; per language 100,000)")
    parser.add_argument("--naive-captions", type=int, default=60)
    parser.add_argument("--mode", choices=("word", "substring"), default="word")
    parser.add_argument("--per-language", action="store_true", help="en (word rule) against zh and ja (substring)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes over the captions; the best counts")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    if args.per_language:
        args.queries, args.captions = args.queries or 200_000, args.captions or 100_000
        figures = per_language(args)
        if args.json:
            with open(args.json, "w") as handle:
                json.dump(figures, handle, indent=2)
        sys.exit(0 if figures["naive_agrees_on_samples"] else 1)
    args.queries, args.captions = args.queries or 500_000, args.captions or 200_000

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
