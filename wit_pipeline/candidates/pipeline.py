"""The candidate job: read a source, clean and filter pairs, de-duplicate, write parquet parts.

::

    inputs ─► read (one source; malformed records counted) ─► clean + per-pair filters (counted)
           ─► exact (url, text) de-dup (GroupByKey on uid) ─► [language, once per distinct text]
           ─► OUT/parts/part-*.parquet (deterministic)  +  OUT/stats.json

Every raw pair ends in exactly one place: ``pairs_in = pairs_out + Σ dropped_<reason>``.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field

import apache_beam as beam

from .. import fileio
from ..beam import counter, make_pipeline, run
from ..errors import UserError
from ..parquet_parts import WriteParquetParts
from ..schemas import CANDIDATE_SCHEMA, pair_uid
from .filters import DROP_REASONS, FilterConfig, clean_pair
from .language import detect_languages

log = logging.getLogger(__name__)

STAGE = "candidates"
PARTS_DIR = "parts"   # parts apart from stats.json, so pandas.read_parquet(OUT/parts) just works
SOURCES = ("wat", "warc", "table", "search")


@dataclass
class CandidateOptions:
    source: str
    inputs: list[str]                    # files/globs/dirs; for ``search``: one queries path
    out: str
    filters: FilterConfig = field(default_factory=FilterConfig)
    lang: str = "defer"                  # defer (to wit select) | any | a language code
    seed: int = 0
    url_col: str = "url"                 # table source
    text_col: str = "text"
    page_url_col: str | None = None
    api: str = "openverse"               # search source
    endpoint: str = ""
    per_query_cap: int = 20_000
    page_size: int = 0                   # 0: the API's usual page size
    rate_per_host: float = 2.0           # requests/s per host for the whole job (search)
    crawlers: int = 1                    # search: sequential crawls sharing that rate
    allow_private_networks: bool = False
    rows_per_part: int = 200_000


def _flush(counts: Counter) -> None:
    for name, value in counts.items():
        if value:
            counter(STAGE, name).inc(value)


class ReadFiles(beam.DoFn):
    """One input file -> raw candidate rows; file damage and record outcomes counted."""

    def __init__(self, options: CandidateOptions):
        self.options = options

    def process(self, path: str):
        from .sources_table import read_table
        from .sources_warc import read_warc
        from .sources_wat import read_wat

        options, counts = self.options, Counter()
        counts["files"] += 1
        try:
            if options.source == "table":
                from .sources_table import table_format

                columns = dict(url_col=options.url_col, text_col=options.text_col,
                               page_url_col=options.page_url_col)
                if table_format(path) == "parquet":   # parquet needs a seekable file
                    import io

                    handle = open(path, "rb") if not fileio.is_remote(path) else io.BytesIO(fileio.read_bytes(path))
                    with handle:
                        yield from read_table(handle, path, counts, **columns)
                else:
                    with fileio.open_read(path) as handle:
                        yield from read_table(handle, path, counts, **columns)
            else:
                reader = read_wat if options.source == "wat" else read_warc
                with fileio.open_read(path, decompress=False) as handle:
                    yield from reader(handle, path, counts)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is counted, never fatal
            counts["unreadable_files"] += 1
            log.warning("skipping unreadable input %s: %s", path, exc)
        finally:
            _flush(counts)


def crawler_of(query: str, crawlers: int) -> int:
    """Which of the ``crawlers`` crawls takes ``query`` (stable across runs and workers)."""
    return zlib.crc32(query.encode("utf-8")) % crawlers


class CrawlQueries(beam.DoFn):
    """One crawl's queries, one after the other -> rows from the search API. Each crawl has its own
    share of the host's rate; the guarded session and robots cache are per worker."""

    def __init__(self, options: CandidateOptions):
        self.options = options

    def setup(self):
        from ..http import RobotsCache, make_session

        self.session = make_session(allow_private_networks=self.options.allow_private_networks, retries=3,
                                    backoff_s=0.5, max_bytes=32 << 20)
        self.robots = RobotsCache(self.session)

    def process(self, crawl):
        from .sources_search import DEFAULT_PAGE_SIZE, HostRateLimiter, crawl_query

        options, (_crawler, queries) = self.options, crawl
        limiter = HostRateLimiter(options.rate_per_host, share=options.crawlers)
        for query in sorted(queries):
            counts = Counter()
            try:
                yield from crawl_query(query, api=options.api, endpoint=options.endpoint, session=self.session,
                                       robots=self.robots, limiter=limiter, cap=options.per_query_cap,
                                       page_size=options.page_size or DEFAULT_PAGE_SIZE[options.api],
                                       counts=counts)
            finally:
                _flush(counts)

    def teardown(self):
        self.session.close()


