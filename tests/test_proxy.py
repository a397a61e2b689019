"""Proxies and the SSRF guard: proxy variables are ignored unless ``--allow-proxy``; through a proxy every
target (and every redirect) is checked before the proxy sees it; Beam's loopback gRPC never takes the proxy."""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest

from wit_pipeline import http as wit_http
from wit_pipeline.beam import LOOPBACK_HOSTS, keep_loopback_grpc_direct
from wit_pipeline.candidates.pipeline import CandidateOptions, run_candidates
from wit_pipeline.cli import main as wit
from wit_pipeline.http import make_session

PRIVATE_TARGETS = ("http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                   "http://10.0.0.1/admin.jpg")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                   "NO_PROXY", "no_proxy")
LENIENT = ["--min-image-size", "0", "--max-aspect-ratio", "100", "--timeout", "2", "--retries", "0",
           "--threads", "4"]


class _ProxyHandler(BaseHTTPRequestHandler):
    """Forwards absolute-URI GETs to their target; refuses CONNECT. Every request line is recorded."""

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.server.seen.append(self.requestline)
        target = urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=5)
        try:
            upstream.request("GET", target.path + (f"?{target.query}" if target.query else ""),
                             headers={"Host": target.netloc, "User-Agent": self.headers.get("User-Agent", "")})
            answer = upstream.getresponse()
            body = answer.read()
        except OSError:
            self.send_error(502)
            return
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self):
        self.server.seen.append(self.requestline)
        self.send_error(501)


def _requests_for(seen: list[str], urls) -> list[str]:
    """The proxy's request lines that name one of ``urls``' hosts (Beam's DirectRunner may also ask the
    proxy for its Prism runner binary on GitHub: not ours to judge)."""
    hosts = {urlsplit(url).netloc for url in urls}
    return [line for line in seen if any(host in line for host in hosts)]


