"""The candidate job: read a source, clean and filter pairs, de-duplicate, write parquet parts.

::

    inputs ─► ReadSourceBatches (one of sources.SOURCES; malformed records counted)
           ─► CleanAndFilterBatches (clean-up + the per-pair filters, each drop counted)
           ─► DedupTables (exact (url, text), one GroupByKey on a uid bucket; past 64 input files
              DedupPairs, one GroupByKey on uid)
              or, with --lang CODE, LanguageAndDedup (language ID once per distinct text, same shuffle)
           ─► OUT/parts/part-*.parquet (deterministic)  +  OUT/stats.json

Elements are batches, not rows: the reader yields lists of up to ``READ_BATCH`` raw rows, the clean-up
turns each into a ``pa.Table`` of ``CANDIDATE_SCHEMA`` (``clean_batch``), and tables are what cross the
shuffles, so the runner's cost per element is paid per few thousand rows and the local runner holds
compact Arrow data. ``ReadSource`` and ``CleanAndFilterPairs`` are the same steps on single rows, for
library callers.

Every raw pair ends in exactly one place: ``in = out + Σ dropped[reason]`` (stats.json). The pairs of a
page that reserves TDM rights (``<meta name="tdm-reservation" content="1">``) are dropped by the WAT and
WARC readers as ``opt_out_tdmrep`` (``sources.wat.PAGE_DROP_REASONS``), counted the same way.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa

from .. import fileio
from ..beam import StageCounters, collector_paused, counter
from ..language import DEFAULT_DETECTOR, DETECTORS
from ..options import check_values, defaults, option
from ..pairs import DedupPairs, DedupTables, LanguageAndDedup, dedup_buckets, parse_lang
from ..parquet_parts import ROWS_PER_TABLE, WriteParquetTables
from ..schemas import CANDIDATE_COLUMNS, CANDIDATE_SCHEMA, pair_uid
from ..stage import StageRun, dropped_counts
from .filters import DROP_REASONS, FILTERS, FilterConfig, FilterNames, clean_pair, parse_disabled
from .sources import READ_BATCH, SOURCES, STAGE
from .sources.search import APIS
from .sources.wat import PAGE_DROP_REASONS

PARTS_DIR = "parts"   # parts apart from stats.json, so pandas.read_parquet(OUT/parts) just works


def parse_candidate_lang(value: str) -> str:
    """``--lang`` of this stage, which may also ``defer`` the language filter to ``wit select``."""
    return parse_lang(value, allow_defer=True)


@dataclass
class CandidateOptions:
    """``wit candidates``: every flag, its default and its help (``wit_pipeline.options``)."""

    source: str = option(help="wat: Common Crawl WAT; warc: WARC responses' HTML; table: parquet/CSV/TSV/JSONL; "
                         "search: crawl an image-search API for each query of --input", choices=tuple(SOURCES))
    inputs: list[str] = option(flag="--input", metavar="PATH_OR_GLOB",
                               help="input files, globs or directories (local, gs://, s3://, http(s) single "
                               "files); for --source search, the queries (a queries directory or a text file)")
    out: str = option(help="output directory (parts/part-*.parquet and stats.json)")
    min_chars: int = option(6, group="text filters", minimum=0,
                            help="drop texts shorter than this (characters)")
    min_words: int = option(3, group="text filters", minimum=0, help="drop texts with fewer words")
    max_chars: int = option(1000, group="text filters", minimum=0, help="drop longer texts (0: no limit)")
    disable: frozenset = option(FilterNames(), group="text filters", metavar="FILTER[,FILTER]",
                                convert=parse_disabled,
                                help=f"switch filters off, by name: {', '.join(FILTERS)}")
    lang: str = option("defer", group="text filters", convert=parse_candidate_lang,
                       help="defer: leave language filtering to 'wit select' (after matching, far cheaper); "
                       "any: keep every language; a code such as en: keep that language here")
    lang_detector: str = option(DEFAULT_DETECTOR, group="text filters", choices=DETECTORS,
                                help="language identification for --lang CODE: py3langid (model in its wheel; ~30x "
                                "faster, more accurate on short alt texts) or langdetect (its exact answers, seeded)")
    seed: int = option(0, help="seed of the langdetect detector")
    url_col: str | None = option(None, group="table source", metavar="COLUMN",
                                 help="the url column (default: url, else URL)")
    caption_col: str | None = option(None, group="table source", metavar="COLUMN",
                                     help="the caption column (default: text, else caption, else TEXT; text when "
                                     "both text and caption exist); --text-col is another name for it")
    text_col: str | None = option(None, group="table source", dest="caption_col", help=argparse.SUPPRESS)
    page_url_col: str | None = option(None, group="table source")
    strict: bool = option(False, group="table source",
                          help="fail on the first malformed input row instead of counting and skipping it")
    api: str = option("openverse", group="search source", choices=APIS, help="response shape of the search API")
    endpoint: str | None = option(None, group="search source",
                                  help="the API endpoint, e.g. https://api.openverse.org/v1/images/ or "
                                  "https://commons.wikimedia.org/w/api.php")
    per_query_cap: int = option(20_000, group="search source", minimum=1,
                                help="stop a query's crawl after this many")
    page_size: int = option(0, group="search source", minimum=0,
                            help="results per request (0: the API's default)")
    rate_per_host: float = option(2.0, flag="--rate", metavar="RATE", group="search source", minimum=0,
                                  help="requests per second to the API host for the whole job, however many "
                                  "workers (0: no limit)")
    crawlers: int = option(1, group="search source", minimum=1,
                           help="crawls run side by side, each taking a share of the queries and of --rate; "
                           "more than one helps when one request takes longer than 1/rate s (default 1)")
    allow_private_networks: bool = option(False, group="search source",
                                          help="allow loopback/private addresses (tests and the sample web only)")
    allow_proxy: bool = option(False, group="search source",
                               help="send requests through the proxy HTTP(S)_PROXY/ALL_PROXY name (ignored otherwise); "
                               "each target and redirect is still resolved and checked first")
    rows_per_part: int = option(200_000, minimum=1, help="rows per output parquet part")

    def __post_init__(self) -> None:
        if self.caption_col is None:   # a library caller's text_col= (on the command line --text-col sets caption_col)
            self.caption_col = self.text_col


def filter_config(options: CandidateOptions) -> FilterConfig:
    """The filters' settings, taken from the options (the one place their defaults live)."""
    return FilterConfig(min_chars=options.min_chars, min_words=options.min_words, max_chars=options.max_chars,
                        disabled=frozenset(options.disable))


