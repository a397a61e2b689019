"""The named steps of the query-list graph (``pipeline.build_graph`` wires them), and their DoFns.

Composite transforms, in graph order: ``CountWikipedia`` (dump ranges -> word and bigram counts,
article titles, N), ``UnigramEntries``, ``ScoreBigrams``, ``CountPageviews``, ``TitleEntries``,
``WordNetEntries``, ``MergeEntries`` (one row per query) and ``WriteQueryList``; ``SumBuckets``
sums partial counts for the first and the fourth.

Every count is summed in hash buckets; no step holds the whole vocabulary. ``CountPages`` reads
one byte range of a dump per element (see ``wikidump``) and emits its partial counts as one dict
per hash bucket, flushed whenever it holds ``flush_keys`` keys, so a reader's memory is bounded
whatever the dump size; a bucket's sum holds about ``distinct keys / count_buckets`` keys.
Shipping a dict per bucket instead of an element per key cut the Beam job's time by 4x on the
bench dump: per-element overhead, not counting, is what a Python runner pays for.

Every key carries its language (``queries.languages``: ``"de\tkatze"``, bigrams ``"de\trote\tkatze"``),
so one graph counts every language at once and each step applies that language's thresholds
(``Thresholds`` per language, a dict the steps are given).

Counters (namespace ``queries``), created once per DoFn: ``in`` for each candidate entry (a
distinct word, bigram, article title of the dump when pageviews are given, or WordNet lemma),
``out`` for each row, ``dropped_<reason>`` (``DROP_REASONS``) for each candidate that is not a
row of its own; input damage and input filtering as ``<unit>_skipped_<reason>``
(``pages_skipped_namespace``, ``pageview_lines_skipped_malformed``, ...); other figures as nouns
(``tokens``, ``distinct_words``, ``titles_in_dump``, ...). A build of several languages also
counts ``<name>@<lang>`` for ``in``, ``out``, ``tokens``, ``pages_counted`` and each ``dropped_<reason>``
(``LangCounters``); a one-language build keeps exactly the counters above.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from typing import Iterable

import apache_beam as beam
from apache_beam import pvalue

from wit_pipeline.beam import counter
from wit_pipeline.text import canonical

from . import pageviews as pv
from .counting import bigram_query, count_wikitext, merge_entry, pmi, title_query
from .languages import Thresholds, key_lang, split_key
from .output import write_query_files
from .wikidump import PAGE_DAMAGE_REASONS, Page, ReadRange, SiteNamespaces, iter_range_pages
from .wordnet import DATA_FILES, iter_omw_lemmas, iter_synsets

log = logging.getLogger(__name__)

STAGE = "queries"   # the counter namespace
# Why a candidate entry is not a row of its own; ``merged``: a query several sources found is one
# row, and each source record after the first counts here.
DROP_REASONS = ("below_min_count", "below_min_bigram_count", "below_min_pmi", "below_min_views", "merged")
PAGE_SKIP_REASONS = ("namespace", "redirect", *PAGE_DAMAGE_REASONS)
PAGEVIEW_SKIP_REASONS = ("malformed", *pv.NOT_ARTICLE_REASONS, "empty_title")
WARNINGS_PER_FILE = 5   # malformed WordNet lines named in the log per file; all are counted


# --- pure helpers -----------------------------------------------------------------------------------


def bucket_of(key: str, buckets: int) -> int:
    """A bucket that is the same in every worker process (``hash()`` of a str is salted per process)."""
    return zlib.crc32(key.encode("utf-8")) % buckets


def split_into_buckets(counts: dict[str, int], buckets: int, prefix: str = "") -> list[tuple[int, dict[str, int]]]:
    """Partial counts -> one dict per non-empty bucket, sorted by bucket; each key gets ``prefix`` in front."""
    out: dict[int, dict[str, int]] = {}
    for key, value in counts.items():
        key = prefix + key
        bucket = bucket_of(key, buckets)
        part = out.get(bucket)
        if part is None:
            part = out[bucket] = {}
        part[key] = value
    return sorted(out.items())


def sum_parts(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Partial count dicts -> their totals per key."""
    totals: dict[str, int] = {}
    for part in parts:
        get = totals.get
        for key, value in part.items():
            totals[key] = get(key, 0) + value
    return totals


