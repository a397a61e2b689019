"""Wikitext -> plain text: a fast, careful regex/scan stripper.

What a reader of the rendered article sees as prose is kept; everything else
goes. In order:

1. HTML comments, and tags whose content is not prose (``<ref>``, ``<math>``,
   ``<gallery>``, ``<syntaxhighlight>``, ...), self-closing ones included.
2. Templates ``{{...}}`` (nested, parameters ``{{{1}}}`` included) and tables
   ``{| ... |}`` (nested), by a depth-counting scan, not a recursive regex.
3. Internal links, innermost first: links into the File, Media and Category
   namespaces (``[[File:...]]``, ``[[Image:...]]``, ``[[Category:...]]``, and
   in another wiki's dump its own names, ``[[Datei:...]]``, ``[[ファイル:...]]``:
   ``link_namespaces``, see ``namespaces``) and interlanguage links
   (``[[de:...]]``) are removed with their captions; ``[[target|text]]``
   becomes ``text``, ``[[target]]`` becomes ``target`` (link trails such as
   ``[[bus]]es`` join naturally).
4. External links ``[http://x text]`` keep ``text``; bare URLs are dropped.
5. Headings keep their text on a line of their own; list/indent markers,
   bold/italic quotes, remaining HTML tags, magic words (``__TOC__``) and
   horizontal rules are removed; HTML entities are decoded last, so an
   escaped ``&lt;ref&gt;`` stays literal text.

On the bench dump (bench/bench_queries.py) this runs at ~24 MB/s per core,
mwparserfromhell's ``strip_code`` at ~3.3 MB/s, and the latter also keeps
file-link options and category names as words ("thumb", "category"); this
module is in the hot loop of the query build.
"""

from __future__ import annotations

import html
import re
from functools import partial

from .namespaces import CANONICAL_LINK_NAMES

# Tags whose whole content is dropped (the content is markup, code or citations, not prose).
_DROP_TAGS = (
    "ref", "references", "math", "chem", "ce", "gallery", "timeline", "score", "syntaxhighlight",
    "source", "pre", "code", "graph", "mapframe", "maplink", "templatedata", "imagemap", "hiero",
    "inputbox", "categorytree", "includeonly", "section", "templatestyles", "charinsert", "indicator",
)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_DROP_SELF_CLOSING = re.compile(r"<(?:%s)\b[^>]*/>" % "|".join(_DROP_TAGS), re.I)
_DROP_PAIRED = re.compile(r"<(%s)\b[^>]*>.*?</\1\s*>" % "|".join(_DROP_TAGS), re.I | re.S)
_TEMPLATE_TOKENS = re.compile(r"\{\{|\}\}")
_TABLE_TOKENS = re.compile(r"^[ \t:]*\{\||^[ \t]*\|\}", re.M)
_INNER_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:|mailto:|//)[^\s\]]*\s*([^\]]*)\]", re.I)
_BARE_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\]\[|]+", re.I)
_HEADING = re.compile(r"^(=+)[ \t]*(.*?)[ \t]*\1[ \t]*$", re.M)
_LIST_MARKERS = re.compile(r"^[*#:;]+[ \t]*", re.M)
_RULE = re.compile(r"^-{4,}", re.M)
_QUOTES = re.compile(r"'{2,}")
_BREAK_TAGS = re.compile(r"<(?:br|/?p|/?div|/?li|/?ul|/?ol|/?tr|/?td|/?th|/?table|/?blockquote|/?center)\b[^>]*>", re.I)
_ANY_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*\b[^>]*>")
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")

# Interlanguage/interwiki prefixes look like language codes: "de", "zh-yue", "simple".
_LANGUAGE_CODE = re.compile(r"^(?:[a-z]{2,3}(?:-[a-z0-9]+)*|simple)$")


def remove_nested(text: str, tokens: re.Pattern[str], opener: str) -> str:
    """Drop every balanced ``open ... close`` region of ``text``, nesting included.

    ``tokens`` matches both delimiters; a match starting with ``opener`` opens.
    A stray closer outside any region stays (it is punctuation to the word
    splitter); an opener never closed is kept literally from there on, as
    MediaWiki renders it, so one typo does not swallow the rest of a page.
    """
    depth = 0
    pieces: list[str] = []
    kept_from = 0
    outer_start = 0
    for match in tokens.finditer(text):
        if match.group().lstrip(" \t:").startswith(opener):
            if depth == 0:
                pieces.append(text[kept_from:match.start()])
                outer_start = match.start()
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                kept_from = match.end()
    if depth > 0:
        kept_from = outer_start
    pieces.append(text[kept_from:])
    return "".join(pieces)


def _link_text(match: re.Match[str], dropped: frozenset[str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    colon_prefixed = target.startswith(":")
    target = target.lstrip(":").strip()
    prefix, has_colon, rest = target.partition(":")
    if has_colon and not colon_prefixed:
        lowered = prefix.strip().lower()
        if lowered in dropped or ("_" in lowered and lowered.replace("_", " ") in dropped):
            return ""
        if not label and _LANGUAGE_CODE.match(prefix.strip()):
            return ""  # interlanguage link: the article in another language, not text
    if label:
        # A file/category caption may carry options before it; the label is the last field.
        return label.rsplit("|", 1)[-1] if "|" in label else label
    if "|" in inner:  # the pipe trick, [[Target (qualifier)|]]: shows the target without the qualifier
        return re.sub(r"\s*\([^)]*\)\s*$", "", rest if has_colon else target)
    return target


_CANONICAL_LINK_TEXT = partial(_link_text, dropped=CANONICAL_LINK_NAMES)


def strip_wikitext(text: str, link_namespaces: frozenset[str] = CANONICAL_LINK_NAMES) -> str:
    """Plain prose of a wikitext page; lines are kept so sentence splitting can use them.

    ``link_namespaces``: the lower-cased prefixes whose links are dropped with their captions
    (``namespaces.dropped_link_names`` of the dump's wiki; the canonical English names by default).
    """
    if not text:
        return ""
    text = _COMMENT.sub("", text)
    text = _DROP_SELF_CLOSING.sub("", text)
    text = _DROP_PAIRED.sub("", text)
    if "{{" in text:
        text = remove_nested(text, _TEMPLATE_TOKENS, "{{")
    if "{|" in text:
        text = remove_nested(text, _TABLE_TOKENS, "{|")
    link_text = _CANONICAL_LINK_TEXT if link_namespaces is CANONICAL_LINK_NAMES else partial(
        _link_text, dropped=link_namespaces)
    while "[[" in text:
        replaced = _INNER_LINK.sub(link_text, text)
        if replaced == text:
            break
        text = replaced
    if "[" in text:
        text = _EXTERNAL_LINK.sub(r"\1", text)
    if "://" in text:
        text = _BARE_URL.sub("", text)
    text = _HEADING.sub(r"\n\2\n", text)
    text = _LIST_MARKERS.sub("", text)
    text = _RULE.sub("", text)
    text = _QUOTES.sub("", text)
    if "<" in text:
        text = _BREAK_TAGS.sub("\n", text)
        text = _ANY_TAG.sub("", text)
    if "__" in text:
        text = _MAGIC_WORD.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    return _BLANK_LINES.sub("\n", text).strip()
