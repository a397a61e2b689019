"""Language identification for many texts at once: two detectors, one code space.

``detect_languages(texts, seed, batch, detector)`` answers with one code per text in
``wit_pipeline.langcodes.normalise`` form (``zh``, never ``zh-cn``), or ``"unknown"``, whichever
detector (``DETECTORS``) answers:

- ``langdetect``: langdetect's own answers, bit for bit, seeded (``--seed``), 55 profiles (its
  ``zh-cn`` and ``zh-tw`` are both ``zh``: ``LANGDETECT_LANGUAGES``, 54 codes);
- ``py3langid``: py3langid's naive Bayes classifier (model in its wheel) restricted to the same 54
  languages, so both detectors route texts to the same query lists; its ``zh`` covers both
  scripts. It has no randomness: the seed does not affect it. A text without a letter (digits,
  punctuation, symbols only) or without one of its features is ``"unknown"``, as langdetect says
  for a featureless text. Its answers are ``LanguageIdentifier.classify``'s, computed for a batch:
  the byte automaton walks all texts in lockstep in numpy, and one sparse product scores them.

``py3langid`` is the default (``DEFAULT_DETECTOR``, ``--lang-detector``): on short alt texts it is ~30x
faster than our batched langdetect and more accurate (bench/bench_language_id.py, docs/benchmarks.md);
``--lang-detector langdetect`` reproduces earlier runs exactly.

The rest of this map is the langdetect port.

langdetect manages only ~700 short texts per second per core, so callers ask
once per *distinct* text and, in ``wit select``, only for texts that matched a
query. Because the answer is a pure function of (text, seed), deciding after
matching keeps exactly the pairs that deciding on every text would keep
(bench/bench_candidates.py checks this).

``detect_languages`` computes langdetect's own probabilities, bit for bit, but
not text by text. langdetect re-seeds its random generator with the same seed
for every text, so every text draws from one and the same stream of 32-bit
outputs, and texts differ only in which outputs they accept (``choice`` keeps
an output when ``output >> (32 - k)`` is below the number of n-grams). The
stream is generated once, each text's accepted draws are found with numpy, and
the per-language products of hundreds of texts advance in lockstep, five
samples and one normalisation per step, exactly the operations langdetect does
for each text (tests/candidates/test_language.py compares every probability).
"""

from __future__ import annotations

import math
import random
import re
import sys
import threading
import unicodedata

import numpy as np
from langdetect import detector_factory
from langdetect.detector import Detector
from langdetect.lang_detect_exception import LangDetectException
from langdetect.utils.ngram import NGram

from .errors import UserError
from .langcodes import normalise

DETECTORS = ("py3langid", "langdetect")
DEFAULT_DETECTOR = "py3langid"   # faster and more accurate on short alt texts (docs/benchmarks.md)
UNKNOWN = "unknown"
# langdetect's 55 profiles in normalised codes (zh-cn and zh-tw are one zh): what both detectors may answer.
LANGDETECT_LANGUAGES = (
    "af", "ar", "bg", "bn", "ca", "cs", "cy", "da", "de", "el", "en", "es", "et", "fa", "fi", "fr", "gu", "he",
    "hi", "hr", "hu", "id", "it", "ja", "kn", "ko", "lt", "lv", "mk", "ml", "mr", "ne", "nl", "no", "pa", "pl",
    "pt", "ro", "ru", "sk", "sl", "so", "sq", "sv", "sw", "ta", "te", "th", "tl", "tr", "uk", "ur", "vi", "zh",
)

_lock = threading.Lock()
_ready = False


def _factory():
    """langdetect's profile factory, loaded once per process (thread-safe: langdetect publishes its
    factory before the profiles are loaded, so its own check is not enough)."""
    global _ready
    if not _ready:
        with _lock:
            if not _ready:
                if detector_factory._factory is None or not detector_factory._factory.langlist:
                    detector_factory._factory = None
                    detector_factory.init_factory()
                _ready = True
    return detector_factory._factory


# -- the text langdetect samples from ------------------------------------------------------------
_SPACE_RUNS = re.compile(" {2,}")
_TOKEN = re.compile("[^ ]+")
_MAX_TEXT_LENGTH = 10_000        # Detector.max_text_length's default
_WORD_CACHE_LIMIT = 1 << 18      # (word, followed by a space) -> n-gram rows (~300 B each); words repeat a lot


