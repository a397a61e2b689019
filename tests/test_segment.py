"""Words per language (wit_pipeline/segment.py): spaced languages as today, segmenters for zh, ja and th."""

import pytest

from wit_pipeline import segment
from wit_pipeline.errors import UserError
from wit_pipeline.text import sentences
from wit_pipeline.text import words as canonical_words


@pytest.mark.parametrize("lang, spaced", [("en", True), ("de", True), ("ko", True), ("zh", False),
                                          ("zh-cn", False), ("zh-TW", False), ("ja", False), ("th", False),
                                          ("km", False)])
def test_uses_spaces_follows_the_writing_system(lang, spaced):
    assert segment.uses_spaces(lang) is spaced


@pytest.mark.parametrize("text", ["Die Katze schläft auf dem Sofa.", "Straße, don't x-ray", "ÇA VA"])
def test_spaced_languages_keep_the_canonical_words(text):
    assert segment.words(text, "de") == canonical_words(text)
    assert segment.words(text, "en") == canonical_words(text)


def test_chinese_is_segmented_by_jieba_into_dictionary_words():
    expected = ["我们", "在", "北京", "看到", "了", "长城", "和", "故宫"]
    assert segment.words("我们在北京看到了长城和故宫。", "zh") == expected
    assert segment.words("长城的美丽照片，第3张", "zh-cn") == ["长城", "的", "美丽", "照片", "第", "3", "张"]


def test_japanese_is_segmented_by_mecab_with_unidic():
    assert segment.words("東京の桜はとても美しいです。", "ja") == ["東京", "の", "桜", "は", "とても", "美しい", "です"]


def test_thai_is_segmented_by_pythainlp():
    assert segment.words("แมวนอนอยู่บนโต๊ะในบ้าน", "th") == ["แมว", "นอน", "อยู่", "บน", "โต๊ะ", "ใน", "บ้าน"]


def test_word_runs_keep_mixed_script_words_as_written():
    runs = segment.word_runs("iPhone手机 x-ray照片", "zh")
    assert [(run, [run[a:b] for a, b in spans]) for run, spans in runs] == [
        ("iphone手机", ["iphone", "手机"]), ("x-ray照片", ["x", "ray", "照片"])]


def test_segmentation_is_deterministic():
    text = "熊猫生活在四川的竹林里，吃竹子。" * 3
    assert segment.words(text, "zh") == segment.words(text, "zh")


def test_a_missing_segmenter_is_a_user_error_naming_the_extra(monkeypatch):
    monkeypatch.setattr(segment.importlib.util, "find_spec", lambda name: None)
    assert segment.segmenter_missing("en") is None
    assert segment.segmenter_missing("zh") == "pip install 'wit-pipeline[zh]'"
    with pytest.raises(UserError, match=r"wit-pipeline\[ja\]"):
        segment.require_segmenters(["de", "ja"])


@pytest.mark.parametrize("text, count", [
    ("three small words", 3), ("IMG_1234", 2), ("长城的美丽照片，第3张", 10), ("東京タワー", 5),
    ("Tokyo東京tower", 4), ("แมวนอน", 6), ("नमस्ते दुनिया", 2), ("", 0)])
def test_count_words_counts_a_word_per_character_where_scripts_have_no_spaces(text, count):
    assert segment.count_words(text) == count


def test_count_words_equals_canonical_words_for_spaced_scripts():
    for text in ["Le château de Versailles, n'est-ce pas?", "a_b c", "Ελληνικά γράμματα", "Привет, мир"]:
        assert segment.count_words(text) == len(canonical_words(text))


def test_sentences_end_at_the_full_stops_of_other_scripts():
    assert sentences("我看到了熊猫。它很可爱！真的？是") == ["我看到了熊猫。", "它很可爱！", "真的？", "是"]
    assert sentences("राम घर गया। सीता आई") == ["राम घर गया।", "सीता आई"]
    assert sentences("Red is a colour. Blue too!\nGreen? yes") == ["Red is a colour.", "Blue too!", "Green?", "yes"]
