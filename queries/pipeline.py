"""The query-list Beam job: dump ranges -> counts -> selection -> queries DIR.

Graph (every count is summed in hash buckets; no step holds the whole vocabulary)::

  dump ranges --CountPages--> word dicts per bucket --GroupByKey, sum--> word counts
                          |                                   --(>= min_count)--> unigram entries
                          |-> bigram dicts per bucket --GroupByKey, sum--> bigram counts
                          |       (>= min_bigram_count, count * 2**min_pmi <= N)
                          |       join word counts twice (by first word, by second word)
                          |       + N (side input) --(pmi >= min_pmi)--> bigram entries
                          |-> tokens --sum--> N
                          `-> article titles --join-- pageview sums per bucket (>= min_views) --> title entries
  wordnet data.* -------------------------------------------------------------> wordnet entries
  all entries --group by query--> rows --> queries.parquet + queries.txt (one writer, sorted)

``CountPages`` reads one byte range of a dump (see ``wikidump``) and emits its
partial counts as one dict per hash bucket, flushed whenever it holds
``flush_keys`` keys, so a reader's memory is bounded whatever the dump size; a
bucket's sum holds about ``distinct keys / count_buckets`` keys. Shipping a dict
per bucket instead of an element per key cut the Beam job's time by 4x on the
bench dump: per-element overhead, not counting, is what a Python runner pays for.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems

from wit_pipeline import fileio
from wit_pipeline.beam import counter, make_pipeline, run
from wit_pipeline.errors import UserError
from wit_pipeline.text import canonical

from . import pageviews as pv
from .counting import count_wikitext, merge_entry, pmi, summarize_sources, title_query
from .output import STATS_NAME, read_query_table, write_query_files
from .wikidump import DEFAULT_RANGE_BYTES, ReadRange, iter_range_pages, plan_ranges
from .wordnet import data_files, iter_synsets

log = logging.getLogger(__name__)

STAGE = "queries"


@dataclass(frozen=True)
class QueryOptions:
    """Selection thresholds (defaults: the CLIP paper / MetaCLIP values) and reading knobs."""

    min_count: int = 100          # a word occurring at least this often in Wikipedia is a query
    min_pmi: float = 30.0         # bigram PMI (bits) threshold, MetaCLIP's value for full Wikipedia
    min_bigram_count: int = 2     # bigrams seen fewer times are never scored (one-off noise)
    min_views: int = 70           # summed pageviews an article title needs
    keep_case: bool = False       # lower-case everything unless set (MetaCLIP keeps case)
    range_bytes: int = DEFAULT_RANGE_BYTES   # dump bytes per read task
    flush_keys: int = 500_000     # a reader emits its partial counts when it holds this many keys
    count_buckets: int = 1024     # keys are summed in this many hash buckets (memory per bucket ~ keys / buckets)

    def validate(self) -> None:
        for name in ("min_count", "min_bigram_count", "min_views", "range_bytes", "flush_keys", "count_buckets"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")


def _inc(name: str, value: int = 1) -> None:
    counter(STAGE, name).inc(value)


def bucket_of(key: str, buckets: int) -> int:
    """A bucket that is the same in every worker process (``hash()`` of a str is salted per process)."""
    return zlib.crc32(key.encode("utf-8")) % buckets


def split_into_buckets(counts: dict[str, int], buckets: int) -> list[tuple[int, dict[str, int]]]:
    """Partial counts -> one dict per non-empty bucket, sorted by bucket."""
    out: dict[int, dict[str, int]] = {}
    for key, value in counts.items():
        bucket = bucket_of(key, buckets)
        part = out.get(bucket)
        if part is None:
            part = out[bucket] = {}
        part[key] = value
    return sorted(out.items())


class CountPages(beam.DoFn):
    """One dump range -> partial word and bigram counts, as one dict per hash bucket, and titles.

    Emitting a dict per bucket rather than an element per key keeps the per-element cost of
    the runner (the bottleneck of a Python pipeline) proportional to buckets, not to keys.
    Outputs: main ``(bucket, {word: n})``, ``bigrams`` ``(bucket, {"a b": n})``,
    ``titles`` ``(title query, True)``, ``tokens`` (an int per flush).
    """

    def __init__(self, keep_case: bool, flush_keys: int, buckets: int):
        self.keep_case = keep_case
        self.flush_keys = flush_keys
        self.buckets = buckets

    def process(self, read_range: ReadRange):
        unigrams: Counter = Counter()
        bigrams: Counter = Counter()
        tokens = 0

        def skipped(reason: str, detail: str) -> None:
            _inc(f"pages_skipped_{reason}")

        for page in iter_range_pages(read_range, skipped):
            _inc("pages_read")
            if page.ns != 0:
                _inc("pages_skipped_namespace")
                continue
            if page.redirect:
                _inc("pages_skipped_redirect")
                continue
            _inc("pages_counted")
            _inc("wikitext_chars", len(page.text))
            page_tokens = count_wikitext(page.text, self.keep_case, unigrams, bigrams)
            tokens += page_tokens
            _inc("tokens", page_tokens)
            title = title_query(page.title, self.keep_case)
            if title:
                yield pvalue.TaggedOutput("titles", (title, True))
            if len(bigrams) >= self.flush_keys or len(unigrams) >= self.flush_keys:
                yield from self._flush(unigrams, bigrams, tokens)
                tokens = 0
        yield from self._flush(unigrams, bigrams, tokens)

    def _flush(self, unigrams: Counter, bigrams: Counter, tokens: int):
        yield from split_into_buckets(unigrams, self.buckets)
        for part in split_into_buckets(bigrams, self.buckets):
            yield pvalue.TaggedOutput("bigrams", part)
        if tokens:
            yield pvalue.TaggedOutput("tokens", tokens)
        unigrams.clear()
        bigrams.clear()


def sum_bucket(item, threshold: int, distinct_counter: str):
    """All partial dicts of one bucket -> ``(key, total)`` for totals >= threshold (one bucket in memory)."""
    _, parts = item
    totals: dict[str, int] = {}
    for part in parts:
        get = totals.get
        for key, value in part.items():
            totals[key] = get(key, 0) + value
    _inc(distinct_counter, len(totals))
    for key in sorted(totals):
        if totals[key] >= threshold:
            yield key, totals[key]


class SumPageviews(beam.DoFn):
    """One pageview dump file -> partial view sums per title query, one dict per hash bucket."""

    def __init__(self, keep_case: bool, flush_keys: int, buckets: int):
        self.keep_case = keep_case
        self.flush_keys = flush_keys
        self.buckets = buckets

    def process(self, path: str):
        views: Counter = Counter()
        for row in pv.iter_pageview_file(path):
            _inc("pageview_lines")
            if row is None:
                _inc("pageview_lines_skipped_malformed")
                continue
            reason = pv.is_article_view(row)
            if reason is not None:
                _inc(f"pageview_lines_skipped_{reason}")
                continue
            key = title_query(row.title, self.keep_case)
            if not key:
                _inc("pageview_lines_skipped_empty_title")
                continue
            views[key] += row.views
            if len(views) >= self.flush_keys:
                yield from split_into_buckets(views, self.buckets)
                views.clear()
        yield from split_into_buckets(views, self.buckets)


def read_wordnet_lemmas(path: str, keep_case: bool):
    """One data.* file -> (lemma query, 1) once per synset that has it."""
    for synset in iter_synsets(path):
        if isinstance(synset, str):
            log.warning("wordnet: skipping a malformed line: %s", synset)
            _inc("wordnet_lines_skipped_malformed")
            continue
        _inc("wordnet_synsets")
        if not synset.offset_ok:
            _inc("wordnet_offset_mismatches")
        for key in sorted({canonical(lemma, keep_case) for lemma in synset.lemmas} - {""}):
            yield key, 1


def _attach_first(item, min_count: int):
    word, grouped = item
    counts = list(grouped["word"])
    if not counts:  # cannot happen: every occurrence of "a b" is an occurrence of a
        return
    count_a = counts[0]
    for pair, count_ab in grouped["pairs"]:
        yield pair.split(" ", 1)[1], (pair, count_ab, count_a)


def _attach_second(item):
    word, grouped = item
    counts = list(grouped["word"])
    if not counts:
        return
    count_b = counts[0]
    for pair, count_ab, count_a in grouped["pairs"]:
        yield pair, count_ab, count_a, count_b


def _score_bigram(item, total: int, min_pmi: float):
    pair, count_ab, count_a, count_b = item
    score = pmi(count_ab, count_a, count_b, total)
    if score >= min_pmi:
        _inc("bigrams_admitted")
        yield pair, ("bigram", (count_ab, score))


def _select_title(item):
    """Join of dump titles with view sums that already reached min_views."""
    key, grouped = item
    is_article = any(True for _ in grouped["article"])
    views = list(grouped["views"])
    if not is_article:
        _inc("titles_viewed_not_in_dump")
        return
    _inc("titles_in_dump")
    if views:
        _inc("titles_admitted")
        yield key, ("title", views[0])
    else:
        _inc("titles_below_min_views")


def _may_reach_pmi(item, total: int, min_pmi: float) -> bool:
    return item[1] * 2.0 ** min_pmi <= total or min_pmi <= 0


def _count_through(name: str):
    def step(item):
        _inc(name)
        return item
    return step


def _at_least(threshold: int, name: str | None = None):
    def keep(item) -> bool:
        ok = item[1] >= threshold
        if ok and name:
            _inc(name)
        return ok
    return keep


def build_graph(
    pipeline: beam.Pipeline,
    ranges: list[ReadRange],
    pageview_files: list[str],
    wordnet_files: list[str],
    options: QueryOptions,
    out: str,
):
    o = options
    counted = (
        pipeline
        | "DumpRanges" >> beam.Create(ranges)
        | "SpreadRanges" >> beam.Reshuffle()
        | "CountPages" >> beam.ParDo(CountPages(o.keep_case, o.flush_keys, o.count_buckets)).with_outputs(
            "bigrams", "titles", "tokens", main="words")
    )
    # Words seen fewer than min(min_count, min_bigram_count) times are needed by no later step.
    word_counts = (
        counted.words
        | "GroupWordBuckets" >> beam.GroupByKey()
        | "SumWords" >> beam.FlatMap(sum_bucket, min(o.min_count, o.min_bigram_count), "distinct_words")
    )
    total_tokens = counted.tokens | "SumTokens" >> beam.CombineGlobally(sum)
    entries = [
        word_counts
        | "MinCount" >> beam.Filter(_at_least(o.min_count, "unigrams_admitted"))
        | "UnigramEntries" >> beam.Map(lambda kv: (kv[0], ("unigram", kv[1])))
    ]

    # Bigrams: drop rare pairs, then fetch count(a) and count(b) by two joins keyed by word.
    # pmi <= log2(N / count(a b)) since count(a), count(b) >= count(a b): pairs too frequent to
    # reach min_pmi are dropped before the joins.
    bigram_counts = (
        counted.bigrams
        | "GroupBigramBuckets" >> beam.GroupByKey()
        | "SumBigrams" >> beam.FlatMap(sum_bucket, o.min_bigram_count, "distinct_bigrams")
        | "CountOverMinCount" >> beam.Map(_count_through("bigrams_over_min_count"))
        | "PmiUpperBound" >> beam.Filter(_may_reach_pmi, beam.pvalue.AsSingleton(total_tokens), o.min_pmi)
    )
    join_words = word_counts | "WordsForJoin" >> beam.Filter(_at_least(o.min_bigram_count))
    by_first = bigram_counts | "KeyByFirst" >> beam.Map(lambda kv: (kv[0].split(" ", 1)[0], kv))
    with_first = (
        {"pairs": by_first, "word": join_words}
        | "JoinFirst" >> beam.CoGroupByKey()
        | "AttachFirst" >> beam.FlatMap(_attach_first, o.min_bigram_count)
    )
    entries.append(
        {"pairs": with_first, "word": join_words}
        | "JoinSecond" >> beam.CoGroupByKey()
        | "AttachSecond" >> beam.FlatMap(_attach_second)
        | "ScoreBigrams" >> beam.FlatMap(_score_bigram, beam.pvalue.AsSingleton(total_tokens), o.min_pmi)
    )

    if pageview_files:
        views = (
            pipeline
            | "PageviewFiles" >> beam.Create(pageview_files)
            | "SpreadPageviewFiles" >> beam.Reshuffle()
            | "SumPageviewsPerFile" >> beam.ParDo(SumPageviews(o.keep_case, o.flush_keys, o.count_buckets))
            | "GroupViewBuckets" >> beam.GroupByKey()
            | "SumViews" >> beam.FlatMap(sum_bucket, o.min_views, "distinct_viewed_titles")
        )
        entries.append(
            {"article": counted.titles, "views": views}
            | "JoinTitles" >> beam.CoGroupByKey()
            | "SelectTitles" >> beam.FlatMap(_select_title)
        )

    if wordnet_files:
        entries.append(
            pipeline
            | "WordNetFiles" >> beam.Create(wordnet_files)
            | "ReadWordNet" >> beam.FlatMap(read_wordnet_lemmas, o.keep_case)
            | "SynsetsPerLemma" >> beam.CombinePerKey(sum)
            | "WordNetEntries" >> beam.Map(lambda kv: (kv[0], ("wordnet", kv[1])))
        )

    return (
        entries
        | "AllEntries" >> beam.Flatten()
        | "GroupByQuery" >> beam.GroupByKey()
        | "MergeSources" >> beam.MapTuple(merge_entry)
        | "OneList" >> beam.combiners.ToList()
        | "WriteQueries" >> beam.Map(write_query_files, out)
    )


def _file_sizes(paths: list[str]) -> list[int]:
    sizes = []
    for result in FileSystems.match(paths):
        sizes.append(result.metadata_list[0].size_in_bytes)
    return sizes


def plan_dump_ranges(wikipedia: Iterable[str], range_bytes: int) -> tuple[list[ReadRange], list[str]]:
    """Expand --wikipedia into read ranges; multistream index files are left out (and returned)."""
    files = fileio.expand(list(wikipedia), what="--wikipedia")
    index_files = [f for f in files if "-index" in f.rsplit("/", 1)[-1] and ".txt" in f.rsplit("/", 1)[-1]]
    dumps = [f for f in files if f not in index_files]
    if not dumps:
        raise UserError("--wikipedia names only multistream index files, no dump")
    ranges: list[ReadRange] = []
    for path, size in zip(dumps, _file_sizes(dumps)):
        ranges.extend(plan_ranges(path, size, range_bytes))
    return ranges, index_files


def build_queries(
    wikipedia: list[str],
    out: str,
    pageviews: list[str] | None = None,
    wordnet: str | None = None,
    options: QueryOptions = QueryOptions(),
    beam_args: list[str] | None = None,
) -> dict:
    """Build the query list into ``out``; returns the stats written to ``out/stats.json``."""
    options.validate()
    ranges, index_files = plan_dump_ranges(wikipedia, options.range_bytes)
    for index_file in index_files:
        log.warning("--wikipedia: leaving out %s (a multistream index, not a dump)", index_file)
    pageview_files = fileio.expand(list(pageviews), what="--pageviews") if pageviews else []
    wordnet_files = data_files(wordnet) if wordnet else []
    fileio.makedirs(out)

    pipeline = make_pipeline(beam_args)
    build_graph(pipeline, ranges, pageview_files, wordnet_files, options, out)
    # Beam logs a failing DoFn's traceback itself; a worker's UserError is re-raised here as
    # the one line it is, anything else keeps its traceback, so that log would only repeat it.
    beam_log = logging.getLogger("apache_beam.runners.common")
    previous_level = beam_log.level
    beam_log.setLevel(logging.CRITICAL)
    try:
        counters = run(pipeline, STAGE)
    except Exception as exc:
        user_error = _find_user_error(exc)
        if user_error is not None:
            raise UserError(str(user_error).split(" [while running")[0]) from exc
        raise
    finally:
        beam_log.setLevel(previous_level)

    stats = summarize_sources(read_query_table(out).select(["sources"]).to_pylist())
    stats["thresholds"] = {
        "min_count": options.min_count, "min_pmi": options.min_pmi,
        "min_bigram_count": options.min_bigram_count, "min_views": options.min_views,
        "keep_case": options.keep_case,
    }
    stats["inputs"] = _input_stats(counters, ranges, index_files, pageview_files, wordnet_files)
    stats["counters"] = counters
    fileio.write_json_atomic(fileio.join(out, STATS_NAME), stats)
    return stats


def _input_stats(counters: dict, ranges, index_files, pageview_files, wordnet_files) -> dict:
    skipped = {
        name[len("pages_skipped_"):]: value for name, value in counters.items() if name.startswith("pages_skipped_")
    }
    pageview_skipped = {
        name[len("pageview_lines_skipped_"):]: value
        for name, value in counters.items() if name.startswith("pageview_lines_skipped_")
    }
    return {
        "wikipedia_files": len({r.path for r in ranges}),
        "wikipedia_read_ranges": len(ranges),
        "wikipedia_index_files_left_out": len(index_files),
        "pages_read": counters.get("pages_read", 0),
        "pages_counted": counters.get("pages_counted", 0),
        "pages_skipped": dict(sorted(skipped.items())),
        "tokens": counters.get("tokens", 0),
        "wikitext_chars": counters.get("wikitext_chars", 0),
        "distinct_words": counters.get("distinct_words", 0),
        "distinct_bigrams": counters.get("distinct_bigrams", 0),
        "bigrams_over_min_count": counters.get("bigrams_over_min_count", 0),
        "pageview_files": len(pageview_files),
        "pageview_lines": counters.get("pageview_lines", 0),
        "pageview_lines_skipped": dict(sorted(pageview_skipped.items())),
        "distinct_viewed_titles": counters.get("distinct_viewed_titles", 0),
        "titles_in_dump": counters.get("titles_in_dump", 0),
        "titles_viewed_not_in_dump": counters.get("titles_viewed_not_in_dump", 0),
        "titles_below_min_views": counters.get("titles_below_min_views", 0),
        "wordnet_files": len(wordnet_files),
        "wordnet_synsets": counters.get("wordnet_synsets", 0),
        "wordnet_lines_skipped_malformed": counters.get("wordnet_lines_skipped_malformed", 0),
        "wordnet_offset_mismatches": counters.get("wordnet_offset_mismatches", 0),
    }


def _find_user_error(exc: BaseException) -> BaseException | None:
    """The UserError inside a runner's wrapped exception chain, or one re-raised by type name."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UserError):
            return current
        current = current.__cause__ or current.__context__
    text = str(exc)
    marker = "UserError: "
    if marker in text:
        return UserError(text.split(marker, 1)[1].splitlines()[0].split(" [while running")[0])
    return None

