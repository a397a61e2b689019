"""Pure counting and selection logic of the query list (no Beam here; pipeline.py wires it).

* Words and sentences follow ``wit_pipeline.text`` (the rule captions are matched with).
* A bigram is two adjacent words of one sentence; bigrams never cross sentences.
* PMI is nltk's ``BigramAssocMeasures.pmi``::

      pmi(a b) = log2(count(a b) * N / (count(a) * count(b)))

  with ``N`` the total number of words counted (tokens) and ``count(a)`` the
  unigram count of ``a``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from itertools import pairwise
from typing import Iterable

from wit_pipeline.text import canonical, sentences, words

from .wikitext import strip_wikitext

SOURCES = ("unigram", "bigram", "title", "wordnet")

_DISAMBIGUATION = re.compile(r"\s*\([^()]*\)\s*$")


def count_plain_text(plain: str, keep_case: bool, unigrams: Counter, bigrams: Counter) -> int:
    """Add the words and within-sentence bigrams of ``plain`` to the counters; returns the token count."""
    tokens = 0
    for sentence in sentences(plain):
        sentence_words = words(sentence, keep_case)
        if not sentence_words:
            continue
        tokens += len(sentence_words)
        unigrams.update(sentence_words)
        if len(sentence_words) > 1:
            bigrams.update([a + " " + b for a, b in pairwise(sentence_words)])
    return tokens


def count_wikitext(wikitext: str, keep_case: bool, unigrams: Counter, bigrams: Counter) -> int:
    """``count_plain_text`` of the wikitext's plain prose."""
    return count_plain_text(strip_wikitext(wikitext), keep_case, unigrams, bigrams)


def pmi(count_ab: int, count_a: int, count_b: int, total: int) -> float:
    """Pointwise mutual information in bits, exactly as nltk's ``BigramAssocMeasures.pmi``."""
    # One correctly rounded division, then one log: a ratio of exactly 2**k gives exactly k, so
    # thresholds behave at their boundary (nltk's difference of two logs can miss by 1 ulp).
    return math.log2((count_ab * total) / (count_a * count_b))


def title_query(title: str, keep_case: bool = False) -> str:
    """An article title as a query: underscores are spaces, a trailing "(disambiguator)" goes.

    ``"Mercury_(planet)"`` -> ``"mercury"``; captions say "mercury", not "mercury planet".
    """
    title = title.replace("_", " ")
    stripped = _DISAMBIGUATION.sub("", title)
    return canonical(stripped or title, keep_case)


INT64_MAX = (1 << 63) - 1   # the statistics' parquet type; a larger sum (only forged input makes one) is clamped


def _int64(value) -> int:
    return min(int(value), INT64_MAX)


def merge_entry(query: str, records: Iterable[tuple[str, object]]) -> dict:
    """All ``(source, statistic)`` records of one query -> its output row.

    unigram -> count; bigram -> (count, pmi); title -> views; wordnet -> synsets
    (the counts clamped to ``INT64_MAX``).
    """
    row: dict = {"query": query, "sources": [], "count": None, "pmi": None, "views": None, "synsets": None}
    found = set()
    for source, value in records:
        found.add(source)
        if source == "unigram":
            row["count"] = _int64(value)
        elif source == "bigram":
            count, score = value
            row["count"] = _int64(count)
            row["pmi"] = float(score)
        elif source == "title":
            row["views"] = _int64(value)
        elif source == "wordnet":
            row["synsets"] = _int64(value)
        else:
            raise ValueError(f"unknown source {source!r}")
    row["sources"] = [s for s in SOURCES if s in found]
    return row


def summarize_sources(rows: Iterable[dict]) -> dict:
    """Entries per source, entries found only in one source, and pairwise overlaps."""
    by_source = Counter()
    only = Counter()
    overlap = Counter()
    total = 0
    for row in rows:
        total += 1
        sources = list(row["sources"])
        by_source.update(sources)
        if len(sources) == 1:
            only[sources[0]] += 1
        for i, a in enumerate(sources):
            for b in sources[i + 1:]:
                overlap[f"{a}+{b}"] += 1
    order = {s: i for i, s in enumerate(SOURCES)}
    pairs = [f"{a}+{b}" for i, a in enumerate(SOURCES) for b in SOURCES[i + 1:]]
    return {
        "entries": total,
        "by_source": {s: by_source.get(s, 0) for s in sorted(SOURCES, key=order.get)},
        "only_source": {s: only.get(s, 0) for s in SOURCES},
        "overlap": {p: overlap.get(p, 0) for p in pairs},
    }
