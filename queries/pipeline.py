"""The query-list Beam job: Wikipedia, pageviews and WordNet -> entries per source -> queries DIR.

``build_graph`` wires the named transforms of ``queries.transforms``::

  dump ranges --CountWikipedia--> word counts, bigram counts, article titles, N (tokens)
    word counts --UnigramEntries (count >= min_count)-------------------------> unigram entries
    bigram counts + word counts + N --ScoreBigrams (pmi >= min_pmi)-----------> bigram entries
  pageview files --CountPageviews--> view sums (>= min_views)
    article titles + view sums --TitleEntries---------------------------------> title entries
  wordnet data.* --WordNetEntries-------------------------------------------> wordnet entries
  all entries --MergeEntries (one row per query)--WriteQueryList--> queries.parquet + queries.txt

``run_queries`` plans the inputs on the driver, runs the job through the stage contract
(``wit_pipeline.stage.StageRun``) and writes ``stats.json``: ``in`` counts candidate entries, one
per distinct key of each source (word, bigram, article title when pageviews are given, WordNet
lemma); ``out`` the rows written; ``dropped`` every candidate that is not a row of its own, by
reason (``below_min_count``, ``below_min_bigram_count``, ``below_min_pmi``, ``below_min_views``,
``merged``). Beside them: entries per source and overlaps, the thresholds, and the ``inputs``
figures (pages, tokens, pageview lines, synsets ... read and skipped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.options import check_values, option
from wit_pipeline.stage import StageRun, dropped_counts

from .counting import summarize_sources
from .output import PARQUET_NAME, TEXT_NAME, read_query_table
from .transforms import (
    DROP_REASONS,
    STAGE,
    CountPageviews,
    CountWikipedia,
    MergeEntries,
    ScoreBigrams,
    TitleEntries,
    UnigramEntries,
    WordNetEntries,
    WriteQueryList,
)
from .wikidump import DEFAULT_RANGE_BYTES, ReadRange, plan_ranges
from .wordnet import data_files

log = logging.getLogger(__name__)


def megabytes(text: str) -> int:
    """``--range-mb N`` -> bytes."""
    return int(text) << 20


@dataclass(frozen=True, kw_only=True)
class QueryOptions:
    """``wit queries build``: inputs, output, and selection thresholds (defaults: the CLIP paper / MetaCLIP values)."""

    wikipedia: list[str] = option(
        help="MediaWiki XML exports (pages-articles; .xml, .bz2 incl. multistream, .gz), files, directories or "
        "globs, local or gs:// s3:// ...", metavar="PATH")
    pageviews: list[str] = option([], help="hourly pageview dumps (pageviews-YYYYMMDD-HH0000.gz)", metavar="PATH")
    wordnet: str | None = option(None, help="WordNet 3.0 wndb directory (e.g. /usr/share/wordnet)", metavar="DIR")
    min_count: int = option(100, minimum=1, help="unigrams seen at least this often are queries (default %(default)s)")
    min_pmi: float = option(30.0, help="bigrams with PMI (bits, nltk's definition) at least this are queries "
                            "(default %(default)s)")   # MetaCLIP's value for full Wikipedia
    min_bigram_count: int = option(2, minimum=1, help="bigrams seen fewer times are not scored (default %(default)s)")
    min_views: int = option(70, minimum=1, help="article titles with at least this many summed views are queries "
                            "(default %(default)s)")
    keep_case: bool = option(False, help="keep letter case (default: lower-case everything)")  # MetaCLIP keeps case
    range_bytes: int = option(DEFAULT_RANGE_BYTES, flag="--range-mb", type=megabytes, metavar="RANGE_MB", minimum=1,
                              help=f"dump megabytes per read task (default {DEFAULT_RANGE_BYTES >> 20})")
    count_buckets: int = option(1024, minimum=1, help="hash buckets counts are summed in; one bucket's keys are in "
                                "memory at a time (default %(default)s; raise it if a worker runs out of memory)")
    out: str = option(help="output directory", metavar="DIR")
    flush_keys: int = option(500_000, minimum=1, cli=False,
                             help="a reader emits its partial counts when it holds this many keys")

    def validate(self) -> None:
        """The ranges the command line checks, for library callers too."""
        check_values(self)

    def thresholds(self) -> dict:
        return {"min_count": self.min_count, "min_pmi": self.min_pmi, "min_bigram_count": self.min_bigram_count,
                "min_views": self.min_views, "keep_case": self.keep_case}


@dataclass(frozen=True)
class QueryInputs:
    """The files a build reads, planned on the driver."""

    ranges: list[ReadRange]
    index_files: list[str]        # multistream index files named by --wikipedia, left out
    pageview_files: list[str]
    wordnet_files: list[str]


def build_graph(pipeline: beam.Pipeline, inputs: QueryInputs, options: QueryOptions):
    """The graph of the module docstring; the title and WordNet branches only when given their files."""
    reading = {"keep_case": options.keep_case, "flush_keys": options.flush_keys, "buckets": options.count_buckets}
    counts = (
        pipeline
        | "DumpRanges" >> beam.Create(inputs.ranges)
        | "CountWikipedia" >> CountWikipedia(**reading, min_count=options.min_count,
                                             min_bigram_count=options.min_bigram_count)
    )
    entries = [
        counts["words"] | "UnigramEntries" >> UnigramEntries(options.min_count),
        {"bigrams": counts["bigrams"], "words": counts["words"], "tokens": counts["tokens"]}
        | "ScoreBigrams" >> ScoreBigrams(options.min_bigram_count, options.min_pmi),
    ]
    if inputs.pageview_files:
        views = (
            pipeline
            | "PageviewFiles" >> beam.Create(inputs.pageview_files)
            | "CountPageviews" >> CountPageviews(**reading, min_views=options.min_views)
        )
        entries.append({"titles": counts["titles"], "views": views} | "TitleEntries" >> TitleEntries())
    if inputs.wordnet_files:
        entries.append(
            pipeline
            | "WordNetFiles" >> beam.Create(inputs.wordnet_files)
            | "WordNetEntries" >> WordNetEntries(options.keep_case)
        )
    return (
        entries
        | "AllEntries" >> beam.Flatten()
        | "MergeEntries" >> MergeEntries()
        | "WriteQueryList" >> WriteQueryList(options.out)
    )


def _file_sizes(paths: list[str]) -> list[int]:
    return [result.metadata_list[0].size_in_bytes for result in FileSystems.match(paths)]


def plan_dump_ranges(wikipedia: Iterable[str], range_bytes: int) -> tuple[list[ReadRange], list[str]]:
    """Expand --wikipedia into read ranges; multistream index files are left out (and returned)."""
    files = fileio.expand(list(wikipedia), what="--wikipedia")
    index_files = [f for f in files if "-index" in f.rsplit("/", 1)[-1] and ".txt" in f.rsplit("/", 1)[-1]]
    dumps = [f for f in files if f not in index_files]
    if not dumps:
        raise UserError("--wikipedia names only multistream index files, no dump")
    ranges: list[ReadRange] = []
    for path, size in zip(dumps, _file_sizes(dumps), strict=True):
        ranges.extend(plan_ranges(path, size, range_bytes))
    return ranges, index_files


def check_readable_inputs(options: QueryOptions) -> None:
    """Each input's scheme can be read: dumps are sized and read in ranges and WordNet is probed for its
    files, so neither may be an http(s) URL; a pageview file is read whole, so it may."""
    for path in options.wikipedia:
        fileio.check_readable(path, "--wikipedia")
    for path in options.pageviews:
        fileio.check_readable(path, "--pageviews", http=True)
    if options.wordnet:
        fileio.check_readable(options.wordnet, "--wordnet")


def plan_inputs(options: QueryOptions) -> QueryInputs:
    """Expand the input flags; a bad input is a UserError before any output is touched."""
    check_readable_inputs(options)
    ranges, index_files = plan_dump_ranges(options.wikipedia, options.range_bytes)
    for index_file in index_files:
        log.warning("--wikipedia: leaving out %s (a multistream index, not a dump)", index_file)
    pageview_files = fileio.expand(list(options.pageviews), what="--pageviews") if options.pageviews else []
    wordnet_files = data_files(options.wordnet) if options.wordnet else []
    return QueryInputs(ranges, index_files, pageview_files, wordnet_files)


def run_queries(options: QueryOptions, beam_args: list[str] | None = None) -> dict:
    """Build the query list into ``options.out``; returns the stats written to ``out/stats.json``."""
    options.validate()
    inputs = plan_inputs(options)
    with StageRun(STAGE, options.out, settings=options) as stage:
        pipeline = stage.pipeline(beam_args)
        build_graph(pipeline, inputs, options)
        counts = stage.run(pipeline)
        sources = summarize_sources(read_query_table(options.out).select(["sources"]).to_pylist())
        sources.pop("entries")   # the rows written: ``out``
        return stage.finish(
            records_in=counts.get("in", 0), records_out=counts.get("out", 0),
            dropped=dropped_counts(counts, DROP_REASONS),
            outputs={"parquet": fileio.join(options.out, PARQUET_NAME), "text": fileio.join(options.out, TEXT_NAME)},
            **sources, thresholds=options.thresholds(), inputs=input_stats(counts, inputs),
        )


def _family(counts: dict, prefix: str) -> dict:
    """``{reason: n}`` of the non-zero ``<prefix><reason>`` counters."""
    return {name[len(prefix):]: value for name, value in sorted(counts.items()) if name.startswith(prefix) and value}


def input_stats(counts: dict, inputs: QueryInputs) -> dict:
    """What was read and how much of it counted: the ``inputs`` figures of stats.json."""
    figure = counts.get
    return {
        "wikipedia_files": len({r.path for r in inputs.ranges}),
        "wikipedia_read_ranges": len(inputs.ranges),
        "wikipedia_index_files_left_out": len(inputs.index_files),
        "pages_read": figure("pages_read", 0),
        "pages_counted": figure("pages_counted", 0),
        "pages_skipped": _family(counts, "pages_skipped_"),
        "tokens": figure("tokens", 0),
        "wikitext_chars": figure("wikitext_chars", 0),
        "distinct_words": figure("distinct_words", 0),
        "distinct_bigrams": figure("distinct_bigrams", 0),
        "bigrams_over_min_count": figure("distinct_bigrams", 0) - figure("dropped_below_min_bigram_count", 0),
        "pageview_files": len(inputs.pageview_files),
        "pageview_lines": figure("pageview_lines", 0),
        "pageview_lines_skipped": _family(counts, "pageview_lines_skipped_"),
        "distinct_viewed_titles": figure("distinct_viewed_titles", 0),
        "titles_in_dump": figure("titles_in_dump", 0),
        "titles_viewed_not_in_dump": figure("titles_viewed_not_in_dump", 0),
        "titles_below_min_views": figure("dropped_below_min_views", 0),
        "wordnet_files": len(inputs.wordnet_files),
        "wordnet_synsets": figure("wordnet_synsets", 0),
        "wordnet_lines_skipped_malformed": figure("wordnet_lines_skipped_malformed", 0),
        "wordnet_offset_mismatches": figure("wordnet_offset_mismatches", 0),
    }
