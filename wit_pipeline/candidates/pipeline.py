"""The candidate job: read a source, clean and filter pairs, de-duplicate, write parquet parts.

::

    inputs ─► ReadSource (one of sources.SOURCES; malformed records counted)
           ─► CleanAndFilterPairs (clean-up + the per-pair filters, each drop counted)
           ─► DedupPairs (exact (url, text), one GroupByKey on uid)
              or, with --lang CODE, LanguageAndDedup (langdetect once per distinct text, same shuffle)
           ─► OUT/parts/part-*.parquet (deterministic)  +  OUT/stats.json

Every raw pair ends in exactly one place: ``in = out + Σ dropped[reason]`` (stats.json). The pairs of a
page that reserves TDM rights (``<meta name="tdm-reservation" content="1">``) are dropped by the WAT and
WARC readers as ``opt_out_tdmrep`` (``sources.wat.PAGE_DROP_REASONS``), counted the same way.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import apache_beam as beam

from .. import fileio
from ..beam import counter
from ..options import check_values, defaults, option
from ..pairs import DedupPairs, LanguageAndDedup, parse_lang
from ..parquet_parts import WriteParquetParts
from ..schemas import CANDIDATE_SCHEMA, pair_uid
from ..stage import StageRun, dropped_counts
from .filters import DROP_REASONS, FILTERS, FilterConfig, FilterNames, clean_pair, parse_disabled
from .sources import SOURCES, STAGE
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
    seed: int = option(0, help="seed of the language detector")
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


class CleanAndFilterFn(beam.DoFn):
    """Clean one raw pair and run the filters: counted ``in``, and ``dropped_<reason>`` when dropped."""

    def __init__(self, config: FilterConfig):
        self.config = config

    def setup(self):
        self.pairs_in = counter(STAGE, "in")
        self.dropped = {reason: counter(STAGE, f"dropped_{reason}") for reason in DROP_REASONS}

    def process(self, row: dict):
        self.pairs_in.inc()
        url, text, reason = clean_pair(row["url"], row["text"], self.config)
        if reason:
            self.dropped[reason].inc()
            return
        yield dict(row, url=url, text=text, uid=pair_uid(url, text))


class CleanAndFilterPairs(beam.PTransform):
    """Raw rows -> cleaned rows (with their pair ``uid``) that pass every enabled filter."""

    def __init__(self, config: FilterConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        return rows | "CleanFilter" >> beam.ParDo(CleanAndFilterFn(self.config))


class CountOut(beam.DoFn):
    """Count each row the stage writes as ``out``."""

    def setup(self):
        self.pairs_out = counter(STAGE, "out")

    def process(self, row: dict):
        self.pairs_out.inc()
        yield row


def build(pipeline: beam.Pipeline, options: CandidateOptions):
    config = filter_config(options)
    rows = (pipeline
            | "ReadSource" >> ReadSource(options)
            | "CleanAndFilter" >> CleanAndFilterPairs(config))
    if options.lang not in ("any", "defer"):   # a language code: filter here, sharing the de-dup's shuffle
        rows = rows | "LanguageAndDedup" >> LanguageAndDedup(options.lang, options.seed, STAGE, config.on("dedup"))
    elif config.on("dedup"):
        rows = rows | "DedupPairs" >> DedupPairs(STAGE)
    return (rows
            | "CountOut" >> beam.ParDo(CountOut())
            | "WriteParts" >> WriteParquetParts(fileio.join(options.out, PARTS_DIR), CANDIDATE_SCHEMA,
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