def _prepared(text: str) -> str:
    """``Detector.append`` then ``Detector.cleaning_text``, with the same result."""
    text = Detector.URL_RE.sub(" ", text)
    text = Detector.MAIL_RE.sub(" ", text)
    text = _SPACE_RUNS.sub(" ", NGram.normalize_vi(text)[:_MAX_TEXT_LENGTH])   # append keeps one space of a run
    if not text or max(text) < "\u0300":
        return text                       # no non-Latin letters: cleaning_text changes nothing
    latin = sum(1 for ch in text if "A" <= ch <= "z")
    # langdetect means to spare the Latin Extended Additional block here, but compares its block number
    # with the block's name, so every character from U+0300 on counts as non-Latin: so do we.
    non_latin = sum(1 for ch in text if ch >= "\u0300")
    if latin * 2 < non_latin:
        text = "".join(ch for ch in text if ch < "A" or "z" < ch)
    return text


class _NormalisedChars(dict):
    """A ``str.translate`` table: each character as ``NGram.normalize`` maps it, filled on first use."""

    def __missing__(self, code: int) -> str:
        self[code] = value = NGram.normalize(chr(code))
        return value


class _Model:
    """langdetect's profiles as rows of one growing matrix, and the n-gram rows of each word.

    langdetect's n-gram buffer starts afresh after every character that
    normalises to a space, so the n-grams of a text are those of its words taken
    one by one (a word followed by a space also yields its last letters plus the
    space). Words are cached, texts are not.
    """

    def __init__(self, factory):
        self.table = factory.word_lang_prob_map
        self.langs: list[str] = list(factory.langlist)
        self.index: dict[str, int] = {}
        self.matrix = np.empty((4096, len(self.langs)))
        self.words: dict[tuple[str, bool], list[int]] = {}
        self.normal = _NormalisedChars()
        self.lock = threading.Lock()      # Beam may run several threads in one process

    def _row(self, gram: str) -> int:
        row = self.index.get(gram)
        if row is None:
            with self.lock:
                row = self.index.get(gram)
                if row is None:
                    row = len(self.index)
                    if row >= len(self.matrix):   # readers keep using the old matrix: its rows stay valid
                        self.matrix = np.concatenate([self.matrix, np.empty_like(self.matrix)])
                    self.matrix[row] = self.table[gram]
                    self.index[gram] = row
        return row

    def _word_rows(self, word: str, spaced: bool) -> list[int]:
        """``Detector._extract_ngrams`` over one word (and its following space): the same loop."""
        grams, ngram, table = [], NGram(), self.table
        for ch in word + " " if spaced else word:
            ngram.add_char(ch)
            if ngram.capitalword:
                continue
            for n in (1, 2, 3):
                if len(ngram.grams) < n:
                    break
                gram = ngram.grams[-n:]
                if gram and gram != " " and gram in table:
                    grams.append(self._row(gram))
        if len(self.words) >= _WORD_CACHE_LIMIT:
            self.words.clear()
        self.words[(word, spaced)] = grams
        return grams

    def features(self, text: str) -> list[int]:
        """The matrix rows of the n-grams langdetect samples from for ``text``, in its order."""
        text = _prepared(text)
        normal = text.translate(self.normal)
        rows: list[int] = []
        for match in _TOKEN.finditer(normal):
            start, end = match.span()
            key = (text[start:end], end < len(normal))
            word_rows = self.words.get(key)
            rows.extend(self._word_rows(*key) if word_rows is None else word_rows)
        return rows


# -- the seeded random stream ----------------------------------------------------------------------
class _Stream:
    """The 32-bit outputs of ``random.Random(seed)`` in order, generated as far as anyone has asked."""

    def __init__(self, seed: int):
        self._random = random.Random(seed)
        self.outputs = np.empty(0, dtype=np.int64)
        self.pairs: dict[int, tuple[float, float]] = {}   # gauss pairs by position
        self.lock = threading.Lock()

    def upto(self, end: int) -> np.ndarray:
        outputs = self.outputs
        if len(outputs) < end:
            with self.lock:
                outputs = self.outputs
                if len(outputs) < end:
                    more = max(end, 2 * len(outputs), 1 << 16) - len(outputs)
                    bits = self._random.getrandbits
                    outputs = self.outputs = np.concatenate(
                        [outputs, np.fromiter((bits(32) for _ in range(more)), dtype=np.int64, count=more)])
        return outputs

    def gauss_pair(self, pos: int) -> tuple[float, float]:
        """``Random.gauss`` from output ``pos`` on (it takes two ``random()``, four outputs): the value
        and the one it caches for the next call. Every text's first trial draws it at position 0."""
        pair = self.pairs.get(pos)
        if pair is None:
            a, b, c, d = self.upto(pos + 4)[pos:pos + 4].tolist()   # random() is 53 bits of two outputs
            x2pi = ((a >> 5) * 67108864.0 + (b >> 6)) * (1.0 / 9007199254740992.0) * (2.0 * math.pi)
            g2rad = math.sqrt(-2.0 * math.log(1.0 - ((c >> 5) * 67108864.0 + (d >> 6)) * (1.0 / 9007199254740992.0)))
            pair = self.pairs[pos] = (math.cos(x2pi) * g2rad, math.sin(x2pi) * g2rad)
        return pair


