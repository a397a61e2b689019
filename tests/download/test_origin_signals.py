"""Origin and response-header opt-outs on a loopback web of our own: robots.txt, tdmrep.json, ai.txt (each
fetched once per origin per run, with RFC 9309's error rules), X-Robots-Tag, tdm-reservation and
Content-Usage; a refused image leaves nothing in the output."""

from __future__ import annotations

import io
import json
import socket
import tarfile
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from wit_pipeline import USER_AGENT
from wit_pipeline.cli import main as wit
from wit_pipeline.consent import OriginSignals
from wit_pipeline.http import make_session


def _jpeg(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (shade, 255 - shade, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


ROBOTS = b"""User-agent: *
Disallow: /robots-no/
Content-Usage: /cu-robots/ train-ai=n
Content-Signal: /cs/ search=yes, ai-train=no

User-agent: GPTBot
Disallow: /gpt-no/
"""
TDMREP = b'[{"location": "/reserved/*", "tdm-reservation": 1}, {"location": "/", "tdm-reservation": 0}]'
AI_TXT = b"User-Agent: *\nDisallow: *.jpeg\n"
IMAGE_HEADERS = {
    "/noai.jpg": {"X-Robots-Tag": "noai"},
    "/tdm-header.jpg": {"tdm-reservation": "1"},
    "/cu-header.jpg": {"Content-Usage": "train-ai=n"},
}


class Web:
    """One origin: ``routes`` maps a path to (status, headers, body); every request is logged with its
    User-Agent. Image paths not routed answer a small JPEG of their own."""

    def __init__(self, routes: dict[str, tuple[int, dict, bytes]]):
        self.routes, self.requests, self.lock = routes, [], threading.Lock()
        web = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with web.lock:
                    web.requests.append((self.path, self.headers.get("User-Agent")))
                status, headers, body = web.answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str) -> tuple[int, dict, bytes]:
        if path in self.routes:
            return self.routes[path]
        if path.endswith((".jpg", ".jpeg")):
            return 200, {"Content-Type": "image/jpeg", **IMAGE_HEADERS.get(path, {})}, _jpeg(len(path) * 7 % 255)
        return 404, {}, b"not here"

    def hits(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _ua in self.requests if p == path)


@contextmanager
def serving(routes: dict[str, tuple[int, dict, bytes]]):
    web = Web(routes)
    thread = threading.Thread(target=web.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield web
    finally:
        web.server.shutdown()
        web.server.server_close()
        thread.join(timeout=5)


SIGNAL_FILES = {"/robots.txt": (200, {}, ROBOTS), "/.well-known/tdmrep.json": (200, {}, TDMREP),
                "/ai.txt": (200, {}, AI_TXT)}
EXPECTED = {
    "/ok.jpg": "success",
    "/gpt-no/a.jpg": "success",                       # GPTBot's rule: not obeyed unless named
    "/robots-no/a.jpg": "opt_out_robots",
    "/noai.jpg": "opt_out_noai",
    "/tdm-header.jpg": "opt_out_tdmrep",
    "/reserved/a.jpg": "opt_out_tdmrep",
    "/cu-header.jpg": "opt_out_content_usage",
    "/cu-robots/a.jpg": "opt_out_content_usage",
    "/cs/a.jpg": "opt_out_content_usage",
    "/a.jpeg": "opt_out_ai_txt",
}
# Refused from the origin's files: the image is never requested.
NEVER_REQUESTED = ("/robots-no/a.jpg", "/reserved/a.jpg", "/cu-robots/a.jpg", "/cs/a.jpg", "/a.jpeg")


@pytest.fixture
def web():
    with serving(dict(SIGNAL_FILES)) as served:
        yield served


def _download(tmp_path: Path, base: str, paths, *flags: str, out: str = "out") -> tuple[int, dict, dict, Path]:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"url": base + path, "text": f"caption {path}", "note": i}) + "\n"
                              for i, path in enumerate(paths)))
    target = tmp_path / out
    code = wit(["download", "--input", str(source), "--out", str(target), "--allow-private-networks",
                "--min-image-size", "0", "--timeout", "2", "--retries", "0", "--threads", "8",
                "--samples-per-shard", "64", *flags])
    rows = {}
    for part in sorted(target.glob("*.parquet")):
        rows.update({row["url"][len(base):]: row for row in pq.read_table(part).to_pylist()})
    stats = json.loads((target / "stats.json").read_text()) if code == 0 else {}
    return code, rows, stats, target


