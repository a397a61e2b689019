"""The sample web: deterministic, loopback-only, and every fault kind behaves as declared."""

from __future__ import annotations

import io
import json
import socket
import struct
import time
from urllib.parse import urljoin

import pytest
import requests
from PIL import Image, UnidentifiedImageError
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from wit_pipeline.http import make_session
from wit_pipeline.sampleweb import FAULTS, build_site, serve_sample_web
from wit_pipeline.sampleweb.render import web_image_bytes
from wit_pipeline.sampleweb.server import _FAULT_ROUTES
from wit_pipeline.sampleweb.site import page_html


def _non_loopback_address() -> str | None:
    """This machine's address on its default route (a UDP connect sends nothing)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_server_binds_loopback_only(sample_web):
    host, port = sample_web.address
    assert host == "127.0.0.1"
    assert sample_web.base_url == f"http://127.0.0.1:{port}"
    other = _non_loopback_address()
    if other is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    with pytest.raises(OSError):
        socket.create_connection((other, port), timeout=2).close()


def test_server_stops_and_frees_its_port():
    with serve_sample_web(seed=1) as web:
        port = web.address[1]
        assert requests.get(web.url("/robots.txt"), timeout=5).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/robots.txt", timeout=2)


def test_site_is_deterministic_for_a_seed():
    first, again, other = build_site(7), build_site(7), build_site(8)
    assert first.images == again.images and first.pages == again.pages
    assert first.images != other.images
    assert web_image_bytes(first, first.images[3]) == web_image_bytes(again, again.images[3])
    origin = "http://127.0.0.1:1"
    assert [page_html(p, origin) for p in first.pages] == [page_html(p, origin) for p in again.pages]


def test_every_linked_image_is_served_as_an_image(sample_web):
    seen = 0
    with requests.Session() as http:
        for page in sample_web.site.pages[:8]:
            url = sample_web.url(page.path)
            html = http.get(url, timeout=5).text
            base = urljoin(url, page.base_href) if page.base_href else url
            for tag in page.imgs:
                if tag.image_id is None:
                    continue
                src = tag.src.replace("{origin}", sample_web.base_url).replace(
                    "{authority}", sample_web.base_url.split("://")[1])
                assert src.replace("&", "&amp;") in html or src in html
                response = http.get(urljoin(base, src), timeout=5)
                assert response.status_code == 200, (page.path, tag.src)
                image = Image.open(io.BytesIO(response.content))
                assert image.format in ("JPEG", "PNG")
                seen += 1
    assert seen >= 40


def test_captions_describe_the_drawn_shapes(sample_web):
    english = [i for i in sample_web.site.images if i.language == "en"]
    assert len(english) > 150
    assert all(i.shape in i.caption and i.colour in i.caption for i in english)
    kinds = {i.language for i in sample_web.site.images}
    assert kinds == {"en", "xx", "boilerplate"}


# --- faults ---------------------------------------------------------------------------------


def test_fault_table_covers_every_declared_kind():
    assert set(FAULTS) == {"not_found", "server_error", "unavailable_then_ok", "slow", "truncated", "corrupt",
                           "html_as_image", "decompression_bomb", "oversized", "redirect_loop", "noai",
                           "noimageai", "robots_disallowed"}


def test_every_image_fault_has_a_route_in_the_server():
    assert {f.path for f in FAULTS.values() if f.is_image} <= set(_FAULT_ROUTES)


def _decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def test_http_level_faults(sample_web):
    url = sample_web.url
    assert requests.get(url(FAULTS["not_found"].path), timeout=5).status_code == 404
    assert requests.get(url(FAULTS["server_error"].path), timeout=5).status_code == 500
    assert requests.get(url(FAULTS["server_error"].path), timeout=5).status_code == 500  # every time

    flaky = url(FAULTS["unavailable_then_ok"].path) + "?attempt-test"
    first = requests.get(flaky, timeout=5)
    assert first.status_code == 503 and first.headers["Retry-After"] == "0"
    second = requests.get(flaky, timeout=5)
    assert second.status_code == 200 and _decode(second.content).format == "JPEG"

    started = time.monotonic()
    assert requests.get(url(FAULTS["slow"].path), timeout=10).status_code == 200
    assert time.monotonic() - started >= sample_web.slow_s * 0.95
    with pytest.raises(requests.Timeout):
        requests.get(url(FAULTS["slow"].path), timeout=(2, sample_web.slow_s / 3))

    with pytest.raises(requests.TooManyRedirects):
        requests.get(url(FAULTS["redirect_loop"].path), timeout=5)

    with requests.get(url(FAULTS["oversized"].path), timeout=5, stream=True) as big:
        assert int(big.headers["Content-Length"]) == sample_web.oversized_bytes
        assert sum(len(c) for c in big.iter_content(1 << 16)) == sample_web.oversized_bytes


def test_image_level_faults(sample_web):
    get = lambda kind: requests.get(sample_web.url(FAULTS[kind].path), timeout=5)  # noqa: E731
    for kind in ("truncated", "corrupt"):
        response = get(kind)
        assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
        assert response.content[:2] == b"\xff\xd8"  # looks like a JPEG ...
        with pytest.raises(OSError):                # ... but does not decode
            _decode(response.content)
    html = get("html_as_image")
    assert html.headers["Content-Type"] == "image/jpeg" and html.content.startswith(b"<!DOCTYPE html>")
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(html.content))

    bomb = get("decompression_bomb").content
    assert len(bomb) < 100_000
    width, height = struct.unpack(">II", bomb[16:24])
    assert width * height >= 400_000_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))

    for kind, tag in (("noai", "noai"), ("noimageai", "noimageai")):
        response = get(kind)
        assert response.status_code == 200 and tag in response.headers["X-Robots-Tag"]
        assert _decode(response.content).format == "JPEG"


def test_robots_txt_disallows_the_private_search(sample_web):
    robots = requests.get(sample_web.url("/robots.txt"), timeout=5).text
    assert "Disallow: /private/" in robots
    assert FAULTS["robots_disallowed"].path.startswith("/private/")


def test_guarded_session_reports_each_fault_as_declared(sample_web):
    network_level = {"not_found", "server_error", "unavailable_then_ok", "slow", "oversized", "redirect_loop",
                     "noai", "noimageai"}
    with make_session(allow_private_networks=True, timeout=(2, sample_web.slow_s / 3), retries=1, backoff_s=0.01,
                      max_bytes=1 << 20) as session:
        for kind in network_level:
            result = session.fetch(sample_web.url(FAULTS[kind].path) + "?guarded")
            expected = FAULTS[kind].expected
            assert (result.error or "success") == expected, (kind, result)


def test_faults_can_be_switched_off():
    with serve_sample_web(seed=0, faults=False) as web:
        assert web.fault_urls() == {}
        assert requests.get(web.url(FAULTS["noai"].path), timeout=5).status_code == 404


# --- search endpoints ------------------------------------------------------------------------


def test_openverse_shaped_search_paginates_over_all_hits(sample_web):
    first = requests.get(sample_web.url("/v1/images/"), params={"q": "circle", "page_size": 7}, timeout=5).json()
    assert first["page"] == 1 and first["page_size"] == 7 and first["result_count"] > 7
    urls = []
    for page in range(1, first["page_count"] + 1):
        body = requests.get(sample_web.url("/v1/images/"), params={"q": "circle", "page_size": 7, "page": page},
                            timeout=5).json()
        for result in body["results"]:
            assert "circle" in result["title"].lower()
            assert {"url", "license", "license_version", "creator", "foreign_landing_url"} <= set(result)
            urls.append(result["url"])
    assert len(urls) == len(set(urls)) == first["result_count"]
    past_end = requests.get(sample_web.url("/v1/images/"), params={"q": "circle", "page": 999}, timeout=5)
    assert past_end.status_code == 400


def test_mediawiki_shaped_search_continues_with_offsets(sample_web):
    params = {"action": "query", "format": "json", "generator": "search", "gsrsearch": "red", "gsrnamespace": 6,
              "gsrlimit": 10, "prop": "imageinfo", "iiprop": "url|extmetadata"}
    seen, offset = [], 0
    while True:
        body = requests.get(sample_web.url("/w/api.php"), params={**params, "gsroffset": offset}, timeout=5).json()
        for page in body.get("query", {}).get("pages", {}).values():
            info = page["imageinfo"][0]
            assert "red" in info["extmetadata"]["ImageDescription"]["value"]
            assert info["extmetadata"]["LicenseShortName"]["value"].startswith("CC ")
            seen.append(info["url"])
        if "continue" not in body:
            break
        offset = body["continue"]["gsroffset"]
    assert len(seen) == len(set(seen)) == len(sample_web.search("red")) > 10


# --- files -----------------------------------------------------------------------------------


def test_wat_and_warc_files_describe_the_pages(sample_web, sample_files):
    pages_by_url = {sample_web.url(p.path): p for p in sample_web.site.pages}
    described, truncated = {}, 0
    for path in sample_files.wat:
        with open(path, "rb") as handle:
            for record in ArchiveIterator(handle):
                if record.rec_type != "metadata":
                    continue
                payload = record.content_stream().read()
                try:
                    envelope = json.loads(payload)["Envelope"]
                except json.JSONDecodeError:
                    truncated += 1
                    continue
                url = envelope["WARC-Header-Metadata"]["WARC-Target-URI"]
                links = envelope["Payload-Metadata"]["HTTP-Response-Metadata"]["HTML-Metadata"]["Links"]
                described[url] = [link for link in links if link["path"] == "IMG@/src"]
    assert set(described) == set(pages_by_url)
    assert truncated == 1  # the declared malformed record
    for url, links in described.items():
        assert len(links) == len(pages_by_url[url].imgs)

    responses = 0
    for path in sample_files.warc:
        with open(path, "rb") as handle:
            for record in ArchiveIterator(handle):
                if record.rec_type == "response":
                    assert record.http_headers.get_header("Content-Type").startswith("text/html")
                    assert b"<img" in record.content_stream().read()
                    responses += 1
    assert responses == len(pages_by_url)

    with open(sample_files.broken_wat[0], "rb") as handle:
        with pytest.raises(ArchiveLoadFailed):
            for _ in ArchiveIterator(handle):
                pass


def test_eval_set_is_an_imagefolder_with_planted_copies_on_the_web(sample_web, sample_files):
    import os

    truth = json.load(open(sample_files.eval_truth))
    assert sorted(os.listdir(sample_files.eval_dir)) == truth["classes"]
    assert len(truth["planted"]) >= 5
    urls = {row for row in __import__("pyarrow.parquet").parquet.read_table(sample_files.urls_table)
            .column("url").to_pylist()}
    for planted in truth["planted"]:
        assert os.path.exists(os.path.join(sample_files.eval_dir, planted["eval_id"]))
        assert planted["url"] in urls
        web_copy = _decode(requests.get(planted["url"], timeout=5).content)
        original = _decode(open(os.path.join(sample_files.eval_dir, planted["eval_id"]), "rb").read())
        assert web_copy.size != original.size  # transformed, not byte-identical