def page_skip_reason(page: Page) -> str | None:
    """Why a page's words are not counted (``namespace``, ``redirect``), or None for an article."""
    if page.ns != 0:
        return "namespace"
    if page.redirect:
        return "redirect"
    return None


def may_reach_pmi(count_ab: int, total: int, min_pmi: float) -> bool:
    """pmi <= log2(N / count(a b)) since count(a), count(b) >= count(a b): more frequent pairs cannot reach it."""
    return count_ab * 2.0 ** min_pmi <= total or min_pmi <= 0


def per_language(thresholds: dict[str, Thresholds], name: str) -> dict[str, int | float]:
    """``{lang: value}`` of one threshold (``"min_count"``, ``"min_word_count"``, ...)."""
    return {lang: getattr(limits, name) for lang, limits in thresholds.items()}


class LangCounters:
    """``<name>@<lang>`` counters, made as languages appear; inert in a one-language build (``enabled`` False)."""

    def __init__(self, name: str, enabled: bool):
        self.name = name
        self.enabled = enabled
        self.made: dict = {}

    def inc(self, lang: str, value: int = 1) -> None:
        if not self.enabled or not value:
            return
        made = self.made.get(lang)
        if made is None:
            made = self.made[lang] = counter(STAGE, f"{self.name}@{lang}")
        made.inc(value)


# --- DoFns ------------------------------------------------------------------------------------------


class CountPages(beam.DoFn):
    """One dump range -> partial word and bigram counts, as one dict per hash bucket, and titles.

    Emitting a dict per bucket rather than an element per key keeps the per-element cost of
    the runner (the bottleneck of a Python pipeline) proportional to buckets, not to keys.
    An element is ``(lang, ReadRange)``: the range's words are that language's (``counting``).
    Outputs: main ``(bucket, {"lang\tword": n})``, ``bigrams`` ``(bucket, {"lang\ta\tb": n})``,
    ``titles`` ``("lang\ttitle query", True)``, ``tokens`` (``(lang, n)`` per flush).
    """

    def __init__(self, keep_case: bool, flush_keys: int, buckets: int, per_lang: bool = False):
        self.keep_case = keep_case
        self.flush_keys = flush_keys
        self.buckets = buckets
        self.pages_read = counter(STAGE, "pages_read")
        self.pages_counted = counter(STAGE, "pages_counted")
        self.wikitext_chars = counter(STAGE, "wikitext_chars")
        self.tokens = counter(STAGE, "tokens")
        self.lang_tokens = LangCounters("tokens", per_lang)
        self.lang_pages = LangCounters("pages_counted", per_lang)
        self.skipped = {reason: counter(STAGE, f"pages_skipped_{reason}") for reason in PAGE_SKIP_REASONS}

    def process(self, element: tuple[str, ReadRange]):
        lang, read_range = element
        unigrams: Counter = Counter()
        bigrams: Counter = Counter()
        tokens = 0
        site = SiteNamespaces(read_range)   # the wiki's own names of the File/Category links to drop
        for page in iter_range_pages(read_range, self._damaged, site):
            self.pages_read.inc()
            reason = page_skip_reason(page)
            if reason is not None:
                self.skipped[reason].inc()
                continue
            self.pages_counted.inc()
            self.lang_pages.inc(lang)
            self.wikitext_chars.inc(len(page.text))
            page_tokens = count_wikitext(page.text, self.keep_case, unigrams, bigrams, lang, site.link_names(lang))
            tokens += page_tokens
            self.tokens.inc(page_tokens)
            self.lang_tokens.inc(lang, page_tokens)
            title = title_query(page.title, self.keep_case)
            if title:
                yield pvalue.TaggedOutput("titles", (f"{lang}\t{title}", True))
            if len(bigrams) >= self.flush_keys or len(unigrams) >= self.flush_keys:
                yield from self._flush(lang, unigrams, bigrams, tokens)
                tokens = 0
        yield from self._flush(lang, unigrams, bigrams, tokens)

    def _damaged(self, reason: str, detail: str) -> None:
        self.skipped[reason].inc()

    def _flush(self, lang: str, unigrams: Counter, bigrams: Counter, tokens: int):
        prefix = lang + "\t"
        yield from split_into_buckets(unigrams, self.buckets, prefix)
        for part in split_into_buckets(bigrams, self.buckets, prefix):
            yield pvalue.TaggedOutput("bigrams", part)
        if tokens:
            yield pvalue.TaggedOutput("tokens", (lang, tokens))
        unigrams.clear()
        bigrams.clear()


