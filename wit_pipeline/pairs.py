"""Steps on (image URL, text) pair rows shared by the stages that keep pairs (candidates, select).

- ``provenance_key`` / ``first_by_provenance``: which copy of an exact duplicate survives (the smallest
  provenance, so never the input order's choice); ``distinct_pairs``: one row per pair of a text's rows.
- ``DedupPairs``: exact (url, text) de-duplication, one GroupByKey on the pair's uid.
- ``LanguageAndDedup``: langdetect once per distinct text and the same de-duplication, in one shuffle.
- ``parse_lang``: the ``--lang`` value both stages take.

Rows dropped here are counted in the stage's namespace as ``dropped_duplicate`` and ``dropped_lang``;
``lang_detect_calls`` counts the texts sent to the detector.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import apache_beam as beam

from .beam import counter
from .errors import UserError
from .language import detect_languages

PROVENANCE = ("source", "source_file", "page_url", "search_query", "license", "license_url", "creator")
TEXT_BATCH = 8192   # texts per langdetect call (see LanguageFilter)


def parse_lang(value: str, *, allow_defer: bool = False) -> str:
    """``--lang``: ``any`` keeps all, a language code (``en``) keeps that language, ``defer`` (candidates only)."""
    value = (value or "").strip().lower()
    if value == "any" or (allow_defer and value == "defer"):
        return value
    if not value.isalpha() or not 2 <= len(value) <= 3:
        choices = "'any', 'defer' or a language code like 'en'" if allow_defer else "'any' or a language code like 'en'"
        raise UserError(f"--lang must be {choices}, not {value!r}")
    return value


def provenance_key(row: dict) -> tuple:
    """Which duplicate survives: the smallest provenance, so the choice never depends on input order."""
    return tuple(row.get(k) or "" for k in PROVENANCE)


def first_by_provenance(rows: Iterable[dict]) -> dict:
    """One row of a group of exact duplicates: the one with the smallest provenance."""
    return min(rows, key=provenance_key)


def distinct_pairs(rows: Iterable[dict]) -> list[dict]:
    """The rows of one text, one per (url, text) pair (``first_by_provenance``), in uid order."""
    by_uid: dict[str, list] = {}
    for row in rows:
        by_uid.setdefault(row["uid"], []).append(row)
    return [first_by_provenance(by_uid[uid]) for uid in sorted(by_uid)]


class KeepFirst(beam.DoFn):
    """``(uid, copies)`` -> the copy to keep; the others counted as ``dropped_duplicate``."""

    def __init__(self, stage: str):
        self.stage = stage

    def setup(self):
        self.dropped_duplicate = counter(self.stage, "dropped_duplicate")

    def process(self, item) -> Iterator[dict]:
        _uid, rows = item
        rows = list(rows)
        if len(rows) > 1:
            self.dropped_duplicate.inc(len(rows) - 1)
        yield first_by_provenance(rows)


class DedupPairs(beam.PTransform):
    """Exact (url, text) de-duplication: one row per uid, the smallest provenance kept."""

    def __init__(self, stage: str):
        super().__init__()
        self.stage = stage

    def expand(self, rows):
        return (rows
                | "KeyByPair" >> beam.Map(lambda row: (row["uid"], row))
                | "GroupPairs" >> beam.GroupByKey()
                | "KeepFirst" >> beam.ParDo(KeepFirst(self.stage)))


class LanguageFilter(beam.DoFn):
    """A batch of ``(text, rows)`` groups: langdetect once per distinct text, the batch in lockstep; the
    rows of a kept text de-duplicated by pair (when ``dedup``), those of a dropped one all counted under
    ``lang``. Batches are large: a call runs until its slowest text converges, with ever fewer texts in
    flight, so fewer and larger calls waste less."""

    def __init__(self, lang: str, seed: int, stage: str, dedup: bool):
        self.lang, self.seed, self.stage, self.dedup = lang, seed, stage, dedup

    def setup(self):
        self.calls = counter(self.stage, "lang_detect_calls")
        self.dropped_lang = counter(self.stage, "dropped_lang")
        self.dropped_duplicate = counter(self.stage, "dropped_duplicate")

    def process(self, groups) -> Iterator[dict]:
        decided = detect_languages([text for text, _rows in groups], self.seed)
        self.calls.inc(len(groups))
        for (_text, rows), found in zip(groups, decided, strict=True):
            rows = list(rows)
            if found != self.lang:
                self.dropped_lang.inc(len(rows))
            elif self.dedup:
                kept = distinct_pairs(rows)
                if len(rows) > len(kept):
                    self.dropped_duplicate.inc(len(rows) - len(kept))
                yield from kept
            else:
                yield from rows


class LanguageAndDedup(beam.PTransform):
    """The language filter and exact (url, text) de-duplication in one shuffle. Every copy of a pair has
    the same text (a pair's uid hashes its url and text), so grouping the rows by text gathers each
    pair's copies as well as each text's one langdetect call: one GroupByKey serves both."""

    def __init__(self, lang: str, seed: int, stage: str, dedup: bool = True):
        super().__init__()
        self.lang, self.seed, self.stage, self.dedup = lang, seed, stage, dedup

    def expand(self, rows):
        return (rows
                | "KeyByText" >> beam.Map(lambda row: (row["text"], row))
                | "GroupTexts" >> beam.GroupByKey()
                | "BatchTexts" >> beam.BatchElements(min_batch_size=TEXT_BATCH, max_batch_size=TEXT_BATCH)
                | "Language" >> beam.ParDo(LanguageFilter(self.lang, self.seed, self.stage, self.dedup)))
