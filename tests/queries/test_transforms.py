"""Each named step of the query-list graph on its own: TestPipeline + assert_that, inputs in memory.

Dumps, pageview files and WordNet files live in ``memfs://`` (tests/memfs.py), not on disk.
"""

from __future__ import annotations

import gzip
import math

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from queries.languages import Thresholds
from queries.transforms import (
    STAGE,
    CountPageviews,
    CountWikipedia,
    MergeEntries,
    ScoreBigrams,
    SumBuckets,
    TitleEntries,
    UnigramEntries,
    WordNetEntries,
    WriteQueryList,
)
from queries.wikidump import ReadRange
from tests import memfs
from tests.queries.dumps import FOOTER, HEADER, page_xml
from wit_pipeline.beam import job_counters

LIMITS = Thresholds(min_count=2, min_pmi=0.0, min_bigram_count=2, min_views=1)


def _counters(pipeline: TestPipeline) -> dict[str, int]:
    result = pipeline.run()
    result.wait_until_finish()
    return job_counters(result, STAGE)


def test_sum_buckets_sums_partial_counts_and_counts_candidates_below_the_threshold():
    pipeline = TestPipeline()
    totals = (
        pipeline
        | beam.Create([(0, {"en\ta": 1, "en\tb": 2}), (0, {"en\ta": 2}), (1, {"en\tc": 1})])
        | SumBuckets({"en": 3}, "distinct_words", "below_min_count")
    )
    assert_that(totals, equal_to([("en\ta", 3)]))
    counts = _counters(pipeline)
    assert (counts["distinct_words"], counts["in"], counts["dropped_below_min_count"]) == (3, 3, 2)


def test_count_wikipedia_counts_words_bigrams_titles_and_tokens():
    dump = "memfs://wiki/dump.xml"
    memfs.put(dump, (HEADER + page_xml("Red circle", "A red circle. A red square.")
                     + page_xml("Talk:Red", "red red red", ns=1, page_id=2) + FOOTER).encode())
    with TestPipeline() as pipeline:
        counts = (
            pipeline
            | beam.Create([("en", ReadRange(dump, 0, len(memfs.get(dump)), "plain"))])
            | CountWikipedia(keep_case=False, flush_keys=2, buckets=3, thresholds={"en": LIMITS})
        )
        assert_that(counts["words"], equal_to([("en\ta", 2), ("en\tred", 2)]), label="Words")
        assert_that(counts["bigrams"], equal_to([("en\ta\tred", 2)]), label="Bigrams")
        assert_that(counts["titles"], equal_to([("en\tred circle", True)]), label="Titles")
        assert_that(counts["tokens"], equal_to([("en", 6)]), label="Tokens")


def test_unigram_entries_keep_words_seen_min_count_times():
    pipeline = TestPipeline()
    entries = pipeline | beam.Create([("en\tred", 5), ("en\tblue", 4), ("en\tgreen", 6)]) | UnigramEntries({"en": 5})
    assert_that(entries, equal_to([("en\tred", ("unigram", 5)), ("en\tgreen", ("unigram", 6))]))
    assert _counters(pipeline)["dropped_below_min_count"] == 1


def test_score_bigrams_keeps_pairs_whose_pmi_reaches_min_pmi():
    # N = 64: pmi(red circle) = log2(4 * 64 / (8 * 4)) = 3; pmi(red square) = log2(2 * 64 / (8 * 8)) = 1.
    pipeline = TestPipeline()
    counts = {
        "bigrams": pipeline | "Bigrams" >> beam.Create([("en\tred\tcircle", 4), ("en\tred\tsquare", 2)]),
        "words": pipeline | "Words" >> beam.Create([("en\tred", 8), ("en\tcircle", 4), ("en\tsquare", 8)]),
        "tokens": pipeline | "Tokens" >> beam.Create([("en", 64)]),
    }
    entries = counts | ScoreBigrams(min_bigram_count={"en": 2}, min_pmi={"en": 3.0})
    assert_that(entries, equal_to([("en\tred circle", ("bigram", (4, 3.0)))]))
    assert _counters(pipeline)["dropped_below_min_pmi"] == 1


def test_score_bigrams_drops_pairs_too_frequent_to_reach_min_pmi_before_the_joins():
    with TestPipeline() as pipeline:
        counts = {
            "bigrams": pipeline | "Bigrams" >> beam.Create([("en\tof\tthe", 10)]),
            "words": pipeline | "Words" >> beam.Create([("en\tof", 10), ("en\tthe", 10)]),
            "tokens": pipeline | "Tokens" >> beam.Create([("en", 40)]),
        }
        # 10 * 2**3 > 40: log2(40 / 10) = 2 is the most "of the" could score.
        assert_that(counts | ScoreBigrams(min_bigram_count={"en": 2}, min_pmi={"en": 3.0}), equal_to([]))