class SumPageviews(beam.DoFn):
    """One pageview dump file -> partial view sums per ``"lang\ttitle query"``, one dict per hash bucket.

    A view counts for ``lang`` when its project code is ``lang`` or ``lang.m`` (``pageviews.view_lang``)
    and ``lang`` is one of ``langs``, the build's languages.
    """

    def __init__(self, keep_case: bool, flush_keys: int, buckets: int, langs: frozenset[str] = frozenset({"en"})):
        self.langs = frozenset(langs)
        self.keep_case = keep_case
        self.flush_keys = flush_keys
        self.buckets = buckets
        self.lines = counter(STAGE, "pageview_lines")
        self.skipped = {reason: counter(STAGE, f"pageview_lines_skipped_{reason}") for reason in PAGEVIEW_SKIP_REASONS}

    def process(self, path: str):
        views: Counter = Counter()
        for row in pv.iter_pageview_file(path):
            self.lines.inc()
            key, reason = self._title_of(row)
            if reason is not None:
                self.skipped[reason].inc()
                continue
            views[key] += row.views
            if len(views) >= self.flush_keys:
                yield from split_into_buckets(views, self.buckets)
                views.clear()
        yield from split_into_buckets(views, self.buckets)

    def _title_of(self, row: pv.PageviewLine | None) -> tuple[str, str | None]:
        """``(title query, None)`` for an article view, else ``("", reason it is skipped)``."""
        if row is None:
            return "", "malformed"
        lang, reason = pv.view_lang(row, self.langs)
        if reason is not None:
            return "", reason
        key = title_query(row.title, self.keep_case)
        return f"{lang}\t{key}", None if key else "empty_title"


class _SumBucket(beam.DoFn):
    """One bucket's partial dicts -> ``(key, total)`` for totals >= ``keep_at_least[key's lang]``, sorted by key."""

    def __init__(self, keep_at_least: dict[str, int], distinct: str, dropped_as: str | None):
        self.keep_at_least = keep_at_least
        self.per_lang = len(keep_at_least) > 1
        self.distinct = counter(STAGE, distinct)
        self.candidates = counter(STAGE, "in") if dropped_as else None
        self.dropped = counter(STAGE, f"dropped_{dropped_as}") if dropped_as else None
        self.lang_candidates = LangCounters("in", self.per_lang and bool(dropped_as))
        self.lang_dropped = LangCounters(f"dropped_{dropped_as}", self.per_lang and bool(dropped_as))

    def process(self, item):
        _, parts = item
        totals = sum_parts(parts)
        least = self.keep_at_least
        kept = [(key, totals[key]) for key in sorted(totals) if totals[key] >= least[key_lang(key)]]
        self.distinct.inc(len(totals))
        if self.candidates is not None:
            self.candidates.inc(len(totals))
            self.dropped.inc(len(totals) - len(kept))
            if self.per_lang:
                self._count_per_lang(totals, kept)
        yield from kept

    def _count_per_lang(self, totals: dict, kept: list) -> None:
        seen = Counter(key_lang(key) for key in totals)
        passed = Counter(key_lang(key) for key, _ in kept)
        for lang, n in seen.items():
            self.lang_candidates.inc(lang, n)
            self.lang_dropped.inc(lang, n - passed[lang])


