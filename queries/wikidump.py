"""Streaming reader of MediaWiki XML exports (``pages-articles``), split into byte ranges.

A dump is read as independent ``ReadRange``s so that many workers share one
file and none holds more than a page and a read buffer:

* plain ``.xml``: a range owns the pages whose ``<page>`` tag starts inside it
  (``<`` is always escaped inside page text, so the tag cannot appear there);
* ``.bz2``: a range owns the bz2 *streams* that start inside it (found by the
  stream magic ``BZh1``-``BZh9`` + block magic), and, inside them, the pages whose
  ``<page>`` tag starts there. Wikimedia's ``multistream`` dumps hold 100 pages
  per stream, so they split finely; an ordinary single-stream ``.bz2`` is one
  stream and is read by the range at offset 0;
* anything else Beam can decompress (``.gz``, ...) is one range.

A range reads past its end only to finish its last page. Errors name the file
and the position: a corrupt or truncated bz2 stream, a file that ends inside a
page or without ``</mediawiki>``, a file that is not a MediaWiki export at all.
A single page that is not well-formed XML or not UTF-8 is skipped and counted
(``malformed``, ``undecodable``): the rest of the file is still readable. So is
a "page" over ``MAX_PAGE_BYTES`` (``too_large``; MediaWiki stores at most 2 MiB
of wikitext a page): its bytes are let go as they are scanned, never held whole.

A page's namespace is its ``<ns>``. The namespace *names* a wiki uses (``Datei``,
``ファイル``) are in the file's header, ``<siteinfo><namespaces>``, which only the
range at offset 0 passes through: ``SiteNamespaces`` reads them from the file's
start for any range, once, when the range has a page to use them on (see
``namespaces``). A dump without siteinfo has only the canonical names.
"""

from __future__ import annotations

import bz2
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterator

from wit_pipeline import fileio
from wit_pipeline.errors import UserError

from .namespaces import dropped_link_names, normalise_name, parse_siteinfo_namespaces

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20
MAX_PAGE_BYTES = 16 << 20   # 2 MiB of wikitext, even with every character XML-escaped, fits
DEFAULT_RANGE_BYTES = 64 << 20

_PAGE_OPEN = b"<page>"
_PAGE_CLOSE = b"</page>"
_DOC_OPEN = b"<mediawiki"
_DOC_CLOSE = b"</mediawiki>"
_SITEINFO_OPEN = b"<siteinfo"
_SITEINFO_CLOSE = b"</siteinfo>"
SITEINFO_MAX_BYTES = 1 << 20   # a header without </siteinfo> this far in has none to read (real ones: ~5 KB)
# A bz2 stream header ("BZh" + block size digit) followed by the first block's magic (pi in BCD).
_BZ2_STREAM_START = re.compile(rb"BZh[1-9]\x31\x41\x59\x26\x53\x59")
_BZ2_MAGIC_LEN = 10

# Namespace names of English Wikipedia (and their aliases) used when a page has no <ns> element.
NAMESPACE_PREFIXES = frozenset({
    "media", "special", "talk", "user", "user talk", "wikipedia", "wikipedia talk", "wp", "wt",
    "project", "project talk", "file", "file talk", "image", "image talk", "mediawiki", "mediawiki talk",
    "template", "template talk", "help", "help talk", "category", "category talk", "portal", "portal talk",
    "draft", "draft talk", "timedtext", "timedtext talk", "module", "module talk", "book", "book talk",
    "education program", "education program talk", "gadget", "gadget talk", "gadget definition",
    "gadget definition talk", "topic",
})


def namespace_prefix(title: str) -> str | None:
    """The namespace a title's prefix names (``"Talk:Circle"`` -> ``"talk"``), or None."""
    prefix, colon, _ = title.partition(":")
    if not colon:
        return None
    name = prefix.replace("_", " ").strip().lower()
    return name if name in NAMESPACE_PREFIXES else None


@dataclass(frozen=True)
class Page:
    title: str
    ns: int
    redirect: bool
    text: str


