"""Language identification with langdetect, seeded so the same text always gets the same answer.

langdetect manages only ~700 short texts per second per core, so callers ask
once per *distinct* text and, in ``wit select``, only for texts that matched a
query. Because the answer is a pure function of (text, seed), deciding after
matching keeps exactly the pairs that deciding on every text would keep
(bench/bench_candidates.py checks this).
"""

from __future__ import annotations

import threading

import numpy as np
from langdetect.detector import Detector
from langdetect.lang_detect_exception import ErrorCode, LangDetectException

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


class FastDetector(Detector):
    """langdetect's ``Detector`` with its inner loop on numpy arrays: the same answers, ~3x sooner.

    ``_detect_block`` is langdetect's, step for step: the same seeded random draws,
    the same per-language products in the same order (``prob[i] *= weight +
    p_word[i]``, elementwise, in IEEE double), the normalising sum taken with
    Python's own ``sum`` over the same values, the same convergence test. Only
    the 55-language loops run in numpy instead of the interpreter, and
    ``weight + p_word`` is computed once per word per trial. Every float is
    therefore bit-identical to langdetect's (tests/candidates/test_language.py
    compares probabilities on real and sample texts).
    """

    _arrays: dict = {}   # n-gram -> its per-language probabilities as an array (shared, filled lazily)

    def _detect_block(self):
        self.cleaning_text()
        ngrams = self._extract_ngrams()
        if not ngrams:
            raise LangDetectException(ErrorCode.CantDetectError, "No features in text.")
        table, arrays = self.word_lang_prob_map, self._arrays
        langprob = np.zeros(len(self.langlist))
        self.random.seed(self.seed)
        # random.choice(ngrams) is ngrams[_randbelow(len)], and _randbelow draws getrandbits(k) until the
        # value is below len: inlined here, drawing the very same numbers in the same order.
        getrandbits, n = self.random.getrandbits, len(ngrams)
        k = n.bit_length()
        for _trial in range(self.n_trial):
            prob = np.array(self._init_probability(), dtype=np.float64)
            alpha = self.alpha + self.random.gauss(0.0, 1.0) * self.ALPHA_WIDTH
            weight = alpha / self.BASE_FREQ
            factors: dict[str, np.ndarray] = {}
            i = 0
            while True:
                r = getrandbits(k)
                while r >= n:
                    r = getrandbits(k)
                word = ngrams[r]
                factor = factors.get(word)
                if factor is None:
                    base = arrays.get(word)
                    if base is None:
                        base = arrays[word] = np.asarray(table[word], dtype=np.float64)
                    factor = factors[word] = weight + base
                np.multiply(prob, factor, out=prob)
                if i % 5 == 0:
                    np.divide(prob, sum(prob.tolist()), out=prob)
                    if prob.max() > self.CONV_THRESHOLD or i >= self.ITERATION_LIMIT:
                        break
                i += 1
            langprob += prob / self.n_trial
        self.langprob = langprob.tolist()


def detect_language(text: str, seed: int = 0) -> str:
    """The most probable language code of ``text`` ("en", "fr", ...), or "unknown" when undecidable."""
    detector = FastDetector(_factory())
    detector.seed = seed   # the detector re-seeds its own Random from this before sampling
    try:
        detector.append(text)
        return detector.detect()
    except LangDetectException:
        return "unknown"


def detect_language_reference(text: str, seed: int = 0) -> str:
    """The same decision with langdetect's own (slower) detector: the reference for tests and the bench."""
    detector = _factory().create()
    detector.seed = seed
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
