"""The selection job: match candidates against the queries, decide language, cap pairs per query.

::

    candidate files ─► MatchFiles: read in file order by column batches, match (one automaton per
        language); matched rows as compact records (text, uid, provenance, file, row, entry ids), pickled
        in batches keyed by a hash of the text
      ─► GroupByKey(text bucket) ─► Decide: language once per distinct matched text (batched), routed to
          that language's list; one pair per uid (smallest provenance); ``Survivors`` batches (numpy
          columns: rank, file, row, entry ids; and lang)
      ─► per-query matched counts (a lifted combine over numpy arrays) ─► caps per language (--cap-rule);
          for top, the (query, rank) incidences of the queries over their cap only, gathered
          ─► the rank threshold of each query
      ─► Cap: each survivor kept or not, vectorised (side inputs: thresholds or counts, caps); kept
          survivors split by file
      ─► GroupByKey(file) ─► ReadSelected: each file read again, the kept rows with queries and lang
      ─► selected/part-*.parquet
      └► kept / selected counts ─► query_counts.parquet; then stats.json, query_counts.png, summary.html

Only pickled record batches and numpy arrays cross a shuffle; full rows exist only while a file is read,
so the job holds per matched row about a hundred bytes, not the row, and per surviving pair a few dozen.
The loops that make many short-lived objects (reading, matching, grouping, deciding) run with the
garbage collector paused (``beam.collector_paused``).

Every candidate row ends in exactly one place:
``in = out (selected) + dropped[no_match] + dropped[lang] + dropped[duplicate] + dropped[cap]
+ dropped[bad_row]`` (a row the table reader cannot use, counted by reason as ``bad_rows_<reason>``).
``no_match``: the text contains no query of the languages kept (``--lang``) nor a language-neutral one;
``lang``: its detected language is not kept, or none of its matches is in that language's list.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa

from .. import fileio
from ..beam import StageCounters, collector_paused, counter, freeze_long_lived
from ..errors import UserError
from ..langcodes import normalise
from ..language import DEFAULT_DETECTOR, DETECTORS, detect_languages
from ..options import check_values, option
from ..pairs import PROVENANCE, TEXT_BATCH
from ..parquet_parts import WriteParquetTables
from ..querylist import MAX_QUERY_BYTES
from ..schemas import CANDIDATE_COLUMNS, QUERY_COUNTS_SCHEMA, SELECTED_SCHEMA, pair_uid
from ..stage import StageRun, dropped_counts, require_finished
from ..tables import MissingColumns, iter_table_batches
from .balancing import BALANCES, GatherIncidences, SumArrays, keep_probability_each, pair_ranks, top_thresholds
from .caps import CAP_RULES, choose_caps
from .matching import MODES, QueryIndex, shared_index
from .plot import write_summary

log = logging.getLogger(__name__)

STAGE = "select"
SELECTED_DIR = "selected"
QUERY_COUNTS = "query_counts.parquet"
DROP_REASONS = ("no_match", "lang", "duplicate", "cap")
TEXT_BUCKETS = 256    # shuffle keys of the matched records: a text's copies all land in one bucket
_CODE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")


def parse_select_lang(value: str) -> str:
    """``--lang``: ``any`` (no language check), ``all`` (every language, each against its own list), or
    one or more language codes, comma separated (``en``, ``en,de,zh``); codes via ``langcodes.normalise``."""
    value = (value or "").strip().lower()
    if value in ("any", "all"):
        return value
    codes = [normalise(code) for code in value.split(",")]
    if not value or not all(_CODE.match(code) for code in codes):
        raise UserError(f"--lang must be 'any', 'all', a language code like 'en' or a comma list like "
                        f"'en,de,zh', not {value!r}")
    return ",".join(dict.fromkeys(codes))


def kept_languages(lang: str) -> frozenset[str] | None:
    """The languages whose texts and lists ``--lang`` keeps; None for every one (``any``, ``all``)."""
    return None if lang in ("any", "all") else frozenset(lang.split(","))


@dataclass
class SelectOptions:
    """``wit select``: every flag, its default and its help (``wit_pipeline.options``)."""

    candidates: list[str] = option(metavar="DIR",
                                   help="candidate directories (or parquet files/globs) from 'wit candidates'")
    queries: str = option(metavar="DIR_OR_TXT",
                          help="queries directory (queries.parquet / queries.txt) or a text file, one per line")
    out: str = option(help="output directory")
    cap: int = option(20_000, minimum=1, help="pairs kept per query")
    cap_rule: str = option("same", choices=CAP_RULES,
                           help="same: --cap for every language; metaclip2: English keeps --cap, every other "
                           "language the cap that gives it English's tail share of matches (MetaCLIP 2)")
    match: str = option("word", choices=MODES,
                        help="word: whole words (MetaCLIP); substring: anywhere, inside words too (CLIP paper). "
                        "Languages written without spaces (zh, ja, th ...) always match substrings")
    balance: str = option("top", choices=BALANCES,
                          help="top: the cap pairs with the smallest seeded hash per query (exact cap); "
                          "probabilistic: MetaCLIP's keep-with-probability rule (cap in expectation)")
    lang: str = option("en", convert=parse_select_lang,
                       help="keep texts detected as this language (a comma list: these languages; 'all': every "
                       "language), each matched against its own language's queries; 'any': no language check")
    lang_detector: str = option(DEFAULT_DETECTOR, choices=DETECTORS,
                                help="language identification: py3langid (model in its wheel; ~30x faster and more "
                                "accurate on short alt texts) or langdetect (its exact answers, seeded)")
    seed: int = option(0, help="seed of the balancing hash and of the langdetect detector")
    keep_case: bool = option(False, help="match case-sensitively (queries too)")
    rows_per_part: int = option(200_000, minimum=1, help="rows per selected parquet part")
    strict: bool = option(False, help="fail on the first malformed input row instead of counting and skipping it")
    allow_partial: bool = option(False, help="read an unfinished `wit candidates` or `wit queries build` output "
                                 "(no stats.json) as it is")


def candidate_files(patterns: list[str]) -> list[str]:
    files = [f for f in fileio.expand(patterns, what="candidates") if f.endswith(".parquet")]
    if not files:
        raise UserError(f"no .parquet files in --candidates {' '.join(patterns)}")
    return files


def candidate_batches(path: str, counts: Counter, strict: bool = False) -> Iterator[tuple[int, dict[str, list]]]:
    """The rows of one candidate parquet file by column (``tables.iter_table_batches``): ``(number of the
    batch's first row, {column: values})``, rows numbered in file order among the good ones. Missing
    provenance columns come as None, numbers as their text, a null url or text as "", a missing source as
    "table", a missing uid filled in. Each row is counted ``in``; a row the table reader finds bad (a list
    where a string belongs, bytes that are not UTF-8 ...) ``in`` and ``dropped_bad_row`` (by reason as
    ``bad_rows_<reason>``); a file without url/text columns ``unreadable_files``."""
    first = 0
    try:
        for batch in iter_table_batches(path, columns=CANDIDATE_COLUMNS, required=("url", "text"), counts=counts,
                                        strict=strict, as_text=True):
            size = len(batch["text"])
            counts["in"] += size
            for name, default in (("url", ""), ("text", ""), ("source", "table")):
                batch[name] = [value or default for value in batch[name]]
            if not all(batch["uid"]):
                batch["uid"] = [uid or pair_uid(url, text)
                                for uid, url, text in zip(batch["uid"], batch["url"], batch["text"], strict=True)]
            yield first, batch
            first += size
    except MissingColumns:
        counts["unreadable_files"] += 1
        log.warning("skipping %s: no url/text columns", path)
    finally:   # a bad row was read too: it is accounted for as a drop
        counts["in"] += counts["bad_rows"]
        counts["dropped_bad_row"] += counts["bad_rows"]


def packed(records: list) -> bytes:
    """A batch of records as one bytes value, pickled and zstd-compressed (about 3x smaller; ~1 µs a
    record): a runner that holds a shuffle in memory (the DirectRunner) keeps one compact object per
    batch, not a tuple of Python objects per record. ``unpacked`` reads it back."""
    data = pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(8, "little") + pa.compress(data, codec="zstd", asbytes=True)


def unpacked(blob: bytes) -> list:
    size = int.from_bytes(blob[:8], "little")
    return pickle.loads(pa.decompress(memoryview(blob)[8:], decompressed_size=size, codec="zstd", asbytes=True))


def text_bucket(text: str, buckets: int = TEXT_BUCKETS) -> int:
    """The shuffle key of a text's records: every copy of a text (so of a pair) meets in one bucket."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) % buckets


@dataclass(frozen=True)
class IndexSpec:
    """What a worker needs to build (once per process) the query index: ``matching.shared_index``'s key."""

    queries: str
    mode: str
    keep_case: bool
    langs: frozenset[str] | None

    def index(self) -> QueryIndex:
        return shared_index(self.queries, self.mode, self.keep_case, self.langs)


class MatchFileFn(beam.DoFn):
    """``(file number, path)`` -> ``(text bucket, (record count, packed records))`` of the file's matched
    rows, per bucket and read batch, a record being ``(text, uid, provenance key, file number, row number,
    entry ids)``; rows are counted ``in``, ``matched`` or ``dropped_no_match``."""

    def __init__(self, spec: IndexSpec, strict: bool):
        self.spec, self.strict = spec, strict

    def setup(self):
        self.index = self.spec.index()
        self.counters = StageCounters(STAGE)
        freeze_long_lived()

    def process(self, item):
        with collector_paused():
            file_number, path = item
            counts = Counter()
            pending: dict[int, list] = {}
            match_ids = self.index.match_ids
            try:
                for first, batch in candidate_batches(path, counts, self.strict):
                    uids, provenance = batch["uid"], [batch[name] for name in PROVENANCE]
                    matched = 0
                    for index, text in enumerate(batch["text"]):
                        ids = match_ids(text)
                        if not ids:
                            continue
                        matched += 1
                        bucket = text_bucket(text)
                        records = pending.setdefault(bucket, [])
                        # the provenance as pairs.provenance_key gives it for the row
                        records.append((text, uids[index], tuple([column[index] or "" for column in provenance]),
                                        file_number, first + index, ids))
                    counts["matched"] += matched
                    counts["dropped_no_match"] += len(uids) - matched
                    for bucket, records in pending.items():   # a read batch's records, never a file's, held
                        yield bucket, (len(records), packed(records))
                    pending.clear()
            finally:
                self.counters.add(counts)


def records_of_buckets(buckets: list) -> dict[str, list]:
    """``[(bucket, [(record count, packed records)])]`` -> ``{text: its records}``."""
    by_text: dict[str, list] = {}
    for _bucket, batches in buckets:
        for _count, batch in batches:
            for record in unpacked(batch):
                by_text.setdefault(record[0], []).append(record)
    return by_text


def records_in_bucket(item) -> int:
    """How many records a grouped bucket holds (``BatchElements``' measure of a batch)."""
    return sum(count for count, _batch in item[1])


@dataclass
class Survivors:
    """A batch of surviving pairs, column by column (numpy arrays cross a shuffle and sit in a local
    runner's memory as a few compact objects, not a tuple per pair): each pair's ``rank`` (uint64),
    ``lang`` (its detected language; None under ``--lang any``), candidate ``file`` and ``row`` numbers,
    and its entry ids, all pairs' concatenated in ``ids`` with ``id_counts`` of each pair."""

    ranks: np.ndarray
    langs: list
    files: np.ndarray
    rows: np.ndarray
    ids: np.ndarray
    id_counts: np.ndarray

    @classmethod
    def from_lists(cls, ranks: list[int], langs: list, files: list[int], rows: list[int],
                   ids: list[list[int]]) -> Survivors:
        counts = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        return cls(np.array(ranks, dtype=np.uint64), langs, np.array(files, dtype=np.int64),
                   np.array(rows, dtype=np.int64),
                   np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(counts.sum())), counts)

    @classmethod
    def concat(cls, batches: list[Survivors]) -> Survivors:
        def joined(name: str) -> np.ndarray:
            return np.concatenate([getattr(batch, name) for batch in batches])

        return cls(joined("ranks"), [lang for batch in batches for lang in batch.langs], joined("files"),
                   joined("rows"), joined("ids"), joined("id_counts"))

    def __len__(self) -> int:
        return len(self.ranks)

    def owners(self) -> np.ndarray:
        """The pair (index) of every entry id in ``ids``."""
        return np.repeat(np.arange(len(self)), self.id_counts)

    def id_lists(self) -> list[list[int]]:
        """Each pair's entry ids."""
        flat, ends = self.ids.tolist(), np.cumsum(self.id_counts).tolist()
        return [flat[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]

    def take(self, indices: np.ndarray) -> Survivors:
        """The pairs at ``indices``, in that order."""
        starts = np.cumsum(self.id_counts) - self.id_counts
        counts = self.id_counts[indices]
        positions = np.repeat(starts[indices] - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
        return Survivors(self.ranks[indices], [self.langs[i] for i in indices.tolist()], self.files[indices],
                         self.rows[indices], self.ids[positions], counts)

    def by_file(self) -> Iterator[tuple[int, Survivors]]:
        """``(file number, its pairs)`` for each file the batch holds pairs of."""
        if not len(self):
            return
        order = np.argsort(self.files, kind="stable")
        files = self.files[order]
        bounds = [0, *(np.flatnonzero(np.diff(files)) + 1).tolist(), len(files)]
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            yield int(files[start]), self.take(order[start:end])


class DecideFn(beam.DoFn):
    """A batch of grouped buckets of records -> one ``Survivors`` batch: language ID once per distinct
    text (``lang_detect_calls``; many texts per call: each call has a fixed cost, and langdetect's runs
    until its slowest text converges), only the ids of its language's list and the neutral ones, one copy
    per uid (the smallest provenance; ``dropped_duplicate``), ``dropped_lang``."""

    def __init__(self, spec: IndexSpec, lang: str, seed: int, detector: str = DEFAULT_DETECTOR):
        self.spec, self.lang, self.seed, self.detector = spec, lang, seed, detector

    def setup(self):
        self.index = self.spec.index()
        self.kept = kept_languages(self.lang)
        self.counters = StageCounters(STAGE)
        freeze_long_lived()

    def process(self, buckets):
        with collector_paused():
            by_text = records_of_buckets(buckets)
            texts = list(by_text)
            counts = Counter()
            if self.lang == "any":
                langs = [None] * len(texts)
            else:
                langs = detect_languages(texts, self.seed, detector=self.detector)   # langcodes.normalise codes
                counts["lang_detect_calls"] += len(texts)
            uids, kept_langs, files, rows, kept_ids = [], [], [], [], []
            route = self.index.route
            for text, lang in zip(texts, langs, strict=True):
                records = by_text[text]
                ids = records[0][5]   # matching is a function of the text: every copy has the same ids
                if lang is not None:
                    ids = route(ids, lang) if self.kept is None or lang in self.kept else []
                    if not ids:
                        counts["dropped_lang"] += len(records)
                        continue
                if len(records) > 1:
                    records = self._one_per_pair(records, counts)
                for _text, uid, _provenance, file_number, row_number, _ids in records:
                    uids.append(uid)
                    kept_langs.append(lang)
                    files.append(file_number)
                    rows.append(row_number)
                    kept_ids.append(ids)
            self.counters.add(counts)
            if uids:
                yield Survivors.from_lists(pair_ranks(uids, self.seed), kept_langs, files, rows, kept_ids)

    @staticmethod
    def _one_per_pair(records: list, counts: Counter) -> list:
        """One record per uid: the smallest (provenance, file, row); the other copies ``dropped_duplicate``."""
        by_uid: dict[str, list] = {}
        for record in records:
            by_uid.setdefault(record[1], []).append(record)
        if len(by_uid) < len(records):
            counts["dropped_duplicate"] += len(records) - len(by_uid)
        return [min(copies, key=lambda r: r[2:5]) for copies in by_uid.values()]


def capped_incidences(survivors: Survivors, matched: np.ndarray, caps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One (entry id, pair rank) per query each survivor matched, for the queries with more matches than
    their cap only: the others keep every pair (``top_thresholds`` needs no rank of theirs), so what is
    gathered grows with the capped queries, not with the input."""
    capped = matched[survivors.ids] > caps[survivors.ids]
    return survivors.ids[capped], np.repeat(survivors.ranks, survivors.id_counts)[capped]


def matched_counts(survivors: Survivors, entries: int) -> np.ndarray:
    return np.bincount(survivors.ids, minlength=entries)


def entry_caps(index: QueryIndex, matched: np.ndarray, cap: int, rule: str) -> tuple[np.ndarray, dict[str, int]]:
    """The cap of every entry (its language's, ``--cap`` for neutral entries) and ``{lang: cap}``."""
    per_lang: dict[str, list[int]] = {}
    for lang, count in zip(index.entry_langs, matched.tolist(), strict=True):
        if lang is not None:
            per_lang.setdefault(lang, []).append(count)
    caps = choose_caps(per_lang, cap, rule).caps if per_lang else {}
    return np.array([caps.get(lang, cap) for lang in index.entry_langs], dtype=np.int64), caps


class CapFn(beam.DoFn):
    """A ``Survivors`` batch -> kept pairs by file ``(file, Survivors)`` and a ``(2, entries)`` array of
    kept / selected counts; the others counted ``dropped_cap``. ``top``: kept when the pair's rank is
    within some query's threshold; ``probabilistic``: MetaCLIP's coin with each query's language cap."""

    def __init__(self, balance: str, entries: int):
        self.balance, self.entries = balance, entries

    def setup(self):
        self.dropped_cap = counter(STAGE, "dropped_cap")
        self.limits = self.lists = None

    def _lists(self, limits) -> tuple[list[int], list[int]]:
        """The side input as Python ints (numpy's uint64 and int comparisons go through float)."""
        if limits is not self.limits:
            self.limits, self.lists = limits, (limits[0].tolist(), limits[1].tolist())
        return self.lists

    def process(self, survivors: Survivors, limits):
        owners = survivors.owners()
        if self.balance == "top":   # uint64 against uint64: exact
            through = np.repeat(survivors.ranks, survivors.id_counts) <= limits[0][survivors.ids]
            kept = np.zeros(len(survivors), dtype=bool)
            kept[owners[through]] = True
        else:
            matched, caps = self._lists(limits)
            kept = np.array([rank / 2.0**64 < keep_probability_each([matched[i] for i in ids], [caps[i] for i in ids])
                             for rank, ids in zip(survivors.ranks.tolist(), survivors.id_lists(), strict=True)],
                            dtype=bool)
            through = kept[owners]
        dropped = len(survivors) - int(kept.sum())
        if dropped:   # a zero would add a counter that stats.json lists
            self.dropped_cap.inc(dropped)
        if dropped < len(survivors):
            yield from survivors.take(np.flatnonzero(kept)).by_file()
        yield beam.pvalue.TaggedOutput("counts", np.stack([
            np.bincount(survivors.ids[through], minlength=self.entries),
            np.bincount(survivors.ids[kept[owners]], minlength=self.entries)]))


class ReadSelectedFn(beam.DoFn):
    """``(file number, [Survivors])`` -> the file's selected rows, read again, with ``queries`` (every
    query of its language's list and neutral ones it matched, sorted) and ``lang``, as a table per read
    batch; counted ``out``."""

    def __init__(self, files: list[str], spec: IndexSpec):
        self.files, self.spec = files, spec

    def setup(self):
        self.index = self.spec.index()
        self.selected = counter(STAGE, "out")

    def process(self, item):
        with collector_paused():
            file_number, groups = item
            kept = Survivors.concat(list(groups))
            order = np.argsort(kept.rows, kind="stable")
            rows = kept.rows[order]
            id_lists = kept.id_lists()
            found = 0
            for first, batch in candidate_batches(self.files[file_number], Counter()):
                size = len(batch["text"])
                low, high = np.searchsorted(rows, [first, first + size]).tolist()
                if low == high:
                    continue
                picks, positions = order[low:high].tolist(), (rows[low:high] - first).tolist()
                columns = {name: [values[p] for p in positions] for name, values in batch.items()}
                columns["queries"] = [self.index.queries_of(id_lists[k]) for k in picks]
                columns["lang"] = [kept.langs[k] for k in picks]
                yield pa.Table.from_pydict(columns, schema=SELECTED_SCHEMA)
                found += high - low
                if found == len(kept):
                    break
            self.selected.inc(found)


def query_count_rows(index: QueryIndex, matched: np.ndarray, kept_selected: np.ndarray) -> list[dict]:
    """Every entry of the list (zero counts included) with its counts, heaviest first."""
    rows = [{"lang": lang, "query": query, "matched": m, "kept": k, "selected": s}
            for (lang, query), m, k, s in zip(index.entries, matched.tolist(), kept_selected[0].tolist(),
                                              kept_selected[1].tolist(), strict=True)]
    rows.sort(key=lambda r: (-r["matched"], -r["selected"], r["query"], r["lang"] or ""))
    return rows


def write_query_counts(kept_selected: np.ndarray, matched: np.ndarray, path: str, spec: IndexSpec) -> int:
    """query_counts.parquet: every entry of the list (zero counts included), heaviest first."""
    rows = query_count_rows(spec.index(), matched, kept_selected)
    fileio.write_parquet_atomic(path, pa.Table.from_pylist(rows, schema=QUERY_COUNTS_SCHEMA))
    return len(rows)


def caps_of_entries(matched: np.ndarray, spec: IndexSpec, cap: int, rule: str) -> np.ndarray:
    return entry_caps(spec.index(), matched, cap, rule)[0]


def thresholds_and_caps(incidences, matched: np.ndarray, caps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``CapFn``'s side input for ``top``: each entry's rank threshold and cap."""
    return top_thresholds(*incidences, matched, caps), caps


def build(pipeline: beam.Pipeline, options: SelectOptions) -> None:
    files = candidate_files(options.candidates)
    spec = IndexSpec(options.queries, options.match, options.keep_case, kept_languages(options.lang))
    entries = len(spec.index())
    survivors = (pipeline
                 | "Files" >> beam.Create(list(enumerate(files)))
                 | "SpreadFiles" >> beam.Reshuffle()
                 | "MatchFiles" >> beam.ParDo(MatchFileFn(spec, options.strict))
                 | "GroupTexts" >> beam.GroupByKey()
                 | "BatchBuckets" >> beam.BatchElements(min_batch_size=TEXT_BATCH, max_batch_size=TEXT_BATCH,
                                                        element_size_fn=records_in_bucket)
                 | "Decide" >> beam.ParDo(DecideFn(spec, options.lang, options.seed, options.lang_detector)))
    matched = (survivors
               | "MatchedCounts" >> beam.Map(matched_counts, entries)
               | "SumMatched" >> beam.CombineGlobally(SumArrays((entries,))))
    caps = matched | "EntryCaps" >> beam.Map(caps_of_entries, spec, options.cap, options.cap_rule)
    if options.balance == "top":   # CapFn's side input: (rank threshold, cap) of each entry
        limits = (survivors
                  | "Incidences" >> beam.Map(capped_incidences, beam.pvalue.AsSingleton(matched),
                                             beam.pvalue.AsSingleton(caps))
                  | "Gather" >> beam.CombineGlobally(GatherIncidences(
                      options.cap if options.cap_rule == "same" else None))
                  | "Thresholds" >> beam.Map(thresholds_and_caps, beam.pvalue.AsSingleton(matched),
                                             beam.pvalue.AsSingleton(caps)))
    else:   # (matched count, cap) of each entry
        limits = matched | "Limits" >> beam.Map(lambda counts, entry_cap: (counts, entry_cap),
                                                beam.pvalue.AsSingleton(caps))
    capped = (survivors
              | "Cap" >> beam.ParDo(CapFn(options.balance, entries), beam.pvalue.AsSingleton(limits))
              .with_outputs("counts", main="kept"))
    selected = (capped["kept"]
                | "GroupKept" >> beam.GroupByKey()
                | "ReadSelected" >> beam.ParDo(ReadSelectedFn(files, spec)))
    selected | "WriteSelected" >> WriteParquetTables(fileio.join(options.out, SELECTED_DIR), SELECTED_SCHEMA,
                                                      options.rows_per_part)
    (capped["counts"]
     | "SumKept" >> beam.CombineGlobally(SumArrays((2, entries)))
     | "WriteCounts" >> beam.Map(write_query_counts, beam.pvalue.AsSingleton(matched),
                                 fileio.join(options.out, QUERY_COUNTS), spec))


def check_options(options: SelectOptions) -> Counter:
    """Settings a library caller may get wrong (the command line checks them as it parses); the query-list
    lines left out by reason (``line_too_long``). The query index is built here, once per process
    (``matching.shared_index``): a bad list fails in one line before the job starts."""
    check_values(options)
    options.lang = parse_select_lang(options.lang)
    fileio.check_readable(options.queries, "--queries")   # every worker reads the list again: no http(s)
    for path in options.candidates:
        fileio.check_readable(path, "--candidates", http=True)
    skipped = IndexSpec(options.queries, options.match, options.keep_case, kept_languages(options.lang)).index().skipped
    if skipped:
        log.warning("--queries %s: left out %d line(s) longer than %d bytes", options.queries,
                    skipped["line_too_long"], MAX_QUERY_BYTES)
    return skipped


def counts_in_entry_order(index: QueryIndex, query_counts: list[dict]) -> np.ndarray:
    """query_counts.parquet's ``matched`` column in the index's entry order."""
    matched = {(r["lang"], r["query"]): r["matched"] for r in query_counts}
    return np.array([matched.get(entry, 0) for entry in index.entries], dtype=np.int64)


def query_figures(query_counts: list[dict], index: QueryIndex, entry_cap: np.ndarray,
                  skipped: Counter | None = None) -> dict:
    """The per-query figures of stats.json (``entry_cap``: each entry's cap, in entry order)."""
    matched = counts_in_entry_order(index, query_counts)
    return {"queries_total": len(index), "query_lines_skipped": dict(sorted((skipped or {}).items())),
            "queries_matched": int((matched > 0).sum()), "queries_capped": int((matched > entry_cap).sum()),
            "queries_never_matched": int((matched == 0).sum())}


def summary_figures(options: SelectOptions, stats: dict) -> dict:
    """The figures summary.html lists, under the names its readers know (rows in, selected, ...)."""
    return {"balance": options.balance, "match": options.match, "cap": options.cap, "lang": options.lang,
            "rows_in": stats["in"], "matched": stats["matched"], "selected": stats["out"],
            **{k: stats[k] for k in ("lang_detect_calls", "queries_total", "queries_matched", "queries_capped")},
            **{f"dropped_{k}": v for k, v in stats["dropped"].items()}}


def run_select(options: SelectOptions, beam_args: list[str] | None = None) -> dict:
    """Run the selection job; returns (and writes as ``OUT/stats.json``) its statistics."""
    skipped = check_options(options)
    partial = require_finished([*options.candidates, options.queries], allow_partial=options.allow_partial)
    with StageRun(STAGE, options.out, settings=options, partial_inputs=partial) as stage:
        pipeline = stage.pipeline(beam_args)
        build(pipeline, options)
        counts = stage.run(pipeline)
        counts_path = fileio.join(options.out, QUERY_COUNTS)
        query_counts = fileio.read_parquet(counts_path).to_pylist()
        index = IndexSpec(options.queries, options.match, options.keep_case, kept_languages(options.lang)).index()
        entry_cap, caps = entry_caps(index, counts_in_entry_order(index, query_counts), options.cap,
                                     options.cap_rule)
        figures = {"matched": counts.get("matched", 0), "lang_detect_calls": counts.get("lang_detect_calls", 0),
                   **query_figures(query_counts, index, entry_cap, skipped), "caps": caps}
        dropped = dropped_counts(counts, DROP_REASONS)
        png, page = write_summary(options.out, query_counts, summary_figures(
            options, {"in": counts.get("in", 0), "out": counts.get("out", 0), "dropped": dropped, **figures}),
            options.cap, caps=caps)
        return stage.finish(records_in=counts.get("in", 0), records_out=counts.get("out", 0), dropped=dropped,
                            outputs={"selected": fileio.join(options.out, SELECTED_DIR), "query_counts": counts_path,
                                     "plot": png, "summary": page},
                            **figures)
