"""Throughput of the query-list build on a generated Wikipedia-like dump (default 60 MB of XML).

Measures, on one core, each step of the hot loop (XML page parsing, wikitext
stripping, word/bigram counting) in MB of wikitext and words per second, the
bz2 multistream decompression rate, and then the whole Beam job on the
DirectRunner with the machine's cores. Prints a table and the extrapolation
to a full English Wikipedia build.

    python bench/bench_queries.py [--mb 60] [--workers N] [--skip-beam] [--json out.json]

The dump is synthetic (Zipf-distributed pseudo-words in sentences, wrapped in
the markup real articles carry: infobox templates, refs, tables, piped and file
links, categories, headings, lists), written once under --work and reused.
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from itertools import pairwise
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from queries.counting import count_plain_text  # noqa: E402
from queries.wikidump import iter_pages  # noqa: E402
from queries.wikitext import strip_wikitext  # noqa: E402

# English Wikipedia, 2024: ~6.9M articles, ~4.5 billion words of article prose; the
# pages-articles dump is ~22 GB bz2 and ~100 GB of XML (articles, redirects, other namespaces).
ENWIKI_WORDS = 4.5e9
ENWIKI_XML_GB = 100.0
ENWIKI_BZ2_GB = 22.0

SYLLABLES = ["ka", "lo", "mi", "ne", "ra", "tu", "shi", "an", "or", "el", "ve", "do", "gri", "sta", "pen", "qua",
             "zor", "bel", "tin", "mar", "ost", "ur", "fe", "ly"]


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))))
    return sorted(words)


def generate_dump(path: str, target_mb: int, seed: int = 0) -> dict:
    """Write a plain XML dump of about ``target_mb`` MB; returns its page/word counts."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng, 60_000)
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]  # Zipf, like natural language
    cum = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    target = target_mb << 20
    written = pages = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">\n'
                  "  <siteinfo><sitename>Wikipedia</sitename></siteinfo>\n")
        while written < target:
            pages += 1
            ns = 0 if rng.random() < 0.8 else rng.choice((1, 4, 10, 14))
            stream = rng.choices(vocab, cum_weights=cum, k=rng.randint(300, 2500))
            title = " ".join(stream[:2]).title()
            if rng.random() < 0.15:
                text = f"#REDIRECT [[{' '.join(stream[2:4]).title()}]]"
            else:
                text = _article(rng, stream)
            page = (f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{pages}</id>\n"
                    f"    <revision>\n      <id>{pages + 7}</id>\n      <text xml:space=\"preserve\">"
                    f"{escape(text)}</text>\n    </revision>\n  </page>\n")
            out.write(page)
            written += len(page)
        out.write("</mediawiki>\n")
    return {"pages": pages, "bytes": os.path.getsize(path)}


def _article(rng: random.Random, stream: list[str]) -> str:
    parts = ["{{Infobox thing|name=" + stream[0] + "|image=[[File:" + stream[1] + ".jpg|200px]]|caption={{small|"
             + " ".join(stream[2:6]) + "}}|date={{Start date|2001|5|3}}}}\n"]
    i = 6
    while i < len(stream):
        n = rng.randint(6, 22)
        words = stream[i:i + n]
        i += n
        if not words:
            break
        k = rng.randrange(len(words))
        roll = rng.random()
        if roll < 0.25:
            words[k] = f"[[{words[k].title()} ({rng.choice(SYLLABLES)})|{words[k]}]]"
        elif roll < 0.4:
            words[k] = f"[[{words[k]}]]"
        elif roll < 0.5:
            words[k] = f"'''{words[k]}'''"
        sentence = " ".join(words).capitalize() + "."
        if rng.random() < 0.2:
            sentence += f"<ref name=\"r{rng.randint(1, 50)}\">{{{{cite web|url=https://example.org/{words[0]}|title={words[-1]}}}}}</ref>"
        parts.append(sentence + (" " if rng.random() < 0.8 else "\n\n"))
        if rng.random() < 0.03:
            parts.append(f"\n== {words[0].title()} ==\n")
        if rng.random() < 0.02:
            parts.append('\n{| class="wikitable"\n! A !! B\n|-\n| ' + words[0] + " || " + words[-1] + "\n|}\n")
        if rng.random() < 0.02:
            parts.append(f"\n[[File:{words[0]}.png|thumb|A [[{words[-1]}]] in a caption]]\n")
    parts.append("\n== References ==\n{{Reflist}}\n[[Category:" + stream[0].title() + "]]\n")
    return "".join(parts)