@dataclass(frozen=True)
class ReadRange:
    """Bytes ``[start, end)`` of ``path``; ``kind`` is ``plain``, ``bz2`` or ``whole``."""

    path: str
    start: int
    end: int
    kind: str


PAGE_DAMAGE_REASONS = ("malformed", "undecodable", "too_large")   # the reasons ``PageSkipped`` carries


class PageSkipped(Exception):
    """One page could not be read; ``reason`` is the stats.json key it is counted under."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def range_kind(path: str) -> str:
    lowered = path.lower()
    if lowered.endswith(".bz2"):
        return "bz2"
    if lowered.endswith((".xml", ".txt")) or "." not in lowered.rsplit("/", 1)[-1]:
        return "plain"
    return "whole"  # .gz, .zst, ...: not splittable, Beam decompresses it as one stream


def plan_ranges(path: str, size: int, range_bytes: int = DEFAULT_RANGE_BYTES) -> list[ReadRange]:
    """Split one file into ranges of about ``range_bytes`` (one range when it cannot be split)."""
    kind = range_kind(path)
    if kind == "whole" or size <= range_bytes:
        return [ReadRange(path, 0, max(size, 1), kind)]
    return [ReadRange(path, start, min(start + range_bytes, size), kind) for start in range(0, size, range_bytes)]


def parse_page(data: bytes, namespaced: Callable[[str], bool] | None = None) -> Page:
    """One ``<page>...</page>`` element -> Page (the last revision's text); raises PageSkipped.

    ``namespaced(title)`` tells, for a page without ``<ns>``, whether its title names a namespace
    (default: one of English Wikipedia's, ``namespace_prefix``).
    """
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PageSkipped("undecodable", f"not UTF-8 at byte {exc.start} of the page") from None
    try:
        element = ET.fromstring(source)
    except ET.ParseError as exc:
        raise PageSkipped("malformed", f"not well-formed XML: {exc}") from None
    title = (element.findtext("title") or "").strip()
    ns_text = element.findtext("ns")
    if ns_text is not None and ns_text.strip().lstrip("-").isdigit():
        ns = int(ns_text)
    else:  # very old exports have no <ns>: infer it from the title
        is_namespaced = namespaced(title) if namespaced is not None else namespace_prefix(title) is not None
        ns = -1 if is_namespaced else 0
    revisions = element.findall("revision")
    text = (revisions[-1].findtext("text") or "") if revisions else ""
    redirect = element.find("redirect") is not None or text.lstrip()[:9].upper() == "#REDIRECT"
    return Page(title=title, ns=ns, redirect=redirect, text=text)


# --- byte sources: (chunk, owned) pairs in the order of the logical (decompressed) stream ---------


def _plain_chunks(handle, start: int, end: int) -> Iterator[tuple[bytes, bool]]:
    handle.seek(start)
    position = start
    while True:
        chunk = handle.read(READ_CHUNK)
        if not chunk:
            return
        if position < end < position + len(chunk):
            yield chunk[: end - position], True
            yield chunk[end - position :], False
        else:
            yield chunk, position < end
        position += len(chunk)


def _first_bz2_stream(handle, start: int, end: int) -> int | None:
    """Offset of the first bz2 stream header starting in ``[start, end)``, or None."""
    handle.seek(start)
    position = start
    carry = b""
    while position < end:
        chunk = handle.read(min(READ_CHUNK, end - position + _BZ2_MAGIC_LEN))
        if not chunk:
            return None
        window = carry + chunk
        match = _BZ2_STREAM_START.search(window)
        if match is not None:
            found = position - len(carry) + match.start()
            return found if found < end else None
        carry = window[-(_BZ2_MAGIC_LEN - 1):]
        position += len(chunk)
        handle.seek(position)
    return None


def _bz2_chunks(handle, path: str, start: int, end: int) -> Iterator[tuple[bytes, bool]]:
    """Decompress consecutive bz2 streams from the first one starting in ``[start, end)``.

    Chunks of streams starting at or after ``end`` are marked not owned; the
    caller stops reading once it has finished the page it is in.
    """
    first = _first_bz2_stream(handle, start, end)
    if start == 0 and first != 0:
        raise UserError(f"{path}: not a bz2 file (no bz2 stream header at byte 0)")
    if first is None:
        return
    handle.seek(first)
    stream_start = first
    fed = 0  # compressed bytes given to the current stream's decompressor
    decompressor = bz2.BZ2Decompressor()
    pending = b""
    while True:
        raw = pending or handle.read(READ_CHUNK)
        pending = b""
        if not raw:
            if fed:
                raise UserError(f"{path}: truncated bz2 stream starting at byte {stream_start} "
                                f"(the file ends before the stream does)")
            return
        fed += len(raw)
        try:
            data = decompressor.decompress(raw)
        except (OSError, ValueError, EOFError) as exc:
            raise UserError(f"{path}: corrupt bz2 data in the stream starting at byte {stream_start}: {exc}") from None
        if data:
            yield data, stream_start < end
        if decompressor.eof:
            pending = decompressor.unused_data
            stream_start += fed - len(pending)
            fed = 0
            decompressor = bz2.BZ2Decompressor()
            while len(pending) < 3:
                more = handle.read(READ_CHUNK)
                if not more:
                    break
                pending += more
            if not pending:
                return
            if not pending.startswith(b"BZh"):
                raise UserError(f"{path}: data after the bz2 stream ending at byte {stream_start} "
                                f"is not a bz2 stream")


def _whole_chunks(handle) -> Iterator[tuple[bytes, bool]]:
    while True:
        chunk = handle.read(READ_CHUNK)
        if not chunk:
            return
        yield chunk, True


# --- page scanner ---------------------------------------------------------------------------------


def scan_pages(
    chunks: Iterator[tuple[bytes, bool]],
    *,
    path: str,
    first_range: bool,
    where: Callable[[int], str],
) -> Iterator[tuple[int, bytes | None]]:
    """Yield ``(offset, page_bytes)`` for every page whose ``<page>`` starts in owned bytes
    (``page_bytes`` None for a page over ``MAX_PAGE_BYTES``).

    ``offset`` counts bytes of the logical stream from the first chunk. The
    range that reads the last page of a file also checks the file ends with
    ``</mediawiki>``; the first range checks it begins as a MediaWiki export.
    """
    return _PageScanner(chunks, path=path, first_range=first_range, where=where).pages()


class _PageScanner:
    """``scan_pages``' state: a window (``buf``) over the logical stream, and where the scan stands in it.

    Between pages the scanner looks for the next ``<page>`` (noting ``<mediawiki`` and
    ``</mediawiki>`` on the way); inside a page, for its ``</page>``. Whenever the window runs out
    it reads the next chunk, keeping only the bytes still needed (the open page, or a tail long
    enough to hold a tag split across chunks).
    """

    def __init__(self, chunks: Iterator[tuple[bytes, bool]], *, path: str, first_range: bool,
                 where: Callable[[int], str]):
        self.chunks = iter(chunks)
        self.path = path
        self.where = where
        self.buf = b""
        self.base = 0               # logical offset of buf[0]
        self.pos = 0                # where the next search for <page> starts in buf
        self.page_start = -1        # buf index of the open page, -1 between pages
        self.close_from = 0         # where the search for </page> resumes
        self.limit: int | None = None   # logical offset where the owned bytes end, once a chunk is not owned
        self.seen_doc_open = not first_range
        self.seen_doc_close = False
        self.check_end = first_range    # set once this range has read a page of its own
        self.oversized_from: int | None = None   # logical offset of the open page once it is too large

    def pages(self) -> Iterator[tuple[int, bytes | None]]:
        while True:
            if self.page_start < 0:
                found = self.buf.find(_PAGE_OPEN, self.pos)
                if found < 0:
                    if not self._between_pages():
                        return
                    continue
                if self.limit is not None and self.base + found >= self.limit:
                    return  # the next page starts in bytes another range owns
                self._open_page(found)
            end = self.buf.find(_PAGE_CLOSE, self.close_from)
            if end < 0:
                self._await_page_end()
                continue
            yield self._close_page(end + len(_PAGE_CLOSE))

    def _between_pages(self) -> bool:
        """No ``<page>`` in the window: note the document's tags, keep a tail for split tags, read on.

        Reads on even past the owned bytes: either the next ``<page>`` turns up (someone else's,
        so the scan stops) or the file ends, and this range checks its tail. False at the end.
        """
        if not self.seen_doc_open and _DOC_OPEN in self.buf:
            self.seen_doc_open = True
        if _DOC_CLOSE in self.buf[max(self.pos - len(_DOC_CLOSE), 0):]:
            self.seen_doc_close = True
        self.pos = max(len(self.buf) - len(_DOC_CLOSE), 0)
        if self._read_more():
            return True
        if not self.seen_doc_open:
            raise UserError(f"{self.path}: not a MediaWiki XML export (no <mediawiki> element)")
        if self.check_end and not self.seen_doc_close:
            raise UserError(f"{self.path}: truncated XML: the file ends at {self.where(self.base + len(self.buf))} "
                            f"without </mediawiki>")
        return False

    def _open_page(self, found: int) -> None:
        if not self.seen_doc_open:
            if _DOC_OPEN not in self.buf[:found]:
                raise UserError(f"{self.path}: not a MediaWiki XML export (no <mediawiki> before the first page)")
            self.seen_doc_open = True
        self.page_start = found
        self.close_from = found + len(_PAGE_OPEN)
        self.seen_doc_close = False

    def _await_page_end(self) -> None:
        """Inside a page whose ``</page>`` is not in the window yet: read on (the file must not end here).
        A page over ``MAX_PAGE_BYTES`` is let go: only the tail the ``</page>`` search needs is kept."""
        self.close_from = max(len(self.buf) - len(_PAGE_CLOSE), self.page_start)
        if self.oversized_from is None and len(self.buf) - self.page_start > MAX_PAGE_BYTES:
            self.oversized_from = self.base + self.page_start
        if self.oversized_from is not None:
            self.page_start = self.close_from
        if not self._read_more():
            start = self.base + self.page_start if self.oversized_from is None else self.oversized_from
            raise UserError(f"{self.path}: truncated XML: the page starting at {self.where(start)} never ends")

    def _close_page(self, end: int) -> tuple[int, bytes | None]:
        if self.oversized_from is not None:
            page, self.oversized_from = (self.oversized_from, None), None
        elif end - self.page_start > MAX_PAGE_BYTES:   # whole in the window, but too large all the same
            page = (self.base + self.page_start, None)
        else:
            page = (self.base + self.page_start, self.buf[self.page_start:end])
        self.check_end = True
        self.pos = end
        self.page_start = -1
        return page

    def _read_more(self) -> bool:
        """Append the next chunk to the window, dropping the bytes no longer needed; False at the end."""
        try:
            chunk, owned = next(self.chunks)
        except StopIteration:
            return False
        keep = self.page_start if self.page_start >= 0 else max(self.pos, 0)
        self.buf = self.buf[keep:]
        self.base += keep
        if self.page_start >= 0:
            self.close_from -= keep
            self.page_start = 0
        self.pos -= keep
        if not owned and self.limit is None:
            self.limit = self.base + len(self.buf)
        self.buf += chunk
        return True


def _range_chunks(handle, read_range: ReadRange) -> tuple[Iterator[tuple[bytes, bool]], Callable[[int], str]]:
    """The byte source of ``read_range`` over an open ``handle`` (raw unless ``whole``), and how an
    offset in its logical stream is named in messages."""
    path, start = read_range.path, read_range.start
    if read_range.kind == "plain":
        return _plain_chunks(handle, start, read_range.end), lambda offset: f"byte {start + offset}"
    if read_range.kind == "bz2":
        return _bz2_chunks(handle, path, start, read_range.end), lambda offset: (
            f"uncompressed byte {offset} counted from the first bz2 stream at or after byte {start}")
    return _whole_chunks(_guard_decompression(handle, path)), lambda offset: f"uncompressed byte {offset}"


def iter_range_pages(
    read_range: ReadRange,
    on_skip: Callable[[str, str], None] | None = None,
    site: SiteNamespaces | None = None,
) -> Iterator[Page]:
    """Every page (all namespaces) owned by ``read_range``; skipped pages go to ``on_skip(reason, detail)``.

    ``site``: the file's namespace names (read on first use), for the pages of old exports without ``<ns>``.
    """
    path = read_range.path
    site = site if site is not None else SiteNamespaces(read_range)
    with fileio.open_read(path, decompress=read_range.kind == "whole") as handle:
        chunks, where = _range_chunks(handle, read_range)
        for offset, data in scan_pages(chunks, path=path, first_range=read_range.start == 0, where=where):
            try:
                if data is None:
                    raise PageSkipped("too_large", f"a page longer than {MAX_PAGE_BYTES} bytes")
                yield parse_page(data, site.is_namespaced)
            except PageSkipped as skipped:
                log.warning("%s: skipping the page at %s: %s", path, where(offset), skipped)
                if on_skip is not None:
                    on_skip(skipped.reason, f"{path}: {where(offset)}: {skipped}")


def read_site_namespaces(read_range: ReadRange) -> dict[int, str]:
    """``{key: name}`` of the ``<siteinfo><namespaces>`` at the start of ``read_range``'s file; ``{}`` when the
    header has none (no ``</siteinfo>`` before the first ``<page>`` or within ``SITEINFO_MAX_BYTES``)."""
    header = ReadRange(read_range.path, 0, 1, read_range.kind)
    buf = b""
    with fileio.open_read(header.path, decompress=header.kind == "whole") as handle:
        chunks, _ = _range_chunks(handle, header)
        for chunk, _owned in chunks:
            buf += chunk
            close = buf.find(_SITEINFO_CLOSE)
            opened = buf.find(_SITEINFO_OPEN)
            page = buf.find(_PAGE_OPEN)
            if close >= 0 and 0 <= opened < close and (page < 0 or close < page):
                return parse_siteinfo_namespaces(buf[opened:close + len(_SITEINFO_CLOSE)])
            if page >= 0 or len(buf) > SITEINFO_MAX_BYTES:
                break
    return {}


class SiteNamespaces:
    """The namespace names of one range's dump file, read from the file's header on first use."""

    def __init__(self, read_range: ReadRange):
        self.read_range = read_range
        self._link_names: dict[str, frozenset[str]] = {}

    @cached_property
    def names(self) -> dict[int, str]:
        """``{key: name}`` from the dump's siteinfo (``{}`` without one)."""
        return read_site_namespaces(self.read_range)

    @cached_property
    def _prefixes(self) -> frozenset[str]:
        return NAMESPACE_PREFIXES | {normalise_name(name) for key, name in self.names.items() if key != 0}

    def is_namespaced(self, title: str) -> bool:
        """Whether ``title``'s prefix names a namespace: an English one or one of the dump's own."""
        prefix, colon, _ = title.partition(":")
        return bool(colon) and normalise_name(prefix) in self._prefixes

    def link_names(self, lang: str) -> frozenset[str]:
        """The link prefixes dropped in this dump's wikitext (``namespaces.dropped_link_names``)."""
        names = self._link_names.get(lang)
        if names is None:
            names = self._link_names[lang] = dropped_link_names(self.names, lang)
        return names


class _guard_decompression:
    """A read() wrapper turning decompression errors of ``.gz`` & co into a UserError naming the file."""

    def __init__(self, handle, path: str):
        self.handle = handle
        self.path = path
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.handle.read(size)
        except (OSError, EOFError, ValueError) as exc:
            raise UserError(f"{self.path}: cannot decompress after uncompressed byte {self.position}: {exc}") from None
        self.position += len(data)
        return data


def iter_pages(path: str, on_skip: Callable[[str, str], None] | None = None) -> Iterator[Page]:
    """Every page of one dump file, read as a single range (for small files and tests)."""
    size = fileio_size(path)
    yield from iter_range_pages(ReadRange(path, 0, max(size, 1), range_kind(path)), on_skip)


def fileio_size(path: str) -> int:
    from apache_beam.io.filesystems import FileSystems

    try:
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    except Exception as exc:
        raise UserError(f"cannot read the size of {path!r}: {exc.__class__.__name__}") from None
