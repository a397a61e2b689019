"""The languages of a query build: ``LANG=PATH`` inputs, per-language thresholds, and language-keyed counts.

* ``split_lang("de=dewiki.xml.bz2")`` -> ``("de", "dewiki.xml.bz2")``; a value without a language
  prefix is English (``--wikipedia PATH`` as it always was). A prefix is a language code
  (``de``, ``zh``, ``zh-yue``, ``simple``...), normalised by ``wit_pipeline.langcodes``; a path
  whose own name holds ``=`` (``gs://b/dt=1/x.xml``) has no such prefix and stays whole.
* ``Thresholds``: ``--min-count``, ``--min-pmi``, ``--min-bigram-count``, ``--min-views`` of one
  language; ``--lang-thresholds FILE`` (JSON, ``{"zh": {"min_count": 50}, ...}``) overrides some
  of them for some languages, the flags giving the rest.
* Counting keys carry their language: ``"<lang>\\t<word>"``, ``"<lang>\\t<a>\\t<b>"`` for a bigram,
  ``"<lang>\\t<query>"`` for an entry (``key_lang`` / ``split_key``); a tab never occurs inside a
  canonical word.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass

from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.langcodes import normalise

DEFAULT_LANG = "en"
_LANG_PREFIX = re.compile(r"^(?:[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*|simple)$")


@dataclass(frozen=True)
class Thresholds:
    """The admission thresholds of one language's words, bigrams and titles."""

    min_count: int
    min_pmi: float
    min_bigram_count: int
    min_views: int

    @property
    def min_word_count(self) -> int:
        """Words rarer than this are needed by no later step (neither a unigram nor a bigram's word)."""
        return min(self.min_count, self.min_bigram_count)


THRESHOLD_NAMES = tuple(field.name for field in dataclasses.fields(Thresholds))


def split_lang(value: str, flag: str) -> tuple[str, str]:
    """``LANG=PATH`` -> ``(lang, PATH)``; a bare ``PATH`` -> ``("en", PATH)``."""
    prefix, sep, path = value.partition("=")
    if not sep or not _LANG_PREFIX.match(prefix):
        return DEFAULT_LANG, value
    if not path:
        raise UserError(f"{flag} {value!r}: no path after {prefix}=")
    return normalise(prefix), path


def by_language(values: list[str], flag: str) -> dict[str, list[str]]:
    """``[LANG=PATH | PATH, ...]`` -> ``{lang: [PATH, ...]}`` in the order given."""
    grouped: dict[str, list[str]] = {}
    for value in values:
        lang, path = split_lang(value, flag)
        grouped.setdefault(lang, []).append(path)
    return grouped


def _checked(lang: str, name: str, value) -> int | float:
    """One override's value, or a ``UserError`` naming the language and the threshold."""
    where = f"--lang-thresholds: {lang}.{name}"
    if name == "min_pmi":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"{where} must be a finite number, not {value!r}")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{where} must be a whole number of at least 1, not {value!r}")
    return value


def parse_thresholds(document, defaults: Thresholds) -> dict[str, Thresholds]:
    """``{lang: {name: value}}`` (a parsed ``--lang-thresholds`` file) -> ``{lang: Thresholds}``."""
    if not isinstance(document, dict):
        raise UserError("--lang-thresholds: expected a JSON object {\"LANG\": {\"min_count\": N, ...}, ...}")
    found: dict[str, Thresholds] = {}
    for raw_lang, overrides in document.items():
        lang = normalise(raw_lang)
        if not _LANG_PREFIX.match(raw_lang) or lang in found:
            raise UserError(f"--lang-thresholds: {raw_lang!r} is not a language code, or a language given twice")
        if not isinstance(overrides, dict):
            raise UserError(f"--lang-thresholds: {raw_lang} must map to an object of thresholds")
        unknown = sorted(set(overrides) - set(THRESHOLD_NAMES))
        if unknown:
            raise UserError(f"--lang-thresholds: {raw_lang}: unknown threshold(s) {', '.join(unknown)} "
                            f"(known: {', '.join(THRESHOLD_NAMES)})")
        found[lang] = dataclasses.replace(defaults, **{name: _checked(raw_lang, name, value)
                                                       for name, value in overrides.items()})
    return found


def read_thresholds(path: str | None, defaults: Thresholds) -> dict[str, Thresholds]:
    """The overrides of a ``--lang-thresholds`` JSON file (none without a file)."""
    if not path:
        return {}
    fileio.check_readable(path, "--lang-thresholds")
    if not fileio.exists(path) or (not fileio.is_remote(path) and os.path.isdir(path)):
        raise UserError(f"--lang-thresholds {path!r} is not a file")
    return parse_thresholds(fileio.read_json(path), defaults)


def key_lang(key: str) -> str:
    """The language of a language-keyed count or entry."""
    return key[:key.index("\t")]


def split_key(key: str) -> tuple[str, str]:
    """``"<lang>\\t<rest>"`` -> ``(lang, rest)``."""
    lang, _, rest = key.partition("\t")
    return lang, rest