_model: _Model | None = None
_streams: dict[int, _Stream] = {}


def _shared(seed: int) -> tuple[_Model, _Stream]:
    global _model
    factory = _factory()
    with _lock:
        if _model is None:
            _model = _Model(factory)
        stream = _streams.get(seed)
        if stream is None:
            stream = _streams[seed] = _Stream(seed)
    return _model, stream


# -- langdetect's sampling loop, many texts in lockstep ---------------------------------------------
_SEQUENTIAL_SUM = sys.version_info < (3, 12)   # from 3.12 on, sum() of floats is compensated
_WINDOW = 512                                  # accepted draws found ahead per text
_STEP = 5                                      # langdetect normalises and tests every 5 samples


class _Text:
    """One text in flight: its n-gram rows, and the draws found ahead for it."""

    __slots__ = ("index", "rows", "n", "shift", "start", "positions")

    def __init__(self, index: int, rows: list[int]):
        self.index, self.rows, self.n = index, np.asarray(rows, dtype=np.intp), len(rows)
        self.shift = 32 - self.n.bit_length()   # choice() draws getrandbits(n.bit_length()) until below n
        self.start, self.positions = 0, np.empty(0, dtype=np.int64)   # raw stream positions of the draws


class _Lockstep:
    """Up to ``size`` texts, each in its own slot; live slots are kept packed in ``[0, live)``.

    Per slot, numpy holds the state langdetect keeps per text: the probabilities
    of the current trial and their running total, the trial's weight, number and
    sample count, the cached second gauss value, and the next accepted draws.
    """

    def __init__(self, model: _Model, stream: _Stream, texts: list[str], size: int):
        self.model, self.stream, self.texts = model, stream, texts
        n_lang = len(model.langs)
        self.init = 1.0 / n_lang
        self.prob = np.empty((size, n_lang))
        self.total = np.zeros((size, n_lang))
        self.weight = np.zeros(size)
        self.gauss_next = np.zeros(size)
        self.trial = np.zeros(size, dtype=np.intp)
        self.iters = np.zeros(size, dtype=np.intp)
        self.draws = np.zeros((size, _WINDOW), dtype=np.intp)    # matrix rows of the next accepted draws
        self.cursor = np.zeros(size, dtype=np.intp)
        self.filled = np.zeros(size, dtype=np.intp)
        self.per_slot = (self.prob, self.total, self.weight, self.gauss_next, self.trial, self.iters,
                         self.draws, self.cursor, self.filled)
        self.slots: list[_Text | None] = [None] * size
        self.results: list[np.ndarray | None] = [None] * len(texts)
        self.pending = iter(range(len(texts)))
        self.live = size
        self.starting: list[int] = []
        self.retired: list[int] = []

    def take_next(self, b: int) -> None:
        for index in self.pending:
            rows = self.model.features(self.texts[index])
            if rows:                               # no features: langdetect raises, the answer is "unknown"
                self.slots[b] = _Text(index, rows)
                self.total[b] = 0.0
                self.trial[b] = self.cursor[b] = self.filled[b] = 0
                self.starting.append(b)
                return
        self.slots[b] = None
        self.retired.append(b)

    def next_position(self, b: int) -> int:
        text, cursor = self.slots[b], self.cursor[b]
        return int(text.positions[cursor - 1]) + 1 if cursor else text.start

    def refill(self, b: int, pos: int) -> None:
        """Find the slot's next accepted draws from stream position ``pos`` on."""
        text, span = self.slots[b], 3 * _WINDOW
        while True:
            values = self.stream.upto(pos + span)[pos:pos + span] >> text.shift
            accepted = np.flatnonzero(values < text.n)[:_WINDOW]
            if len(accepted) >= _STEP or span > 1 << 20:
                break
            span *= 2
        self.draws[b, :len(accepted)] = text.rows[values[accepted]]
        text.start, text.positions = pos, pos + accepted
        self.cursor[b], self.filled[b] = 0, len(accepted)

    def draw_gauss(self, b: int) -> None:
        """Even trials call gauss() afresh: four outputs of the stream, skipped by the draws after them."""
        text, pos = self.slots[b], self.next_position(b)
        z, self.gauss_next[b] = self.stream.gauss_pair(pos)
        self.weight[b] = z
        pos += 4
        cursor = int(np.searchsorted(text.positions, pos)) if len(text.positions) else 0
        if cursor < self.filled[b]:                # the window already holds the draws after the pair
            self.cursor[b] = cursor
        else:
            self.refill(b, pos)

    def begin_trials(self, at: np.ndarray) -> None:
        even = self.trial[at] % 2 == 0
        for b in at[even].tolist():
            self.draw_gauss(b)                     # leaves the gauss value in weight[b]
        odd = at[~even]
        self.weight[odd] = self.gauss_next[odd]    # odd trials take the value the last gauss() cached
        # alpha = ALPHA_DEFAULT + gauss * ALPHA_WIDTH, weight = alpha / BASE_FREQ: the same IEEE steps
        self.weight[at] = (Detector.ALPHA_DEFAULT + self.weight[at] * Detector.ALPHA_WIDTH) / Detector.BASE_FREQ
        self.iters[at] = 0
        for b in at[self.filled[at] - self.cursor[at] < _STEP + 1].tolist():
            self.refill(b, self.next_position(b))

    def end_trials(self, done: np.ndarray) -> None:
        self.total[done] += self.prob[done] / 7   # langprob[j] += prob[j] / n_trial
        self.trial[done] += 1
        finished = self.trial[done] == 7
        self.starting.extend(done[~finished].tolist())
        for b in done[finished].tolist():
            self.results[self.slots[b].index] = self.total[b].copy()
            self.take_next(b)

    # All slots at once, in numpy: the same IEEE operations langdetect does per text.
    def normalised_maxima(self, prob: np.ndarray) -> np.ndarray:
        """langdetect's ``_normalize_prob`` for each row: divide by ``sum(row)``, return the row's maximum."""
        if not _SEQUENTIAL_SUM:
            sums = np.array([sum(row) for row in prob.tolist()])
        elif len(prob) < 64:
            sums = np.cumsum(prob, axis=1)[:, -1]     # a running sum is sequential by definition
        else:                                          # the same additions, a language at a time: faster
            columns = np.ascontiguousarray(prob.T)
            sums = columns[0].copy()
            for column in columns[1:]:
                sums += column
        prob /= sums[:, None]
        return prob.max(axis=1)

    def first_samples(self) -> None:
        """Start the trials waiting to start: the first sample of each, then langdetect's test at i = 0."""
        while self.starting:
            at, self.starting = np.array(self.starting), []
            self.begin_trials(at)
            factor = self.model.matrix[self.draws[at, self.cursor[at]]]
            factor += self.weight[at, None]
            self.cursor[at] += 1
            prob = self.init * factor               # prob[i] = 1/n_lang, then prob[i] *= weight + p_word[i]
            maxima = self.normalised_maxima(prob)
            self.prob[at] = prob
            self.end_trials(at[maxima > Detector.CONV_THRESHOLD])

    def pack(self) -> None:
        """Move the last live slots into the retired ones, so the live ones stay in ``[0, live)``."""
        for b in sorted(self.retired, reverse=True):
            last = self.live - 1
            if b != last:
                for array in self.per_slot:
                    array[b] = array[last]
                self.slots[b] = self.slots[last]
            self.slots[last] = None
            self.live -= 1
        self.retired = []

    def step(self) -> None:
        """Five more samples in every live trial, then the normalisation and convergence test."""
        live = self.live
        for b in np.flatnonzero(self.filled[:live] - self.cursor[:live] < _STEP).tolist():
            self.refill(b, self.next_position(b))
        cursor = self.cursor[:live]
        rows = self.draws[np.arange(live)[:, None], cursor[:, None] + np.arange(_STEP)]
        factors = self.model.matrix[rows]
        factors += self.weight[:live, None, None]
        prob = self.prob[:live]
        for j in range(_STEP):                      # one sample after the other, as langdetect multiplies
            prob *= factors[:, j]
        cursor += _STEP
        self.iters[:live] += _STEP
        maxima = self.normalised_maxima(prob)
        done = (maxima > Detector.CONV_THRESHOLD) | (self.iters[:live] >= Detector.ITERATION_LIMIT)
        self.end_trials(np.flatnonzero(done))

    def run(self) -> list[np.ndarray | None]:
        for b in range(len(self.slots)):
            self.take_next(b)
        while True:
            self.first_samples()
            self.pack()
            if not self.live:
                return self.results
            self.step()


