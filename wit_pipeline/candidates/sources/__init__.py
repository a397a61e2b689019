"""Candidate sources: the registry ``SOURCES`` and the Beam steps that read them.

Each source is one ``Source`` record: a driver-side ``check`` of the options (one line, before
anything runs) and ``read``, the transform from the pipeline's start to raw candidate rows (before
clean-up). The file sources share ``ReadFiles`` over a reader with one signature,
``read(path, options, counts) -> Iterator[row]``; ``search`` crawls an API per query instead.

==========  =============================  ===============================================
``wat``     ``wat.read_wat_file``          Common Crawl WAT: ``<img>`` links and alt texts
``warc``    ``warc.read_warc_file``        WARC responses' HTML, parsed
``table``   ``table.read_table_file``      parquet / CSV / TSV / JSONL url+text tables
``search``  ``CrawlSearch``                an image-search API, crawled for each query
==========  =============================  ===============================================

Adding a source is a module with its reader plus one record here. Outcomes are counted in the
stage's namespace: ``files`` and ``unreadable_files`` (an unreadable file is counted and skipped,
never fatal) and each reader's own record counters. Every row leaves its reader through
``valid_row``: text from JSON may hold lone surrogates, which Beam's coders cannot encode.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import apache_beam as beam

from ... import fileio
from ...beam import StageCounters
from ...consent import OriginSignals
from ...errors import UserError
from ...http import make_session
from ...querylist import load_query_list
from ...text import valid_unicode
from .search import DEFAULT_PAGE_SIZE, HostRateLimiter, check_search, crawl_query, crawler_of
from .table import check_tables, read_table_file
from .warc import read_warc_file
from .wat import read_wat_file

log = logging.getLogger(__name__)

STAGE = "candidates"


def valid_row(row: dict) -> dict:
    """``row`` with lone surrogates (from JSON escapes in a WAT record, a JSONL table, an API answer) replaced,
    so Beam's coders and the parquet writer can encode it (``text.valid_unicode``)."""
    return {name: valid_unicode(value) if isinstance(value, str) else value for name, value in row.items()}


class ReadFilesFn(beam.DoFn):
    """One input file -> raw candidate rows; file damage and record outcomes counted."""

    def __init__(self, read: Callable, options):
        self.read, self.options = read, options

    def setup(self):
        self.counters = StageCounters(STAGE)

    def process(self, path: str):
        counts = Counter(files=1)
        try:
            yield from map(valid_row, self.read(path, self.options, counts))
        except Exception as exc:  # noqa: BLE001 - an unreadable file is counted, never fatal...
            if isinstance(exc, UserError) and self.options.strict:
                raise   # ...unless --strict: then the first malformed row stops the run, in one line
            counts["unreadable_files"] += 1
            log.warning("skipping unreadable input %s: %s", path, exc)
        finally:
            self.counters.add(counts)


class ReadFiles(beam.PTransform):
    """The input files (globs and directories expanded on the driver), spread over workers and read."""

    def __init__(self, read: Callable, options, what: str):
        super().__init__()
        self.read, self.options, self.what = read, options, what

    def expand(self, begin):
        files = fileio.expand(self.options.inputs, what=self.what)
        return (begin
                | "Files" >> beam.Create(files)
                | "SpreadFiles" >> beam.Reshuffle()
                | "Read" >> beam.ParDo(ReadFilesFn(self.read, self.options)))


class CrawlQueriesFn(beam.DoFn):
    """One crawl's queries, one after the other -> rows from the search API. Each crawl has its own
    share of the host's rate; the guarded session and robots cache are per worker."""

    def __init__(self, options):
        self.options = options

    def setup(self):
        self.session = make_session(allow_private_networks=self.options.allow_private_networks,
                                    allow_proxy=self.options.allow_proxy, retries=3,
                                    backoff_s=0.5, max_bytes=32 << 20)
        # robots.txt only (RFC 9309, product token wit-pipeline): the crawl asks an API, not for images
        self.robots = OriginSignals(self.session, signals=("robots",))
        self.counters = StageCounters(STAGE)

    def process(self, crawl):
        options, (_crawler, queries) = self.options, crawl
        limiter = HostRateLimiter(options.rate_per_host, share=options.crawlers)
        for query in sorted(queries):
            counts = Counter()
            try:
                rows = crawl_query(query, api=options.api, endpoint=options.endpoint, session=self.session,
                                   robots=self.robots, limiter=limiter, cap=options.per_query_cap,
                                   page_size=options.page_size or DEFAULT_PAGE_SIZE[options.api], counts=counts)
                yield from map(valid_row, rows)
            finally:
                self.counters.add(counts)

    def teardown(self):
        self.session.close()


class CrawlSearch(beam.PTransform):
    """The queries of the one ``--input``, split among ``crawlers`` sequential crawls, each crawled."""

    def __init__(self, options):
        super().__init__()
        self.options = options

    def expand(self, begin):
        queries = load_query_list(self.options.inputs[0])
        return (begin
                | "Queries" >> beam.Create(queries)
                | "ToCrawler" >> beam.Map(lambda query, n: (crawler_of(query, n), query), self.options.crawlers)
                | "GroupByCrawler" >> beam.GroupByKey()
                | "Crawl" >> beam.ParDo(CrawlQueriesFn(self.options)))


def _no_check(options) -> None:
    return None


def _files(read: Callable, what: str) -> Callable[[Any], beam.PTransform]:
    return lambda options: ReadFiles(read, options, what)


@dataclass(frozen=True)
class Source:
    """One candidate source: ``read(options)`` is the transform from the pipeline's start to raw rows;
    ``check(options)`` validates its settings on the driver (a ``UserError`` before the job)."""

    read: Callable[[Any], beam.PTransform]
    check: Callable[[Any], None] = _no_check


SOURCES: dict[str, Source] = {
    "wat": Source(read=_files(read_wat_file, "wat input")),
    "warc": Source(read=_files(read_warc_file, "warc input")),
    "table": Source(read=_files(read_table_file, "table input"), check=check_tables),
    "search": Source(read=CrawlSearch, check=check_search),
}
