"""Deterministic scale inputs for ``bench/bench_pipeline_scale.py`` (and anyone timing candidates or select).

- ``query_list_dir(out)``: the WordNet 3.0 query list, built once by ``wit queries build --wordnet
  /usr/share/wordnet`` (an empty Wikipedia dump beside it) into ``OUT/queries`` and reused while its
  ``stats.json`` exists.
- ``write_candidates(folder, rows, lemmas)``: candidate parquet parts (``CANDIDATE_SCHEMA``) of ``rows`` rows
  in ``folder/parts``: captions of 4-12 words, ~40% of them WordNet words (Zipf-drawn, so head queries hit the
  cap), the rest English function words and long-tail names; ~8% foreign captions (dropped as ``lang``),
  ~1% file-name alt texts (dropped as ``boilerplate`` by ``wit candidates``), ~10% texts reused under a new
  image URL and ~4% exact duplicate rows (``duplicate``). Rows ``0..n`` are the same for every ``rows >= n``
  (the 4x input holds the 1x one).
- ``write_wat(path, pages)``: a Common Crawl-shaped WAT file (``bench_candidates.generate_wat``).

Run alone: ``python bench/bench_pipeline_scale.py --make-only --rows 100000 --out DIR``.
"""

from __future__ import annotations

import functools
import os
import random
import subprocess
import sys
from collections import deque

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(__file__))

from _synth import FOREIGN, FOREIGN_NOUNS, Zipf, vocabulary  # noqa: E402

from wit_pipeline.schemas import CANDIDATE_SCHEMA, pair_uid  # noqa: E402

WORDNET = "/usr/share/wordnet"
ROWS_PER_PART = 50_000
WORDNET_SHARE = 0.40
FUNCTION_SHARE = 0.35   # of the remaining words: English function words; the rest are long-tail names
FUNCTION_WORDS = ("the of and with in on at for from by to near over under after before during this that its "
                  "our their his her some two three").split()
EMPTY_DUMP = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">\n'
              "  <siteinfo><sitename>Wikipedia</sitename></siteinfo>\n</mediawiki>\n")
CRAWL = "crawl-data/CC-MAIN-2024-22/segments/1715971057494.65/wat/CC-MAIN-20240518-{:05d}.warc.wat.gz"


def query_list_dir(out: str, wordnet: str = WORDNET) -> str:
    """``OUT/queries``: WordNet's entries as ``wit queries build`` writes them (built once, then reused)."""
    folder = os.path.join(out, "queries")
    if os.path.isfile(os.path.join(folder, "stats.json")):
        return folder
    os.makedirs(out, exist_ok=True)
    dump = os.path.join(out, "empty-wikipedia.xml")
    with open(dump, "w", encoding="utf-8") as handle:
        handle.write(EMPTY_DUMP)
    subprocess.run([sys.executable, "-m", "wit_pipeline", "queries", "build", "--wikipedia", dump,
                    "--wordnet", wordnet, "--out", folder, "--direct_running_mode", "in_memory"],
                   check=True, stdout=subprocess.DEVNULL)
    return folder


def query_lemmas(folder: str) -> list[str]:
    """The one-word entries of the query list (the words captions are made of), in a seeded random order:
    Zipf ranks over this order make some WordNet words frequent and most rare."""
    table = pq.read_table(os.path.join(folder, "queries.parquet"), columns=["query"])
    lemmas = sorted(q for q in table.column("query").to_pylist() if q.isalpha())
    random.Random(17).shuffle(lemmas)
    return lemmas


@functools.lru_cache(maxsize=2)
def long_tail_names(seed: int) -> list[str]:
    """Pseudo-words for names (hosts, files, "Kaibo Lighthouse"): seconds to make, so made once."""
    return vocabulary(200_000, seed=seed + 3)