class _AtLeast(beam.DoFn):
    """``(key, n)`` with n >= ``minimum[key's lang]`` pass; the others count as ``dropped_<reason>``."""

    def __init__(self, minimum: dict[str, int], reason: str):
        self.minimum = minimum
        self.dropped = counter(STAGE, f"dropped_{reason}")
        self.lang_dropped = LangCounters(f"dropped_{reason}", len(minimum) > 1)

    def process(self, item):
        lang = key_lang(item[0])
        if item[1] >= self.minimum[lang]:
            yield item
        else:
            self.dropped.inc()
            self.lang_dropped.inc(lang)


class _MayReachPmi(beam.DoFn):
    """Bigram counts that could still reach their language's ``min_pmi`` pass; the others count as
    ``dropped_below_min_pmi``. ``total``: N per language."""

    def __init__(self, min_pmi: dict[str, float]):
        self.min_pmi = min_pmi
        self.dropped = counter(STAGE, "dropped_below_min_pmi")
        self.lang_dropped = LangCounters("dropped_below_min_pmi", len(min_pmi) > 1)

    def process(self, item, total: dict[str, int]):
        lang = key_lang(item[0])
        if may_reach_pmi(item[1], total[lang], self.min_pmi[lang]):
            yield item
        else:
            self.dropped.inc()
            self.lang_dropped.inc(lang)


class _ScoreBigram(beam.DoFn):
    """``("lang\ta\tb", count(a b), count(a), count(b))`` -> ``("lang\tquery", bigram entry)`` when its PMI
    reaches the language's ``min_pmi``."""

    def __init__(self, min_pmi: dict[str, float]):
        self.min_pmi = min_pmi
        self.dropped = counter(STAGE, "dropped_below_min_pmi")
        self.lang_dropped = LangCounters("dropped_below_min_pmi", len(min_pmi) > 1)

    def process(self, item, total: dict[str, int]):
        pair, count_ab, count_a, count_b = item
        lang, a, b = pair.split("\t")
        score = pmi(count_ab, count_a, count_b, total[lang])
        if score >= self.min_pmi[lang]:
            yield f"{lang}\t{bigram_query(a, b, lang)}", ("bigram", (count_ab, score))
        else:
            self.dropped.inc()
            self.lang_dropped.inc(lang)


def _first_word(pair: str) -> str:
    """``"lang\ta\tb"`` -> ``"lang\ta"``, the key of its first word's count."""
    return pair[:pair.rindex("\t")]


def _second_word(pair: str) -> str:
    """``"lang\ta\tb"`` -> ``"lang\tb"``."""
    lang, _, rest = pair.partition("\t")
    return lang + rest[rest.index("\t"):]


def _attach_first(item):
    """Join by first word: ``(a, {pairs: [(a b, n)], word: [count(a)]})`` -> ``(b, (a b, n, count(a)))``."""
    _, grouped = item
    counts = list(grouped["word"])
    if not counts:  # cannot happen: every occurrence of "a b" is an occurrence of a
        return
    count_a = counts[0]
    for pair, count_ab in grouped["pairs"]:
        yield _second_word(pair), (pair, count_ab, count_a)


def _attach_second(item):
    """Join by second word: ``(b, {pairs: [(a b, n, count(a))], word: [count(b)]})`` -> scoring tuples."""
    _, grouped = item
    counts = list(grouped["word"])
    if not counts:
        return
    count_b = counts[0]
    for pair, count_ab, count_a in grouped["pairs"]:
        yield pair, count_ab, count_a, count_b


class _SelectTitle(beam.DoFn):
    """Join of dump titles with view sums that already reached min_views -> title entries."""

    def __init__(self, per_lang: bool = False):
        self.candidates = counter(STAGE, "in")
        self.in_dump = counter(STAGE, "titles_in_dump")
        self.not_in_dump = counter(STAGE, "titles_viewed_not_in_dump")
        self.below_min_views = counter(STAGE, "dropped_below_min_views")
        self.lang_candidates = LangCounters("in", per_lang)
        self.lang_below_min_views = LangCounters("dropped_below_min_views", per_lang)

    def process(self, item):
        key, grouped = item
        if not any(True for _ in grouped["article"]):
            self.not_in_dump.inc()
            return
        lang = key_lang(key)
        self.candidates.inc()
        self.lang_candidates.inc(lang)
        self.in_dump.inc()
        views = list(grouped["views"])
        if views:
            yield key, ("title", views[0])
        else:
            self.below_min_views.inc()
            self.lang_below_min_views.inc(lang)


