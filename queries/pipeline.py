"""The query-list Beam job: Wikipedia, pageviews and WordNet -> entries per source -> queries DIR.

``build_graph`` wires the named transforms of ``queries.transforms``::

  dump ranges --CountWikipedia--> word counts, bigram counts, article titles, N (tokens)
    word counts --UnigramEntries (count >= min_count)-------------------------> unigram entries
    bigram counts + word counts + N --ScoreBigrams (pmi >= min_pmi)-----------> bigram entries
  pageview files --CountPageviews--> view sums (>= min_views)
    article titles + view sums --TitleEntries---------------------------------> title entries
  wordnet data.* --WordNetEntries-------------------------------------------> wordnet entries
  all entries --MergeEntries (one row per query)--WriteQueryList--> queries.parquet + queries.txt

Every key carries its language (``queries.languages``): ``--wikipedia LANG=PATH`` (a bare PATH is
English) gives each dump range its language, words are that language's (``wit_pipeline.segment``),
pageviews count for the languages of the dumps (``xx`` and ``xx.m``), ``--wordnet LANG=PATH`` adds
an Open Multilingual Wordnet file's lemmas, and each step applies its language's ``Thresholds``
(the flags, overridden per language by ``--lang-thresholds FILE``).

``run_queries`` plans the inputs on the driver, runs the job through the stage contract
(``wit_pipeline.stage.StageRun``) and writes ``stats.json``: ``in`` counts candidate entries, one
per distinct key of each source (word, bigram, article title when pageviews are given, WordNet
lemma); ``out`` the rows written; ``dropped`` every candidate that is not a row of its own, by
reason (``below_min_count``, ``below_min_bigram_count``, ``below_min_pmi``, ``below_min_views``,
``merged``). Beside them: entries per source and overlaps, the thresholds, and the ``inputs``
figures (pages, tokens, pageview lines, synsets ... read and skipped). ``languages`` gives, per
language, its thresholds, entries per source, tokens and pages counted, and (several languages)
its own ``in``, ``out`` and ``dropped``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Iterable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.options import check_values, option
from wit_pipeline.segment import require_segmenters
from wit_pipeline.stage import StageRun, dropped_counts

from .counting import summarize_sources
from .languages import Thresholds, by_language, read_thresholds
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
    per_language,
)
from .wikidump import DEFAULT_RANGE_BYTES, ReadRange, plan_ranges
from .wordnet import wordnet_files

log = logging.getLogger(__name__)


def megabytes(text: str) -> int:
    """``--range-mb N`` -> bytes."""
    return int(text) << 20


@dataclass(frozen=True, kw_only=True)
class QueryOptions:
    """``wit queries build``: inputs, output, and selection thresholds (defaults: the CLIP paper / MetaCLIP values)."""

    wikipedia: list[str] = option(
        help="MediaWiki XML exports (pages-articles; .xml, .bz2 incl. multistream, .gz), files, directories or "
        "globs, local or gs:// s3:// ...; LANG=PATH for a language's Wikipedia (zh=zhwiki-...xml.bz2), a bare "
        "PATH is English; repeatable", metavar="[LANG=]PATH", nargs="+", action="extend")
    pageviews: list[str] = option([], help="hourly pageview dumps (pageviews-YYYYMMDD-HH0000.gz); they count for "
                                  "every language of --wikipedia (project codes xx and xx.m)", metavar="PATH",
                                  nargs="+", action="extend")
    wordnet: list[str] = option([], help="WordNet 3.0 wndb directory (e.g. /usr/share/wordnet), English; or "
                                "LANG=FILE, an Open Multilingual Wordnet wn-data-LANG.tab file; repeatable",
                                metavar="[LANG=]PATH", nargs="+", action="extend")
    lang_thresholds: str | None = option(None, help="JSON file of per-language thresholds overriding the flags, "
                                         'e.g. {"zh": {"min_count": 50, "min_pmi": 20}}', metavar="FILE")
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

    def __post_init__(self):
        # A library caller may name one wndb directory as a string (or None), as before --wordnet repeated.
        if self.wordnet is None or isinstance(self.wordnet, str):
            object.__setattr__(self, "wordnet", [self.wordnet] if self.wordnet else [])

    def validate(self) -> None:
        """The ranges the command line checks, for library callers too."""
        check_values(self)

    def thresholds(self) -> dict:
        return {"min_count": self.min_count, "min_pmi": self.min_pmi, "min_bigram_count": self.min_bigram_count,
                "min_views": self.min_views, "keep_case": self.keep_case}

    def default_thresholds(self) -> Thresholds:
        return Thresholds(min_count=self.min_count, min_pmi=self.min_pmi, min_bigram_count=self.min_bigram_count,
                          min_views=self.min_views)


@dataclass(frozen=True)
class QueryInputs:
    """The files a build reads, planned on the driver."""

    ranges: list[tuple[str, ReadRange]]     # (lang, range)
    index_files: list[str]                  # multistream index files named by --wikipedia, left out
    pageview_files: list[str]
    wordnet_files: list[tuple[str, str]]    # (lang, wndb data.* or OMW .tab file)
    thresholds: dict[str, Thresholds]       # of every language with a dump or a WordNet

    @property
    def several_languages(self) -> bool:
        return len(self.thresholds) > 1


def build_graph(pipeline: beam.Pipeline, inputs: QueryInputs, options: QueryOptions):
    """The graph of the module docstring; the title and WordNet branches only when given their files."""
    reading = {"keep_case": options.keep_case, "flush_keys": options.flush_keys, "buckets": options.count_buckets}
    limits = inputs.thresholds
    several = inputs.several_languages
    counts = (
        pipeline
        | "DumpRanges" >> beam.Create(inputs.ranges)
        | "CountWikipedia" >> CountWikipedia(**reading, thresholds=limits)
    )
    entries = [
        counts["words"] | "UnigramEntries" >> UnigramEntries(per_language(limits, "min_count")),
        {"bigrams": counts["bigrams"], "words": counts["words"], "tokens": counts["tokens"]}
        | "ScoreBigrams" >> ScoreBigrams(per_language(limits, "min_bigram_count"), per_language(limits, "min_pmi")),
    ]
    if inputs.pageview_files:
        views = (
            pipeline
            | "PageviewFiles" >> beam.Create(inputs.pageview_files)
            | "CountPageviews" >> CountPageviews(**reading, min_views=per_language(limits, "min_views"))
        )
        entries.append({"titles": counts["titles"], "views": views} | "TitleEntries" >> TitleEntries(several))
    if inputs.wordnet_files:
        entries.append(
            pipeline
            | "WordNetFiles" >> beam.Create(inputs.wordnet_files)
            | "WordNetEntries" >> WordNetEntries(options.keep_case, several)
        )
    return (
        entries
        | "AllEntries" >> beam.Flatten()
        | "MergeEntries" >> MergeEntries(several)
        | "WriteQueryList" >> WriteQueryList(options.out)
    )


def _file_sizes(paths: list[str]) -> list[int]:
    return [result.metadata_list[0].size_in_bytes for result in FileSystems.match(paths)]


def plan_language_ranges(wikipedia: list[str], range_bytes: int) -> tuple[list[tuple[str, ReadRange]], list[str]]:
    """``--wikipedia [LANG=]PATH ...`` -> ``(lang, range)`` read ranges; multistream index files left out."""
    ranges: list[tuple[str, ReadRange]] = []
    index_files: list[str] = []
    for lang, paths in by_language(wikipedia, "--wikipedia").items():
        lang_ranges, lang_index = plan_dump_ranges(paths, range_bytes)
        ranges.extend((lang, read_range) for read_range in lang_ranges)
        index_files.extend(lang_index)
    return ranges, index_files


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
    for paths in by_language(options.wikipedia, "--wikipedia").values():
        for path in paths:
            fileio.check_readable(path, "--wikipedia")
    for path in options.pageviews:
        fileio.check_readable(path, "--pageviews", http=True)
    for paths in by_language(options.wordnet, "--wordnet").values():
        for path in paths:
            fileio.check_readable(path, "--wordnet")


def plan_wordnet(values: list[str]) -> list[tuple[str, str]]:
    """``--wordnet [LANG=]PATH ...`` -> ``(lang, file)``: a wndb directory's data.* files or one OMW file."""
    return [(lang, found) for lang, paths in by_language(values, "--wordnet").items()
            for path in paths for found in wordnet_files(lang, path)]


