"""The ``warc`` source: ``<img>`` tags of HTML responses in WARC files, parsed with a real HTML parser.

For each ``response`` record with an HTML body, the page is parsed with the
standard library's ``html.parser`` (lenient, entity-decoding). Each ``<img>``
gives one pair: its URL is the largest ``srcset`` candidate when there is a
``srcset`` (by ``w``, else ``x`` descriptor), else ``src``; it is resolved
against ``<base href>`` (the first one, itself resolved against the page URL)
or the page URL. ``alt`` is the text.

Record outcomes (counter names): ``warc_records``, ``warc_not_response``,
``warc_not_html``, ``warc_html_pages``, ``warc_broken_html`` (a page whose HTML
ends inside a tag or makes the parser fail: the images parsed before the damage
are kept, the unfinished tag is dropped), ``warc_unreadable`` (the reader gave
up on the file: a corrupt gzip member; counted once per file). A page with
``<meta name="tdm-reservation" content="1">`` (W3C TDMRep) gives no pairs: they are counted as read
and dropped as ``opt_out_tdmrep`` (``wat.count_reserved``).
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from typing import Iterator

from ... import fileio
from ...consent import page_reserves_tdm
from ...schemas import candidate_row
from ..warc_records import iter_records
from .wat import count_reserved, resolve

_CHARSET = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)


def largest_srcset(srcset: str) -> str | None:
    """The URL of the largest candidate in a ``srcset`` (``w`` descriptors first, then ``x``)."""
    best, best_key = None, (-1, -1.0)
    for candidate in srcset.split(","):
        parts = candidate.strip().split()
        if not parts:
            continue
        url, descriptor = parts[0], (parts[1] if len(parts) > 1 else "1x")
        kind, value = descriptor[-1:].lower(), descriptor[:-1]
        try:
            number = float(value)
        except ValueError:
            continue
        key = (1, number) if kind == "w" else (0, number) if kind == "x" else None
        if key is not None and key > best_key:
            best, best_key = url, key
    return best


class ImgParser(HTMLParser):
    """Collects ``<base href>``, every ``<img>``'s (src, srcset, alt) and every ``<meta>``'s (name, content)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.images: list[tuple[str | None, str | None, str | None]] = []
        self.metas: list[tuple[str | None, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            values = dict(attrs)
            self.images.append((values.get("src"), values.get("srcset"), values.get("alt")))
        elif tag == "meta":
            values = dict(attrs)
            self.metas.append((values.get("name"), values.get("content")))
        elif tag == "base" and self.base is None:
            href = dict(attrs).get("href")
            if href:
                self.base = href

    handle_startendtag = handle_starttag


def decode_html(body: bytes, content_type: str = "") -> str:
    """Bytes to text: the charset of the Content-Type header, else of a ``<meta>`` near the top, else UTF-8."""
    match = _CHARSET.search(content_type.encode("latin-1", "replace")) or _CHARSET.search(body[:2048])
    encoding = match.group(1).decode("ascii") if match else "utf-8"
    try:
        return body.decode(encoding, "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def page_images(html: str, page_url: str) -> tuple[list[tuple[str, str | None]], bool]:
    """``([(absolute image url, alt or None), ...], broken)`` for one HTML page."""
    pairs, broken, _reserved = parse_page(html, page_url)
    return pairs, broken


def parse_page(html: str, page_url: str) -> tuple[list[tuple[str, str | None]], bool, bool]:
    """``(pairs, broken, reserved)`` of one HTML page: ``page_images``' and whether it reserves TDM rights."""
    parser = ImgParser()
    broken = False
    try:
        parser.feed(html)
        broken = parser.rawdata.lstrip().startswith("<")   # the page ends inside an unfinished tag
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser raises assorted errors on pathological input
        broken = True
    base = resolve(page_url, parser.base) if parser.base else page_url
    pairs = []
    for src, srcset, alt in parser.images:
        ref = (largest_srcset(srcset) if srcset else None) or src
        if ref and ref.strip():
            pairs.append((resolve(base, ref), alt))
    return pairs, broken, page_reserves_tdm(parser.metas)


def _http_response(payload: bytes) -> tuple[str, bytes] | None:
    """(content type, body) of a raw HTTP response payload, de-chunked; None when not a 200 response."""
    end = payload.find(b"\r\n\r\n")
    if end < 0:
        return None
    head, body = payload[:end].split(b"\r\n"), payload[end + 4:]
    status = head[0].split()
    if len(status) < 2 or status[1] != b"200":
        return None
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        body = _dechunk(body)
    return headers.get(b"content-type", b"").decode("latin-1"), body


def _dechunk(body: bytes) -> bytes:
    out, pos = [], 0
    while pos < len(body):
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            break
        try:
            size = int(body[pos:line_end].split(b";")[0], 16)
        except ValueError:
            return body
        if size == 0:
            break
        out.append(body[line_end + 2: line_end + 2 + size])
        pos = line_end + 2 + size + 2
    return b"".join(out)


def read_warc(stream, source_file: str, counts: Counter) -> Iterator[dict]:
    """Raw candidate rows (before clean-up) of every ``<img>`` in the HTML responses of a WARC stream."""
    for headers, payload in iter_records(stream, counts):
        counts["warc_records"] += 1
        if headers.get("WARC-Type") != "response":
            counts["warc_not_response"] += 1
            continue
        page_url = headers.get("WARC-Target-URI", "")
        response = _http_response(payload)
        if response is None or "html" not in response[0].lower():
            counts["warc_not_html"] += 1
            continue
        counts["warc_html_pages"] += 1
        pairs, broken, reserved = parse_page(decode_html(response[1], response[0]), page_url)
        if broken:
            counts["warc_broken_html"] += 1
        if reserved:
            pairs = count_reserved(pairs, counts)
        for url, alt in pairs:
            yield candidate_row(url, alt or "", source="warc", page_url=page_url, source_file=source_file)


def read_warc_file(path: str, options, counts: Counter) -> Iterator[dict]:
    """The source reader: one WARC file (gzip members read one by one, so opened undecompressed)."""
    with fileio.open_read(path, decompress=False) as handle:
        yield from read_warc(handle, path, counts)
