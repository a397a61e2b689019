"""The candidate graph's composite transforms, each on a few in-memory rows (no files, no sample web)."""

from collections import Counter

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from wit_pipeline import pairs
from wit_pipeline.beam import job_counters
from wit_pipeline.candidates import pipeline as candidates
from wit_pipeline.candidates.pipeline import (
    DEFAULT_FILTERS,
    CandidateOptions,
    CleanAndFilterPairs,
    ReadSource,
)
from wit_pipeline.candidates.sources import ReadFilesFn, Source
from wit_pipeline.pairs import DedupPairs, LanguageAndDedup
from wit_pipeline.schemas import candidate_row, pair_uid

ENGLISH = "a red circle on a white background"
SPANISH = "una estrella azul sobre un fondo blanco"


def _row(url, text, **provenance):
    return dict(candidate_row(url, text, source=provenance.pop("source", "wat"), **provenance),
                uid=pair_uid(url, text))


def _pairs(rows):
    return sorted((row["url"], row["text"], row["page_url"]) for row in rows)


def _run(pipeline):
    result = pipeline.run()
    result.wait_until_finish()
    return job_counters(result, "candidates")


def test_clean_and_filter_pairs_cleans_keeps_and_counts_each_drop():
    raw = [candidate_row(" http://a.example/1.jpg ", "A red&amp;blue circle here", source="wat"),
           candidate_row("data:image/png;base64,xx", "a red circle inline", source="wat"),
           candidate_row("http://a.example/2.jpg", "logo", source="wat"),
           candidate_row("http://a.example/3.jpg", "", source="wat")]
    kept = dict(raw[0], url="http://a.example/1.jpg", text="A red&blue circle here",
                uid=pair_uid("http://a.example/1.jpg", "A red&blue circle here"))
    pipeline = TestPipeline()
    out = pipeline | beam.Create(raw) | CleanAndFilterPairs(DEFAULT_FILTERS)
    assert_that(out, equal_to([kept]))
    counts = _run(pipeline)
    assert counts["in"] == 4
    assert {k: v for k, v in counts.items() if k.startswith("dropped_")} == {
        "dropped_data_uri": 1, "dropped_boilerplate": 1, "dropped_empty_text": 1}


def test_dedup_pairs_keeps_the_smallest_provenance_and_counts_the_copies():
    copies = [_row("http://a.example/1.jpg", ENGLISH, page_url=page) for page in ("http://p/b", "http://p/a", None)]
    other = _row("http://a.example/2.jpg", ENGLISH, page_url="http://p/z")
    pipeline = TestPipeline()
    out = pipeline | beam.Create(copies + [other]) | DedupPairs("candidates")
    assert_that(out, equal_to([copies[2], other]))   # no page URL sorts first: the smallest provenance
    assert _run(pipeline)["dropped_duplicate"] == 2


def test_language_and_dedup_keeps_one_copy_of_each_pair_of_the_language():
    rows = [_row("http://a.example/1.jpg", ENGLISH, page_url="http://p/b"),
            _row("http://a.example/1.jpg", ENGLISH, page_url="http://p/a"),
            _row("http://a.example/2.jpg", ENGLISH),
            _row("http://a.example/3.jpg", SPANISH), _row("http://a.example/4.jpg", SPANISH)]
    pipeline = TestPipeline()
    out = pipeline | beam.Create(rows) | LanguageAndDedup("en", 0, "candidates")
    assert_that(out, equal_to([rows[1], rows[2]]))
    counts = _run(pipeline)
    assert (counts["dropped_lang"], counts["dropped_duplicate"], counts["lang_detect_calls"]) == (2, 1, 2)


def test_language_and_dedup_without_dedup_keeps_every_copy():
    rows = [_row("http://a.example/1.jpg", ENGLISH, page_url=p) for p in ("http://p/b", "http://p/a")]
    with TestPipeline() as pipeline:
        out = pipeline | beam.Create(rows) | LanguageAndDedup("en", 0, "candidates", dedup=False)
        assert_that(out, equal_to(rows))


def test_read_files_reads_each_file_and_counts_an_unreadable_one():
    def read(path, options, counts):
        counts["records"] += 1
        if path == "broken":
            raise OSError("unreadable")
        yield candidate_row(f"http://a.example/{path}.jpg", options, source="wat")

    pipeline = TestPipeline()
    out = pipeline | beam.Create(["one", "broken", "two"]) | beam.ParDo(ReadFilesFn(read, "alt text"))
    assert_that(out, equal_to([candidate_row(f"http://a.example/{n}.jpg", "alt text", source="wat")
                               for n in ("one", "two")]))
    assert Counter(_run(pipeline)) == Counter({"files": 3, "records": 3, "unreadable_files": 1})


def test_read_source_takes_the_options_source_from_the_registry(monkeypatch):
    rows = [candidate_row("http://a.example/1.jpg", "from the registry", source="memory")]
    monkeypatch.setitem(candidates.SOURCES, "memory", Source(read=lambda options: beam.Create(rows)))
    options = CandidateOptions(source="memory", inputs=[], out="unused")
    with TestPipeline() as pipeline:
        assert_that(pipeline | ReadSource(options), equal_to(rows))


def test_distinct_pairs_is_one_row_per_uid_in_uid_order():
    rows = [_row("http://a.example/2.jpg", ENGLISH), _row("http://a.example/1.jpg", ENGLISH, page_url="http://p/b"),
            _row("http://a.example/1.jpg", ENGLISH, page_url="http://p/a")]
    assert pairs.distinct_pairs(rows) == sorted([rows[0], rows[2]], key=lambda row: row["uid"])
    assert _pairs(pairs.distinct_pairs(rows)) == _pairs([rows[0], rows[2]])
