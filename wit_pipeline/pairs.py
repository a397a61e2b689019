"""Steps on (image URL, text) pair rows shared by the stages that keep pairs (candidates, select).

- ``provenance_key`` / ``first_by_provenance``: which copy of an exact duplicate survives (the smallest
  provenance, so never the input order's choice); ``distinct_pairs``: one row per pair of a text's rows.
- ``DedupPairs``: exact (url, text) de-duplication, one GroupByKey on the pair's uid.
- ``DedupTables``: the same on ``pa.Table`` batches: rows travel in packed tables (``parquet_parts.pack``),
  a bundle's rows gathered per uid bucket (``PackByBucket``: up to ``PACK_ROWS`` rows a pack, so many
  buckets never mean tiny elements), and each bucket keeps one row per uid (``distinct_table``,
  ``first_by_provenance``'s rule, vectorised).
- ``LanguageAndDedup``: langdetect once per distinct text and the same de-duplication, in one shuffle.
- ``parse_lang``: the ``--lang`` value both stages take.

Rows dropped here are counted in the stage's namespace as ``dropped_duplicate`` and ``dropped_lang``;
``lang_detect_calls`` counts the texts sent to the detector.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from .beam import counter
from .errors import UserError
from .language import DEFAULT_DETECTOR, detect_languages
from .parquet_parts import pack, split_table, unpack

PROVENANCE = ("source", "source_file", "page_url", "search_query", "license", "license_url", "creator")
TEXT_BATCH = 8192   # texts per langdetect call (see LanguageFilter)
# DedupTables' buckets: a few per input file. A bundle's rows cross the shuffle in one pack per bucket, so the
# packs shrink as buckets grow: past MAX_BUCKETS (64 files), de-duplicate row by row instead (DedupPairs).
BUCKETS_PER_INPUT, MIN_BUCKETS, MAX_BUCKETS = 4, 16, 256
PACK_ROWS = 1024   # rows of one bucket gathered before they cross the shuffle as one element


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


def dedup_buckets(inputs: int) -> int | None:
    """How many uid buckets ``DedupTables`` spreads the rows of ``inputs`` input files over; None when
    that would be more than ``MAX_BUCKETS`` (then ``DedupPairs``, keyed by uid, scales better)."""
    buckets = max(MIN_BUCKETS, BUCKETS_PER_INPUT * inputs)
    return buckets if buckets <= MAX_BUCKETS else None


def bucket_keys(table: pa.Table, buckets: int) -> np.ndarray:
    """The uid bucket of every row: every copy of a pair lands in the same one."""
    return np.fromiter((int(uid[:8] or "0", 16) % buckets for uid in table.column("uid").to_pylist()),
                       dtype=np.int64, count=table.num_rows)


def distinct_table(table: pa.Table) -> pa.Table:
    """One row per uid: of each uid's rows the one with the smallest provenance (``first_by_provenance``;
    a missing or null provenance value counts as ""). A table without repeated uids is returned as it is."""
    uids = table.column("uid")
    if pc.count_distinct(uids).as_py() == table.num_rows:
        return table
    keys = {"uid": uids}
    keys.update((name, pc.fill_null(table.column(name), "")) for name in PROVENANCE if name in table.column_names)
    ordered = table.take(pc.sort_indices(pa.table(keys), sort_keys=[(name, "ascending") for name in keys]))
    ordered_uids = ordered.column("uid").combine_chunks()
    first = pc.not_equal(ordered_uids[1:], ordered_uids[:-1])
    return ordered.filter(pa.concat_arrays([pa.array([True]), first]))


class PackByBucket(beam.DoFn):
    """Tables -> ``(bucket, packed rows)``: a bundle's rows gathered per uid bucket, each bucket packed
    once it holds ``PACK_ROWS`` rows and at the end of the bundle."""

    def __init__(self, buckets: int):
        self.buckets = buckets

    def start_bundle(self):
        self.pending: dict[int, list[pa.Table]] = {}
        self.rows: dict[int, int] = {}

    def process(self, table: pa.Table):
        for bucket, rows in split_table(table, bucket_keys(table, self.buckets)):
            self.pending.setdefault(bucket, []).append(rows)
            self.rows[bucket] = self.rows.get(bucket, 0) + rows.num_rows
            if self.rows[bucket] >= PACK_ROWS:
                del self.rows[bucket]
                yield bucket, pack(pa.concat_tables(self.pending.pop(bucket)))

    def finish_bundle(self):
        for bucket, tables in self.pending.items():
            yield WindowedValue((bucket, pack(pa.concat_tables(tables))), MIN_TIMESTAMP, [GlobalWindow()])
        self.pending, self.rows = {}, {}


class KeepFirstOfBucket(beam.DoFn):
    """``(bucket, packed tables)`` -> one table, one row per uid; the other copies counted as
    ``dropped_duplicate``."""

    def __init__(self, stage: str):
        self.stage = stage

    def setup(self):
        self.dropped_duplicate = counter(self.stage, "dropped_duplicate")

    def process(self, item) -> Iterator[pa.Table]:
        _bucket, packed = item
        table = pa.concat_tables([unpack(data) for data in packed])
        kept = distinct_table(table)
        if kept.num_rows < table.num_rows:
            self.dropped_duplicate.inc(table.num_rows - kept.num_rows)
        if kept.num_rows:
            yield kept


class DedupTables(beam.PTransform):
    """``DedupPairs`` on ``pa.Table`` batches with a ``uid`` column (global window): the rows packed by uid
    bucket, one GroupByKey on the bucket, one row per uid kept; yields a table per bucket."""

    def __init__(self, stage: str, buckets: int = MIN_BUCKETS):
        super().__init__()
        self.stage, self.buckets = stage, buckets

    def expand(self, tables):
        return (tables
                | "PackByBucket" >> beam.ParDo(PackByBucket(self.buckets))
                | "GroupBuckets" >> beam.GroupByKey()
                | "KeepFirst" >> beam.ParDo(KeepFirstOfBucket(self.stage)))


class LanguageFilter(beam.DoFn):
    """A batch of ``(text, rows)`` groups: language ID once per distinct text, the batch at once; the
    rows of a kept text de-duplicated by pair (when ``dedup``), those of a dropped one all counted under
    ``lang``. Batches are large: a call runs until its slowest text converges, with ever fewer texts in
    flight, so fewer and larger calls waste less."""

    def __init__(self, lang: str, seed: int, stage: str, dedup: bool, detector: str = DEFAULT_DETECTOR):
        self.lang, self.seed, self.stage, self.dedup, self.detector = lang, seed, stage, dedup, detector

    def setup(self):
        self.calls = counter(self.stage, "lang_detect_calls")
        self.dropped_lang = counter(self.stage, "dropped_lang")
        self.dropped_duplicate = counter(self.stage, "dropped_duplicate")

    def process(self, groups) -> Iterator[dict]:
        decided = detect_languages([text for text, _rows in groups], self.seed, detector=self.detector)
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
    pair's copies as well as each text's one language ID call: one GroupByKey serves both."""

    def __init__(self, lang: str, seed: int, stage: str, dedup: bool = True, detector: str = DEFAULT_DETECTOR):
        super().__init__()
        self.lang, self.seed, self.stage, self.dedup, self.detector = lang, seed, stage, dedup, detector

    def expand(self, rows):
        return (rows
                | "KeyByText" >> beam.Map(lambda row: (row["text"], row))
                | "GroupTexts" >> beam.GroupByKey()
                | "BatchTexts" >> beam.BatchElements(min_batch_size=TEXT_BATCH, max_batch_size=TEXT_BATCH)
                | "Language" >> beam.ParDo(LanguageFilter(self.lang, self.seed, self.stage, self.dedup,
                                                                self.detector)))
