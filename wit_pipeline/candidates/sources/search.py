"""The ``search`` source: each query expanded into a crawl of a paginated image-search API.

For every query, result pages are requested one after another until the
per-query cap is reached, the API reports no more results, or a request fails
for good. Two real public response shapes are supported, each against a
configurable endpoint:

- ``openverse``: ``GET {endpoint}?q=QUERY&page=N&page_size=S`` (Openverse's
  ``/v1/images/``): ``results[]`` with ``url``, ``title``, ``foreign_landing_url``,
  ``creator``, ``license``, ``license_version``, ``license_url``; ``page_count``.
- ``mediawiki``: ``GET {endpoint}?action=query&format=json&generator=search&gsrsearch=QUERY
  &gsrnamespace=6&gsroffset=O&gsrlimit=S&prop=imageinfo&iiprop=url|extmetadata``
  (Wikimedia Commons' ``api.php``): ``query.pages{}`` with ``imageinfo[0].url``,
  ``descriptionurl`` and ``extmetadata`` (``ImageDescription``, ``Artist``,
  ``LicenseShortName``, ``LicenseUrl``); ``continue.gsroffset`` for the next page.

Network: every request goes through the guarded session (``--allow-proxy`` to use the
environment's proxy, each target still checked first). Politeness: retries with
exponential backoff on 429/5xx and timeouts (``Retry-After`` honoured), the
host's robots.txt is obeyed (``consent.OriginSignals``: RFC 9309 for the product token
``wit-pipeline``; a disallowed endpoint is never requested, nor one whose robots.txt answers 5xx or
cannot be reached), and
the request rate to one host is bounded for the whole job: the queries are
split among ``crawlers`` sequential crawls, each spacing its requests by
``crawlers / rate`` seconds (or ``crawlers`` robots.txt ``Crawl-delay``s when
longer), so the host sees at most ``rate`` requests per second however the
crawls are spread over workers.

Licence, creator and landing page go into each row's provenance.

Counters: ``search_queries``, ``search_requests``, ``search_results``,
``search_queries_capped``, ``search_robots_disallowed`` (queries not crawled),
``search_failed_<reason>`` (a page request that failed after retries; the
query's crawl stops there), ``search_bad_response`` (not JSON, or JSON of an unexpected
shape: the query's crawl stops there too).
"""

from __future__ import annotations

import functools
import json
import threading
import time
import zlib
from collections import Counter
from html.parser import HTMLParser
from typing import Iterator
from urllib.parse import urlencode, urlsplit

from ... import fileio
from ...errors import UserError
from ...http import warn_ignored_proxies
from ...schemas import candidate_row

APIS = ("openverse", "mediawiki")
DEFAULT_PAGE_SIZE = {"openverse": 20, "mediawiki": 50}


class HostRateLimiter:
    """At most one request per ``interval_s`` to each host (thread-safe).

    ``share``: the number of crawls splitting ``rate_per_s`` (and the host's
    Crawl-delay); each waits ``share`` times as long, so together they keep to it.
    """

    def __init__(self, rate_per_s: float, share: int = 1):
        self.share = max(1, share)
        self.interval_s = self.share / rate_per_s if rate_per_s and rate_per_s > 0 else 0.0
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str, min_interval_s: float = 0.0) -> None:
        interval = max(self.interval_s, min_interval_s * self.share)
        if interval <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, now))
            self._next[host] = start + interval
        if start > now:
            time.sleep(start - now)


class _TextOnly(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)


def html_to_text(value) -> str | None:
    """Plain text of an HTML fragment (MediaWiki's extmetadata values are HTML)."""
    if not isinstance(value, str):
        return None
    if "<" not in value and "&" not in value:
        return value.strip()
    parser = _TextOnly()
    parser.feed(value)
    parser.close()
    return " ".join("".join(parser.parts).split())


# -- Openverse ---------------------------------------------------------------------------------
def openverse_url(endpoint: str, query: str, page: int, page_size: int) -> str:
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode({'q': query, 'page': page, 'page_size': page_size})}"


def parse_openverse(answer: dict, endpoint: str, query: str, page: int) -> tuple[list[dict], bool]:
    """(rows, more pages exist) from one Openverse answer."""
    rows = []
    for item in answer.get("results") or []:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            continue
        licence = item.get("license")
        if isinstance(licence, str) and licence:
            version = item.get("license_version") or ""
            licence = (("CC0" if licence.lower() == "cc0" else f"CC {licence.upper()}")
                       + (f" {version}" if version else ""))
        rows.append(candidate_row(item["url"], item.get("title") or "", source="search",
                                  page_url=item.get("foreign_landing_url"), source_file=endpoint,
                                  search_query=query, license=licence or None,
                                  license_url=item.get("license_url"), creator=item.get("creator")))
    page_count = answer.get("page_count")
    more = bool(rows) and (not isinstance(page_count, int) or page < page_count)
    return rows, more