class _ReadWordNet(beam.DoFn):
    """One ``(lang, path)`` WordNet file -> ``("lang\tlemma query", 1)`` once per synset that has it.

    A wndb ``data.*`` file (Princeton WordNet) or an Open Multilingual Wordnet ``.tab`` file
    (``wordnet.iter_omw_lemmas``), told apart by ``wordnet.is_omw_file``.
    """

    def __init__(self, keep_case: bool):
        self.keep_case = keep_case
        self.synsets = counter(STAGE, "wordnet_synsets")
        self.omw_lemmas = counter(STAGE, "wordnet_omw_lemmas")
        self.malformed = counter(STAGE, "wordnet_lines_skipped_malformed")
        self.offset_mismatches = counter(STAGE, "wordnet_offset_mismatches")

    def process(self, element: tuple[str, str]):
        lang, path = element
        if path.replace("\\", "/").rsplit("/", 1)[-1] in DATA_FILES:
            yield from self._wndb(lang, path)
        else:
            yield from self._omw(lang, path)

    def _omw(self, lang: str, path: str):
        malformed = 0
        seen = set()
        for item in iter_omw_lemmas(path):
            if isinstance(item, str):
                malformed += 1
                self._warn(malformed, item)
                continue
            synset, lemma = item
            key = canonical(lemma, self.keep_case)
            if key and (synset, key) not in seen:   # a file lists a pair once; repeated lines add no synset
                seen.add((synset, key))
                self.omw_lemmas.inc()
                yield f"{lang}\t{key}", 1
        self._warn_rest(path, malformed)

    def _warn(self, malformed: int, message: str) -> None:
        if malformed <= WARNINGS_PER_FILE:
            log.warning("wordnet: skipping a malformed line: %s", message)
        self.malformed.inc()

    def _warn_rest(self, path: str, malformed: int) -> None:
        if malformed > WARNINGS_PER_FILE:
            log.warning("wordnet: %s: %d more malformed lines skipped", path, malformed - WARNINGS_PER_FILE)

    def _wndb(self, lang: str, path: str):
        malformed = 0
        for synset in iter_synsets(path):
            if isinstance(synset, str):
                malformed += 1
                self._warn(malformed, synset)
                continue
            self.synsets.inc()
            if not synset.offset_ok:
                self.offset_mismatches.inc()
            for key in sorted({canonical(lemma, self.keep_case) for lemma in synset.lemmas} - {""}):
                yield f"{lang}\t{key}", 1
        self._warn_rest(path, malformed)


class _WordNetEntry(beam.DoFn):
    """``(lemma, synsets)`` -> a wordnet entry; every lemma is a candidate and an entry."""

    def __init__(self, per_lang: bool = False):
        self.candidates = counter(STAGE, "in")
        self.lang_candidates = LangCounters("in", per_lang)

    def process(self, item):
        self.candidates.inc()
        self.lang_candidates.inc(key_lang(item[0]))
        yield item[0], ("wordnet", item[1])


class _MergeRow(beam.DoFn):
    """``("lang\tquery", [(source, statistic), ...])`` -> its output row; the records beyond the first count
    as merged."""

    def __init__(self, per_lang: bool = False):
        self.rows = counter(STAGE, "out")
        self.merged = counter(STAGE, "dropped_merged")
        self.lang_rows = LangCounters("out", per_lang)
        self.lang_merged = LangCounters("dropped_merged", per_lang)

    def process(self, item):
        lang, query = split_key(item[0])
        row = merge_entry(query, item[1], lang)
        self.rows.inc()
        self.merged.inc(len(row["sources"]) - 1)
        self.lang_rows.inc(lang)
        self.lang_merged.inc(lang, len(row["sources"]) - 1)
        yield row


