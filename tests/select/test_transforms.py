"""The selection graph's steps, each on a few in-memory rows or records (no sample web)."""

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from wit_pipeline.beam import job_counters
from wit_pipeline.schemas import CANDIDATE_SCHEMA, candidate_row, pair_uid
from wit_pipeline.select import matching
from wit_pipeline.select.balancing import pair_rank
from wit_pipeline.select.matching import QueryIndex
from wit_pipeline.select.pipeline import (
    CapFn,
    DecideFn,
    IndexSpec,
    MatchFileFn,
    Survivors,
    packed,
    query_count_rows,
    unpacked,
)

QUERIES = "memory:queries"   # a cache key only: the index is put in the cache, no file is read
SPEC = IndexSpec(QUERIES, "word", False, None)


@pytest.fixture(autouse=True)
def index(monkeypatch):
    monkeypatch.setitem(matching._cache, ("index", QUERIES, "word", False, None),
                        QueryIndex({None: ["red", "red car", "dog"]}))


def _row(url, text, **provenance):
    return dict(candidate_row(url, text, source="wat", **provenance), uid=pair_uid(url, text))


def _run(pipeline):
    result = pipeline.run()
    result.wait_until_finish()
    return job_counters(result, "select")


def test_match_file_gives_compact_records_of_matched_rows_and_counts_the_rest(tmp_path):
    rows = [_row("http://a/1.jpg", "A red car parked outside"), _row("http://a/2.jpg", "a dog"),
            _row("http://a/3.jpg", "nothing to see here")]
    pq.write_table(pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA), tmp_path / "c.parquet")
    pipeline = TestPipeline()
    records = (pipeline | beam.Create([(7, str(tmp_path / "c.parquet"))])
               | beam.ParDo(MatchFileFn(SPEC, strict=False)) | beam.FlatMap(lambda item: unpacked(item[1][1]))
               | beam.Map(lambda record: (record[0], record[3], record[4], record[5])))
    # entry ids in (lang, query) order: dog 0, red 1, red car 2
    assert_that(records, equal_to([("A red car parked outside", 7, 0, [1, 2]), ("a dog", 7, 1, [0])]))
    counts = _run(pipeline)
    assert (counts["in"], counts["matched"], counts["dropped_no_match"]) == (3, 2, 1)


def _record(row, number, ids):
    from wit_pipeline.pairs import provenance_key

    return (row["text"], row["uid"], provenance_key(row), 0, number, ids)


def _pairs(survivors: Survivors) -> list[tuple]:
    """A ``Survivors`` batch as one (rank, lang, ids, file, row) tuple per pair."""
    return list(zip(survivors.ranks.tolist(), survivors.langs, survivors.id_lists(), survivors.files.tolist(),
                    survivors.rows.tolist(), strict=True))


def test_decide_keeps_one_copy_of_each_pair_the_smallest_provenance():
    copies = [_row("http://a/1.jpg", "a red car", page_url=p) for p in ("http://p/b", "http://p/a")]
    other = _row("http://a/2.jpg", "una estrella azul sobre un fondo blanco")
    bucket = [_record(copies[0], 0, [1]), _record(copies[1], 1, [1]), _record(other, 2, [1])]
    pipeline = TestPipeline()
    out = (pipeline | beam.Create([[(0, [(len(bucket), packed(bucket))])]])
           | beam.ParDo(DecideFn(SPEC, "any", 0)) | beam.FlatMap(_pairs))
    assert_that(out, equal_to([(pair_rank(copies[0]["uid"]), None, [1], 0, 1),
                               (pair_rank(other["uid"]), None, [1], 0, 2)]))
    assert _run(pipeline)["dropped_duplicate"] == 1


def test_decide_with_a_language_drops_the_others_and_tags_the_kept():
    english = _row("http://a/1.jpg", "a red car parked in the street")
    spanish = _row("http://a/2.jpg", "una estrella azul sobre un fondo blanco y un perro rojo")
    bucket = [_record(english, 0, [1]), _record(spanish, 1, [1])]
    pipeline = TestPipeline()
    out = (pipeline | beam.Create([[(0, [(len(bucket), packed(bucket))])]])
           | beam.ParDo(DecideFn(SPEC, "en", 0)) | beam.FlatMap(_pairs)
           | beam.Map(lambda pair: (pair[0], pair[1])))
    assert_that(out, equal_to([(pair_rank(english["uid"]), "en")]))
    counts = _run(pipeline)
    assert (counts["dropped_lang"], counts["lang_detect_calls"]) == (1, 2)


def test_cap_keeps_ranks_within_a_threshold_and_counts_the_capped():
    survivors = Survivors.from_lists([5, 9, 20], [None, None, None], [3, 3, 4], [10, 11, 0], [[0], [0, 1], [0]])
    limits = (np.array([9, 2**64 - 1], dtype=np.uint64), np.array([2, 2]))
    pipeline = TestPipeline()
    out = (pipeline | beam.Create([survivors])
           | beam.ParDo(CapFn("top", 2), beam.pvalue.AsSingleton(pipeline | "L" >> beam.Create([limits])))
           .with_outputs("counts", main="kept"))
    kept = out["kept"] | beam.MapTuple(lambda file_number, pairs: (file_number, _pairs(pairs)))
    assert_that(kept, equal_to([(3, [(5, None, [0], 3, 10), (9, None, [0, 1], 3, 11)])]), label="Kept")
    assert_that(out["counts"] | beam.Map(lambda a: a.tolist()), equal_to([[[2, 1], [2, 1]]]), label="Counts")
    assert _run(pipeline)["dropped_cap"] == 1


def test_query_count_rows_lists_every_entry_heaviest_first():
    index = QueryIndex({"en": ["red", "dog"], "de": ["hund"], None: ["cat"]})
    rows = query_count_rows(index, np.array([0, 1, 5, 5]), np.array([[0, 1, 2, 3], [0, 1, 3, 2]]))
    assert [(r["lang"], r["query"], r["matched"], r["selected"]) for r in rows] == [
        ("en", "dog", 5, 3), ("en", "red", 5, 2), ("de", "hund", 1, 1), (None, "cat", 0, 0)]


def test_survivors_split_by_file_keep_each_pairs_own_ids():
    survivors = Survivors.from_lists([1, 2, 3, 4], ["en", None, "de", "en"], [2, 0, 2, 1], [5, 6, 7, 8],
                                     [[4], [1, 2, 3], [], [0, 9]])
    by_file = {file_number: _pairs(pairs) for file_number, pairs in survivors.by_file()}
    assert by_file == {0: [(2, None, [1, 2, 3], 0, 6)], 1: [(4, "en", [0, 9], 1, 8)],
                       2: [(1, "en", [4], 2, 5), (3, "de", [], 2, 7)]}
    assert _pairs(Survivors.concat([by_file_pairs for _f, by_file_pairs in survivors.by_file()])) == sorted(
        _pairs(survivors), key=lambda pair: pair[3])