def language_thresholds(options: QueryOptions, langs: Iterable[str]) -> dict[str, Thresholds]:
    """``{lang: Thresholds}`` for ``langs``: the flags', overridden by ``--lang-thresholds``."""
    defaults = options.default_thresholds()
    overrides = read_thresholds(options.lang_thresholds, defaults)
    unused = sorted(set(overrides) - set(langs))
    if unused:
        log.warning("--lang-thresholds: no input in %s; their thresholds are not used", ", ".join(unused))
    return {lang: overrides.get(lang, defaults) for lang in sorted(set(langs))}


def plan_inputs(options: QueryOptions) -> QueryInputs:
    """Expand the input flags; a bad input is a UserError before any output is touched."""
    check_readable_inputs(options)
    require_segmenters(by_language(options.wikipedia, "--wikipedia"))
    ranges, index_files = plan_language_ranges(options.wikipedia, options.range_bytes)
    for index_file in index_files:
        log.warning("--wikipedia: leaving out %s (a multistream index, not a dump)", index_file)
    pageview_files = fileio.expand(list(options.pageviews), what="--pageviews") if options.pageviews else []
    wordnet = plan_wordnet(options.wordnet)
    thresholds = language_thresholds(options, [lang for lang, _ in ranges] + [lang for lang, _ in wordnet])
    return QueryInputs(ranges, index_files, pageview_files, wordnet, thresholds)


