"""Candidate sources: the registry ``SOURCES`` and the Beam steps that read them.

Each source is one ``Source`` record: a driver-side ``check`` of the options (one line, before
anything runs), ``read``, the transform from the pipeline's start to raw candidate rows (before
clean-up), optionally ``read_batches``, the same rows as lists of up to ``READ_BATCH`` (what the job
reads: one element per batch, not per row), and ``inputs``, how many inputs it reads (sizes the job's
de-duplication). The file sources share ``ReadFiles`` over a reader with one signature,
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
``valid_row`` (text from JSON may hold lone surrogates, which Beam's coders cannot encode), except the
WAT reader's, which repairs the few records whose JSON escapes a surrogate itself.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import apache_beam as beam

from ... import fileio
from ...beam import StageCounters, collector_paused, freeze_long_lived
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
READ_BATCH = 4096   # raw rows per element of a batched read


def valid_row(row: dict) -> dict:
    """``row`` with lone surrogates (from JSON escapes in a WAT record, a JSONL table, an API answer) replaced,
    so Beam's coders and the parquet writer can encode it (``text.valid_unicode``)."""
    return {name: valid_unicode(value) if isinstance(value, str) else value for name, value in row.items()}


class ReadFilesFn(beam.DoFn):
    """One input file -> raw candidate rows (lists of up to ``batch_rows`` of them when that is set); file
    damage and record outcomes counted. The rows read before a file turns out damaged are kept. Each row
    goes through ``valid_row`` unless the reader gives valid strings itself (``valid_strings``)."""

    def __init__(self, read: Callable, options, batch_rows: int = 0, valid_strings: bool = False):
        self.read, self.options, self.batch_rows = read, options, batch_rows
        self.valid_strings = valid_strings

    def setup(self):
        self.counters = StageCounters(STAGE)
        freeze_long_lived()

    def process(self, path: str):
        rows = self._rows(path)
        while True:
            with collector_paused():   # parsing makes many short-lived objects (JSON, rows)
                batch = list(itertools.islice(rows, max(1, self.batch_rows)))
            if not batch:
                return
            yield from self._emit(batch)

    def _rows(self, path: str):
        counts = Counter(files=1)
        try:
            for row in self.read(path, self.options, counts):
                yield row if self.valid_strings else valid_row(row)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is counted, never fatal...
            if isinstance(exc, UserError) and self.options.strict:
                raise   # ...unless --strict: then the first malformed row stops the run, in one line
            counts["unreadable_files"] += 1
            log.warning("skipping unreadable input %s: %s", path, exc)
        finally:
            self.counters.add(counts)

    def _emit(self, batch: list[dict]):
        if batch:
            yield from ([batch] if self.batch_rows else batch)


class ReadFiles(beam.PTransform):
    """The input files (globs and directories expanded on the driver), spread over workers and read: rows,
    or lists of up to ``batch_rows`` rows."""

    def __init__(self, read: Callable, options, what: str, batch_rows: int = 0, valid_strings: bool = False):
        super().__init__()
        self.read, self.options, self.what, self.batch_rows = read, options, what, batch_rows
        self.valid_strings = valid_strings

    def expand(self, begin):
        files = fileio.expand(self.options.inputs, what=self.what)
        return (begin
                | "Files" >> beam.Create(files)
                | "SpreadFiles" >> beam.Reshuffle()
                | "Read" >> beam.ParDo(ReadFilesFn(self.read, self.options, self.batch_rows, self.valid_strings)))


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


def _one_input(options) -> int:
    return 1


def _file_source(read: Callable, what: str, check: Callable[[Any], None] = _no_check,
                 valid_strings: bool = False) -> Source:
    """A source that reads files with ``read``; ``valid_strings``: its rows need no ``valid_row``."""
    return Source(read=lambda options: ReadFiles(read, options, what, valid_strings=valid_strings),
                  read_batches=lambda options: ReadFiles(read, options, what, batch_rows=READ_BATCH,
                                                         valid_strings=valid_strings),
                  check=check, inputs=lambda options: len(fileio.expand(options.inputs, what=what)))


@dataclass(frozen=True)
class Source:
    """One candidate source: ``read(options)`` is the transform from the pipeline's start to raw rows,
    ``read_batches(options)`` (when set) to lists of them; ``check(options)`` validates its settings on the
    driver (a ``UserError`` before the job); ``inputs(options)`` is how many inputs (files) it reads."""

    read: Callable[[Any], beam.PTransform]
    check: Callable[[Any], None] = _no_check
    read_batches: Callable[[Any], beam.PTransform] | None = None
    inputs: Callable[[Any], int] = _one_input


SOURCES: dict[str, Source] = {
    "wat": _file_source(read_wat_file, "wat input", valid_strings=True),   # read_wat repairs its JSON strings
    "warc": _file_source(read_warc_file, "warc input"),
    "table": _file_source(read_table_file, "table input", check=check_tables),
    "search": Source(read=CrawlSearch, check=check_search),
}
