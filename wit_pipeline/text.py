"""Text normalisation: the one home for it.

The query builder (``queries/``) and caption matching (``wit_pipeline.select``)
both go through these functions, so a query and a caption that say the same
thing meet on equal terms.

The rule, in order:

1. Unicode NFKC (full-width letters, ligatures and compatibility forms fold to
   their plain equivalents), control characters become spaces.
2. Lower-case with ``str.lower`` unless ``keep_case`` (MetaCLIP matches case-
   sensitively; we default to lower case and offer ``--keep-case``).
3. Words are maximal runs of Unicode letters, digits and combining marks
   (``\\w`` without ``_``, plus the marks, which ``\\w`` leaves out: Thai and
   Devanagari vowel signs and viramas sit inside words); an apostrophe or
   hyphen *between* two such runs joins them (``don't``, ``x-ray``,
   ``l'eau``). Everything else separates words and is dropped.
4. A text's canonical form is its words joined by single spaces; queries are
   stored in canonical form, and word matching looks for ``" " + query + " "``
   inside ``" " + canonical(caption) + " "`` (MetaCLIP's rule).

Sentences (for bigram counting, which must not cross them) end at ``. ! ?`` (and
the Arabic question mark and Urdu full stop) followed by white space, at
``。！？`` and the Devanagari dandas ``। ॥`` with or without white space after
them, or at a newline.

Text read from JSON (``"\\ud800"`` escapes) can hold lone surrogates, code points
that no UTF-8 encoder accepts (Beam's coders and parquet writers fail on them);
``valid_unicode`` replaces each with U+FFFD where such text is read.
"""

from __future__ import annotations

import re
import unicodedata


def _mark_ranges() -> str:
    """The combining marks (categories Mn, Mc, Me) of the Basic Multilingual Plane, as a regex class body."""
    ranges: list[list[int]] = []
    for point in range(0x300, 0x10000):
        if unicodedata.category(chr(point))[0] == "M":
            if ranges and ranges[-1][1] == point - 1:
                ranges[-1][1] = point
            else:
                ranges.append([point, point])
    return "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in ranges)


# ASCII holds no marks: the plain pattern serves ASCII text (most alt texts) and is the faster one.
ASCII_WORD_RE = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")
# One character class (``\w`` and the marks) runs faster than an alternation; ``_`` is excluded by
# ``find_words``, which turns it into a space first.
WORD_RE = re.compile(r"[\w{0}]+(?:['\u2019\-][\w{0}]+)*".format(_mark_ranges()))
# Full stops of scripts without spaces end a sentence with or without white space after them.
_SENTENCE_END = re.compile(r"(?<=[.!?\u061f\u06d4])\s+|(?<=[\u3002\uff01\uff1f\u0964\u0965])\s*|\n+")
_CONTROL = re.compile(r"[\u0000-\u001f\u007f-\u009f]")
_SPACES = re.compile(r"\s+")
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def valid_unicode(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so that it encodes as UTF-8 (ASCII: as it is)."""
    if text.isascii():
        return text
    return _LONE_SURROGATE.sub(REPLACEMENT, text)


def valid_strings(value):
    """``value`` (a string, or a dict / list / tuple holding them, as JSON gives) with ``valid_unicode``
    applied to every string inside it; other values as they are."""
    if isinstance(value, str):
        return valid_unicode(value)
    if isinstance(value, dict):
        return {valid_strings(key): valid_strings(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(valid_strings(item) for item in value)
    return value


def normalize_text(text: str, keep_case: bool = False) -> str:
    """NFKC, control characters to spaces, white space folded, lower-cased unless ``keep_case``."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    return text if keep_case else text.lower()


def find_words(text: str) -> list[str]:
    """The word runs of already normalised ``text``, as written (rule 3)."""
    if text.isascii():
        return ASCII_WORD_RE.findall(text)
    return WORD_RE.findall(text.replace("_", " ") if "_" in text else text)


def words(text: str, keep_case: bool = False) -> list[str]:
    """The words of ``text`` under the documented rule (normalised first)."""
    return [w.replace("\u2019", "'") for w in find_words(normalize_text(text, keep_case))]


def sentences(text: str) -> list[str]:
    """Split raw text into sentences; bigrams are never counted across the boundaries."""
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def canonical(text: str, keep_case: bool = False) -> str:
    """Words joined by single spaces: the form queries are stored and matched in."""
    return " ".join(words(text, keep_case))


def canonical_fast(text: str, keep_case: bool = False) -> str:
    """``canonical(text, keep_case)``, with a shortcut for ASCII text (most alt texts).

    For ASCII, NFKC changes nothing, and control characters and runs of white
    space only separate words, which the word pattern does anyway; so the words
    are those of the shared pattern over the (lower-cased) text itself.
    tests/select/test_matching.py checks both paths agree.
    """
    if text.isascii():
        return " ".join(ASCII_WORD_RE.findall(text if keep_case else text.lower()))
    return canonical(text, keep_case)


def padded(text: str, keep_case: bool = False) -> str:
    """``" " + canonical(text) + " "``: a query ``q`` matches as a whole word iff ``f" {q} "`` is in it."""
    return f" {canonical(text, keep_case)} "
