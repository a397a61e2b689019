"""The guarded HTTP session: SSRF guard, bounded bodies, retries, opt-outs, robots.txt."""

from __future__ import annotations

import pytest

from wit_pipeline.consent import OriginSignals, x_robots_tag_refuses
from wit_pipeline.http import REASONS, is_public_address, make_session, url_problem


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("240.0.0.1", False), ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False),
])
def test_public_address_classification(address, public):
    assert is_public_address(address) is public


@pytest.mark.parametrize("address, public", [
    ("2002:7f00:1::", False), ("2002:a9fe:a9fe::", False), ("2002:a00:1::", False),       # 6to4 of private IPv4
    ("2002:808:808::1", True),                                                             # 6to4 of 8.8.8.8
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),   # Teredo, client 127.0.0.1 (stored XOR 0xffffffff)
    ("2001:0:a00:1:8000:63bf:f7f7:f7f7", False),       # Teredo, server 10.0.0.1
    ("64:ff9b::7f00:1", False), ("64:ff9b::a9fe:a9fe", False), ("64:ff9b::a00:1", False),  # NAT64 of private
    ("64:ff9b::808:808", True),                                                            # NAT64 of 8.8.8.8
    ("64:ff9b:1::a00:1", False),                                                           # NAT64 local use
    ("::127.0.0.1", False), ("::10.0.0.1", False), ("::169.254.169.254", False),          # IPv4-compatible
    ("::ffff:169.254.169.254", False), ("::ffff:8.8.8.8", True),
])
def test_ipv6_forms_carrying_an_ipv4_address_are_judged_by_it(address, public):
    assert is_public_address(address) is public


@pytest.mark.parametrize("url", [
    "http://www..example.com/a.jpg", "http://" + "a" * 64 + ".com/a.jpg", "http://[::1/x.jpg", "http://[zzzz]/x.jpg",
    "http://example.com:99999/x.jpg", "http://example.com:x/x.jpg", "http://exa mple.com/x.jpg",
    "http://example.com/\x00.jpg", "http://ex\tample.com/", "http://\u2603..com/", "javascript:alert(1)", "http://",
    "//example.com/x.jpg", None,
])
def test_malformed_urls_are_a_problem_named_before_any_request(url):
    assert url_problem(url)
    with make_session(retries=0) as session:
        result = session.fetch(url)
    assert result.error == "invalid_url" and result.message and result.attempts == 1


@pytest.mark.parametrize("url", ["http://example.com/a b.jpg", "https://xn--bcher-kva.example/x.jpg",
                                 "http://b\u00fccher.example/x.jpg", "http://[2606:4700::1111]:8080/x", "http://a.b./"])
def test_well_formed_urls_have_no_problem(url):
    assert url_problem(url) is None


def test_fetch_never_raises_whatever_goes_wrong_inside(monkeypatch):
    with make_session(retries=2) as session:
        def broken(*args, **kwargs):
            raise RuntimeError("something nobody expected")

        monkeypatch.setattr(session, "_follow", broken)
        result = session.fetch("http://example.com/x.jpg")
    assert result.error == "fetch_error" and "RuntimeError" in result.message and result.attempts == 1
    assert "fetch_error" in REASONS and "bad_redirect" in REASONS


def test_loopback_is_refused_by_default(sample_web):
    with make_session() as session:
        result = session.fetch(sample_web.url("/robots.txt"))
    assert result.error == "blocked_address" and result.body is None
    with make_session(allow_private_networks=True) as session:
        assert session.fetch(sample_web.url("/robots.txt")).ok


def test_names_resolving_to_private_addresses_are_refused():
    with make_session(retries=0) as session:
        assert session.fetch("http://localhost:9/x.jpg").error == "blocked_address"


def test_non_http_urls_are_invalid():
    with make_session() as session:
        for url in ("ftp://example.com/x.jpg", "data:image/png;base64,AAAA", "file:///etc/passwd", "http://"):
            assert session.fetch(url).error == "invalid_url"


def test_bodies_are_cut_at_max_bytes(sample_web):
    image_path = sample_web.site.images[0].path
    with make_session(allow_private_networks=True, max_bytes=1000) as session:
        result = session.fetch(sample_web.url(image_path))
    assert result.error == "too_large" and result.body is None


def test_retries_reach_a_server_that_recovers(sample_web):
    url = sample_web.url("/fault/unavailable-then-ok.jpg?retry-test")
    with make_session(allow_private_networks=True, retries=0) as session:
        assert session.fetch(url).error == "http_503"
        assert session.fetch(url).ok  # the server recovers on its second request
    with make_session(allow_private_networks=True, retries=2, backoff_s=0.01) as session:
        result = session.fetch(sample_web.url("/fault/unavailable-then-ok.jpg?retry-test-2"))
    assert result.ok and result.attempts == 2


