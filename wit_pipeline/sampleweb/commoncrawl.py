"""Common Crawl-format WARC and WAT files describing the sample web's pages.

WARC: a ``warcinfo`` record, then a ``request`` and a ``response`` record per
page (HTTP headers and the HTML body). WAT: a ``warcinfo`` record, then one
``metadata`` record per response with the JSON envelope Common Crawl writes,
whose ``HTML-Metadata.Links`` lists ``IMG@/src`` links with ``alt`` exactly as
written in the page (relative URLs unresolved, ``Head.Base`` when present).
"""

from __future__ import annotations

import gzip
import io
import json
import random
import uuid

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from .site import WebPage, page_html, resolve_placeholders

WARC_DATE = "2024-05-18T01:58:10Z"


def _record_id(rng: random.Random) -> str:
    return f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}>"


def _warcinfo(writer: WARCWriter, filename: str) -> None:
    info = {"software": "wit-pipeline sampleweb", "format": "WARC File Format 1.0", "isPartOf": "CC-SAMPLE"}
    writer.write_record(writer.create_warcinfo_record(filename, info))


def write_warc(path: str, pages: list[WebPage], origin: str, seed: int, broken_html_page: bool = False) -> None:
    """One WARC file with request/response records for ``pages``."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        _warcinfo(writer, path.rsplit("/", 1)[-1])
        for page in pages:
            url = origin + page.path
            html = page_html(page, origin).encode()
            if broken_html_page and page is pages[-1]:
                html = html[: len(html) // 2] + b'<img src="/img/00000.jpg" alt="unterminated <b><<'
            request = StatusAndHeaders(f"GET {page.path} HTTP/1.1", [("Host", origin.split("://")[1])],
                                       is_http_request=True)
            writer.write_record(writer.create_warc_record(
                url, "request", payload=io.BytesIO(b""), http_headers=request,
                warc_headers_dict={"WARC-Date": WARC_DATE, "WARC-Record-ID": _record_id(rng)}))
            response = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                                   ("Content-Length", str(len(html)))], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                url, "response", payload=io.BytesIO(html), http_headers=response,
                warc_headers_dict={"WARC-Date": WARC_DATE, "WARC-Record-ID": _record_id(rng)}))


def wat_envelope(page: WebPage, origin: str) -> dict:
    """The JSON of a WAT metadata record for one page's response."""
    links = []
    for tag in page.imgs:
        link = {"path": "IMG@/src", "url": resolve_placeholders(tag.src, origin)}
        if tag.alt is not None:
            link["alt"] = tag.alt
        links.append(link)
    links += [{"path": "A@/href", "url": href, "text": "next"} for href in page.links]
    head = {"Title": page.title, "Metas": [{"charset": "utf-8"}]}
    if page.tdm_reserved:
        head["Metas"].append({"name": "tdm-reservation", "content": "1"})
    if page.base_href:
        head["Base"] = page.base_href
    return {
        "Container": {"Filename": "CC-SAMPLE.warc.gz", "Compressed": True},
        "Envelope": {
            "Format": "WARC",
            "WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Target-URI": origin + page.path,
                                     "WARC-Date": WARC_DATE},
            "Payload-Metadata": {
                "Actual-Content-Type": "application/http; msgtype=response",
                "HTTP-Response-Metadata": {
                    "Response-Message": {"Version": "HTTP/1.1", "Status": "200", "Reason": "OK"},
                    "Headers": {"Content-Type": "text/html; charset=utf-8"},
                    "HTML-Metadata": {"Head": head, "Links": links},
                },
            },
        },
    }


def write_wat(path: str, pages: list[WebPage], origin: str, seed: int, truncated_record: bool = False) -> None:
    """One WAT file; with ``truncated_record`` its last metadata record holds cut-off JSON."""
    rng = random.Random(seed)
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        _warcinfo(writer, path.rsplit("/", 1)[-1])
        payloads = [json.dumps(wat_envelope(page, origin)).encode() for page in pages]
        if truncated_record:
            payloads.append(json.dumps(wat_envelope(pages[0], origin)).encode()[:150])
        for page_index, payload in enumerate(payloads):
            page = pages[page_index % len(pages)]
            writer.write_record(writer.create_warc_record(
                origin + page.path, "metadata", payload=io.BytesIO(payload),
                warc_content_type="application/json",
                warc_headers_dict={"WARC-Date": WARC_DATE, "WARC-Record-ID": _record_id(rng)}))


def write_wat_with_bad_gzip_member(path: str, pages: list[WebPage], origin: str, seed: int) -> None:
    """A WAT file whose records are followed by a gzip member with a corrupt body."""
    write_wat(path, pages, origin, seed)
    good = gzip.compress(b"WARC/1.0\r\nWARC-Type: metadata\r\n" + b"x" * 200)
    with open(path, "ab") as out:
        out.write(good[:20] + bytes(random.Random(seed).randrange(256) for _ in range(300)))