# --- composite transforms (the graph's named steps) -------------------------------------------------


class SumBuckets(beam.PTransform):
    """``(bucket, {key: n})`` partial counts -> ``(key, total)`` for totals >= ``keep_at_least[key's lang]``.

    One bucket's keys are in memory at a time. ``distinct`` names the counter of distinct keys.
    With ``dropped_as``, the keys are candidate entries of the stage: each counts ``in``, and those
    summed below ``keep_at_least`` count ``dropped_<dropped_as>``.
    """

    def __init__(self, keep_at_least: dict[str, int], distinct: str, dropped_as: str | None = None):
        super().__init__()
        self.keep_at_least = keep_at_least
        self.distinct = distinct
        self.dropped_as = dropped_as

    def expand(self, parts):
        return (
            parts
            | "GroupBuckets" >> beam.GroupByKey()
            | "Sum" >> beam.ParDo(_SumBucket(self.keep_at_least, self.distinct, self.dropped_as))
        )


class CountWikipedia(beam.PTransform):
    """Dump ranges -> ``{"words", "bigrams", "titles", "tokens"}``.

    Input: ``(lang, ReadRange)``. ``words``: ``("lang\tword", count)`` for words seen at least
    min(min_count, min_bigram_count) times (rarer ones are needed by no later step); ``bigrams``:
    ``("lang\ta\tb", count)`` for pairs seen at least min_bigram_count times; ``titles``:
    ``("lang\ttitle query", True)`` per counted article; ``tokens``: ``(lang, N)``, the number of
    words counted per language. Every distinct word and bigram is a candidate entry; those summed
    below the thresholds (``thresholds[lang]``) are counted dropped here.
    """

    def __init__(self, *, keep_case: bool, flush_keys: int, buckets: int, thresholds: dict[str, Thresholds]):
        super().__init__()
        self.count_pages = CountPages(keep_case, flush_keys, buckets, per_lang=len(thresholds) > 1)
        self.thresholds = thresholds

    def expand(self, ranges):
        counted = (
            ranges
            | "SpreadRanges" >> beam.Reshuffle()
            | "CountPages" >> beam.ParDo(self.count_pages).with_outputs("bigrams", "titles", "tokens", main="words")
        )
        # Below the lower threshold a word is below min_count too, so it is dropped as such.
        keep_words = per_language(self.thresholds, "min_word_count")
        keep_bigrams = per_language(self.thresholds, "min_bigram_count")
        return {
            "words": counted.words | "SumWords" >> SumBuckets(keep_words, "distinct_words", "below_min_count"),
            "bigrams": counted.bigrams
            | "SumBigrams" >> SumBuckets(keep_bigrams, "distinct_bigrams", "below_min_bigram_count"),
            "titles": counted.titles,
            "tokens": counted.tokens | "SumTokens" >> beam.CombinePerKey(sum),
        }


class UnigramEntries(beam.PTransform):
    """``("lang\tword", count)`` -> ``("lang\tword", ("unigram", count))`` for words seen at least
    ``min_count[lang]`` times."""

    def __init__(self, min_count: dict[str, int]):
        super().__init__()
        self.min_count = min_count

    def expand(self, word_counts):
        return (
            word_counts
            | "MinCount" >> beam.ParDo(_AtLeast(self.min_count, "below_min_count"))
            | "Entry" >> beam.MapTuple(lambda word, count: (word, ("unigram", count)))
        )