def test_keep_alive_connections_are_reused(sample_web):
    with make_session(allow_private_networks=True) as session:
        for image in sample_web.site.images[:6]:
            session.fetch(sample_web.url(image.path))
        pools = session.session.get_adapter("http://").poolmanager.pools
        (pool,) = [pools[key] for key in pools.keys()]
        assert pool.num_connections == 1


@pytest.mark.parametrize("header, opted_out", [
    ("noai", True), ("noimageai", True), ("noindex, NoAI", True), ("googlebot: noai", True),
    ("noindex, nofollow", False), (None, False), ("", False),
])
def test_x_robots_tag_opt_outs(header, opted_out):
    assert x_robots_tag_refuses(header) is opted_out


def test_robots_txt_is_honoured(sample_web):
    with make_session(allow_private_networks=True) as session:
        robots = OriginSignals(session, signals=("robots",))
        assert not robots.allowed(sample_web.url("/private/v1/images/?q=circle"))
        assert robots.allowed(sample_web.url("/v1/images/?q=circle"))
        before = sample_web.hits("/robots.txt")
        robots.allowed(sample_web.url("/page/000.html"))
        assert sample_web.hits("/robots.txt") == before  # fetched once per origin


def test_a_server_that_trickles_bytes_hits_the_deadline():
    """Each byte arrives well within the read timeout, but the request as a whole must not run forever."""
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def trickle():
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n")
            while not stop.is_set():
                try:
                    conn.sendall(b"x")
                except OSError:
                    return
                time.sleep(0.1)

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow.jpg"
        with make_session(allow_private_networks=True, retries=0, timeout=(1.0, 1.0), deadline_s=1.5) as session:
            started = time.monotonic()
            result = session.fetch(url)
        assert result.error == "timeout" and result.body is None
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        listener.close()
        server.join(timeout=5)


# -- streamed reads of large files (wit train's http(s) shards) -------------------------------------------------

@pytest.fixture
def shard_server(tmp_path):
    """Two small training shards served on loopback; records each request's User-Agent."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from trainer.synthetic import write_shape_shards

    write_shape_shards(str(tmp_path), shards=2, samples_per_shard=8, image_size=32, seed=0)
    agents: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def do_GET(self):
            agents.append(self.headers.get("User-Agent", ""))
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", agents
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_training_shards_are_read_through_the_guarded_session(shard_server):
    from trainer.data import check_first_samples, read_captions
    from wit_pipeline import USER_AGENT
    from wit_pipeline.errors import UserError

    base, agents = shard_server
    urls = [f"{base}/00000.tar", f"{base}/00001.tar"]
    with pytest.raises(UserError, match="blocked_address.*--allow-private-networks"):
        check_first_samples(urls[0])
    assert agents == []
    assert read_captions(urls, 100) == []          # refused shards are skipped (and logged), never fetched
    assert agents == []
    check_first_samples(urls[0], allow_private_networks=True)
    assert len(read_captions(urls, 100, allow_private_networks=True)) == 16
    assert agents and set(agents) == {USER_AGENT}


def test_open_stream_stops_at_max_bytes_and_reports_http_errors(shard_server):
    from wit_pipeline.http import FetchFailed, open_url_stream

    base, _agents = shard_server
    with make_session(allow_private_networks=True, retries=0) as session:
        with pytest.raises(FetchFailed, match="too_large"):
            session.open_stream(f"{base}/00000.tar", max_bytes=1000)     # its Content-Length says so
        with pytest.raises(FetchFailed, match="http_404"):
            session.open_stream(f"{base}/missing.tar")
    with pytest.raises(FetchFailed, match="invalid_url"):
        open_url_stream("http://[::1/x.tar")
    with open_url_stream(f"{base}/00000.tar", allow_private_networks=True) as stream:
        assert stream.read(512)[257:262] == b"ustar"      # a tar header, streamed


def test_a_streamed_body_without_a_length_is_cut_at_max_bytes():
    from wit_pipeline.http import _BoundedBody

    class Raw:
        def read1(self, size, decode_content=True):
            return b"x" * min(size, 300)

    class Response:
        raw, closed = Raw(), False

        def close(self):
            self.closed = True

    response = Response()
    body = _BoundedBody(response, 1000, "http://example.com/big.tar")
    with pytest.raises(OSError, match="over 1000 bytes"):
        while body.read(256):
            pass
    body.close()
    assert response.closed
