"""Wikimedia hourly pageview dumps (``pageviews-YYYYMMDD-HH0000.gz``).

Each line is ``domain_code page_title count_views response_size``. Only the
rows of the build's languages count: Wikipedia's ``xx`` (desktop) and ``xx.m``
(mobile) project codes for each language ``xx`` (``view_lang``; English alone:
``en`` and ``en.m``); titles in a
namespace (``Talk:``, ``File:``, ``Special:`` ...) are not articles and are
ignored. Titles are percent-decoded when they are percent-encoded, and use
underscores for spaces. A line is malformed (counted, skipped) when it has
another shape, is not UTF-8, is longer than ``MAX_LINE_BYTES`` (skipped unread)
or claims more than ``MAX_VIEWS`` views in its hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator
from urllib.parse import unquote

from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.langcodes import normalise
from wit_pipeline.tables import bounded_lines

from .wikidump import namespace_prefix

ENGLISH_DOMAINS = frozenset({"en", "en.m"})
NOT_ARTICLE_REASONS = ("other_wiki", "namespace")   # what ``is_article_view`` returns for a row that does not count
MAX_LINE_BYTES = 64 << 10   # a real line is a domain, a title (<= 255 bytes, x3 percent-encoded) and two numbers
MAX_VIEWS = 10**12          # views of one title in one hour; more is damage (and would overflow int64 sums)


@dataclass(frozen=True)
class PageviewLine:
    domain: str
    title: str
    views: int


def parse_pageview_line(line: bytes | str) -> PageviewLine | None:
    """One dump line -> PageviewLine; None when it does not have the documented shape."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            return None
    fields = line.split(" ")
    if len(fields) not in (3, 4):  # response_size was dropped from some years' files
        return None
    domain, title, views = fields[0], fields[1], fields[2].strip()
    if not (views.isascii() and views.isdigit()) or not title or len(views) > 13 or int(views) > MAX_VIEWS:
        return None
    if "%" in title:
        title = unquote(title)
    return PageviewLine(domain=domain, title=title.replace("_", " "), views=int(views))


def is_article_view(row: PageviewLine, domains: frozenset[str] = ENGLISH_DOMAINS) -> str | None:
    """None if the row counts towards an article title, else the reason it does not."""
    if row.domain not in domains:
        return "other_wiki"
    if namespace_prefix(row.title) is not None:
        return "namespace"
    return None


def view_lang(row: PageviewLine, langs: frozenset[str]) -> tuple[str, str | None]:
    """``(lang, None)`` when the row counts towards an article of one of ``langs`` (normalised codes), else
    ``("", reason)``: project ``xx`` or ``xx.m`` of Wikipedia only (``xx.d``, ``xx.b`` ... are other wikis)."""
    code, dot, rest = row.domain.partition(".")
    lang = normalise(code)
    if (dot and rest != "m") or lang not in langs:
        return "", "other_wiki"
    if namespace_prefix(row.title) is not None:
        return "", "namespace"
    return lang, None


def iter_pageview_file(path: str) -> Iterator[PageviewLine | None]:
    """Every line of one dump file, parsed (None for a malformed line); gz/bz2 decompressed."""
    line_number = 0
    try:
        with fileio.open_read(path) as handle:
            for raw in bounded_lines(handle, MAX_LINE_BYTES):
                line_number += 1
                yield None if raw is None else parse_pageview_line(raw.rstrip(b"\r\n"))
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot read pageviews after line {line_number}: {exc}") from None
