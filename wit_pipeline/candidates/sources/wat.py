"""The ``wat`` source: ``<img>`` links and their alt texts from Common Crawl WAT files.

A WAT metadata record describes one crawled response as JSON; its
``Envelope.Payload-Metadata.HTTP-Response-Metadata.HTML-Metadata.Links`` lists
every link of the page with the HTML path it came from. Image links have
``"path": "IMG@/src"`` and carry the ``alt`` attribute. URLs are written as the
page wrote them, so they are resolved against the page URL (``WARC-Target-URI``)
or, when the page had one, its ``<base href>`` (``Head.Base``) — cc2dataset
drops relative URLs; we keep them, as MetaCLIP does.

Record outcomes (counter names): ``wat_records`` (all), ``wat_not_metadata``
(warcinfo and the like), ``wat_no_images`` (no ``IMG@/src`` link: skipped
without parsing the JSON), ``wat_bad_json`` (truncated or malformed JSON; for
records without image links, a payload that does not end in ``}``),
``wat_with_images``; file damage from ``warc_records`` (``bad_gzip_member``,
``truncated_record``, ``bad_record``). A page whose ``Head.Metas`` hold
``<meta name="tdm-reservation" content="1">`` (W3C TDMRep) gives no pairs: they are counted
as read (``in``) and dropped as ``opt_out_tdmrep`` (``count_reserved``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Iterator
from urllib.parse import urljoin, urlsplit

from ... import fileio
from ...consent import page_reserves_tdm
from ...schemas import candidate_row
from ...text import valid_strings
from ..warc_records import iter_records

IMG_PATH = "IMG@/src"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")   # a JSON escape of a surrogate, paired or lone
# A page-level drop: counted by the readers, outside the per-pair filters (see ``count_reserved``).
PAGE_DROP_REASONS = ("opt_out_tdmrep",)


def count_reserved(pairs: list, counts: Counter) -> list:
    """The pairs of a page that reserves TDM rights: counted as read and dropped, none kept."""
    counts["in"] += len(pairs)
    counts["dropped_opt_out_tdmrep"] += len(pairs)
    return []


def head_metas(html_meta: dict) -> list[tuple[str | None, str | None]]:
    """``(name, content)`` of each ``<meta>`` a WAT record's ``HTML-Metadata.Head.Metas`` lists."""
    metas = (html_meta.get("Head") or {}).get("Metas") or []
    return [(meta.get("name"), meta.get("content")) for meta in metas if isinstance(meta, dict)]


def origin(base: str) -> str | None:
    """``scheme://host`` of an http(s) page URL: what an absolute-path reference ("/img/a.jpg") joins."""
    try:
        parts = urlsplit(base)
    except ValueError:
        return None
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def _plain_absolute_path(ref: str) -> bool:
    """``/a/b.jpg?q=1``-like: ``urljoin`` only prefixes the origin (no dot or empty segments to fold, no
    empty parameters, query or fragment to drop, no tab or newline to strip)."""
    return (ref[:1] == "/" and "//" not in ref and "/." not in ref and "#" not in ref and ref[-1] not in "?;"
            and ";?" not in ref and not any(c in ref for c in "\t\r\n"))


def resolve(base: str, ref: str, base_origin: str | None = None) -> str:
    """``ref`` made absolute against ``base`` (relative, ``../``, protocol-relative or absolute).

    ``base_origin`` (``origin(base)``, computed once per page) answers the common
    absolute-path case without ``urljoin``, which costs more than parsing the JSON.
    """
    ref = ref.strip()
    if ref.startswith(("http://", "https://", "data:")):
        return ref
    if base_origin and _plain_absolute_path(ref):
        return base_origin + ref
    try:
        return urljoin(base, ref)
    except ValueError:
        return ref


def _html_metadata(envelope: dict) -> dict:
    env = envelope.get("Envelope") or {}
    return ((env.get("Payload-Metadata") or {}).get("HTTP-Response-Metadata") or {}).get("HTML-Metadata") or {}


def image_links(envelope: dict) -> tuple[str | None, list[tuple[str, str | None]]]:
    """``(page_url, [(absolute image url, alt or None), ...])`` from one parsed WAT record."""
    env = envelope.get("Envelope") or {}
    page_url = (env.get("WARC-Header-Metadata") or {}).get("WARC-Target-URI")
    html_meta = _html_metadata(envelope)
    links = html_meta.get("Links") or []
    base = page_url or ""
    head_base = (html_meta.get("Head") or {}).get("Base")
    if isinstance(head_base, str) and head_base.strip():
        base = resolve(base, head_base)
    base_origin = origin(base)
    pairs = []
    for link in links:
        if not isinstance(link, dict) or link.get("path") != IMG_PATH:
            continue
        url = link.get("url")
        if not isinstance(url, str) or not url.strip():
            continue
        alt = link.get("alt")
        pairs.append((resolve(base, url, base_origin), alt if isinstance(alt, str) else None))
    return page_url, pairs


def parse_wat_record(headers: dict, payload: bytes, counts: Counter) -> tuple[str | None, list]:
    """Image links of one WAT record, counting its outcome in ``counts``."""
    counts["wat_records"] += 1
    if headers.get("WARC-Type") != "metadata":
        counts["wat_not_metadata"] += 1
        return None, []
    if b"IMG@" not in payload:   # most records (requests, non-HTML, pages without images): no JSON parse
        # ...but a cut-off JSON object is still recognised as damage, cheaply, by its last byte.
        counts["wat_bad_json" if not payload.rstrip().endswith(b"}") else "wat_no_images"] += 1
        return None, []
    try:
        envelope = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):   # RecursionError: nested too deeply to read
        counts["wat_bad_json"] += 1
        return None, []
    if not isinstance(envelope, dict):
        counts["wat_bad_json"] += 1
        return None, []
    page_url, pairs = image_links(envelope)
    counts["wat_with_images" if pairs else "wat_no_images"] += 1
    if pairs and page_reserves_tdm(head_metas(_html_metadata(envelope))):
        pairs = count_reserved(pairs, counts)
    return page_url or headers.get("WARC-Target-URI"), pairs


def read_wat(stream, source_file: str, counts: Counter) -> Iterator[dict]:
    """Raw candidate rows (before clean-up) of every image link in a WAT stream; strings valid UTF-8 (a lone
    surrogate from a JSON escape replaced by U+FFFD, ``text.valid_strings``)."""
    for headers, payload in iter_records(stream, counts):
        page_url, pairs = parse_wat_record(headers, payload, counts)
        if pairs and _SURROGATE_ESCAPE.search(payload):   # only such an escape gives a lone surrogate
            page_url, pairs = valid_strings(page_url), valid_strings(pairs)
        for url, alt in pairs:
            yield candidate_row(url, alt or "", source="wat", page_url=page_url, source_file=source_file)


def read_wat_file(path: str, options, counts: Counter) -> Iterator[dict]:
    """The source reader: one WAT file (gzip members read one by one, so opened undecompressed)."""
    with fileio.open_read(path, decompress=False) as handle:
        yield from read_wat(handle, path, counts)