def test_count_pageviews_sums_english_article_views_over_files():
    memfs.put("memfs://views/pageviews-1.gz", gzip.compress(b"en Red_circle 30 0\nde Red_circle 99 0\ngarbage\n"))
    memfs.put("memfs://views/pageviews-2.gz", gzip.compress(b"en.m Red_circle 20 0\nen Talk:Red 90 0\nen Blue 7 0\n"))
    pipeline = TestPipeline()
    views = (
        pipeline
        | beam.Create(["memfs://views/pageviews-1.gz", "memfs://views/pageviews-2.gz"])
        | CountPageviews(keep_case=False, flush_keys=1, buckets=2, min_views={"en": 50})
    )
    assert_that(views, equal_to([("en\tred circle", 50)]))
    counts = _counters(pipeline)
    assert counts["pageview_lines"] == 6 and counts["distinct_viewed_titles"] == 2
    assert (counts["pageview_lines_skipped_other_wiki"], counts["pageview_lines_skipped_namespace"],
            counts["pageview_lines_skipped_malformed"]) == (1, 1, 1)


def test_title_entries_are_dump_titles_with_enough_views():
    pipeline = TestPipeline()
    joined = {
        "titles": pipeline | "Titles" >> beam.Create([("en\tred circle", True), ("en\tblue", True),
                                                      ("en\tred circle", True)]),
        "views": pipeline | "Views" >> beam.Create([("en\tred circle", 70), ("en\tnowhere", 99)]),
    }
    assert_that(joined | TitleEntries(), equal_to([("en\tred circle", ("title", 70))]))
    counts = _counters(pipeline)
    assert (counts["in"], counts["dropped_below_min_views"], counts["titles_viewed_not_in_dump"]) == (2, 1, 1)


def test_wordnet_entries_count_synsets_per_lemma():
    header = "  1 licence line  \n"
    lines = ["00000000 05 n 02 Red 0 red_circle 0 000 | a colour", "00000000 05 n 01 red 0 000 | another sense"]
    memfs.put("memfs://wn/data.noun", (header + "".join(line + "\n" for line in lines)).encode())
    with TestPipeline() as pipeline:
        entries = pipeline | beam.Create([("en", "memfs://wn/data.noun")]) | WordNetEntries(keep_case=False)
        assert_that(entries, equal_to([("en\tred", ("wordnet", 2)), ("en\tred circle", ("wordnet", 1))]))


def test_merge_entries_makes_one_row_per_query():
    pipeline = TestPipeline()
    rows = (
        pipeline
        | beam.Create([("en\tred", ("unigram", 9)), ("en\tred", ("wordnet", 2)),
                       ("en\tred circle", ("bigram", (4, 3.0)))])
        | MergeEntries()
        | beam.Map(lambda row: (row["query"], tuple(row["sources"]), row["count"], row["pmi"], row["synsets"]))
    )
    assert_that(rows, equal_to([("red", ("unigram", "wordnet"), 9, None, 2),
                                ("red circle", ("bigram",), 4, 3.0, None)]))
    counts = _counters(pipeline)
    assert (counts["out"], counts["dropped_merged"]) == (2, 1)


def test_write_query_list_writes_one_sorted_list():
    rows = [{"query": q, "sources": ["unigram"], "count": 5, "pmi": None, "views": None, "synsets": None}
            for q in ("square", "circle")]
    with TestPipeline() as pipeline:
        written = pipeline | beam.Create(rows) | WriteQueryList("memfs://out/queries")
        assert_that(written, equal_to([2]))
    assert memfs.get("memfs://out/queries/queries.txt") == b"circle\nsquare\n"


@pytest.mark.parametrize("min_pmi", [0.0, -1.0])
def test_a_non_positive_min_pmi_scores_every_pair(min_pmi):
    with TestPipeline() as pipeline:
        counts = {
            "bigrams": pipeline | "Bigrams" >> beam.Create([("en\tof\tthe", 10)]),
            "words": pipeline | "Words" >> beam.Create([("en\tof", 10), ("en\tthe", 10)]),
            "tokens": pipeline | "Tokens" >> beam.Create([("en", 10)]),
        }
        assert_that(counts | ScoreBigrams(min_bigram_count={"en": 2}, min_pmi={"en": min_pmi}),
                    equal_to([("en\tof the", ("bigram", (10, math.log2(1.0))))]))