# The filters as the command's defaults set them (tests and benchmarks call clean_pair with these).
DEFAULT_FILTERS = FilterConfig(**{name: value for name, value in defaults(CandidateOptions).items()
                                  if name in ("min_chars", "min_words", "max_chars")},
                               disabled=frozenset(defaults(CandidateOptions)["disable"]))


class ReadSource(beam.PTransform):
    """The raw candidate rows of the options' source (``sources.SOURCES``)."""

    def __init__(self, options: CandidateOptions):
        super().__init__()
        self.options = options

    def expand(self, begin):
        return begin | SOURCES[self.options.source].read(self.options)


class ReadSourceBatches(beam.PTransform):
    """The raw candidate rows of the options' source in lists (``Source.read_batches``, else its rows batched)."""

    def __init__(self, options: CandidateOptions):
        super().__init__()
        self.options = options

    def expand(self, begin):
        source = SOURCES[self.options.source]
        if source.read_batches is not None:
            return begin | source.read_batches(self.options)
        return (begin
                | source.read(self.options)
                | "Batch" >> beam.BatchElements(min_batch_size=READ_BATCH, max_batch_size=READ_BATCH))


# Columns a raw row carries through clean-up as they are (uid, url and text are made by it).
_CARRIED = tuple(name for name in CANDIDATE_COLUMNS if name not in ("uid", "url", "text"))


def clean_batch(rows: list[dict], config: FilterConfig) -> tuple[pa.Table, Counter]:
    """``clean_pair`` on every raw row of a batch: the kept rows (with their pair ``uid``) as one
    ``CANDIDATE_SCHEMA`` table, and the counts ``in`` and ``dropped_<reason>``."""
    counts: Counter = Counter({"in": len(rows)})
    columns: dict[str, list] = {name: [] for name in CANDIDATE_COLUMNS}
    uids, urls, texts = columns["uid"], columns["url"], columns["text"]
    carried = [(name, columns[name]) for name in _CARRIED]
    for row in rows:
        url, text, reason = clean_pair(row["url"], row["text"], config)
        if reason:
            counts[f"dropped_{reason}"] += 1
            continue
        uids.append(pair_uid(url, text))
        urls.append(url)
        texts.append(text)
        for name, values in carried:
            values.append(row.get(name))
    return pa.Table.from_pydict(columns, schema=CANDIDATE_SCHEMA), counts


