"""The selection job: match candidates against the queries, decide language, cap pairs per query.

::

    candidate files ─► MatchFiles: read in file order, match (one automaton per language); matched rows
        as compact records (text, uid, provenance, file, row, entry ids) in batches keyed by a hash of the text
      ─► GroupByKey(text bucket) ─► Decide: language once per distinct matched text (batched), routed to
          that language's list; one pair per uid (smallest provenance); survivors (uid, rank, lang, ids, file, row)
      ─► per-query matched counts and rank incidences (lifted combines over numpy arrays)
          ─► caps per language (--cap-rule) and, for top, the rank threshold of each query
      ─► Cap: each survivor kept or not (side inputs: thresholds or counts, caps); kept refs keyed by file
      ─► GroupByKey(file) ─► ReadSelected: each file read again, the kept rows with queries and lang
      ─► selected/part-*.parquet
      └► kept / selected counts ─► query_counts.parquet; then stats.json, query_counts.png, summary.html

Only compact records and numpy arrays cross a shuffle; full rows exist only while a file is read, so
the job holds per matched row about a hundred bytes, not the row.

Every candidate row ends in exactly one place:
``in = out (selected) + dropped[no_match] + dropped[lang] + dropped[duplicate] + dropped[cap]
+ dropped[bad_row]`` (a row the table reader cannot use, counted by reason as ``bad_rows_<reason>``).
``no_match``: the text contains no query of the languages kept (``--lang``) nor a language-neutral one;
``lang``: its detected language is not kept, or none of its matches is in that language's list.
"""

from __future__ import annotations

import logging
import pickle
import re
import zlib
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa

from .. import fileio
from ..beam import StageCounters, counter
from ..errors import UserError
from ..langcodes import normalise
from ..language import DEFAULT_DETECTOR, DETECTORS, detect_languages
from ..options import check_values, option
from ..pairs import TEXT_BATCH, provenance_key
from ..parquet_parts import WriteParquetTables
from ..querylist import MAX_QUERY_BYTES, load_query_lists
from ..schemas import CANDIDATE_COLUMNS, QUERY_COUNTS_SCHEMA, SELECTED_SCHEMA, pair_uid
from ..stage import StageRun, dropped_counts, require_finished
from ..tables import MissingColumns, iter_table_rows
from .balancing import BALANCES, GatherIncidences, SumArrays, keep_probability_each, pair_rank, top_thresholds
from .caps import CAP_RULES, choose_caps
from .matching import MODES, QueryIndex, shared_index
from .plot import write_summary

log = logging.getLogger(__name__)

STAGE = "select"
SELECTED_DIR = "selected"
QUERY_COUNTS = "query_counts.parquet"
DROP_REASONS = ("no_match", "lang", "duplicate", "cap")
TEXT_BUCKETS = 256    # shuffle keys of the matched records: a text's copies all land in one bucket
RECORDS_PER_BATCH = 4096
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


def read_rows(path: str, counts: Counter, strict: bool = False):
    """Row dicts of one candidate parquet file (missing provenance columns as None, numbers as their text,
    uid filled in); each row counted ``in``, a row the table reader finds bad (a list where a string
    belongs, bytes that are not UTF-8 ...) counted ``in`` and ``dropped_bad_row`` (by reason as
    ``bad_rows_<reason>``), a file without url/text columns counted ``unreadable_files``."""
    try:
        for row in iter_table_rows(path, columns=CANDIDATE_COLUMNS, required=("url", "text"), counts=counts,
                                   strict=strict, as_text=True):
            counts["in"] += 1
            row["url"], row["text"] = row["url"] or "", row["text"] or ""
            row["source"] = row["source"] or "table"
            if not row["uid"]:
                row["uid"] = pair_uid(row["url"], row["text"])
            yield row
    except MissingColumns:
        counts["unreadable_files"] += 1
        log.warning("skipping %s: no url/text columns", path)
    finally:   # a bad row was read too: it is accounted for as a drop
        counts["in"] += counts["bad_rows"]
        counts["dropped_bad_row"] += counts["bad_rows"]


def packed(records: list) -> bytes:
    """A batch of records as one bytes value: a runner that holds a shuffle in memory (the DirectRunner)
    keeps one compact object per batch, not a tuple of Python objects per record."""
    return pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)


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
    """``(file number, path)`` -> ``(text bucket, [record])`` batches of the file's matched rows, a record
    being ``(text, uid, provenance key, file number, row number, entry ids)``; rows are counted ``in``,
    ``matched`` or ``dropped_no_match``."""

    def __init__(self, spec: IndexSpec, strict: bool):
        self.spec, self.strict = spec, strict

    def setup(self):
        self.index = self.spec.index()
        self.counters = StageCounters(STAGE)

    def process(self, item):
        file_number, path = item
        counts = Counter()
        pending: dict[int, list] = {}
        match_ids = self.index.match_ids
        try:
            for row_number, row in enumerate(read_rows(path, counts, self.strict)):
                text = row["text"]
                ids = match_ids(text)
                if not ids:
                    counts["dropped_no_match"] += 1
                    continue
                counts["matched"] += 1
                bucket = text_bucket(text)
                batch = pending.setdefault(bucket, [])
                batch.append((text, row["uid"], provenance_key(row), file_number, row_number, ids))
                if len(batch) >= RECORDS_PER_BATCH:
                    yield bucket, packed(pending.pop(bucket))
            for bucket, batch in pending.items():
                yield bucket, packed(batch)
        finally:
            self.counters.add(counts)