def write_multistream(plain_path: str, out_path: str, pages_per_stream: int = 100, limit_mb: int = 16) -> int:
    """Re-compress the first ``limit_mb`` MB of pages as a multistream bz2 (enough to time decompression)."""
    with open(plain_path, "rb") as handle:
        data = handle.read(limit_mb << 20)
    cut = data.rindex(b"  </page>\n") + len(b"  </page>\n")
    body = data[:cut] + b"</mediawiki>\n"
    first = body.index(b"  <page>")
    starts = [first]
    position = first
    while True:
        for _ in range(pages_per_stream):
            position = body.find(b"  <page>", position + 1)
            if position < 0:
                break
        if position < 0:
            break
        starts.append(position)
    bounds = [0] + starts + [len(body)]
    with open(out_path, "wb") as out:
        for a, b in pairwise(bounds):
            if b > a:
                out.write(bz2.compress(body[a:b], 9))
    return len(body)


def time_steps(path: str) -> dict:
    """CPU seconds of each step over the whole dump, one core."""
    parse_s = strip_s = count_s = 0.0
    wikitext_bytes = words = counted = 0
    unigrams: Counter = Counter()
    bigrams: Counter = Counter()
    clock = time.process_time
    start = clock()
    pages = iter_pages(path)
    while True:
        t0 = clock()
        page = next(pages, None)
        t1 = clock()
        parse_s += t1 - t0
        if page is None:
            break
        if page.ns != 0 or page.redirect:
            continue
        counted += 1
        wikitext_bytes += len(page.text.encode("utf-8"))
        plain = strip_wikitext(page.text)
        t2 = clock()
        words += count_plain_text(plain, False, unigrams, bigrams)
        t3 = clock()
        strip_s += t2 - t1
        count_s += t3 - t2
        if len(bigrams) > 500_000:  # as the pipeline does: flush partial counts
            unigrams.clear()
            bigrams.clear()
    total = clock() - start
    return {"pages_counted": counted, "wikitext_mb": wikitext_bytes / 1e6, "words": words,
            "parse_s": parse_s, "strip_s": strip_s, "count_s": count_s, "total_s": total}


def time_bz2(path: str) -> dict:
    clock = time.process_time
    t0 = clock()
    pages = sum(1 for _ in iter_pages(path))
    return {"pages": pages, "cpu_s": clock() - t0}


