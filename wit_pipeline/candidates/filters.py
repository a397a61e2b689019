"""Text clean-up and filters for candidate pairs: pure functions, each switchable, each with a drop reason.

``clean_pair(url, text, config)`` returns ``(url, text, None)`` for a kept pair
or ``(url, text, reason)`` naming the first filter that dropped it. The filters
are the registry ``PAIR_FILTERS`` (name, predicate), run in this order; ``FILTERS``
(the switch names) and ``DROP_REASONS`` are derived from it:

==================  ==========================================================
``data_uri``        the image URL is a ``data:`` URI
``non_http_url``    the URL is not absolute http(s) (``javascript:``, ``blob:``, ...) or is malformed
``empty_text``      no text at all (missing or empty alt)
``boilerplate``     the text is a file name (``IMG_1234.JPG``), a camera name or a stock word ("logo", "image")
``too_short``       fewer than ``min_chars`` characters (default 6: DataComp's "more than 5")
``few_words``       fewer than ``min_words`` words (default 3: DataComp's "more than 2"); words are counted by
                    ``segment.count_words``: in scripts written without spaces (Han, kana, Thai ...) each
                    character is a word, so ``长城的美丽照片，第3张`` has ten
``too_long``        more than ``max_chars`` characters (default 1000)
==================  ==========================================================

``normalize`` (Unicode NFKC, control characters to spaces, white space folded,
HTML entities decoded; case kept) is a clean-up rather than a filter; switch it
off like the others. The defaults named above live in ``CandidateOptions``
(``pipeline.py``), which builds the ``FilterConfig``. The language filter and
the exact (url, text) de-duplication need more than one pair at a time and live
in ``wit_pipeline/pairs.py``; their reasons are ``lang`` and ``duplicate``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from ..errors import UserError
from ..segment import count_words
from ..text import normalize_text

MAX_URL_CHARS = 4096
_HTTP_HOST = re.compile(r"https?://([^/?#]*)")

_IMAGE_EXT = r"(?:jpe?g|jfif|png|gif|webp|bmp|tiff?|svg|heic|heif|avif|ico)"
# A bare file name: "IMG_1234.JPG", "photo-2.png", "banner.webp".
_FILENAME = re.compile(rf"^[\w\-. ()\[\]~+%]{{0,120}}\.{_IMAGE_EXT}$", re.IGNORECASE)
# Camera and screenshot names without extension: "IMG_1234", "DSC00042", "PXL_20230101_123456".
_CAMERA_NAME = re.compile(r"^(?:img|dsc|dscn|dscf|dcim|pxl|sam|gopr|mvimg|image|photo|pic|screenshot|scan)"
                          r"[\s_\-]?[\d_\-]{2,}$", re.IGNORECASE)
# Alt texts that say nothing about the image (compared case-insensitively, whole text).
BOILERPLATE_TEXTS = frozenset({
    "image", "images", "img", "photo", "photos", "picture", "pictures", "pic", "logo", "icon", "icons",
    "thumbnail", "thumb", "banner", "placeholder", "untitled", "spacer", "pixel", "button", "avatar",
    "default", "blank", "null", "none", "undefined", "alt", "graphic", "figure", "illustration",
    "advertisement", "loading", "profile picture", "image not found", "no image available", "no image",
    "main image", "featured image", "product image", "image placeholder", "click here", "read more",
    "see more", "view more",
})


@dataclass(frozen=True)
class FilterConfig:
    """Which filters run and their thresholds, built from ``CandidateOptions`` (which holds the defaults).

    ``disabled`` holds names from ``FILTERS``; ``steps`` are the enabled ``PAIR_FILTERS``, in order,
    worked out once here so the per-pair loop does no look-ups.
    """

    min_chars: int
    min_words: int
    max_chars: int
    disabled: frozenset
    steps: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "steps", tuple(step for step in PAIR_FILTERS if step[0] not in self.disabled))

    def on(self, name: str) -> bool:
        return name not in self.disabled


def clean_text(text: str | None) -> str:
    """NFKC, control characters to spaces, white space folded, HTML entities decoded (case kept)."""
    if not text:
        return ""
    if "&" in text:
        text = html.unescape(text)
    return normalize_text(text, keep_case=True)


def clean_url(url: str | None) -> str:
    """Strip surrounding white space; keep everything else as the page wrote it."""
    return (url or "").strip()


def is_boilerplate(text: str) -> bool:
    """File names, camera names and stock words ("logo", "image") that describe nothing."""
    stripped = text.strip().strip("\"'")
    lowered = stripped.lower()
    return (lowered in BOILERPLATE_TEXTS or bool(_FILENAME.match(stripped)) or bool(_CAMERA_NAME.match(stripped)))


def url_reason(url: str) -> str | None:
    """The drop reason for an image URL, or None when it is an absolute http(s) URL."""
    if url[:5].lower() == "data:":
        return "data_uri"
    if len(url) > MAX_URL_CHARS or any(c in url for c in " \n\r\t"):
        return "non_http_url"
    plain = _HTTP_HOST.match(url)   # the common case, decided without urlsplit
    if plain and plain[1].isascii() and "[" not in plain[1] and "]" not in plain[1]:   # else urlsplit may reject it
        return None if plain[1] else "non_http_url"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "non_http_url"
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return "non_http_url"
    return None


# The per-pair filters: each is true for a pair to drop (the text already cleaned).
def is_data_uri(url: str, text: str, config: FilterConfig) -> bool:
    return url[:5].lower() == "data:"


def is_non_http_url(url: str, text: str, config: FilterConfig) -> bool:
    return url_reason(url) == "non_http_url"


def is_empty_text(url: str, text: str, config: FilterConfig) -> bool:
    return not text.strip()


def is_boilerplate_text(url: str, text: str, config: FilterConfig) -> bool:
    return is_boilerplate(text)


def is_too_short(url: str, text: str, config: FilterConfig) -> bool:
    return len(text) < config.min_chars


def has_few_words(url: str, text: str, config: FilterConfig) -> bool:
    return config.min_words > 0 and count_words(text) < config.min_words


def is_too_long(url: str, text: str, config: FilterConfig) -> bool:
    return bool(config.max_chars) and len(text) > config.max_chars


# The registry: (drop reason, predicate), in the order the filters run. Adding a filter is one line
# here (plus its predicate above and a row in the module docstring's table).
PAIR_FILTERS: tuple[tuple[str, Callable[[str, str, FilterConfig], bool]], ...] = (
    ("data_uri", is_data_uri),
    ("non_http_url", is_non_http_url),
    ("empty_text", is_empty_text),
    ("boilerplate", is_boilerplate_text),
    ("too_short", is_too_short),
    ("few_words", has_few_words),
    ("too_long", is_too_long),
)
# Switches: the clean-up, the per-pair filters, and the pipeline's exact (url, text) de-duplication.
FILTERS = ("normalize", *(name for name, _drops in PAIR_FILTERS), "dedup")
# Every reason a pair can be dropped for, in report order: the per-pair filters, then the pipeline's two.
DROP_REASONS = (*(name for name, _drops in PAIR_FILTERS), "lang", "duplicate")


def clean_pair(url: str | None, text: str | None, config: FilterConfig) -> tuple[str, str, str | None]:
    """Clean one pair and apply the per-pair filters in order: ``(url, text, drop_reason_or_None)``."""
    url = clean_url(url)
    text = clean_text(text) if config.on("normalize") else (text or "")
    for reason, drops in config.steps:
        if drops(url, text, config):
            return url, text, reason
    return url, text, None


class FilterNames(frozenset):
    """A set of filter names that prints as ``--disable`` takes it (``a,b``; empty for none)."""

    def __str__(self) -> str:
        return ",".join(sorted(self))


def parse_disabled(value: str | None) -> FilterNames:
    """``--disable a,b``: names must come from ``FILTERS``."""
    names = frozenset(n.strip() for n in (value or "").split(",") if n.strip())
    unknown = sorted(names - set(FILTERS))
    if unknown:
        raise UserError(f"--disable: unknown filter(s) {', '.join(unknown)} (known: {', '.join(FILTERS)})")
    return FilterNames(names)