def clean_and_filter(row: dict, config: FilterConfig):
    """Beam step: clean one raw pair; count it in and, when dropped, its reason."""
    counter(STAGE, "pairs_in").inc()
    url, text, reason = clean_pair(row["url"], row["text"], config)
    if reason:
        counter(STAGE, f"dropped_{reason}").inc()
        return
    row = dict(row, url=url, text=text, uid=pair_uid(url, text))
    yield row


def provenance_key(row: dict) -> tuple:
    """Which duplicate survives: the smallest provenance, so the choice never depends on input order."""
    return tuple(row.get(k) or "" for k in ("source", "source_file", "page_url", "search_query", "license",
                                            "license_url", "creator"))


def first_by_provenance(rows, stage: str) -> dict:
    """One row of a group of exact duplicates: the smallest provenance, so never the order's choice."""
    rows = list(rows)
    if len(rows) > 1:
        counter(stage, "dropped_duplicate").inc(len(rows) - 1)
    return min(rows, key=provenance_key)


def keep_first(item):
    _uid, rows = item
    return first_by_provenance(rows, STAGE)


def distinct_pairs(rows, stage: str):
    """The rows of one text, one per (url, text) pair (``first_by_provenance``), in uid order."""
    by_uid: dict[str, list] = {}
    for row in rows:
        by_uid.setdefault(row["uid"], []).append(row)
    for uid in sorted(by_uid):
        yield first_by_provenance(by_uid[uid], stage)


def language_filter(groups, lang: str, seed: int, stage: str = STAGE, dedup: bool = True):
    """A batch of (text, rows) groups: langdetect once per distinct text, the batch in lockstep; the rows of
    a kept text de-duplicated by pair, those of a dropped one all counted under ``lang``. Batches are
    large (``BatchTexts``): a call runs until its slowest text converges, with ever fewer texts in
    flight, so fewer and larger calls waste less."""
    decided = detect_languages([text for text, _rows in groups], seed)
    counter(stage, "lang_detect_calls").inc(len(groups))
    for (_text, rows), found in zip(groups, decided):
        if found == lang:
            yield from distinct_pairs(rows, stage) if dedup else rows
        else:
            counter(stage, "dropped_lang").inc(sum(1 for _row in rows))


class LanguageAndDedup(beam.PTransform):
    """The language filter and exact (url, text) de-duplication in one shuffle. Every copy of a pair has
    the same text (a pair's uid hashes its url and text), so grouping the rows by text gathers each
    pair's copies as well as each text's one langdetect call: one GroupByKey serves both."""

    def __init__(self, lang: str, seed: int, stage: str, dedup: bool = True):
        super().__init__()
        self.lang, self.seed, self.stage, self.dedup = lang, seed, stage, dedup

    def expand(self, rows):
        return (rows
                | "KeyByText" >> beam.Map(lambda row: (row["text"], row))
                | "GroupTexts" >> beam.GroupByKey()
                | "BatchTexts" >> beam.BatchElements(min_batch_size=8192, max_batch_size=8192)
                | "Language" >> beam.FlatMap(language_filter, self.lang, self.seed, self.stage, self.dedup))


def count_out(row):
    counter(STAGE, "pairs_out").inc()
    return row