def time_beam(path: str, workers: int, work: str) -> dict:
    from queries.pipeline import QueryOptions, run_queries

    out = os.path.join(work, "beam-out")
    started = time.monotonic()
    stats = run_queries(QueryOptions(wikipedia=[path], out=out, range_bytes=8 << 20),
                        beam_args=[f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"])
    return {"wall_s": time.monotonic() - started, "workers": workers, "tokens": stats["inputs"]["tokens"],
            "entries": stats["out"], "ranges": stats["inputs"]["wikipedia_read_ranges"],
            "accounted": stats["accounted"]}


def prepare_dumps(work: str, mb: int) -> tuple[str, str]:
    """The plain XML dump and its multistream bz2 prefix, generated once under ``work``."""
    os.makedirs(work, exist_ok=True)
    plain = os.path.join(work, f"bench-{mb}mb.xml")
    if not os.path.exists(plain):
        t0 = time.monotonic()
        info = generate_dump(plain, mb)
        print(f"generated {plain}: {info['bytes'] / 1e6:.1f} MB, {info['pages']:,} pages "
              f"in {time.monotonic() - t0:.0f} s")
    multistream = os.path.join(work, f"bench-{mb}mb-multistream.xml.bz2")
    if not os.path.exists(multistream):
        write_multistream(plain, multistream)
    return plain, multistream


def report_steps(steps: dict, xml_mb: float) -> None:
    mb, words = steps["wikitext_mb"], steps["words"]
    print(f"\none core, {xml_mb:.1f} MB XML, {steps['pages_counted']:,} articles, {mb:.1f} MB wikitext, "
          f"{words:,} words")
    print(f"{'step':<22} {'cpu s':>8} {'MB wikitext/s':>14} {'words/s':>12}")
    for name in ("parse", "strip", "count", "total"):
        seconds = steps[f"{name}_s"]
        print(f"{name:<22} {seconds:>8.2f} {mb / seconds:>14.2f} {words / seconds:>12,.0f}")


def extrapolate(steps: dict, bz2_figures: dict) -> dict:
    """enwiki cost = reading (bz2 + XML parse, all pages) + stripping and counting (article words)."""
    read_s_per_bz2_mb = bz2_figures["cpu_s"] / bz2_figures["compressed_mb"]
    count_words_per_s = steps["words"] / (steps["strip_s"] + steps["count_s"])
    read_hours = ENWIKI_BZ2_GB * 1000 * read_s_per_bz2_mb / 3600
    count_hours = ENWIKI_WORDS / count_words_per_s / 3600
    print(f"\nenwiki extrapolation (one core): read {ENWIKI_BZ2_GB:.0f} GB bz2 at {1 / read_s_per_bz2_mb:.2f} MB/s "
          f"= {read_hours:,.1f} core-hours; strip+count {ENWIKI_WORDS / 1e9:.1f}e9 words at "
          f"{count_words_per_s:,.0f} words/s = {count_hours:,.1f} core-hours; total {read_hours + count_hours:,.1f} "
          f"core-hours before the shuffle")
    return {"read_s_per_bz2_mb": read_s_per_bz2_mb, "strip_count_words_per_s": count_words_per_s,
            "enwiki_read_core_hours": read_hours, "enwiki_count_core_hours": count_hours}


def report_beam(plain: str, xml_mb: float, workers: int, work: str) -> dict:
    beam = time_beam(plain, workers, work)
    beam["xml_mb_per_s"] = xml_mb / beam["wall_s"]
    beam["words_per_s_per_worker"] = beam["tokens"] / beam["wall_s"] / beam["workers"]
    print(f"\nBeam DirectRunner, {beam['workers']} workers, {beam['ranges']} ranges: {beam['wall_s']:.1f} s wall, "
          f"{beam['xml_mb_per_s']:.2f} MB XML/s, {beam['words_per_s_per_worker']:,.0f} words/s per worker, "
          f"{beam['entries']:,} queries")
    return beam


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=60, help="size of the generated XML dump (default 60)")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "wit-bench-queries"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-beam", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    plain, multistream = prepare_dumps(args.work, args.mb)

    xml_mb = os.path.getsize(plain) / 1e6
    steps = time_steps(plain)
    report_steps(steps, xml_mb)
    results = {"xml_mb": xml_mb, **steps}

    bz2_figures = {"compressed_mb": os.path.getsize(multistream) / 1e6, **time_bz2(multistream)}
    results["bz2"] = bz2_figures
    print(f"{'bz2 read+parse':<22} {bz2_figures['cpu_s']:>8.2f} "
          f"{bz2_figures['compressed_mb'] / bz2_figures['cpu_s']:>10.2f} MB bz2/s")
    results["extrapolation"] = extrapolate(steps, bz2_figures)

    if not args.skip_beam:
        results["beam"] = report_beam(plain, xml_mb, args.workers, args.work)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