def language_probabilities(texts: list[str], seed: int = 0, batch: int = 512) -> list[np.ndarray | None]:
    """langdetect's probability of each of its languages (``_factory().langlist`` order) for each
    text, as ``Detector.langprob`` holds them after detection; None where it finds no features."""
    if not texts:
        return []
    model, stream = _shared(seed)
    return _Lockstep(model, stream, texts, min(batch, len(texts))).run()


def _langdetect_answers(texts: list[str], seed: int, batch: int) -> list[str]:
    """langdetect's answer for each text (normalised codes), up to ``batch`` texts advanced in lockstep."""
    codes = [normalise(lang) for lang in _shared(seed)[0].langs]
    answers = []
    for prob in language_probabilities(texts, seed, batch):
        best, best_p = UNKNOWN, Detector.PROB_THRESHOLD
        if prob is not None:    # langdetect sorts the languages above the threshold, first on a tie
            for code, p in zip(codes, prob.tolist(), strict=True):
                if p > best_p:
                    best, best_p = code, p
        answers.append(best)
    return answers


# -- py3langid over langdetect's languages, many texts in lockstep -----------------------------------
_PY3LANGID = "py3langid>=0.4,<0.5"
_LETTER = re.compile(r"[^\W\d_]")   # a word character that is neither a digit nor "_"
_FEW_WALKING = 8                    # below this many texts still walking, the rest finish one by one


