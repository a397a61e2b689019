"""Language identification: seeded, and our numpy detector answers exactly as langdetect's own."""

import gzip
import re

from wit_pipeline.language import (
    DETECTORS,
    _factory,
    _Stream,
    detect_language,
    detect_language_reference,
    detect_languages,
    language_probabilities,
)
from wit_pipeline.sampleweb.site import ENGLISH_TEMPLATES, FOREIGN_CAPTIONS


def _texts():
    texts = [t.format(c="red", s="circle", b="blue") for t in ENGLISH_TEMPLATES] + list(FOREIGN_CAPTIONS)
    # Real alt texts and link texts from the Common Crawl record (Aragonese Wikipedia page).
    html = gzip.open("/work/shared/data/commoncrawl/whirlwind.warc.gz").read().decode("utf-8", "replace")
    texts += sorted(set(re.findall(r'(?:alt|title)="([^"]{4,80})"', html)))[:60]
    return texts + ["Escopete ye un municipio d'a provincia de Guadalajara", "123 456", "!!!", ""]


def _hard_texts():
    """Texts that take langdetect's rarer paths: non-Latin scripts (cleaning_text drops the Latin letters
    of a mostly non-Latin text), CJK and kana normalisation, Vietnamese diacritics, capitalised words,
    URLs and e-mail addresses, runs of spaces, punctuation-only and over-long texts."""
    return ["東京タワーの夜景 Tokyo", "Москва ночью, красная площадь", "ΑΘΗΝΑ acropolis at night",
            "Ngày hôm nay trời đẹp", "مرحبا بالعالم", "한국어 텍스트 abc", "IBM PC XT and NASA", "a  b   c    d",
            "http://x.com/a/b.jpg hi there", "mail me at someone@example.org now", "ñandú ÇA VA très bien",
            "Ții și ștrengari", "…—“quoted”—…", "word " * 3000, "ab" * 6000, "x", " leading and trailing spaces "]


def _langdetect_probabilities(text, seed):
    detector = _factory().create()
    detector.seed = seed
    detector.append(text)
    try:
        detector.get_probabilities()
    except Exception:  # noqa: BLE001 - "no features": ours must answer None
        return None
    return detector.langprob


def test_probabilities_are_langdetects_bit_for_bit():
    import random

    rng = random.Random(11)
    texts = _texts() + _hard_texts()
    texts += [" ".join(rng.sample(texts, 3)) for _ in range(150)]   # mixed languages, longer texts
    for seed in (0, 7):
        expected = [_langdetect_probabilities(t, seed) for t in texts]
        for batch in (512, 7):   # all texts in flight at once (wide sums) and slots refilled many times
            got = [None if p is None else p.tolist() for p in language_probabilities(texts, seed, batch)]
            assert got == expected


def test_the_sum_through_python_gives_the_same_probabilities(monkeypatch):
    """The path taken on Pythons whose sum() is compensated (3.12+): Python's own sum, row by row."""
    import wit_pipeline.language as language

    texts = _texts() + _hard_texts()
    expected = [_langdetect_probabilities(t, 0) for t in texts]
    monkeypatch.setattr(language, "_SEQUENTIAL_SUM", False)
    got = [None if p is None else p.tolist() for p in language_probabilities(texts, 0)]
    assert got == expected


def test_the_shared_stream_draws_what_random_draws():
    import random

    stream = _Stream(5)
    for pos in (0, 1, 4, 99, 1000, 70_000):
        reference = random.Random(5)
        for _ in range(pos):
            reference.getrandbits(32)
        assert stream.gauss_pair(pos) == (reference.gauss(0.0, 1.0), reference.gauss(0.0, 1.0))
        reference = random.Random(5)
        assert [int(v) for v in stream.upto(pos + 3)[:pos + 3]] == [reference.getrandbits(32) for _ in range(pos + 3)]


def test_detection_is_seeded_and_repeatable():
    for text in _texts():
        once, again = (detect_language(text, 3, detector="langdetect") for _ in range(2))
        assert once == again == detect_language_reference(text, 3)
    for detector in DETECTORS:
        assert detect_language("a large red circle drawn on blue paper", detector=detector) == "en"
        assert [detect_language(t, detector=detector) for t in FOREIGN_CAPTIONS] == ["fr", "de", "es", "it", "pt"]
        assert detect_language("", detector=detector) == "unknown"


def test_batched_detection_answers_like_langdetect_text_by_text():
    import random

    from wit_pipeline.sampleweb.site import BOILERPLATE_CAPTIONS

    rng = random.Random(5)
    texts = _texts() + list(BOILERPLATE_CAPTIONS)
    texts += [" ".join(rng.sample(texts[:20], 2)) for _ in range(40)]     # mixed-language texts too
    for seed in (0, 3):
        expected = [detect_language_reference(t, seed) for t in texts]
        assert detect_languages(texts, seed, batch=7, detector="langdetect") == expected   # slots refilled often
        assert detect_languages(texts, seed, detector="langdetect") == expected