class CaptionMaker:
    """Alt-text-like captions: 4-12 words, ``WORDNET_SHARE`` of them WordNet lemmas (Zipf over ``lemmas``)."""

    def __init__(self, lemmas: list[str], seed: int = 0):
        self.rng = random.Random(seed)
        self.lemmas, self.names = lemmas, long_tail_names(seed)
        self.lemma_rank, self.name_rank = Zipf(len(lemmas), seed=seed + 1), Zipf(len(self.names), seed=seed + 2)

    def word(self) -> str:
        roll = self.rng.random()
        if roll < WORDNET_SHARE:
            return self.lemmas[self.lemma_rank.draw()]
        if roll < WORDNET_SHARE + (1 - WORDNET_SHARE) * FUNCTION_SHARE:
            return self.rng.choice(FUNCTION_WORDS)
        return self.names[self.name_rank.draw()].capitalize()

    def caption(self) -> str:
        roll = self.rng.random()
        if roll < 0.08:
            lang = self.rng.choice(sorted(FOREIGN))
            text = self.rng.choice(FOREIGN[lang]).format(x=self.rng.choice(FOREIGN_NOUNS[lang]))
            return f"{text} {self.names[self.name_rank.draw()].capitalize()}"
        if roll < 0.09:
            return f"IMG_{self.rng.randrange(10**5):05d}.JPG"
        text = " ".join(self.word() for _ in range(self.rng.randint(4, 12)))
        return text[:1].upper() + text[1:] + self.rng.choice(("", "", ".", ", 2019", " - photo"))


def candidate_rows(lemmas: list[str], rows: int, seed: int = 0):
    """``rows`` candidate row dicts (``CANDIDATE_SCHEMA``), deterministic for a seed; see the module docstring."""
    rng, maker = random.Random(seed), CaptionMaker(lemmas, seed)
    recent: deque[dict] = deque(maxlen=256)   # duplicates and reused texts come from nearby rows
    for index in range(rows):
        roll = rng.random()
        if recent and roll < 0.04:     # the same pair seen twice (two crawls, two WAT files)
            row = dict(rng.choice(recent))
        else:
            text = rng.choice(recent)["text"] if recent and roll < 0.14 else maker.caption()
            host = f"www.{maker.names[rng.randrange(20_000)]}-{rng.randrange(1000)}.example.com"
            name = f"{maker.names[rng.randrange(len(maker.names))]}-{index}.jpg"
            url = f"https://cdn.{host[4:]}/images/{name}"
            row = {"uid": pair_uid(url, text), "url": url, "text": text,
                   "page_url": f"https://{host}/{maker.names[rng.randrange(50_000)]}/{index // 12}.html",
                   "source": "wat", "source_file": CRAWL.format(index // 40_000), "search_query": None,
                   "license": None, "license_url": None, "creator": None}
        recent.append(row)
        yield row


def write_candidates(folder: str, rows: int, lemmas: list[str], seed: int = 0,
                     rows_per_part: int = ROWS_PER_PART) -> list[str]:
    """``folder/parts/part-NNNNN.parquet`` holding ``rows`` candidate rows; returns the part paths."""
    parts_dir = os.path.join(folder, "parts")
    os.makedirs(parts_dir, exist_ok=True)
    paths, batch = [], []
    for row in candidate_rows(lemmas, rows, seed):
        batch.append(row)
        if len(batch) == rows_per_part:
            paths.append(_write_part(parts_dir, len(paths), batch))
            batch = []
    if batch:
        paths.append(_write_part(parts_dir, len(paths), batch))
    return paths


def _write_part(parts_dir: str, number: int, rows: list[dict]) -> str:
    path = os.path.join(parts_dir, f"part-{number:05d}.parquet")
    pq.write_table(pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA), path)
    return path


def write_wat(path: str, pages: int, seed: int = 0) -> str:
    """A generated Common Crawl-shaped WAT file of ``pages`` crawled pages (bench_candidates' generator)."""
    from bench_candidates import generate_wat

    generate_wat(path, pages, vocabulary(1_000_000), seed)
    return path
