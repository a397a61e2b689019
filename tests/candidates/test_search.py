"""The search source: per-query crawls of Openverse- and MediaWiki-shaped APIs on the loopback sample web."""

from collections import Counter

import pytest

from wit_pipeline.candidates.sources.search import HostRateLimiter, crawl_query
from wit_pipeline.consent import OriginSignals
from wit_pipeline.http import make_session


@pytest.fixture()
def crawler():
    with make_session(allow_private_networks=True, retries=1) as session:
        yield session, OriginSignals(session, signals=("robots",))


@pytest.mark.parametrize("api, path", [("openverse", "/v1/images/"), ("mediawiki", "/w/api.php")])
def test_crawl_pages_through_every_result_with_provenance(sample_web, crawler, api, path):
    session, robots = crawler
    counts = Counter()
    rows = list(crawl_query("circle", api=api, endpoint=sample_web.base_url + path, session=session,
                            robots=robots, limiter=HostRateLimiter(0), cap=10_000, page_size=7, counts=counts))
    expected = sample_web.search("circle")
    assert len(expected) > 14                                   # several pages of 7
    assert [r["url"] for r in rows] == [sample_web.image_url(i) for i in expected]
    assert [r["text"] for r in rows] == [i.caption for i in expected]
    assert counts["search_requests"] == -(-len(expected) // 7)
    for row in rows:
        assert row["source"] == "search" and row["search_query"] == "circle"
        assert row["license"].startswith("CC") and row["license_url"].startswith("https://creativecommons.org/")
        assert row["creator"].startswith("Sample Artist") and row["page_url"].startswith(sample_web.base_url)


def test_per_query_cap_stops_the_crawl_early(sample_web, crawler):
    session, robots = crawler
    counts = Counter()
    rows = list(crawl_query("circle", api="openverse", endpoint=sample_web.base_url + "/v1/images/",
                            session=session, robots=robots, limiter=HostRateLimiter(0), cap=5, page_size=4,
                            counts=counts))
    assert len(rows) == 5 and counts["search_requests"] == 2 and counts["search_queries_capped"] == 1


def test_robots_disallowed_endpoint_is_never_requested(sample_web, crawler):
    session, robots = crawler
    counts = Counter()
    before = sum(1 for _t, p, _ua in sample_web.requests if p.startswith("/private/"))
    rows = list(crawl_query("circle", api="openverse", endpoint=sample_web.base_url + "/private/v1/images/",
                            session=session, robots=robots, limiter=HostRateLimiter(0), cap=100, page_size=20,
                            counts=counts))
    assert rows == [] and counts["search_robots_disallowed"] == 1
    assert sum(1 for _t, p, _ua in sample_web.requests if p.startswith("/private/")) == before


def test_requests_to_one_host_are_spaced_by_the_rate_limit(sample_web, crawler):
    session, robots = crawler
    robots.allowed(sample_web.base_url + "/v1/images/")        # robots.txt fetched before timing
    start = len(sample_web.requests)
    list(crawl_query("circle", api="openverse", endpoint=sample_web.base_url + "/v1/images/", session=session,
                     robots=robots, limiter=HostRateLimiter(20.0), cap=10_000, page_size=5, counts=Counter()))
    times = [t for t, path, _ua in sample_web.requests[start:] if path.startswith("/v1/images/")]
    assert len(times) >= 4
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.045                                    # 1 / 20 s, less timer slack


def test_a_throttled_api_is_retried_with_backoff_not_skipped():
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Flaky(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.path)
            if self.path.startswith("/robots.txt"):
                body, status, extra = b"User-agent: *\nAllow: /\n", 200, {}
            elif len([p for p in seen if p.startswith("/v1/")]) == 1:
                body, status, extra = b"slow down", 429, {"Retry-After": "0"}
            else:
                body = json.dumps({"page_count": 1, "results": [
                    {"url": "http://img.example.org/1.jpg", "title": "a red kite over the hills",
                     "license": "by", "license_version": "4.0"}]}).encode()
                status, extra = 200, {}
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **extra}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with make_session(allow_private_networks=True, retries=2, backoff_s=0.01) as session:
            counts = Counter()
            rows = list(crawl_query("kite", api="openverse", endpoint=f"http://127.0.0.1:{server.server_port}/v1/images/",
                                    session=session, robots=OriginSignals(session, signals=("robots",)),
                                    limiter=HostRateLimiter(0), cap=10, page_size=20, counts=counts))
    finally:
        server.shutdown()
        server.server_close()
    assert [r["url"] for r in rows] == ["http://img.example.org/1.jpg"] and rows[0]["license"] == "CC BY 4.0"
    assert len([p for p in seen if p.startswith("/v1/")]) == 2          # the 429, then the retry
    assert not any(k.startswith("search_failed") for k in counts)
