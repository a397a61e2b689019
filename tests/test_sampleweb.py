"""The sample web: deterministic, loopback-only, and every fault kind behaves as declared."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from urllib.parse import urljoin

import pytest
import requests
from PIL import Image, UnidentifiedImageError
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from wit_pipeline.consent import CONSENT_REASONS
from wit_pipeline.http import make_session
from wit_pipeline.sampleweb import FAULTS, build_site, serve_sample_web
from wit_pipeline.sampleweb.faults import SIGNAL_FAULTS
from wit_pipeline.sampleweb.render import web_image_bytes
from wit_pipeline.sampleweb.server import _FAULT_ROUTES
from wit_pipeline.sampleweb.site import page_html, tdm_reserved_page


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
    matching = [i for i in english if i.caption_matches]
    assert len(matching) > 120
    assert all(i.shape in i.caption and i.colour in i.caption for i in matching)
    kinds = {i.language for i in sample_web.site.images}
    assert kinds == {"en", "xx", "boilerplate", "de", "zh", "ja"}


def test_mismatched_captions_describe_another_image_in_colours_this_one_lacks(sample_web):
    images = sample_web.site.images
    mismatched = [i for i in images if i.caption_of is not None]
    assert 20 <= len(mismatched) <= 0.25 * len([i for i in images if i.language == "en"])
    for image in mismatched:
        other = images[image.caption_of]
        assert image.language == "en" and not image.caption_matches
        assert other.shape in image.caption and other.colour in image.caption
        # The caption's shape colour is not in the image, and its own shape colour is not the caption's backdrop.
        assert other.colour not in (image.colour, image.background) and other.background != image.colour


def _small(image: Image.Image) -> list[int]:
    return list(image.convert("L").resize((16, 16), Image.BILINEAR).tobytes())


def test_near_duplicates_are_resized_cropped_reencoded_copies_under_their_own_url(sample_web):
    images = sample_web.site.images
    copies = [i for i in images if i.copy_of is not None]
    assert len(copies) >= 10
    sources = {i.copy_of for i in copies}
    assert len(sources) == len(copies)
    assert not sources & {i.id for i in copies} and not sources & {i.id for i in images if i.caption_of is not None}
    with requests.Session() as http:
        for copy in copies[:5]:
            source = images[copy.copy_of]
            served = http.get(sample_web.image_url(copy), timeout=5).content
            original = http.get(sample_web.image_url(source), timeout=5).content
            assert served != original
            picture, seen = _decode(served), _decode(original)
            assert picture.size == (copy.width, copy.height) and min(picture.size) >= 224
            # Same picture: small grey thumbnails agree closely (distinct sample web images do not).
            difference = sum(abs(a - b) for a, b in zip(_small(picture), _small(seen), strict=True)) / 256
            assert difference < 8, (copy.id, difference)
            assert copy.caption_matches and (source.colour, source.shape) == (copy.colour, copy.shape)


@pytest.mark.parametrize("n_images", [1, 5, 12])
def test_a_small_site_has_every_image_it_was_asked_for_and_writes_its_files(n_images, tmp_path):
    site = build_site(0, n_images=n_images)
    assert [image.id for image in site.images] == list(range(n_images))
    assert all(image.copy_of is None or site.images[image.copy_of].copy_of is None for image in site.images)
    with serve_sample_web(seed=0, n_images=n_images) as web:
        files = web.write_files(str(tmp_path))
    assert files.wat and all(os.path.getsize(path) > 0 for path in files.wat + files.warc)
    assert len(json.load(open(files.eval_truth))["images"]) == n_images


def test_mismatches_and_copies_leave_the_rest_of_the_site_as_it_was():
    plain, varied = build_site(3, mismatched_share=0, copy_share=0), build_site(3)
    changed = [i for i, (a, b) in enumerate(zip(plain.images, varied.images, strict=True)) if a != b]
    assert changed == sorted(i.id for i in varied.images if i.caption_of is not None or i.copy_of is not None)
    assert [p.path for p in plain.pages] == [p.path for p in varied.pages]
    assert [[t.image_id for t in p.imgs] for p in plain.pages] == [[t.image_id for t in p.imgs] for p in varied.pages]


# --- faults ---------------------------------------------------------------------------------


def test_fault_table_covers_every_declared_kind():
    assert set(FAULTS) == {"not_found", "server_error", "unavailable_then_ok", "slow", "truncated", "corrupt",
                           "html_as_image", "decompression_bomb", "oversized", "redirect_loop", "noai",
                           "noimageai", "robots_disallowed", "tdm_meta_page", *SIGNAL_FAULTS}
    assert {FAULTS[kind].expected for kind in SIGNAL_FAULTS} == set(CONSENT_REASONS) | {"success"}


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


def test_signal_faults_serve_distinct_valid_images(sample_web):
    bodies = {}
    for kind in SIGNAL_FAULTS:
        response = requests.get(sample_web.url(FAULTS[kind].path), timeout=10)
        assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg", kind
        assert _decode(response.content).format == "JPEG"
        bodies[kind] = response.content
    assert len(set(bodies.values())) == len(bodies)


def test_signal_faults_send_their_response_headers(sample_web):
    get = lambda kind: requests.get(sample_web.url(FAULTS[kind].path), timeout=5)  # noqa: E731
    assert get("tdm_header").headers["tdm-reservation"] == "1"
    assert get("content_usage_header").headers["Content-Usage"] == "train-ai=n"
    for kind in ("robots_ours", "robots_other_ai", "tdmrep_json", "content_usage_robots", "ai_txt"):
        assert not {"X-Robots-Tag", "tdm-reservation", "Content-Usage"} & set(get(kind).headers), kind


def test_robots_txt_scopes_each_rule_to_its_agent_and_path(sample_web):
    from protego import Protego

    robots = Protego.parse(requests.get(sample_web.url("/robots.txt"), timeout=5).text)
    url = sample_web.url
    ours, gptbot = url(FAULTS["robots_ours"].path), url(FAULTS["robots_other_ai"].path)
    assert not robots.can_fetch(ours, "wit-pipeline") and robots.can_fetch(gptbot, "wit-pipeline")
    assert not robots.can_fetch(gptbot, "GPTBot") and robots.can_fetch(ours, "GPTBot")
    for agent in ("wit-pipeline", "GPTBot", "SomeBot"):
        assert not robots.can_fetch(url(FAULTS["robots_disallowed"].path), agent)
        assert robots.can_fetch(sample_web.image_url(sample_web.site.images[0]), agent)
        assert robots.can_fetch(url(FAULTS["content_usage_robots"].path), agent)   # a usage rule, not a Disallow


def test_origin_files_hold_the_path_scoped_signals(sample_web):
    tdmrep = requests.get(sample_web.url("/.well-known/tdmrep.json"), timeout=5).json()
    assert tdmrep[0]["tdm-reservation"] == 1
    assert FAULTS["tdmrep_json"].path.startswith(tdmrep[0]["location"].rstrip("*"))
    ai_txt = requests.get(sample_web.url("/ai.txt"), timeout=5).text
    assert "User-Agent: *" in ai_txt and "Disallow: *.jpeg" in ai_txt
    assert FAULTS["ai_txt"].path.endswith(".jpeg")
    assert not any(i.path.endswith(".jpeg") for i in sample_web.site.images)   # the rest of the site is allowed
    robots = requests.get(sample_web.url("/robots.txt"), timeout=5).text
    assert f"Content-Usage: {FAULTS['content_usage_robots'].path.rsplit('/', 1)[0]}/ train-ai=n" in robots


def test_in_image_signal_faults_carry_their_opt_out(sample_web):
    from wit_pipeline.consent import SIGNALS
    from wit_pipeline.download.image_signals import check_image_signals

    get = lambda kind: requests.get(sample_web.url(FAULTS[kind].path), timeout=30).content  # noqa: E731
    for kind in ("xmp_datamining", "c2pa_not_allowed"):
        verdict = check_image_signals(get(kind), frozenset(SIGNALS))
        assert verdict.reason == FAULTS[kind].expected, (kind, verdict)
    assert check_image_signals(get("noai"), frozenset(SIGNALS)).reason is None


def test_tdm_reserved_page_says_so_in_its_head(sample_web):
    html = requests.get(sample_web.url(FAULTS["tdm_meta_page"].path), timeout=5).text
    head = html.split("</head>", 1)[0]
    assert '<meta name="tdm-reservation" content="1">' in head and "<img " in html
    ordinary = requests.get(sample_web.url(sample_web.site.pages[0].path), timeout=5).text
    assert "tdm-reservation" not in ordinary


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
    reserved = tdm_reserved_page(sample_web.site, FAULTS["tdm_meta_page"].path)
    pages_by_url = {sample_web.url(p.path): p for p in [*sample_web.site.pages, reserved]}
    described, metas, truncated = {}, {}, 0
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
                html_meta = envelope["Payload-Metadata"]["HTTP-Response-Metadata"]["HTML-Metadata"]
                metas[url] = html_meta["Head"]["Metas"]
                described[url] = [link for link in html_meta["Links"] if link["path"] == "IMG@/src"]
    assert set(described) == set(pages_by_url)
    assert truncated == 1  # the declared malformed record
    assert {"name": "tdm-reservation", "content": "1"} in metas[sample_web.url(reserved.path)]
    assert all({"name": "tdm-reservation", "content": "1"} not in m for url, m in metas.items()
               if url != sample_web.url(reserved.path))
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


def test_truth_file_declares_every_image_url_with_its_caption_and_copy(sample_web, sample_files):
    declared = json.load(open(sample_files.eval_truth))["images"]
    assert set(declared) == {sample_web.image_url(image) for image in sample_web.site.images}
    for image in sample_web.site.images:
        entry = declared[sample_web.image_url(image)]
        assert entry == {"id": image.id, "path": image.path, "language": image.language,
                         "caption_matches": image.caption_matches, "caption_of": image.caption_of,
                         "copy_of": image.copy_of}
    assert sum(not e["caption_matches"] for e in declared.values() if e["language"] == "en") >= 20
    assert sum(e["copy_of"] is not None for e in declared.values()) >= 10


# --- the consent web -------------------------------------------------------------------------


def test_consent_web_serves_by_hand_until_interrupted(tmp_path):
    wit = subprocess.Popen([sys.executable, "-m", "wit_pipeline", "sampleweb", "serve", "--consent", "--write",
                            str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ})
    try:
        first = wit.stdout.readline()
        assert first.startswith("consent web at "), first + wit.stderr.read()
        origins = first.split(" at ", 1)[1].split()
        assert len(origins) == 3
        printed = [wit.stdout.readline() for _ in range(3)]     # the two files written, then how to stop it
        assert printed[-1].startswith("Ctrl-C"), printed
        content_signal = requests.get(origins[1] + "robots.txt", timeout=5).text
        assert "Content-Signal: search=yes, ai-train=no" in content_signal
        assert requests.get(origins[2] + "robots.txt", timeout=5).status_code == 404
        assert (tmp_path / "urls.parquet").exists() and "pdq:" in (tmp_path / "blocklist.txt").read_text()
    finally:
        wit.send_signal(signal.SIGINT)
        assert wit.wait(timeout=20) == 0



# --- the web in German, Chinese and Japanese -------------------------------------------------


def test_world_languages_leave_the_english_web_of_a_seed_as_it_was():
    english, world_too = build_site(4, world_share=0), build_site(4)
    assert world_too.images[:len(english.images)] == english.images
    assert world_too.pages[-len(english.pages):] == english.pages
    assert world_too.eval_images == english.eval_images
    added = world_too.images[len(english.images):]
    assert [image.language for image in added] == ["de"] * 10 + ["zh"] * 10 + ["ja"] * 10


def test_every_world_alt_text_is_identified_as_its_own_language():
    import itertools

    from wit_pipeline.langcodes import normalise
    from wit_pipeline.language import detect_languages
    from wit_pipeline.sampleweb import world
    from wit_pipeline.sampleweb.draw import COLOURS, SHAPES

    for lang in world.LANGUAGES:
        texts = [text for colour, shape, background in itertools.product(COLOURS, SHAPES, COLOURS)
                 if colour != background for text in world.all_captions(lang, colour, shape, background)]
        wrong = [(text, got) for text, got in zip(texts, detect_languages(texts), strict=True)
                 if normalise(got) != lang]
        assert not wrong, wrong[:5]


def test_world_alt_texts_name_the_drawn_colour_and_shape_in_their_language(sample_web):
    from wit_pipeline.sampleweb import world

    world_images = [image for image in sample_web.site.images if image.language in world.LANGUAGES]
    assert len(world_images) == 30
    for image in world_images:
        assert world.shape_name(image.language, image.shape) in image.caption, image
        assert world.colour_word(image.language, image.colour) in image.caption.lower(), image
        assert not image.caption_matches   # the filter's truth counts English pairs only


def test_world_pages_are_served_with_their_alt_texts_and_images(sample_web):
    pages = [page for page in sample_web.site.pages if page.path.startswith(("/de/", "/zh/", "/ja/"))]
    assert [page.path for page in pages] == [f"/{lang}/page/{i:03d}.html" for lang in ("de", "zh", "ja")
                                             for i in (0, 1)]
    with requests.Session() as http:
        for page in pages:
            url = sample_web.url(page.path)
            response = http.get(url, timeout=5)
            assert response.status_code == 200 and "charset=utf-8" in response.headers["Content-Type"].lower()
            for tag in page.imgs:
                if tag.image_id is None:
                    continue
                assert f'alt="{tag.alt}"' in response.text
                src = tag.src.replace("{origin}", sample_web.base_url).replace(
                    "{authority}", sample_web.base_url.split("://")[1])
                assert http.get(urljoin(url, src), timeout=5).status_code == 200, (page.path, tag.src)


def _dump_pages(path: str) -> dict[str, tuple[int, str]]:
    import bz2
    import xml.etree.ElementTree as ET

    ns = {"mw": "http://www.mediawiki.org/xml/export-0.10/"}
    root = ET.fromstring(bz2.decompress(open(path, "rb").read()))
    return {page.find("mw:title", ns).text: (int(page.find("mw:ns", ns).text),
                                             page.find("mw:revision/mw:text", ns).text)
            for page in root.findall("mw:page", ns)}


def test_each_language_has_a_mini_wikipedia_with_its_pageviews(sample_files):
    import gzip

    from wit_pipeline.sampleweb import world

    assert set(sample_files.wikipedia_by_lang) == {"en", "de", "zh", "ja"}
    assert sample_files.wikipedia_by_lang["en"] == sample_files.wikipedia[0]
    views = [line.split(" ") for path in sample_files.pageviews
             for line in gzip.decompress(open(path, "rb").read()).decode("utf-8").splitlines()]
    from urllib.parse import unquote

    for lang in world.LANGUAGES:
        path = sample_files.wikipedia_by_lang[lang]
        assert os.path.basename(path) == f"{lang}wiki-sample-pages-articles-multistream.xml.bz2"
        assert os.path.exists(path.replace(".xml.bz2", "-index.txt.bz2"))
        pages = _dump_pages(path)
        articles = [title for title, (ns, text) in pages.items() if ns == 0 and not text.startswith("#")]
        assert len(articles) == 14 and any(ns != 0 for ns, _ in pages.values())
        text = "".join(text for _, text in pages.values())
        for shape in ("circle", "square", "diamond"):
            assert text.count(world.shape_name(lang, shape)) >= 10, (lang, shape)
        viewed = {unquote(line[1]).replace("_", " ") for line in views if line[0] in (lang, f"{lang}.m")}
        assert set(articles) <= viewed, (lang, set(articles) - viewed)
        assert {line[0] for line in views} >= {lang, f"{lang}.m"}


def test_each_language_dump_gives_the_queries_its_alt_texts_contain(sample_web, sample_files, tmp_path):
    """The query list built from the four dumps (the demo's thresholds) names every shape in every language,
    and every German, Chinese and Japanese alt text of the web matches its shape's query (a whole word in
    German, a substring in Chinese and Japanese)."""
    import pyarrow.parquet as pq

    from queries.demo import DEMO_THRESHOLDS
    from queries.pipeline import QueryOptions, run_queries
    from wit_pipeline.sampleweb import world
    from wit_pipeline.sampleweb.draw import SHAPES
    from wit_pipeline.text import canonical

    run_queries(QueryOptions(wikipedia=[f"{lang}={path}" for lang, path in sample_files.wikipedia_by_lang.items()],
                             pageviews=list(sample_files.pageviews), out=str(tmp_path), **DEMO_THRESHOLDS))
    by_lang: dict[str, set[str]] = {}
    for row in pq.read_table(tmp_path / "queries.parquet", columns=["lang", "query"]).to_pylist():
        by_lang.setdefault(row["lang"], set()).add(row["query"])
    assert set(by_lang) == {"en", *world.LANGUAGES}
    for lang in world.LANGUAGES:
        assert {canonical(world.shape_name(lang, shape)) for shape in SHAPES} <= by_lang[lang], lang
    for image in sample_web.site.images:
        if image.language in world.LANGUAGES:
            text, query = canonical(image.caption), canonical(world.shape_name(image.language, image.shape))
            assert f" {query} " in f" {text} " if image.language == "de" else query in text, image
