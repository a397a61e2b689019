"""Language identification: seeded, and our numpy detector answers exactly as langdetect's own."""

import gzip
import re


from wit_pipeline.candidates.language import (FastDetector, _factory, detect_language, detect_language_reference,
                                             detect_languages)
from wit_pipeline.sampleweb.site import ENGLISH_TEMPLATES, FOREIGN_CAPTIONS


def _texts():
    texts = [t.format(c="red", s="circle", b="blue") for t in ENGLISH_TEMPLATES] + list(FOREIGN_CAPTIONS)
    # Real alt texts and link texts from the Common Crawl record (Aragonese Wikipedia page).
    html = gzip.open("/work/shared/data/commoncrawl/whirlwind.warc.gz").read().decode("utf-8", "replace")
    texts += sorted(set(re.findall(r'(?:alt|title)="([^"]{4,80})"', html)))[:60]
    return texts + ["Escopete ye un municipio d'a provincia de Guadalajara", "123 456", "!!!", ""]


def test_fast_detector_gives_langdetects_probabilities_bit_for_bit():
    factory = _factory()
    for text in _texts():
        for seed in (0, 7):
            ours, theirs = FastDetector(factory), factory.create()
            ours.seed = theirs.seed = seed
            ours.append(text)
            theirs.append(text)
            try:
                expected = [(p.lang, p.prob) for p in theirs.get_probabilities()]
            except Exception as exc:  # noqa: BLE001 - no features: both must fail alike
                expected = type(exc)
            try:
                got = [(p.lang, p.prob) for p in ours.get_probabilities()]
            except Exception as exc:  # noqa: BLE001
                got = type(exc)
            assert got == expected, text


def test_detection_is_seeded_and_repeatable():
    for text in _texts():
        assert detect_language(text, 3) == detect_language(text, 3) == detect_language_reference(text, 3)
    assert detect_language("a large red circle drawn on blue paper") == "en"
    assert [detect_language(t) for t in FOREIGN_CAPTIONS] == ["fr", "de", "es", "it", "pt"]
    assert detect_language("") == "unknown"


def test_batched_detection_answers_like_langdetect_text_by_text():
    import random

    from wit_pipeline.sampleweb.site import BOILERPLATE_CAPTIONS

    rng = random.Random(5)
    texts = _texts() + list(BOILERPLATE_CAPTIONS)
    texts += [" ".join(rng.sample(texts[:20], 2)) for _ in range(40)]     # mixed-language texts too
    for seed in (0, 3):
        expected = [detect_language_reference(t, seed) for t in texts]
        assert detect_languages(texts, seed, batch=7) == expected          # slots refilled many times
        assert detect_languages(texts, seed) == expected