class _Py3Langid:
    """py3langid's model restricted to ``LANGDETECT_LANGUAGES`` (``set_languages``), as flat arrays.

    The model is a byte automaton (state, byte) -> state whose states may emit one feature, and a
    naive Bayes table feature -> log-probability per language. A text's scores are
    ``log1p(count of each feature) @ table + prior``, the largest wins (``classify``).
    """

    def __init__(self):
        try:
            from py3langid import langid
        except ImportError as exc:
            raise UserError(f"the py3langid language detector is not installed: pip install '{_PY3LANGID}'") from exc
        identifier = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE)
        identifier.set_languages(LANGDETECT_LANGUAGES)   # py3langid has every one of them, under the same code
        # A language may own several columns (script variants); the argmax then picks one of them,
        # which names the same language, as classify's folding of those columns does.
        self.labels = [normalise(code) for code in identifier.nb_classes]
        self.table = np.ascontiguousarray(identifier.nb_ptc, dtype=np.float32)   # float32, as classify computes
        self.prior = np.asarray(identifier.nb_pc, dtype=np.float32)
        self.next_move = identifier.tk_nextmove          # a stdlib array: fast to index from Python (_walk_one)
        self.row_base = [row << 8 for row in identifier.tk_row]
        self.output = identifier.tk_output
        self.next_move_np = np.frombuffer(self.next_move, dtype=f"u{self.next_move.itemsize}")
        self.row_base_np = np.asarray(self.row_base, dtype=np.int64)
        self.output_np = np.asarray(self.output, dtype=np.int64)

    def walk(self, data: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """``(text, feature)`` for every feature the automaton emits over each text (``visit_counts``).

        The texts walk byte by byte in lockstep, longest first, so the texts still walking are a
        prefix; the last few finish in plain Python, so one long text costs no numpy call per byte.
        """
        lengths = np.fromiter(map(len, data), dtype=np.int64, count=len(data))
        order = np.argsort(-lengths, kind="stable")
        lengths = lengths[order]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        data = [data[i] for i in order.tolist()]
        buffer = np.frombuffer(b"".join(data), dtype=np.uint8)
        states = np.zeros(len(data), dtype=np.int64)
        texts, features = [], []
        walking, pos = len(data), 0
        while True:
            while walking and lengths[walking - 1] <= pos:
                walking -= 1
            if walking < _FEW_WALKING:
                break
            moved = self.next_move_np[self.row_base_np[states[:walking]] + buffer[starts[:walking] + pos]]
            states[:walking] = moved
            emitted = self.output_np[moved]
            hit = np.flatnonzero(emitted >= 0)
            texts.append(hit)
            features.append(emitted[hit])
            pos += 1
        for slot in range(walking):
            found = self._walk_one(data[slot], pos, int(states[slot]))
            texts.append(np.full(len(found), slot, dtype=np.int64))
            features.append(np.asarray(found, dtype=np.int64))
        if not texts:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        return order[np.concatenate(texts)], np.concatenate(features)

    def _walk_one(self, text: bytes, pos: int, state: int) -> list[int]:
        next_move, row_base, output, found = self.next_move, self.row_base, self.output, []
        for byte in text[pos:]:
            state = next_move[row_base[state] + byte]
            if output[state] >= 0:
                found.append(output[state])
        return found

    def best(self, data: list[bytes]) -> list[str | None]:
        """The language of each encoded text; None where the automaton emits no feature."""
        from scipy.sparse import csr_matrix  # imported here: only this detector needs it

        texts, features = self.walk(data)
        n_features = len(self.table)
        keys, counts = np.unique(texts * n_features + features, return_counts=True)
        rows = keys // n_features
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(data)))])
        weights = csr_matrix((np.log1p(counts.astype(np.float32)), keys % n_features, indptr),
                             shape=(len(data), n_features))
        best = np.asarray(weights @ self.table + self.prior).argmax(axis=1).tolist()
        found = np.diff(indptr) > 0
        return [self.labels[b] if f else None for b, f in zip(best, found.tolist(), strict=True)]


