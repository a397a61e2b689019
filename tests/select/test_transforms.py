"""The selection graph's composite transforms, each on a few in-memory rows (no files, no sample web)."""

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from wit_pipeline.beam import job_counters
from wit_pipeline.schemas import candidate_row, pair_uid
from wit_pipeline.select import matching
from wit_pipeline.select.balancing import CapPerQuery
from wit_pipeline.select.matching import QueryMatcher
from wit_pipeline.select.pipeline import CountPerQuery, KeepSelected, MatchQueries, OnePerPair, query_count_rows

QUERIES = "memory:queries"   # a cache key only: the matcher is put in the cache, no file is read


@pytest.fixture
def matcher(monkeypatch):
    monkeypatch.setitem(matching._cache, (QUERIES, "word", False), QueryMatcher(["red", "red car", "dog"]))


def _row(url, text, **provenance):
    return dict(candidate_row(url, text, source="wat", **provenance), uid=pair_uid(url, text))


def _run(pipeline):
    result = pipeline.run()
    result.wait_until_finish()
    return job_counters(result, "select")


def test_match_queries_attaches_every_match_and_counts_the_rest(matcher):
    rows = [_row("http://a/1.jpg", "A red car parked outside"), _row("http://a/2.jpg", "a dog"),
            _row("http://a/3.jpg", "nothing to see here")]
    pipeline = TestPipeline()
    out = pipeline | beam.Create(rows) | MatchQueries(QUERIES, "word", False)
    assert_that(out, equal_to([dict(rows[0], queries=["red", "red car"]), dict(rows[1], queries=["dog"])]))
    counts = _run(pipeline)
    assert (counts["matched"], counts["dropped_no_match"]) == (2, 1)


def test_one_per_pair_keys_one_copy_of_each_pair_by_uid():
    rows = [_row("http://a/1.jpg", "a red car", page_url=p) for p in ("http://p/b", "http://p/a")]
    rows += [_row("http://a/2.jpg", "una estrella azul sobre un fondo blanco")]
    with TestPipeline() as pipeline:
        out = pipeline | beam.Create(rows) | OnePerPair("any", 0)
        assert_that(out, equal_to([(rows[1]["uid"], rows[1]), (rows[2]["uid"], rows[2])]))


def test_one_per_pair_with_a_language_drops_other_languages():
    rows = [_row("http://a/1.jpg", "a red car parked in the street"),
            _row("http://a/2.jpg", "una estrella azul sobre un fondo blanco")]
    pipeline = TestPipeline()
    out = pipeline | beam.Create(rows) | OnePerPair("en", 0)
    assert_that(out, equal_to([(rows[0]["uid"], rows[0])]))
    assert _run(pipeline)["dropped_lang"] == 1


def test_keep_selected_joins_kept_uids_back_and_counts_the_capped():
    rows = [("u1", {"uid": "u1"}), ("u2", {"uid": "u2"})]
    pipeline = TestPipeline()
    by_uid = pipeline | "Rows" >> beam.Create(rows)
    kept = pipeline | "Kept" >> beam.Create([("u2", ["red"])])
    assert_that({"rows": by_uid, "kept": kept} | KeepSelected(), equal_to([{"uid": "u2"}]))
    counts = _run(pipeline)
    assert (counts["out"], counts["dropped_cap"]) == (1, 1)


def test_cap_per_query_keeps_at_most_cap_per_query():
    pairs = [(f"u{i}", ["red"]) for i in range(5)] + [("v", ["dog"])]
    with TestPipeline() as pipeline:
        capped = pipeline | beam.Create(pairs) | CapPerQuery(2, seed=0, balance="top")
        assert_that(capped["matched"], equal_to([("red", 5), ("dog", 1)]), label="Matched")
        assert_that(capped["kept_counts"], equal_to([("red", 2), ("dog", 1)]), label="KeptCounts")


def test_count_per_query_gathers_the_three_counts_of_each_query():
    with TestPipeline() as pipeline:
        counts = {"matched": pipeline | "M" >> beam.Create([("red", 5), ("dog", 1)]),
                  "kept": pipeline | "K" >> beam.Create([("red", 2), ("dog", 1)]),
                  "selected": pipeline | "S" >> beam.Create([("red", 3)])}
        rows = counts | CountPerQuery() | beam.Map(query_count_rows, ["red", "dog", "cat"])
        assert_that(rows, equal_to([[{"query": "red", "matched": 5, "kept": 2, "selected": 3},
                                     {"query": "dog", "matched": 1, "kept": 1, "selected": 0},
                                     {"query": "cat", "matched": 0, "kept": 0, "selected": 0}]]))
