"""py3langid as a language detector: langdetect's languages, normalised codes, batch-independent answers."""

import sys
import threading

import pytest

import wit_pipeline.language as language
from wit_pipeline.errors import UserError
from wit_pipeline.language import (
    DETECTORS,
    LANGDETECT_LANGUAGES,
    detect_language,
    detect_languages,
    detector_languages,
)
from wit_pipeline.sampleweb.site import ENGLISH_TEMPLATES, FOREIGN_CAPTIONS

CLEAR = {
    "en": ["a large red circle drawn on blue paper", "Photo of the old bridge at night"],
    "de": ["Das alte Rathaus am Marktplatz im Winter", "Blick von der Brücke auf den Fluss"],
    "fr": ["Une vieille église dans un petit village", "vue du pont sur la rivière la nuit"],
    "zh": ["长城是中国古代的军事防御工程", "這是一張美麗的照片，長城在山上"],   # simplified and traditional
    "ja": ["東京タワーの夜景はとても美しいです", "古い教会の写真"],
    "ko": ["오래된 교회 사진", "서울의 밤 풍경"],
    "ru": ["Москва ночью, красная площадь", "старая церковь в маленькой деревне"],
    "th": ["ภาพโบสถ์เก่าในหมู่บ้านเล็ก", "ตลาดน้ำตอนเช้า"],
}
NO_LETTERS = ["", "   ", "123 456", "!!!", "— 42 —", "2024-05-01 12:30", "😀🎉", "***"]


def _py3langid_classify():
    """py3langid's own classifier, restricted as ours is: the reference for the batched answers."""
    from py3langid import langid

    identifier = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE)
    identifier.set_languages(LANGDETECT_LANGUAGES)
    return lambda text: identifier.classify(text)[0]


def _texts():
    texts = [t.format(c="red", s="circle", b="blue") for t in ENGLISH_TEMPLATES] + list(FOREIGN_CAPTIONS)
    texts += [text for group in CLEAR.values() for text in group]
    texts += ["TOKYO TOWER AT NIGHT", "word " * 400, "東京タワー Tokyo tower 夜景", "Ngày hôm nay trời đẹp"]
    return texts + [" ".join(texts[i:i + 3]) for i in range(0, len(texts) - 3)]


def test_py3langid_names_clear_short_texts_in_each_language():
    texts = [text for group in CLEAR.values() for text in group]
    expected = [lang for lang, group in CLEAR.items() for _ in group]
    assert detect_languages(texts, detector="py3langid") == expected


def test_both_detectors_answer_zh_for_chinese_in_either_script():
    for detector in DETECTORS:
        assert detect_languages(CLEAR["zh"], detector=detector) == ["zh", "zh"]


def test_a_text_without_letters_is_unknown():
    assert detect_languages(NO_LETTERS, detector="py3langid") == ["unknown"] * len(NO_LETTERS)
    assert detect_language("!!!", detector="langdetect") == "unknown"


def test_py3langid_answers_are_its_classifiers_batched_or_one_by_one():
    texts = _texts()
    classify = _py3langid_classify()
    expected = [classify(text) for text in texts]
    assert detect_languages(texts, detector="py3langid") == expected             # many texts in lockstep
    assert detect_languages(texts, batch=3, detector="py3langid") == expected    # few: the Python walk
    assert [detect_language(text, detector="py3langid") for text in texts] == expected


def test_py3langid_ignores_the_seed():
    texts = _texts()
    assert detect_languages(texts, seed=0, detector="py3langid") == detect_languages(texts, seed=9,
                                                                                      detector="py3langid")


def test_both_detectors_answer_only_the_documented_languages():
    assert detector_languages("py3langid") == LANGDETECT_LANGUAGES
    assert detector_languages("langdetect") == LANGDETECT_LANGUAGES
    for detector in DETECTORS:
        assert set(detect_languages(_texts(), detector=detector)) <= set(LANGDETECT_LANGUAGES) | {"unknown"}


def test_threads_get_the_same_answers():
    texts = _texts()
    expected = detect_languages(texts, detector="py3langid")
    got = {}

    def run(n):
        got[n] = detect_languages(texts, batch=16 + n, detector="py3langid")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert got == {n: expected for n in range(4)}


def test_an_unknown_detector_name_is_refused():
    with pytest.raises(ValueError, match="py3langid, langdetect"):
        detect_languages(["hello"], detector="cld3")


def test_a_missing_py3langid_names_the_package_to_install(monkeypatch):
    monkeypatch.setattr(language, "_py3langid", None)
    monkeypatch.setitem(sys.modules, "py3langid", None)   # import py3langid now fails
    with pytest.raises(UserError, match="pip install 'py3langid"):
        detect_languages(["hello world"], detector="py3langid")