def _encoded(text: str) -> bytes:
    """``LanguageIdentifier._encode``: an all-capitals text lower-cased, NFC, UTF-8 (lone surrogates kept)."""
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


_py3langid: _Py3Langid | None = None
_py3langid_lock = threading.Lock()


def _py3langid_model() -> _Py3Langid:
    """The one restricted py3langid model of this process (loaded on first use, ~1 s; thread-safe)."""
    global _py3langid
    if _py3langid is None:
        with _py3langid_lock:
            if _py3langid is None:
                _py3langid = _Py3Langid()
    return _py3langid


def _py3langid_answers(texts: list[str], batch: int) -> list[str]:
    """py3langid's answer for each text, ``batch`` texts walked at a time; "unknown" for a text with no
    letter or no feature."""
    model = _py3langid_model()
    answers = [UNKNOWN] * len(texts)
    lettered = [i for i, text in enumerate(texts) if _LETTER.search(text)]
    for first in range(0, len(lettered), batch):
        chunk = lettered[first:first + batch]
        for i, best in zip(chunk, model.best([_encoded(texts[i]) for i in chunk]), strict=True):
            if best is not None:
                answers[i] = best
    return answers


def detect_languages(texts: list[str], seed: int = 0, batch: int = 512,
                     detector: str = DEFAULT_DETECTOR) -> list[str]:
    """``[detect_language(t, seed, detector) for t in texts]``, ``batch`` texts at a time: each text's
    language as a ``langcodes.normalise`` code, or "unknown". ``seed`` matters to langdetect only."""
    if detector == "langdetect":
        return _langdetect_answers(texts, seed, batch)
    if detector == "py3langid":
        return _py3langid_answers(texts, max(1, batch))
    raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {detector!r}")


def detect_language(text: str, seed: int = 0, detector: str = DEFAULT_DETECTOR) -> str:
    """The most probable language code of ``text`` ("en", "zh", ...), or "unknown" when undecidable."""
    return detect_languages([text], seed, detector=detector)[0]


def detector_languages(detector: str) -> tuple[str, ...]:
    """Every code ``detector`` may answer besides "unknown", sorted (``LANGDETECT_LANGUAGES`` for both)."""
    if detector == "langdetect":
        return tuple(sorted({normalise(lang) for lang in _factory().langlist}))
    if detector == "py3langid":
        return tuple(sorted(set(_py3langid_model().labels)))
    raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {detector!r}")


def detect_language_reference(text: str, seed: int = 0) -> str:
    """The same decision with langdetect's own (slower) detector, code normalised: the reference for
    tests and the bench."""
    detector = _factory().create()
    detector.seed = seed
    try:
        detector.append(text)
        return normalise(detector.detect())
    except LangDetectException:
        return UNKNOWN
