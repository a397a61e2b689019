"""The guarded HTTP session: SSRF guard, bounded bodies, retries, opt-outs, robots.txt."""

from __future__ import annotations

import pytest

from wit_pipeline.http import RobotsCache, is_public_address, make_session, robots_tag_opts_out


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("240.0.0.1", False), ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False),
])
def test_public_address_classification(address, public):
    assert is_public_address(address) is public


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
    assert robots_tag_opts_out(header) is opted_out


def test_robots_txt_is_honoured(sample_web):
    with make_session(allow_private_networks=True) as session:
        robots = RobotsCache(session)
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
