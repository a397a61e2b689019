"""Words per language: the canonical words of ``wit_pipeline.text``, split further where a script has no spaces.

* ``uses_spaces(lang)``: False for languages written without spaces between words (Chinese and
  its Han-script varieties, Japanese, Thai, Lao, Khmer, Burmese, Tibetan, Dzongkha). Matching is
  by whole word where True, by substring (MetaCLIP's rule) where False.
* ``words(text, lang)``: for a language with spaces, ``wit_pipeline.text.words`` (German is
  lower-cased like every other language). For one without, each canonical word (a run between
  spaces and punctuation) is split by the language's segmenter: jieba for Chinese (``[zh]``
  extra), fugashi with unidic-lite for Japanese (``[ja]``), PyThaiNLP's ``newmm`` for Thai
  (``[th]``). A language without a wired segmenter (Lao, Khmer, Burmese, Tibetan) keeps its runs
  whole. A segmenter that is not installed is a ``UserError`` naming the extra.
* ``word_runs(text, lang)``: the same words grouped by the run they came from, with their spans in
  it: bigrams of a language without spaces are the text of the run from the first word's start to
  the second word's end (two words joined as the caption wrote them, a substring of it), and never
  span two runs.
* ``count_words(text)``: language-free, for candidate filters (``--min-words``): canonical words,
  except that every character of a script written without spaces (Han, kana, Thai, Lao, Khmer,
  Burmese, Tibetan) counts as one word; combining marks do not count. No extra needed.

Segmenters are deterministic: jieba runs with ``HMM=False`` (its dictionary only; HMM new-word
discovery invents "words" from runs of unknown characters, differently as its input changes),
MeCab's best path is fixed by its dictionary, ``newmm`` is dictionary maximal matching. Each is
loaded once per process (a Beam worker loads it at its first text of that language).
"""

from __future__ import annotations

import importlib.util
import logging
import re
import unicodedata
from functools import lru_cache
from typing import Callable

from .errors import UserError
from .langcodes import normalise
from .text import find_words, normalize_text
from .text import words as spaced_words

# Languages whose writing puts no spaces between words.
UNSPACED = frozenset({"zh", "yue", "wuu", "lzh", "gan", "ja", "th", "lo", "km", "my", "bo", "dz"})
# language -> (segmenter name, the extra that installs it)
SEGMENTERS = {"zh": "jieba", "yue": "jieba", "wuu": "jieba", "lzh": "jieba", "gan": "jieba",
              "ja": "fugashi", "th": "pythainlp"}
EXTRAS = {"jieba": "zh", "fugashi": "ja", "pythainlp": "th"}
MODULES = {"jieba": ("jieba",), "fugashi": ("fugashi", "unidic_lite"), "pythainlp": ("pythainlp",)}

# Characters of the scripts written without spaces: Han (with its extensions and compatibility
# forms), hiragana, katakana, Thai, Lao, Tibetan, Burmese, Khmer.
_UNSPACED_CHAR = re.compile(
    "[\u0e00-\u0e7f\u0e80-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u19e0-\u19ff\u3005\u3007"
    "\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003134f]"
)
_EDGE = "'-\u2019"   # joiners of a canonical word; a segment does not start or end with one


def uses_spaces(lang: str) -> bool:
    """Whether ``lang`` puts spaces between words (word matching) or not (substring matching)."""
    return normalise(lang) not in UNSPACED


def segmenter_missing(lang: str) -> str | None:
    """The ``pip install`` hint when ``lang`` needs a segmenter that is not installed, else None."""
    name = SEGMENTERS.get(normalise(lang))
    if name is None or all(importlib.util.find_spec(module) for module in MODULES[name]):
        return None
    return f"pip install 'wit-pipeline[{EXTRAS[name]}]'"


def require_segmenters(langs) -> None:
    """``UserError`` (one line, naming the extra) when a language in ``langs`` needs a missing segmenter."""
    for lang in sorted(set(langs)):
        hint = segmenter_missing(lang)
        if hint:
            name = SEGMENTERS[normalise(lang)]
            raise UserError(f"words of {lang!r} need the {name} segmenter, which is not installed: {hint}")


def words(text: str, lang: str, keep_case: bool = False) -> list[str]:
    """The words of ``text`` in language ``lang``: canonical words, segmented where the language has no spaces."""
    return [run[start:end] for run, spans in word_runs(text, lang, keep_case) for start, end in spans]


def word_runs(text: str, lang: str, keep_case: bool = False) -> list[tuple[str, list[tuple[int, int]]]]:
    """``[(run, [(start, end), ...])]``: each canonical word of ``text`` and the spans of its words."""
    runs = spaced_words(text, keep_case)
    lang = normalise(lang)
    if lang not in UNSPACED:
        return [(run, [(0, len(run))]) for run in runs]
    name = SEGMENTERS.get(lang)
    if name is None:
        return [(run, [(0, len(run))]) for run in runs]
    split = _segmenter(name)
    return [(run, _word_spans(run, split(run))) for run in runs]


def count_words(text: str) -> int:
    """Words of ``text`` for length filters, in any language: canonical words, one per character of a script
    written without spaces (marks excluded)."""
    if text.isascii():
        return len(find_words(text))
    total = 0
    for word in find_words(normalize_text(text, keep_case=True)):
        if not _UNSPACED_CHAR.search(word):
            total += 1
            continue
        rest = _UNSPACED_CHAR.sub(" ", word).split()
        total += len(rest) + sum(1 for char in _UNSPACED_CHAR.findall(word)
                                 if not unicodedata.category(char).startswith("M"))
    return total


def _word_spans(run: str, tokens: list[str]) -> list[tuple[int, int]]:
    """Spans in ``run`` of the segmenter's ``tokens`` (found in order), trimmed of joiners; empty ones dropped."""
    spans = []
    position = 0
    for token in tokens:
        start = run.find(token, position) if token else -1
        if start < 0:
            continue
        end = start + len(token)
        position = end
        while start < end and run[start] in _EDGE:
            start += 1
        while end > start and run[end - 1] in _EDGE:
            end -= 1
        if start < end:
            spans.append((start, end))
    return spans


def _loader(name: str) -> Callable[[], Callable[[str], list[str]]]:
    return {"jieba": _load_jieba, "fugashi": _load_fugashi, "pythainlp": _load_pythainlp}[name]


@lru_cache(maxsize=None)
def _segmenter(name: str) -> Callable[[str], list[str]]:
    """The segmenter ``name``, loaded once per process; ``UserError`` naming its extra when it is missing."""
    try:
        return _loader(name)()
    except ImportError:
        raise UserError(f"the {name} segmenter is not installed: pip install 'wit-pipeline[{EXTRAS[name]}]'") from None


def _load_jieba() -> Callable[[str], list[str]]:
    import jieba

    jieba.setLogLevel(logging.WARNING)   # "Building prefix dict ..." on every process start
    tokenizer = jieba.Tokenizer()
    return lambda run: tokenizer.lcut(run, HMM=False)


def _load_fugashi() -> Callable[[str], list[str]]:
    import fugashi
    import unidic_lite

    tagger = fugashi.Tagger(f'-d "{unidic_lite.DICDIR}"')
    return lambda run: [word.surface for word in tagger(run)]


def _load_pythainlp() -> Callable[[str], list[str]]:
    from pythainlp.tokenize import word_tokenize

    return lambda run: word_tokenize(run, engine="newmm", keep_whitespace=False)