class ScoreBigrams(beam.PTransform):
    """``{"bigrams", "words", "tokens"}`` (``CountWikipedia``'s) -> ``("lang\tquery", ("bigram", (count, pmi)))``.

    Pairs too frequent to reach min_pmi go first; count(a) and count(b) come by two joins keyed
    by word; the PMI (nltk's, see ``counting.pmi``, N of the pair's language) must reach
    ``min_pmi[lang]``. The query is ``counting.bigram_query``'s.
    """

    def __init__(self, min_bigram_count: dict[str, int], min_pmi: dict[str, float]):
        super().__init__()
        self.min_bigram_count = min_bigram_count
        self.min_pmi = min_pmi

    def expand(self, counts):
        total = beam.pvalue.AsDict(counts["tokens"])
        pairs = counts["bigrams"] | "PmiUpperBound" >> beam.ParDo(_MayReachPmi(self.min_pmi), total)
        # A word of a pair seen min_bigram_count times is seen at least that often itself.
        words = counts["words"] | "WordsForJoin" >> beam.Filter(lambda kv, least: kv[1] >= least[key_lang(kv[0])],
                                                                self.min_bigram_count)
        by_first = pairs | "KeyByFirst" >> beam.Map(lambda kv: (_first_word(kv[0]), kv))
        with_first = (
            {"pairs": by_first, "word": words}
            | "JoinFirst" >> beam.CoGroupByKey()
            | "AttachFirst" >> beam.FlatMap(_attach_first)
        )
        return (
            {"pairs": with_first, "word": words}
            | "JoinSecond" >> beam.CoGroupByKey()
            | "AttachSecond" >> beam.FlatMap(_attach_second)
            | "Score" >> beam.ParDo(_ScoreBigram(self.min_pmi), total)
        )


class CountPageviews(beam.PTransform):
    """Pageview dump files -> ``("lang\ttitle query", views)`` for titles of the build's languages with at least
    ``min_views[lang]`` summed views."""

    def __init__(self, *, keep_case: bool, flush_keys: int, buckets: int, min_views: dict[str, int]):
        super().__init__()
        self.sum_pageviews = SumPageviews(keep_case, flush_keys, buckets, frozenset(min_views))
        self.min_views = min_views

    def expand(self, files):
        return (
            files
            | "SpreadFiles" >> beam.Reshuffle()
            | "SumPerFile" >> beam.ParDo(self.sum_pageviews)
            | "SumViews" >> SumBuckets(self.min_views, "distinct_viewed_titles")
        )


class TitleEntries(beam.PTransform):
    """``{"titles": (title, True), "views": (title, views)}`` -> ``(title, ("title", views))``.

    ``views`` holds the sums that reached min_views (``CountPageviews``); an article title of the
    dump is a candidate, an entry when it has such a sum and dropped ``below_min_views`` otherwise.
    """

    def __init__(self, per_lang: bool = False):
        super().__init__()
        self.per_lang = per_lang

    def expand(self, joined):
        return (
            {"article": joined["titles"], "views": joined["views"]}
            | "JoinTitles" >> beam.CoGroupByKey()
            | "Select" >> beam.ParDo(_SelectTitle(self.per_lang))
        )


class WordNetEntries(beam.PTransform):
    """``(lang, WordNet file)`` -> ``("lang\tlemma", ("wordnet", synsets))``: every lemma, with its synset count."""

    def __init__(self, keep_case: bool, per_lang: bool = False):
        super().__init__()
        self.keep_case = keep_case
        self.per_lang = per_lang

    def expand(self, files):
        return (
            files
            | "Read" >> beam.ParDo(_ReadWordNet(self.keep_case))
            | "SynsetsPerLemma" >> beam.CombinePerKey(sum)
            | "Entry" >> beam.ParDo(_WordNetEntry(self.per_lang))
        )


class MergeEntries(beam.PTransform):
    """``("lang\tquery", (source, statistic))`` entries of every source -> one row per (lang, query)
    (``counting.merge_entry``)."""

    def __init__(self, per_lang: bool = False):
        super().__init__()
        self.per_lang = per_lang

    def expand(self, entries):
        return entries | "GroupByQuery" >> beam.GroupByKey() | "Merge" >> beam.ParDo(_MergeRow(self.per_lang))


class WriteQueryList(beam.PTransform):
    """Rows -> ``queries.parquet`` and ``queries.txt`` in ``out``, by one writer (sorted by query)."""

    def __init__(self, out: str):
        super().__init__()
        self.out = out

    def expand(self, rows):
        return rows | "OneList" >> beam.combiners.ToList() | "Write" >> beam.Map(write_query_files, self.out)
