"""Language identification with langdetect, seeded so the same text always gets the same answer.

langdetect manages only ~700 short texts per second per core, so callers ask
once per *distinct* text and, in ``wit select``, only for texts that matched a
query. Because the answer is a pure function of (text, seed), deciding after
matching keeps exactly the pairs that deciding on every text would keep
(bench/bench_candidates.py checks this).
"""

from __future__ import annotations

import sys
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


class _Rows:
    """n-gram -> row of one growing matrix of per-language probabilities (shared by all batches)."""

    def __init__(self, table: dict, n_lang: int):
        self.table, self.index = table, {}
        self.matrix = np.empty((4096, n_lang))
        self.lock = threading.Lock()

    def row(self, word: str) -> int:
        row = self.index.get(word)
        if row is None:
            with self.lock:   # Beam may run several threads in one process
                row = self.index.get(word)
                if row is None:
                    row = len(self.index)
                    if row >= len(self.matrix):
                        self.matrix = np.concatenate([self.matrix, np.empty_like(self.matrix)])
                    self.matrix[row] = self.table[word]
                    self.index[word] = row
        return row


_rows: _Rows | None = None
_SEQUENTIAL_SUM = sys.version_info < (3, 12)   # from 3.12 on, sum() of floats is compensated


def detect_languages(texts: list[str], seed: int = 0, batch: int = 512) -> list[str]:
    """``[detect_language(t, seed) for t in texts]``, with up to ``batch`` texts advanced in lockstep.

    Each text keeps its own seeded random stream, trial and iteration counters,
    exactly as langdetect's loop; only the per-language products of all texts
    in flight are done in one numpy operation per step (``P *= weight + p_word``
    row by row: the same IEEE operations per element as langdetect's). The
    convergence test's sum is Python's sequential float sum (numpy's cumulative
    sum, on Pythons whose ``sum`` is sequential; Python's own ``sum`` otherwise).
    """
    global _rows
    import random as _random

    factory = _factory()
    n_lang = len(factory.langlist)
    with _lock:
        if _rows is None:
            _rows = _Rows(factory.word_lang_prob_map, n_lang)
    rows = _rows
    results: list[str] = ["unknown"] * len(texts)
    limit, conv, n_trial = Detector.ITERATION_LIMIT, Detector.CONV_THRESHOLD, 7
    init = 1.0 / n_lang
    prob = np.empty((batch, n_lang))
    langprob = np.zeros((batch, n_lang))
    weight = np.zeros(batch)
    slot_text = [-1] * batch
    slot_det: list = [None] * batch
    slot_grams: list = [None] * batch
    slot_bits: list = [None] * batch
    slot_rand: list = [None] * batch
    slot_trial = [0] * batch
    slot_iter = [0] * batch
    pending = iter(range(len(texts)))

    def start_trial(b):
        prob[b] = init
        alpha = Detector.ALPHA_DEFAULT + slot_rand[b].gauss(0.0, 1.0) * Detector.ALPHA_WIDTH
        weight[b] = alpha / Detector.BASE_FREQ
        slot_iter[b] = 0

    def fill(b) -> bool:
        for index in pending:
            detector = FastDetector(factory)
            detector.seed = seed
            try:
                detector.append(texts[index])
            except LangDetectException:
                continue
            detector.cleaning_text()
            grams = detector._extract_ngrams()
            if not grams:
                continue                      # "No features in text.": unknown
            rand = _random.Random()
            rand.seed(seed)
            slot_text[b], slot_det[b], slot_rand[b] = index, detector, rand
            slot_grams[b] = [rows.row(g) for g in grams]
            slot_bits[b] = (rand.getrandbits, len(grams), len(grams).bit_length())
            slot_trial[b] = 0
            langprob[b] = 0.0
            start_trial(b)
            return True
        slot_text[b] = -1
        return False

    active = [b for b in range(batch) if fill(b)]
    while active:
        picks = []
        for b in active:
            getrandbits, n, k = slot_bits[b]
            r = getrandbits(k)
            while r >= n:
                r = getrandbits(k)
            picks.append(slot_grams[b][r])
        where = np.array(active)
        factor = rows.matrix[picks]
        factor += weight[where, None]            # weight + p_word, per element
        prob[where] *= factor
        check = [b for b in active if slot_iter[b] % 5 == 0]
        done_trial = set()
        if check:
            at = np.array(check)
            block = prob[at]
            sums = np.cumsum(block, axis=1)[:, -1] if _SEQUENTIAL_SUM else np.array(
                [sum(row) for row in block.tolist()])
            block /= sums[:, None]
            prob[at] = block
            maxima = block.max(axis=1)
            for j, b in enumerate(check):
                if maxima[j] > conv or slot_iter[b] >= limit:
                    done_trial.add(b)
        still = []
        for b in active:
            if b not in done_trial:
                slot_iter[b] += 1
                still.append(b)
                continue
            langprob[b] += prob[b] / n_trial
            slot_trial[b] += 1
            if slot_trial[b] < n_trial:
                start_trial(b)
                still.append(b)
                continue
            detector = slot_det[b]
            detector.langprob = langprob[b].tolist()
            results[slot_text[b]] = detector.detect()
            if fill(b):
                still.append(b)
        active = still
    return results


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