def texts_of_bucket(item) -> list[tuple[str, list]]:
    """``(bucket, [packed records])`` -> ``[(text, its records)]``, one entry per distinct text."""
    _bucket, batches = item
    by_text: dict[str, list] = {}
    for batch in batches:
        for record in pickle.loads(batch):
            by_text.setdefault(record[0], []).append(record)
    return sorted(by_text.items())


class DecideFn(beam.DoFn):
    """A batch of buckets' ``[(text, records)]`` -> one batch of survivors ``(uid, rank, lang, entry ids,
    file, row)``: language ID once per distinct text (``lang_detect_calls``; many texts per call: each call
    has a fixed cost, and langdetect's runs until its slowest text converges), only the ids of its
    language's list and the neutral ones, one copy per uid (the smallest provenance; ``dropped_duplicate``),
    ``dropped_lang``."""

    def __init__(self, spec: IndexSpec, lang: str, seed: int, detector: str = DEFAULT_DETECTOR):
        self.spec, self.lang, self.seed, self.detector = spec, lang, seed, detector

    def setup(self):
        self.index = self.spec.index()
        self.kept = kept_languages(self.lang)
        self.counters = StageCounters(STAGE)

    def process(self, buckets):
        by_text = dict(group for bucket in buckets for group in bucket)
        texts = list(by_text)
        counts = Counter()
        if self.lang == "any":
            langs = [None] * len(texts)
        else:
            langs = detect_languages(texts, self.seed, detector=self.detector)   # langcodes.normalise codes
            counts["lang_detect_calls"] += len(texts)
        survivors = []
        for text, lang in zip(texts, langs, strict=True):
            records = by_text[text]
            ids = records[0][5]   # matching is a function of the text: every copy has the same ids
            if lang is not None:
                ids = self.index.route(ids, lang) if self.kept is None or lang in self.kept else []
                if not ids:
                    counts["dropped_lang"] += len(records)
                    continue
            survivors.extend(self._one_per_pair(records, lang, ids, counts))
        self.counters.add(counts)
        if survivors:
            yield survivors

    def _one_per_pair(self, records: list, lang: str | None, ids: list[int], counts: Counter):
        by_uid: dict[str, list] = {}
        for record in records:
            by_uid.setdefault(record[1], []).append(record)
        for uid, copies in by_uid.items():
            if len(copies) > 1:
                counts["dropped_duplicate"] += len(copies) - 1
            _text, _uid, _provenance, file_number, row_number, _ids = min(copies, key=lambda r: r[2:5])
            yield uid, pair_rank(uid, self.seed), lang, ids, file_number, row_number


def incidence_arrays(survivors: list) -> tuple[np.ndarray, np.ndarray]:
    """One (entry id, pair rank) per query each survivor matched."""
    lengths = [len(s[3]) for s in survivors]
    entries = np.fromiter((i for s in survivors for i in s[3]), dtype=np.int64, count=sum(lengths))
    ranks = np.repeat(np.array([s[1] for s in survivors], dtype=np.uint64), lengths)
    return entries, ranks


def matched_counts(survivors: list, entries: int) -> np.ndarray:
    return np.bincount(np.fromiter((i for s in survivors for i in s[3]), dtype=np.int64), minlength=entries)


def entry_caps(index: QueryIndex, matched: np.ndarray, cap: int, rule: str) -> tuple[np.ndarray, dict[str, int]]:
    """The cap of every entry (its language's, ``--cap`` for neutral entries) and ``{lang: cap}``."""
    per_lang: dict[str, list[int]] = {}
    for lang, count in zip(index.entry_langs, matched.tolist(), strict=True):
        if lang is not None:
            per_lang.setdefault(lang, []).append(count)
    caps = choose_caps(per_lang, cap, rule).caps if per_lang else {}
    return np.array([caps.get(lang, cap) for lang in index.entry_langs], dtype=np.int64), caps