def build(pipeline: beam.Pipeline, options: CandidateOptions):
    if options.source == "search":
        from ..select.queries_io import load_query_list

        if len(options.inputs) != 1:
            raise UserError("--source search takes one --input: a queries directory or text file")
        queries = load_query_list(options.inputs[0])
        if options.crawlers < 1:
            raise UserError("--crawlers must be at least 1")
        raw = (pipeline
               | "Queries" >> beam.Create(queries)
               | "ToCrawler" >> beam.Map(lambda query, n: (crawler_of(query, n), query), options.crawlers)
               | "GroupByCrawler" >> beam.GroupByKey()
               | "Crawl" >> beam.ParDo(CrawlQueries(options)))
    else:
        files = fileio.expand(options.inputs, what=f"{options.source} input")
        if options.source == "table":
            from .sources_table import table_format

            for path in files:
                table_format(path)   # an unknown format is a user error, before anything runs
        raw = (pipeline
               | "Files" >> beam.Create(files)
               | "SpreadFiles" >> beam.Reshuffle()
               | "Read" >> beam.ParDo(ReadFiles(options)))
    rows = raw | "CleanFilter" >> beam.FlatMap(clean_and_filter, options.filters)
    if options.lang not in ("any", "defer"):
        rows = rows | "LanguageAndDedup" >> LanguageAndDedup(options.lang, options.seed, STAGE,
                                                             options.filters.on("dedup"))
    elif options.filters.on("dedup"):
        rows = (rows
                | "KeyByPair" >> beam.Map(lambda row: (row["uid"], row))
                | "GroupPairs" >> beam.GroupByKey()
                | "Dedup" >> beam.Map(keep_first))
    return (rows
            | "CountOut" >> beam.Map(count_out)
            | "WriteParts" >> WriteParquetParts(fileio.join(options.out, PARTS_DIR), CANDIDATE_SCHEMA,
                                                options.rows_per_part))


def check_table_columns(options: CandidateOptions) -> None:
    """Fail fast, in one line, when a parquet/CSV table lacks the url/text columns."""
    import pyarrow.parquet as pq

    from .sources_table import read_table, table_format

    for path in fileio.expand(options.inputs, what="table input")[:50]:
        if table_format(path) == "parquet":
            with fileio.open_read(path, decompress=False) as handle:
                names = pq.read_schema(handle).names      # the footer only, not the whole file
            missing = [c for c in (options.url_col, options.text_col) if c not in names]
            if missing:
                raise UserError(f"table input {path!r} has no column(s) {', '.join(map(repr, missing))} "
                                f"(it has: {', '.join(names[:20])}); set --url-col/--text-col")
        else:
            with fileio.open_read(path) as handle:
                next(iter(read_table(handle, path, Counter(), url_col=options.url_col,
                                     text_col=options.text_col)), None)


def run_candidates(options: CandidateOptions, beam_args: list[str] | None = None) -> dict:
    """Run the candidate job; returns (and writes as ``OUT/stats.json``) its statistics."""
    if options.source not in SOURCES:
        raise UserError(f"--source must be one of {', '.join(SOURCES)}, not {options.source!r}")
    if options.source == "search" and not options.endpoint.startswith(("http://", "https://")):
        raise UserError("--source search needs --endpoint, the API's http(s) URL")
    if options.source == "table":
        check_table_columns(options)
    fileio.makedirs(options.out)
    stats_path = fileio.join(options.out, "stats.json")
    fileio.remove(stats_path)   # stats.json marks a finished run: gone until this one finishes
    started = time.monotonic()
    pipeline = make_pipeline(beam_args)
    build(pipeline, options)
    counts = run(pipeline, STAGE)
    dropped = {reason: counts.get(f"dropped_{reason}", 0) for reason in DROP_REASONS}
    stats = {
        "stage": STAGE,
        "source": options.source,
        "inputs": options.inputs,
        "pairs_in": counts.get("pairs_in", 0),
        "pairs_out": counts.get("pairs_out", 0),
        "dropped": dropped,
        "counters": counts,
        "outputs": {"parts": fileio.join(options.out, PARTS_DIR)},
        "settings": {k: v for k, v in asdict(options).items() if k not in ("inputs", "out", "filters")}
        | {"filters": {"min_chars": options.filters.min_chars, "min_words": options.filters.min_words,
                       "max_chars": options.filters.max_chars, "disabled": sorted(options.filters.disabled)}},
        "seconds": round(time.monotonic() - started, 3),
    }
    stats["accounted"] = stats["pairs_in"] == stats["pairs_out"] + sum(dropped.values())
    fileio.write_json_atomic(stats_path, stats)
    return stats