class CleanAndFilterFn(beam.DoFn):
    """A list of raw pairs -> a table of the cleaned ones that pass every filter: counted ``in``, and
    ``dropped_<reason>`` for each one dropped."""

    def __init__(self, config: FilterConfig):
        self.config = config

    def setup(self):
        self.counters = StageCounters(STAGE)

    def process(self, rows: list[dict]):
        with collector_paused():
            table, counts = clean_batch(rows, self.config)
        self.counters.add(counts)
        if table.num_rows:
            yield table


class CleanAndFilterBatches(beam.PTransform):
    """Lists of raw rows -> ``CANDIDATE_SCHEMA`` tables of the cleaned rows that pass every enabled filter."""

    def __init__(self, config: FilterConfig):
        super().__init__()
        self.config = config

    def expand(self, batches):
        return batches | "CleanFilter" >> beam.ParDo(CleanAndFilterFn(self.config))


class CleanAndFilterPairs(beam.PTransform):
    """Raw rows -> cleaned rows (with their pair ``uid``) that pass every enabled filter."""

    def __init__(self, config: FilterConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        return (rows
                | "Batch" >> beam.BatchElements(min_batch_size=READ_BATCH, max_batch_size=READ_BATCH)
                | "CleanFilterBatches" >> CleanAndFilterBatches(self.config)
                | "Rows" >> beam.FlatMap(pa.Table.to_pylist))


class CountOut(beam.DoFn):
    """Count the rows of each table the stage writes as ``out``."""

    def setup(self):
        self.pairs_out = counter(STAGE, "out")

    def process(self, table: pa.Table):
        self.pairs_out.inc(table.num_rows)
        yield table


class OnRows(beam.PTransform):
    """A transform on row dicts (``LanguageAndDedup``, ``DedupPairs``) between ``CANDIDATE_SCHEMA`` tables."""

    def __init__(self, transform: beam.PTransform):
        super().__init__()
        self.transform = transform

    def expand(self, tables):
        return (tables
                | "Rows" >> beam.FlatMap(pa.Table.to_pylist)
                | "OnRows" >> self.transform
                | "Batch" >> beam.BatchElements(min_batch_size=ROWS_PER_TABLE, max_batch_size=ROWS_PER_TABLE)
                | "ToTable" >> beam.Map(lambda rows: pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)))


def dedup_step(options: CandidateOptions) -> beam.PTransform:
    """The exact de-duplication: on tables by uid bucket, or, past ``pairs.MAX_BUCKETS`` buckets' worth of
    input files, on rows by uid."""
    buckets = dedup_buckets(SOURCES[options.source].inputs(options))
    return DedupTables(STAGE, buckets) if buckets else OnRows(DedupPairs(STAGE))


def build(pipeline: beam.Pipeline, options: CandidateOptions):
    config = filter_config(options)
    tables = (pipeline
              | "ReadSource" >> ReadSourceBatches(options)
              | "CleanAndFilter" >> CleanAndFilterBatches(config))
    if options.lang not in ("any", "defer"):   # a language code: filter here, sharing the de-dup's shuffle
        tables = tables | "LanguageAndDedup" >> OnRows(LanguageAndDedup(options.lang, options.seed, STAGE,
                                                                        config.on("dedup"), options.lang_detector))
    elif config.on("dedup"):
        tables = tables | "DedupPairs" >> dedup_step(options)
    return (tables
            | "CountOut" >> beam.ParDo(CountOut())
            | "WriteParts" >> WriteParquetTables(fileio.join(options.out, PARTS_DIR), CANDIDATE_SCHEMA,
                                                 options.rows_per_part))


def check_options(options: CandidateOptions) -> None:
    """Settings a library caller may get wrong (the command line checks them as it parses)."""
    check_values(options)
    for path in options.inputs:   # input files are read whole, so an http(s) file will do (not a query list)
        fileio.check_readable(path, "--input", http=options.source != "search")
    SOURCES[options.source].check(options)


def run_candidates(options: CandidateOptions, beam_args: list[str] | None = None) -> dict:
    """Run the candidate job; returns (and writes as ``OUT/stats.json``) its statistics."""
    check_options(options)
    with StageRun(STAGE, options.out, settings=options) as stage:
        pipeline = stage.pipeline(beam_args)
        build(pipeline, options)
        counts = stage.run(pipeline)
        return stage.finish(records_in=counts.get("in", 0), records_out=counts.get("out", 0),
                            dropped=dropped_counts(counts, (*PAGE_DROP_REASONS, *DROP_REASONS)),
                            outputs={"parts": fileio.join(options.out, PARTS_DIR)})