def _tar_members(out: Path) -> list[str]:
    names = []
    for part in sorted(out.glob("*.tar")):
        with tarfile.open(part) as tar:
            names += tar.getnames()
    return names


def test_each_signal_gives_its_status_and_leaves_nothing_of_the_image(web, tmp_path):
    paths = list(EXPECTED) * 3          # repeated rows: the origin's files are still fetched once
    code, rows, stats, out = _download(tmp_path, web.base, paths)
    assert code == 0
    assert {path: row["status"] for path, row in rows.items()} == EXPECTED
    for path, row in rows.items():
        if row["status"] != "success":
            assert row["error_message"] and row["caption"] == f"caption {path}" and row["note"] is not None
            assert row["sha256"] is None and row["width"] is None and row["exif"] is None
    successes = sum(1 for status in EXPECTED.values() if status == "success")
    assert len([n for n in _tar_members(out) if n.endswith(".jpg")]) == successes * 3
    assert all(web.hits(path) == 0 for path in NEVER_REQUESTED)
    assert [web.hits(path) for path in SIGNAL_FILES] == [1, 1, 1]
    assert stats["accounted"] and stats["consent_files"] == {
        "robots": {"ok": 1, "missing": 0, "error": 0}, "tdmrep": {"ok": 1, "missing": 0, "error": 0},
        "ai_txt": {"ok": 1, "missing": 0, "error": 0}}
    assert {ua for _path, ua in web.requests} == {USER_AGENT}


def test_no_signals_keeps_every_image_and_fetches_no_signal_file(web, tmp_path):
    code, rows, _stats, _out = _download(tmp_path, web.base, list(EXPECTED), "--opt-out-signals", "none")
    assert code == 0 and {row["status"] for row in rows.values()} == {"success"}
    assert [web.hits(path) for path in SIGNAL_FILES] == [0, 0, 0]


def test_a_chosen_subset_of_signals_is_honoured_alone(web, tmp_path):
    code, rows, _stats, _out = _download(tmp_path, web.base, list(EXPECTED), "--opt-out-signals", "noai,ai_txt")
    assert code == 0
    assert {p: r["status"] for p, r in rows.items() if r["status"] != "success"} == {
        "/noai.jpg": "opt_out_noai", "/a.jpeg": "opt_out_ai_txt"}
    assert [web.hits(path) for path in SIGNAL_FILES] == [0, 0, 1]


def test_robots_agents_and_user_agent(web, tmp_path):
    code, rows, _stats, _out = _download(tmp_path, web.base, ["/gpt-no/a.jpg", "/ok.jpg"],
                                         "--robots-agents", "GPTBot,CCBot", "--user-agent", "LabCrawler/1.0 (+x)")
    assert code == 0
    assert rows["/gpt-no/a.jpg"]["status"] == "opt_out_robots" and rows["/ok.jpg"]["status"] == "success"
    assert {ua for _path, ua in web.requests} == {"LabCrawler/1.0 (+x)"}


def test_retry_failed_leaves_refusals_alone_unless_named(web, tmp_path):
    paths = ["/ok.jpg", "/noai.jpg"]
    assert _download(tmp_path, web.base, paths)[0] == 0
    assert _download(tmp_path, web.base, paths, "--retry-failed")[0] == 0
    assert web.hits("/noai.jpg") == 1
    code, rows, _stats, _out = _download(tmp_path, web.base, paths, "--retry-failed", "opt_out_noai")
    assert code == 0 and web.hits("/noai.jpg") == 2 and rows["/noai.jpg"]["status"] == "opt_out_noai"


def test_resume_with_other_signals_is_refused(web, tmp_path, capsys):
    assert _download(tmp_path, web.base, ["/ok.jpg"])[0] == 0
    code = _download(tmp_path, web.base, ["/ok.jpg"], "--opt-out-signals", "robots")[0]
    assert code == 2 and "--opt-out-signals" in capsys.readouterr().err


# -- the per-origin cache and RFC 9309's error rules --------------------------------------------------------