@pytest.fixture
def proxy():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
    server.daemon_threads = True
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def proxied(proxy, monkeypatch):
    """HTTP(S)_PROXY point at the recording proxy (and nothing bypasses it)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.setenv("HTTPS_PROXY", url)
    return proxy


def _good_urls(sample_web, n=4):
    return [sample_web.image_url(image) for image in sample_web.site.images[:n]]


def _download(tmp_path, urls, *flags):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"url": u, "text": f"caption {i}"}) + "\n" for i, u in enumerate(urls)))
    out = tmp_path / "out"
    assert wit(["download", "--input", str(source), "--out", str(out), *LENIENT, *flags]) == 0
    rows = {}
    for name in sorted(os.listdir(out)):
        if name.endswith(".parquet"):
            rows.update({row["url"]: row for row in pq.read_table(out / name).to_pylist()})
    return rows, json.loads((out / "stats.json").read_text())


@pytest.mark.parametrize("flags", [[], ["--allow-proxy"]], ids=["proxy-ignored", "allow-proxy"])
def test_private_targets_are_refused_and_never_reach_the_proxy(proxied, sample_web, tmp_path, flags):
    loopback = _good_urls(sample_web, 1)[0]
    targets = [*PRIVATE_TARGETS, loopback, "http://[::1]:9/x.jpg"]
    rows, stats = _download(tmp_path, targets, *flags)
    assert {url: row["status"] for url, row in rows.items()} == dict.fromkeys(targets, "blocked_address")
    assert stats["accounted"] and stats["out"] == 0
    assert _requests_for(proxied.seen, targets) == []


def test_allow_proxy_sends_the_requests_through_the_proxy(proxied, sample_web, tmp_path):
    urls = _good_urls(sample_web)
    rows, stats = _download(tmp_path, urls, "--allow-proxy", "--allow-private-networks")
    assert [rows[u]["status"] for u in urls] == ["success"] * len(urls) and stats["out"] == len(urls)
    # the images, and each origin's opt-out signal files (robots.txt, tdmrep.json, ai.txt) once
    origins = {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in urls}
    files = [f"GET {o}{path} HTTP/1.1" for o in origins for path in ("/robots.txt", "/.well-known/tdmrep.json",
                                                                     "/ai.txt")]
    assert sorted(_requests_for(proxied.seen, urls)) == sorted([*(f"GET {u} HTTP/1.1" for u in urls), *files])


def test_without_allow_proxy_the_proxy_is_ignored_and_the_user_told_once(proxied, sample_web, monkeypatch,
                                                                          caplog):
    monkeypatch.setattr(wit_http, "_proxy_warned", False)
    url = _good_urls(sample_web, 1)[0]
    with caplog.at_level(logging.WARNING, logger="wit_pipeline.http"):
        for _ in range(2):
            with make_session(allow_private_networks=True) as session:
                assert session.fetch(url).ok
    assert proxied.seen == []
    warnings = [r.getMessage() for r in caplog.records if "--allow-proxy" in r.getMessage()]
    assert len(warnings) == 1 and "HTTP_PROXY" in warnings[0]


def test_no_proxy_hosts_go_direct_and_stay_guarded(proxied, sample_web, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    url = _good_urls(sample_web, 1)[0]
    with make_session(allow_proxy=True, retries=0) as session:
        assert session.fetch(url).error == "blocked_address"        # the connect-time guard, as without a proxy
    with make_session(allow_proxy=True, allow_private_networks=True) as session:
        assert session.fetch(url).ok
    assert _requests_for(proxied.seen, [url]) == []


def test_remote_input_files_go_direct_and_guarded_with_a_proxy_set(proxied, sample_web):
    from wit_pipeline.errors import UserError
    from wit_pipeline.http import fetch_bytes

    with pytest.raises(UserError, match="blocked_address"):
        fetch_bytes(sample_web.url("/robots.txt"))
    assert fetch_bytes(sample_web.url("/robots.txt"), allow_private_networks=True)
    assert _requests_for(proxied.seen, [sample_web.base_url]) == []


def test_a_redirect_to_a_private_address_is_refused_before_the_proxy(proxied):
    """The first hop is public-looking and allowed through; the redirect it answers must be checked again."""
    with make_session(allow_proxy=True, retries=0) as session:
        session._check_target = _public_except({"169.254.169.254", "10.0.0.1"}, session._check_target)
        # 127.0.0.1 passes the stubbed check and the proxy forwards it; it redirects to metadata
        redirector = _redirect_server("http://169.254.169.254/latest/meta-data/")
        try:
            result = session.fetch(f"http://127.0.0.1:{redirector.server_address[1]}/start.jpg")
        finally:
            redirector.shutdown()
            redirector.server_close()
    assert result.error == "blocked_address" and "169.254.169.254" in result.final_url
    assert proxied.seen == [f"GET http://127.0.0.1:{redirector.server_address[1]}/start.jpg HTTP/1.1"]


def _public_except(private_hosts, check):
    def stub(host, port):
        if host in private_hosts:
            check(host, port)          # the real check refuses it
    return stub


def _redirect_server(location):
    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("allow_proxy", [False, True])
def test_the_search_crawl_refuses_private_endpoints_through_a_proxy(proxied, tmp_path, allow_proxy):
    queries = tmp_path / "q.txt"
    queries.write_text("circle\n")
    stats = run_candidates(CandidateOptions(source="search", inputs=[str(queries)], out=str(tmp_path / "s"),
                                            endpoint="http://169.254.169.254/latest/meta-data/", rate_per_host=0,
                                            allow_proxy=allow_proxy))
    assert stats["counters"].get("search_failed_blocked_address") == 1
    assert _requests_for(proxied.seen, ["http://169.254.169.254/"]) == []


def test_the_search_crawl_goes_through_the_proxy_when_allowed(proxied, sample_web, tmp_path):
    queries = tmp_path / "q.txt"
    queries.write_text("circle\n")
    run_candidates(CandidateOptions(source="search", inputs=[str(queries)], out=str(tmp_path / "s"),
                                    endpoint=sample_web.base_url + "/v1/images/", rate_per_host=0,
                                    allow_private_networks=True, allow_proxy=True))
    assert any("/v1/images/?q=circle" in line for line in _requests_for(proxied.seen, [sample_web.base_url]))


def test_loopback_is_added_to_no_grpc_proxy_keeping_what_is_there():
    environ = {"no_proxy": "corp.example"}
    keep_loopback_grpc_direct(environ)
    assert environ["no_grpc_proxy"].split(",") == ["corp.example", *LOOPBACK_HOSTS]
    environ = {"no_grpc_proxy": "grpc.example,localhost", "no_proxy": "ignored.example"}
    keep_loopback_grpc_direct(environ)
    keep_loopback_grpc_direct(environ)
    assert environ["no_grpc_proxy"].split(",") == ["grpc.example", "localhost", "127.0.0.1", "::1", "[::1]"]


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]   # closed again: nothing listens there


def test_download_runs_on_the_multi_process_runner_with_a_proxy_set(sample_web, tmp_path):
    """Beam's workers talk gRPC to the driver over loopback; a (dead) proxy in the environment must not
    take those connections, and the downloads themselves go direct (no --allow-proxy)."""
    urls = _good_urls(sample_web)
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"url": u, "text": "a caption"}) + "\n" for u in urls))
    dead = f"http://127.0.0.1:{_dead_port()}"
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES and k != "no_grpc_proxy"}
    env.update({name: dead for name in PROXY_VARIABLES if "no" not in name.lower()},
               WIT_DIRECT_RUNNING_MODE="multi_processing", NO_ALBUMENTATIONS_UPDATE="1")
    out = tmp_path / "out"
    # Its own process group, so a hung run's Beam workers can be stopped with it.
    process = subprocess.Popen([sys.executable, "-m", "wit_pipeline", "download", "--input", str(source), "--out",
                                str(out), "--processes", "2", "--samples-per-shard", "2", "--allow-private-networks",
                                *LENIENT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        _out, err = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    assert process.returncode == 0, err[-3000:]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["out"] == len(urls) and stats["accounted"]
