"""Pure counting and selection logic of the query list (no Beam here; pipeline.py wires it).

* Words and sentences follow ``wit_pipeline.text`` (the rule captions are matched with); in a
  language written without spaces (``wit_pipeline.segment``) each canonical word is split
  further by the language's segmenter.
* A bigram is two adjacent words of one sentence; bigrams never cross sentences. In a language
  without spaces, a bigram is two adjacent words of one run (nothing between them in the text),
  joined without a space, so that it is a substring of a caption that says it.
* Bigram counts are keyed ``"a\tb"``; ``bigram_query`` writes the query (``"a b"``, or ``"ab"``).
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

from wit_pipeline.segment import uses_spaces, word_runs
from wit_pipeline.text import canonical, sentences, words

from .namespaces import CANONICAL_LINK_NAMES
from .wikitext import strip_wikitext

SOURCES = ("unigram", "bigram", "title", "wordnet")

_DISAMBIGUATION = re.compile(r"\s*\([^()]*\)\s*$")


def count_plain_text(plain: str, keep_case: bool, unigrams: Counter, bigrams: Counter, lang: str = "en") -> int:
    """Add the words and within-sentence bigrams of ``plain`` to the counters; returns the token count."""
    if not uses_spaces(lang):
        return _count_unspaced(plain, keep_case, unigrams, bigrams, lang)
    tokens = 0
    for sentence in sentences(plain):
        sentence_words = words(sentence, keep_case)
        if not sentence_words:
            continue
        tokens += len(sentence_words)
        unigrams.update(sentence_words)
        if len(sentence_words) > 1:
            bigrams.update([a + "\t" + b for a, b in pairwise(sentence_words)])
    return tokens


def _count_unspaced(plain: str, keep_case: bool, unigrams: Counter, bigrams: Counter, lang: str) -> int:
    """``count_plain_text`` for a language without spaces: bigrams of touching words of one run."""
    tokens = 0
    for sentence in sentences(plain):
        for run, spans in word_runs(sentence, lang, keep_case):
            run_words = [run[start:end] for start, end in spans]
            tokens += len(run_words)
            unigrams.update(run_words)
            bigrams.update([run_words[i] + "\t" + run_words[i + 1]
                            for i in range(len(spans) - 1) if spans[i][1] == spans[i + 1][0]])
    return tokens


def count_wikitext(wikitext: str, keep_case: bool, unigrams: Counter, bigrams: Counter, lang: str = "en",
                   link_namespaces: frozenset[str] = CANONICAL_LINK_NAMES) -> int:
    """``count_plain_text`` of the wikitext's plain prose (``link_namespaces``: ``strip_wikitext``'s)."""
    return count_plain_text(strip_wikitext(wikitext, link_namespaces), keep_case, unigrams, bigrams, lang)


def bigram_query(a: str, b: str, lang: str) -> str:
    """The query of the bigram ``a b`` in ``lang``: with a space, or joined where the language has none."""
    return f"{a} {b}" if uses_spaces(lang) else a + b


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


def merge_entry(query: str, records: Iterable[tuple[str, object]], lang: str = "en") -> dict:
    """All ``(source, statistic)`` records of one query of ``lang`` -> its output row.

    unigram -> count; bigram -> (count, pmi); title -> views; wordnet -> synsets
    (the counts clamped to ``INT64_MAX``).
    """
    row: dict = {"query": query, "lang": lang, "sources": [],
                 "count": None, "pmi": None, "views": None, "synsets": None}
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
