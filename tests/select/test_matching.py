"""Aho–Corasick matching agrees with the naive loop and follows the word/substring rules."""

import random

import pytest

from wit_pipeline.select.matching import QueryMatcher, naive_match


def test_word_mode_matches_whole_words_only():
    matcher = QueryMatcher(["cat", "red car", "car", "new york"], mode="word")
    assert matcher.match("Concatenate the cars") == []
    assert matcher.match("A RED  car, parked!") == ["car", "red car"]
    assert matcher.match("the cat sat") == ["cat"]
    assert matcher.match("New York's cat") == ["cat"]          # "york's" is one word under the shared rule


def test_substring_mode_matches_inside_words():
    matcher = QueryMatcher(["cat", "red car"], mode="substring")
    assert matcher.match("Concatenate") == ["cat"]
    assert matcher.match("bored cars") == ["red car"]


def test_captions_are_matched_on_the_canonical_form():
    matcher = QueryMatcher(["x-ray", "cafe"], mode="word")
    assert matcher.match("An X-RAY of a hand") == ["x-ray"]
    assert matcher.match("ｃａｆｅ de Paris") == ["cafe"]          # NFKC folds full-width letters
    assert QueryMatcher(["Paris"], keep_case=True).match("paris in spring") == []
    assert QueryMatcher(["Paris"], keep_case=True).match("Paris in spring") == ["Paris"]


@pytest.mark.parametrize("mode", ["word", "substring"])
def test_automaton_agrees_with_the_naive_loop(mode):
    rng = random.Random(4)
    vocab = ["red", "blue", "car", "cart", "art", "star", "a", "on", "the", "sun", "set", "sunset", "x-ray"]
    queries = sorted({" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 3))) for _ in range(60)})
    matcher = QueryMatcher(queries, mode=mode)
    for _ in range(400):
        caption = " ".join(rng.choice(vocab + [",", "!", "CAR", "Stars"]) for _ in range(rng.randint(0, 12)))
        assert matcher.match(caption) == naive_match(queries, caption, mode), caption


def test_ascii_shortcut_gives_the_shared_canonical_form():
    from wit_pipeline.text import canonical, canonical_fast

    rng = random.Random(11)
    alphabet = "abcXYZ019 '-_.,!?\t\n\r\x00\x07\x1f\x7f\"()"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25)))
        assert canonical_fast(text) == canonical(text), repr(text)
        assert canonical_fast(text, keep_case=True) == canonical(text, keep_case=True), repr(text)
    assert canonical_fast("Ｃａｆé’s x-ray") == canonical("Ｃａｆé’s x-ray")
