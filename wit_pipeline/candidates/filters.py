"""Text clean-up and filters for candidate pairs: pure functions, each switchable, each with a drop reason.

``clean_pair(url, text, config)`` returns ``(url, text, None)`` for a kept pair
or ``(url, text, reason)`` naming the first filter that dropped it. The
reasons, in the order the filters run (``FILTERS``):

==================  ==========================================================
``data_uri``        the image URL is a ``data:`` URI
``non_http_url``    the URL is not absolute http(s) (``javascript:``, ``blob:``, ...) or is malformed
``empty_text``      no text at all (missing or empty alt)
``boilerplate``     the text is a file name (``IMG_1234.JPG``), a camera name or a stock word ("logo", "image")
``too_short``       fewer than ``min_chars`` characters (default 6: DataComp's "more than 5")
``few_words``       fewer than ``min_words`` words (default 3: DataComp's "more than 2")
``too_long``        more than ``max_chars`` characters (default 1000)
==================  ==========================================================

``normalize`` (Unicode NFKC, control characters to spaces, white space folded,
HTML entities decoded; case kept) is a clean-up rather than a filter; switch it
off like the others. The language filter (``language.py``) and the exact
(url, text) de-duplication need more than one pair at a time and live in the
pipeline; their reasons are ``lang`` and ``duplicate``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..text import normalize_text, words

FILTERS = ("normalize", "data_uri", "non_http_url", "empty_text", "boilerplate", "too_short", "few_words",
           "too_long", "dedup")
DROP_REASONS = ("data_uri", "non_http_url", "empty_text", "boilerplate", "too_short", "few_words", "too_long",
                "lang", "duplicate")

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
    """Which filters run and their thresholds. ``disabled`` holds names from ``FILTERS``."""

    min_chars: int = 6
    min_words: int = 3
    max_chars: int = 1000
    disabled: frozenset = field(default_factory=frozenset)

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


def clean_pair(url: str | None, text: str | None, config: FilterConfig = FilterConfig()
               ) -> tuple[str, str, str | None]:
    """Clean one pair and apply the per-pair filters in order: ``(url, text, drop_reason_or_None)``."""
    url = clean_url(url)
    text = clean_text(text) if config.on("normalize") else (text or "")
    if config.on("data_uri") or config.on("non_http_url"):
        reason = url_reason(url)
        if reason and config.on(reason):
            return url, text, reason
    if config.on("empty_text") and not text.strip():
        return url, text, "empty_text"
    if config.on("boilerplate") and is_boilerplate(text):
        return url, text, "boilerplate"
    if config.on("too_short") and len(text) < config.min_chars:
        return url, text, "too_short"
    if config.on("few_words") and config.min_words > 0 and len(words(text)) < config.min_words:
        return url, text, "few_words"
    if config.on("too_long") and config.max_chars and len(text) > config.max_chars:
        return url, text, "too_long"
    return url, text, None


def parse_disabled(value: str | None) -> frozenset:
    """``--disable a,b``: names must come from ``FILTERS``."""
    from ..errors import UserError

    names = frozenset(n.strip() for n in (value or "").split(",") if n.strip())
    unknown = sorted(names - set(FILTERS))
    if unknown:
        raise UserError(f"--disable: unknown filter(s) {', '.join(unknown)} (known: {', '.join(FILTERS)})")
    return names