# -- MediaWiki (Wikimedia Commons) -------------------------------------------------------------
def mediawiki_url(endpoint: str, query: str, offset: int, limit: int) -> str:
    params = {"action": "query", "format": "json", "generator": "search", "gsrsearch": query, "gsrnamespace": 6,
              "gsroffset": offset, "gsrlimit": limit, "prop": "imageinfo", "iiprop": "url|extmetadata"}
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"


def _file_title_text(title: str) -> str:
    name = title.split(":", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def _meta_value(meta: dict, key: str) -> str | None:
    entry = meta.get(key)
    return (entry or {}).get("value") if isinstance(entry, dict) else None


def parse_mediawiki(answer: dict, endpoint: str, query: str) -> tuple[list[dict], int | None]:
    """(rows, next offset or None) from one MediaWiki answer."""
    pages = ((answer.get("query") or {}).get("pages") or {})
    pages = pages.values() if isinstance(pages, dict) else pages
    rows = []
    for page in sorted((p for p in pages if isinstance(p, dict)), key=lambda p: p.get("index", 0)):
        info = (page.get("imageinfo") or [{}])[0]
        if not isinstance(info, dict) or not isinstance(info.get("url"), str):
            continue
        meta = info.get("extmetadata") or {}
        value = functools.partial(_meta_value, meta)
        text = html_to_text(value("ImageDescription")) or _file_title_text(page.get("title") or "")
        rows.append(candidate_row(info["url"], text, source="search", page_url=info.get("descriptionurl"),
                                  source_file=endpoint, search_query=query,
                                  license=html_to_text(value("LicenseShortName")),
                                  license_url=value("LicenseUrl"), creator=html_to_text(value("Artist"))))
    cont = answer.get("continue") or {}
    offset = cont.get("gsroffset")
    try:
        return rows, int(offset) if offset is not None else None
    except (TypeError, ValueError):
        return rows, None


# -- the crawl ---------------------------------------------------------------------------------
def _parse_page(api: str, body: bytes, endpoint: str, query: str, page: int) -> tuple[list[dict], bool, int | None]:
    """(rows, more pages exist, MediaWiki's next offset) of one answer; raises for an unexpected shape."""
    answer = json.loads(body)
    if not isinstance(answer, dict):
        raise ValueError("not an object")
    if api == "openverse":
        rows, more = parse_openverse(answer, endpoint, query, page)
        return rows, more, None
    rows, next_offset = parse_mediawiki(answer, endpoint, query)
    return rows, next_offset is not None, next_offset


def crawl_query(query: str, *, api: str, endpoint: str, session, robots, limiter: HostRateLimiter,
                cap: int, page_size: int, counts: Counter, max_pages: int = 10_000) -> Iterator[dict]:
    """Rows for one query, page after page, until ``cap`` rows, the last page or a failure."""
    if api not in APIS:
        raise UserError(f"--api must be one of {', '.join(APIS)}, not {api!r}")
    counts["search_queries"] += 1
    host = urlsplit(endpoint).netloc
    produced, page, offset = 0, 1, 0
    for _ in range(max_pages):
        url = (openverse_url(endpoint, query, page, page_size) if api == "openverse"
               else mediawiki_url(endpoint, query, offset, page_size))
        if robots is not None and not robots.allowed(url):
            counts["search_robots_disallowed"] += 1
            return
        delay = robots.crawl_delay(url) if robots is not None else None
        limiter.wait(host, delay or 0.0)
        counts["search_requests"] += 1
        result = session.fetch(url)
        if not result.ok:
            # Openverse answers 400 for a page past the end: that is the end, not a failure.
            if api == "openverse" and result.status == 400 and page > 1:
                return
            counts[f"search_failed_{result.error}"] += 1
            return
        try:
            rows, more, next_offset = _parse_page(api, result.body, endpoint, query, page)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
            # not JSON, or JSON of another shape (a hostile or broken API): the query's crawl ends here
            counts["search_bad_response"] += 1
            return
        page += 1
        if api == "mediawiki":
            more = next_offset is not None and next_offset > offset
            offset = next_offset or offset
        for row in rows:
            if produced >= cap:
                break
            produced += 1
            counts["search_results"] += 1
            yield row
        if produced >= cap:
            counts["search_queries_capped"] += 1
            return
        if not more:
            return


def crawler_of(query: str, crawlers: int) -> int:
    """Which of the ``crawlers`` crawls takes ``query`` (stable across runs and workers)."""
    return zlib.crc32(query.encode("utf-8")) % crawlers


def check_search(options) -> None:
    """The search source's settings, checked on the driver before anything runs."""
    if not (options.endpoint or "").startswith(("http://", "https://")):
        raise UserError("--source search needs --endpoint, the API's http(s) URL")
    if len(options.inputs) != 1:
        raise UserError("--source search takes one --input: a queries directory or text file")
    if not options.allow_proxy:
        warn_ignored_proxies()     # here, on the driver: the crawl's workers do not show warnings by default
    fileio.check_readable(options.inputs[0], "--input")   # a query list: probed for a queries directory