class CapFn(beam.DoFn):
    """A batch of survivors -> kept refs ``(file, [(row, lang, ids)])`` and a ``(2, entries)`` array of
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

    def process(self, survivors, limits):
        thresholds_or_matched, caps = self._lists(limits)
        kept_refs: dict[int, list] = {}
        through_ids, selected_ids = [], []
        for _uid, rank, lang, ids, file_number, row_number in survivors:
            if self.balance == "top":
                through = [i for i in ids if rank <= thresholds_or_matched[i]]
            else:
                chance = keep_probability_each([thresholds_or_matched[i] for i in ids], [caps[i] for i in ids])
                through = ids if rank / 2.0**64 < chance else []
            if through:
                through_ids.extend(through)
                selected_ids.extend(ids)
                kept_refs.setdefault(file_number, []).append((row_number, lang, ids))
        dropped = len(survivors) - sum(map(len, kept_refs.values()))
        if dropped:   # a zero would add a counter that stats.json lists
            self.dropped_cap.inc(dropped)
        yield from kept_refs.items()
        yield beam.pvalue.TaggedOutput("counts", np.stack([
            np.bincount(np.asarray(through_ids, dtype=np.int64), minlength=self.entries),
            np.bincount(np.asarray(selected_ids, dtype=np.int64), minlength=self.entries)]))


class ReadSelectedFn(beam.DoFn):
    """``(file number, [[(row, lang, ids)]])`` -> the file's selected rows, read again, with ``queries``
    (every query of its language's list and neutral ones it matched, sorted) and ``lang``, as tables of up
    to ``RECORDS_PER_BATCH`` rows; counted ``out``."""

    def __init__(self, files: list[str], spec: IndexSpec):
        self.files, self.spec = files, spec

    def setup(self):
        self.index = self.spec.index()
        self.selected = counter(STAGE, "out")

    def process(self, item):
        file_number, groups = item
        wanted = {row: (lang, ids) for group in groups for row, lang, ids in group}
        found, rows = 0, []
        for row_number, row in enumerate(read_rows(self.files[file_number], Counter())):
            chosen = wanted.get(row_number)
            if chosen is None:
                continue
            lang, ids = chosen
            row["queries"], row["lang"] = self.index.queries_of(ids), lang
            rows.append(row)
            found += 1
            if len(rows) >= RECORDS_PER_BATCH:
                yield pa.Table.from_pylist(rows, schema=SELECTED_SCHEMA)
                rows = []
            if found == len(wanted):
                break
        if rows:
            yield pa.Table.from_pylist(rows, schema=SELECTED_SCHEMA)
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


def cap_limits(incidences, matched: np.ndarray, spec: IndexSpec, cap: int, rule: str, balance: str) -> tuple:
    """``CapFn``'s side input: ``(thresholds, caps)`` per entry for ``top`` (``(matched counts, caps)``
    for ``probabilistic``)."""
    caps, _by_lang = entry_caps(spec.index(), matched, cap, rule)
    if balance != "top":
        return matched, caps
    entries, ranks = incidences
    return top_thresholds(entries, ranks, matched, caps), caps


def build(pipeline: beam.Pipeline, options: SelectOptions) -> None:
    files = candidate_files(options.candidates)
    spec = IndexSpec(options.queries, options.match, options.keep_case, kept_languages(options.lang))
    entries = len(spec.index())
    survivors = (pipeline
                 | "Files" >> beam.Create(list(enumerate(files)))
                 | "SpreadFiles" >> beam.Reshuffle()
                 | "MatchFiles" >> beam.ParDo(MatchFileFn(spec, options.strict))
                 | "GroupTexts" >> beam.GroupByKey()
                 | "TextsOfBucket" >> beam.Map(texts_of_bucket)
                 | "BatchTexts" >> beam.BatchElements(min_batch_size=TEXT_BATCH, max_batch_size=TEXT_BATCH,
                                                      element_size_fn=len)
                 | "Decide" >> beam.ParDo(DecideFn(spec, options.lang, options.seed, options.lang_detector)))
    matched = (survivors
               | "MatchedCounts" >> beam.Map(matched_counts, entries)
               | "SumMatched" >> beam.CombineGlobally(SumArrays((entries,))))
    same_caps = options.cap_rule == "same"
    incidences = (survivors
                  | "Incidences" >> beam.Map(incidence_arrays)
                  | "Gather" >> beam.CombineGlobally(GatherIncidences(options.cap if same_caps else None)))
    limits = incidences | "Limits" >> beam.Map(cap_limits, beam.pvalue.AsSingleton(matched), spec, options.cap,
                                               options.cap_rule, options.balance)
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


def check_options(options: SelectOptions) -> tuple[dict[str | None, list[str]], Counter]:
    """Settings a library caller may get wrong (the command line checks them as it parses); the query
    lists, and the query-list lines left out by reason (``line_too_long``)."""
    check_values(options)
    options.lang = parse_select_lang(options.lang)
    fileio.check_readable(options.queries, "--queries")   # every worker reads the list again: no http(s)
    for path in options.candidates:
        fileio.check_readable(path, "--candidates", http=True)
    skipped = Counter()
    lists = load_query_lists(options.queries, options.keep_case, skipped)   # a bad list fails here, in one line
    if skipped:
        log.warning("--queries %s: left out %d line(s) longer than %d bytes", options.queries,
                    skipped["line_too_long"], MAX_QUERY_BYTES)
    return lists, skipped


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
    _lists, skipped = check_options(options)
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
