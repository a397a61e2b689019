"""One bad URL, redirect or image is one counted row: malformed URLs and malformed redirect ``Location``s
between good rows, and exceptions nothing expected, never end the download."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.parquet as pq
import pytest

from wit_pipeline.cli import main as wit
from wit_pipeline.download import downloader

MALFORMED_URLS = [
    "http://www..example.com/a.jpg",              # empty DNS label (idna refuses it)
    "http://" + "a" * 64 + ".example.com/a.jpg",  # 64-character label
    "http://[::1/x.jpg",                          # unclosed IPv6 literal
    "http://[zzzz]/x.jpg",                        # not an IPv6 address
    "http://example.com:99999/x.jpg",             # port out of range
    "http://example.com:-1/x.jpg",
    "http://example.com:port/x.jpg",
    "http://exa mple.com/x.jpg",                  # white space in the host
    "http://exa\x00mple.com/x.jpg",               # control characters
    "http://example.com/\nx.jpg",
    "http://\u2603..com/x.jpg",                   # non-ASCII host with an empty label
    "http:///x.jpg",                              # no host
    "javascript:alert(1)",
    "ftp://example.com/x.jpg",
]

MALFORMED_LOCATIONS = {
    "ipv6-unclosed": "http://[::1",
    "ipv6-bogus": "http://[zzzz]/x.jpg",
    "empty-label": "http://www..example.com/a.jpg",
    "long-label": "http://" + "b" * 64 + ".example.com/a.jpg",
    "bad-port": "http://example.com:70000/x.jpg",
    "javascript": "javascript:alert(1)",
    "data": "data:image/png;base64,AAAA",
    "file": "file:///etc/passwd",
    "space-host": "http://exa mple.com/x.jpg",
}


class _Redirects(BaseHTTPRequestHandler):
    """``/r/NAME`` answers 302 with MALFORMED_LOCATIONS[NAME]; ``/no-location`` a 302 without one;
    ``/lowercase`` a lower-case ``location:`` header naming a javascript: URL."""

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.send_response(302)
        if self.path.startswith("/r/"):
            self.send_header("Location", MALFORMED_LOCATIONS[self.path[3:]])
        elif self.path == "/lowercase":
            self.send_header("location", "javascript:alert(1)")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def redirects():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirects)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _statuses(out) -> dict[str, dict]:
    rows = {}
    for name in sorted(os.listdir(out)):
        if name.endswith(".parquet"):
            rows.update({row["url"]: row for row in pq.read_table(out / name).to_pylist()})
    return rows


def _download(tmp_path, urls: list[str]) -> tuple[int, dict, dict]:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"url": url, "text": f"caption {i}"}) + "\n" for i, url in enumerate(urls)))
    out = tmp_path / "out"
    code = wit(["download", "--input", str(source), "--out", str(out), "--allow-private-networks",
                "--min-image-size", "0", "--max-aspect-ratio", "100", "--timeout", "2", "--retries", "0",
                "--threads", "4", "--samples-per-shard", "8"])
    return code, _statuses(out), json.loads((out / "stats.json").read_text())


def test_malformed_urls_and_redirects_are_counted_between_good_rows(sample_web, redirects, tmp_path):
    good = [sample_web.image_url(image) for image in sample_web.site.images[:6]]
    bad_redirects = [f"{redirects}/r/{name}" for name in MALFORMED_LOCATIONS] + [
        f"{redirects}/no-location", f"{redirects}/lowercase"]
    bad = MALFORMED_URLS + bad_redirects
    urls = [url for pair in zip(bad, good * len(bad), strict=False) for url in pair]   # bad, good, bad, good ...
    code, rows, stats = _download(tmp_path, urls)
    assert code == 0
    assert {url: rows[url]["status"] for url in good} == dict.fromkeys(good, "success")
    assert {url: rows[url]["status"] for url in MALFORMED_URLS} == dict.fromkeys(MALFORMED_URLS, "invalid_url")
    assert {url: rows[url]["status"] for url in bad_redirects} == dict.fromkeys(bad_redirects, "bad_redirect")
    assert all(rows[url]["error_message"] for url in bad)
    assert stats["accounted"] and stats["in"] == len(urls) and stats["out"] == len(urls) - len(bad)
    assert stats["dropped"] == {"invalid_url": len(MALFORMED_URLS), "bad_redirect": len(bad_redirects)}


def test_an_unexpected_exception_in_a_row_is_that_rows_internal_error(sample_web, tmp_path, monkeypatch):
    good = [sample_web.image_url(image) for image in sample_web.site.images[:4]]
    real = downloader.sample_members

    def members_failing_for_the_second(jpg, text, meta):
        if meta["url"] == good[1]:
            raise RuntimeError("a bug nobody expected")
        return real(jpg, text, meta)

    monkeypatch.setattr(downloader, "sample_members", members_failing_for_the_second)
    code, rows, stats = _download(tmp_path, good)
    assert code == 0
    assert rows[good[1]]["status"] == "internal_error" and "RuntimeError" in rows[good[1]]["error_message"]
    assert [rows[u]["status"] for u in good if u != good[1]] == ["success"] * 3
    assert stats["accounted"] and stats["dropped"] == {"internal_error": 1}


def test_an_image_step_raising_something_undeclared_is_a_decode_error(sample_web, tmp_path, monkeypatch):
    good = [sample_web.image_url(image) for image in sample_web.site.images[:3]]
    real = downloader.load_resized

    def load_failing_for_the_first(body, *args, **kwargs):
        if body == first_body[0]:
            raise SyntaxError("broken PNG chunk")    # what Pillow raises for some damaged files
        return real(body, *args, **kwargs)

    from wit_pipeline.http import make_session

    with make_session(allow_private_networks=True) as session:
        first_body = [session.fetch(good[0]).body]
    monkeypatch.setattr(downloader, "load_resized", load_failing_for_the_first)
    code, rows, stats = _download(tmp_path, good)
    assert code == 0
    assert rows[good[0]]["status"] == "decode_error" and "SyntaxError" in rows[good[0]]["error_message"]
    assert stats["accounted"] and stats["out"] == 2