def run_queries(options: QueryOptions, beam_args: list[str] | None = None) -> dict:
    """Build the query list into ``options.out``; returns the stats written to ``out/stats.json``."""
    options.validate()
    inputs = plan_inputs(options)
    with StageRun(STAGE, options.out, settings=options) as stage:
        pipeline = stage.pipeline(beam_args)
        build_graph(pipeline, inputs, options)
        counts = stage.run(pipeline)
        rows = read_query_table(options.out).select(["lang", "sources"]).to_pylist()
        sources = summarize_sources(rows)
        sources.pop("entries")   # the rows written: ``out``
        return stage.finish(
            records_in=counts.get("in", 0), records_out=counts.get("out", 0),
            dropped=dropped_counts({name: n for name, n in counts.items() if "@" not in name}, DROP_REASONS),
            outputs={"parquet": fileio.join(options.out, PARQUET_NAME), "text": fileio.join(options.out, TEXT_NAME)},
            **sources, thresholds=options.thresholds(), inputs=input_stats(counts, inputs),
            languages=language_stats(counts, inputs, rows),
        )


def language_stats(counts: dict, inputs: QueryInputs, rows: list[dict]) -> dict:
    """stats.json's ``languages``: per language, its thresholds, entries per source, tokens and pages counted;
    with several languages also its own ``in``, ``out`` and ``dropped`` (the ``<name>@<lang>`` counters)."""
    figures = {}
    for lang, limits in inputs.thresholds.items():
        summary = summarize_sources(row for row in rows if row["lang"] == lang)
        # One language: its figures are the build's; several: its own counters.
        suffix = f"@{lang}" if inputs.several_languages else ""

        def figure(name: str, suffix: str = suffix) -> int:
            return counts.get(name + suffix, 0)

        figures[lang] = {
            "thresholds": dataclasses.asdict(limits),
            "entries": summary["entries"], "by_source": summary["by_source"],
            "tokens": figure("tokens"), "pages_counted": figure("pages_counted"),
            "in": figure("in"), "out": figure("out"),
            "dropped": {reason: figure(f"dropped_{reason}") for reason in DROP_REASONS},
        }
    return figures


def _family(counts: dict, prefix: str) -> dict:
    """``{reason: n}`` of the non-zero ``<prefix><reason>`` counters."""
    return {name[len(prefix):]: value for name, value in sorted(counts.items()) if name.startswith(prefix) and value}


def input_stats(counts: dict, inputs: QueryInputs) -> dict:
    """What was read and how much of it counted: the ``inputs`` figures of stats.json."""
    figure = counts.get
    return {
        "wikipedia_files": len({r.path for _, r in inputs.ranges}),
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