def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("answer, outcome, allowed", [
    ((404, {}, b""), "missing", True),                # 4xx: no rules
    ((403, {}, b""), "missing", True),                # 401/403 too (RFC 9309 2.3.1.3)
    ((503, {}, b""), "error", False),                 # 5xx: disallow all
    ((500, {}, b""), "error", False),
    ((302, {"Location": "/real-robots.txt"}, b""), "ok", False),      # redirects followed
    ((200, {"X-Robots-Tag": "noai"}, b"User-agent: *\nDisallow: /\n"), "ok", False),   # headers not asked
])
def test_robots_txt_answers(answer, outcome, allowed):
    routes = {"/robots.txt": answer, "/real-robots.txt": (200, {}, b"User-agent: *\nDisallow: /\n")}
    with serving(routes) as served, make_session(allow_private_networks=True, retries=0) as session:
        origins = OriginSignals(session)
        refused = origins.refusal(served.base + "/a.jpg")
        assert (refused is None) is allowed
        if not allowed:
            assert refused[0] == "opt_out_robots"
        assert origins.take_counts()[("robots", outcome)] == 1


def test_unreachable_robots_txt_refuses_every_path():
    with make_session(allow_private_networks=True, retries=0, timeout=(1.0, 1.0)) as session:
        origins = OriginSignals(session, signals=("robots",))
        refused = origins.refusal(f"http://127.0.0.1:{_unused_port()}/a.jpg")
        assert refused[0] == "opt_out_robots" and "connection_error" in refused[1]
        assert origins.take_counts() == {("robots", "error"): 1}


def test_a_refused_address_is_that_reason_not_an_opt_out():
    with make_session(retries=0) as session:          # loopback not allowed
        refused = OriginSignals(session).refusal("http://127.0.0.1:9/a.jpg")
        assert refused[0] == "blocked_address"


def test_a_large_robots_txt_is_read_up_to_512_kib():
    big = b"User-agent: *\nDisallow: /early/\n" + b"# padding\n" * 60_000 + b"Disallow: /late/\n"
    with serving({"/robots.txt": (200, {}, big)}) as served, make_session(allow_private_networks=True) as session:
        origins = OriginSignals(session, signals=("robots",))
        assert origins.refusal(served.base + "/early/a.jpg")[0] == "opt_out_robots"
        assert origins.refusal(served.base + "/late/a.jpg") is None


@pytest.mark.parametrize("answer, refused", [
    ((200, {}, b"{not json"), True), ((500, {}, b""), True), ((404, {}, b""), False),
])
def test_tdmrep_json_that_cannot_be_read_refuses(answer, refused):
    with serving({"/.well-known/tdmrep.json": answer}) as served, \
            make_session(allow_private_networks=True, retries=0) as session:
        result = OriginSignals(session, signals=("tdmrep",)).refusal(served.base + "/a.jpg")
        assert (result is not None and result[0] == "opt_out_tdmrep") is refused


def test_concurrent_rows_of_one_origin_fetch_its_files_once(web):
    from concurrent.futures import ThreadPoolExecutor

    with make_session(allow_private_networks=True) as session:
        origins = OriginSignals(session)
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(origins.refusal, [web.base + f"/img/{i}.jpg" for i in range(64)]))
    assert results == [None] * 64
    assert [web.hits(path) for path in SIGNAL_FILES] == [1, 1, 1]
    with serving(dict(SIGNAL_FILES)) as other, make_session(allow_private_networks=True) as session:
        origins = OriginSignals(session)
        origins.refusal(other.base + "/a.jpg")
        origins.refusal(web.base + "/a.jpg")
        assert [other.hits(path) for path in SIGNAL_FILES] == [1, 1, 1]     # one fetch per origin


@pytest.mark.parametrize("field, value, flag", [
    ("opt_out_signals", "robots,exif", "--opt-out-signals"), ("robots_agents", "GPT Bot", "--robots-agents"),
    ("user_agent", "bot\r\nX-Injected: 1", "--user-agent"),
])
def test_library_callers_get_the_same_one_line_errors(tmp_path, field, value, flag):
    from wit_pipeline.download.pipeline import DownloadOptions
    from wit_pipeline.errors import UserError

    options = DownloadOptions(input=str(tmp_path), out=str(tmp_path / "out"), **{field: value})
    with pytest.raises(UserError, match=flag):
        options.validate()


def test_a_refusing_header_is_answered_before_the_body_is_read():
    """The server declares a large body and sends none of it: a session that read it would time out."""
    import time

    release = threading.Event()

    class Stall(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("X-Robots-Tag", "noimageai")
            self.send_header("Content-Length", str(8 << 20))
            self.end_headers()
            self.wfile.flush()
            release.wait(10)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with make_session(allow_private_networks=True, retries=0, timeout=(2.0, 2.0)) as session:
            started = time.monotonic()
            result = session.fetch(f"http://127.0.0.1:{server.server_address[1]}/a.jpg")
            assert result.error == "opt_out_noai" and result.body is None
            assert time.monotonic() - started < 1.5
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
