"""Language identification with langdetect, seeded so the same text always gets the same answer.

langdetect manages only ~700 short texts per second per core, so callers ask
once per *distinct* text and, in ``wit select``, only for texts that matched a
query. Because the answer is a pure function of (text, seed), deciding after
matching keeps exactly the pairs that deciding on every text would keep
(bench/bench_candidates.py checks this).
"""

from __future__ import annotations

import threading

from ..errors import UserError

_lock = threading.Lock()
_ready = False


def _factory():
    """langdetect's profile factory, loaded once per process (thread-safe: langdetect publishes its
    factory before the profiles are loaded, so its own check is not enough)."""
    global _ready
    from langdetect import detector_factory

    if not _ready:
        with _lock:
            if not _ready:
                if detector_factory._factory is None or not detector_factory._factory.langlist:
                    detector_factory._factory = None
                    detector_factory.init_factory()
                _ready = True
    return detector_factory._factory


def detect_language(text: str, seed: int = 0) -> str:
    """The most probable language code of ``text`` ("en", "fr", ...), or "unknown" when undecidable."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _factory().create()
    detector.seed = seed   # the detector re-seeds its own Random from this before sampling
    try:
        detector.append(text)
        return detector.detect()
    except LangDetectException:
        return "unknown"


def parse_lang(value: str, *, allow_defer: bool = False) -> str:
    """``--lang``: ``any`` keeps all, a language code (``en``) keeps that language, ``defer`` (candidates only)."""
    value = (value or "").strip().lower()
    if value == "any" or (allow_defer and value == "defer"):
        return value
    if not value.isalpha() or not 2 <= len(value) <= 3:
        choices = "'any', 'defer' or a language code like 'en'" if allow_defer else "'any' or a language code like 'en'"
        raise UserError(f"--lang must be {choices}, not {value!r}")
    return value


def keeps(text: str, lang: str, seed: int = 0) -> bool:
    """True when ``lang`` is 'any' or ``text`` is detected as ``lang``."""
    return lang in ("any", "defer") or detect_language(text, seed) == lang
