"""Text clean-up and per-pair filters: each drop has its reason, each filter can be switched off."""

import dataclasses

import pytest

from wit_pipeline.candidates.filters import (
    DROP_REASONS,
    FILTERS,
    PAIR_FILTERS,
    FilterConfig,
    clean_pair,
    is_boilerplate,
    parse_disabled,
)
from wit_pipeline.candidates.pipeline import DEFAULT_FILTERS, CandidateOptions, filter_config
from wit_pipeline.errors import UserError

URL = "http://example.com/a.jpg"


def clean(url, text, **settings):
    """``clean_pair`` with the command's default filter settings, ``settings`` changed."""
    return clean_pair(url, text, dataclasses.replace(DEFAULT_FILTERS, **settings))


@pytest.mark.parametrize("text", ["IMG_1234.JPG", "DSC00042.jpg", "logo", "Image", "photo", "PXL_20230101_123456",
                                  "banner.webp", "  Logo  "])
def test_file_names_and_stock_words_are_boilerplate(text):
    assert clean(URL, text)[2] == "boilerplate"


@pytest.mark.parametrize("text", ["a photo of a dog", "Logo of the Red Cross on a tent", "IMG of the day at sea"])
def test_real_captions_are_not_boilerplate(text):
    assert not is_boilerplate(text)
    assert clean(URL, text)[2] is None


@pytest.mark.parametrize("url, reason", [
    ("data:image/png;base64,iVBORw0KGgo=", "data_uri"),
    ("javascript:void(0)", "non_http_url"),
    ("/relative/never/resolved.jpg", "non_http_url"),
    ("ftp://example.com/a.jpg", "non_http_url"),
    ("http://exa mple.com/a.jpg", "non_http_url"),
])
def test_bad_urls_are_dropped_with_their_reason(url, reason):
    assert clean(url, "a red circle on blue")[2] == reason


def test_datacomp_basic_thresholds():
    assert clean(URL, "")[2] == "empty_text"
    assert clean(URL, "   ")[2] == "empty_text"
    assert clean(URL, "a b c")[2] == "too_short"             # 5 characters: DataComp wants more than 5
    assert clean(URL, "two words")[2] == "few_words"        # DataComp wants more than 2 words
    assert clean(URL, "three small words")[2] is None
    assert clean(URL, "word " * 300)[2] == "too_long"
    assert clean(URL, "word " * 300, max_chars=0)[2] is None


@pytest.mark.parametrize("text", ["长城的美丽照片，第3张", "東京タワーの夜景", "แมวนอนบนโต๊ะ", "長城 photo"])
def test_texts_in_scripts_without_spaces_count_a_word_per_character(text):
    assert clean(URL, text)[2] is None


def test_few_words_still_drops_short_texts_in_every_script():
    assert clean(URL, "长城照", min_chars=1)[2] is None              # three characters: three words
    assert clean(URL, "长城", min_chars=1)[2] == "few_words"
    assert clean(URL, "café olé", min_chars=1)[2] == "few_words"     # spaced scripts: as before
    assert clean(URL, "नमस्ते दुनिया", min_chars=1)[2] == "few_words"   # vowel signs sit inside words


def test_normalisation_folds_unicode_space_and_entities_but_keeps_case():
    url, text, reason = clean("  http://example.com/x.jpg\n", "Ｒｅｄ\u00a0 circle &amp; the\tSquare\x00 ")
    assert (url, text, reason) == ("http://example.com/x.jpg", "Red circle & the Square", None)


def test_each_filter_can_be_switched_off():
    cases = {"data_uri": ("data:image/png;base64,xx", "a red circle inline"),
             "non_http_url": ("javascript:x()", "a red circle inline"),
             "boilerplate": (URL, "logo"), "too_short": (URL, "a b"), "few_words": (URL, "twowords here")}
    for name, (url, text) in cases.items():
        assert clean(url, text)[2] == name
        assert clean(url, text, disabled=frozenset({name}))[2] != name
        assert clean(url, text, disabled=frozenset(FILTERS))[2] is None
    raw = "Ｒｅｄ  circle"
    assert clean(URL, raw + " here", disabled=frozenset({"normalize"}))[1] == raw + " here"


def test_filter_registry_gives_the_switches_and_reasons_in_order():
    names = [name for name, _drops in PAIR_FILTERS]
    assert names == ["data_uri", "non_http_url", "empty_text", "boilerplate", "too_short", "few_words", "too_long"]
    assert FILTERS == ("normalize", *names, "dedup")
    assert DROP_REASONS == (*names, "lang", "duplicate")
    assert [name for name, _drops in FilterConfig(6, 3, 1000, frozenset({"boilerplate"})).steps] == [
        n for n in names if n != "boilerplate"]


def test_filter_settings_come_from_the_options():
    options = CandidateOptions(source="wat", inputs=["x"], out="o", min_chars=2, max_chars=0,
                               disable=parse_disabled("dedup"))
    assert filter_config(options) == FilterConfig(min_chars=2, min_words=3, max_chars=0, disabled=frozenset({"dedup"}))
    assert DEFAULT_FILTERS == FilterConfig(min_chars=6, min_words=3, max_chars=1000, disabled=frozenset())
    assert str(parse_disabled("too_long,boilerplate")) == "boilerplate,too_long"   # as --help shows a default


def test_unknown_filter_name_is_a_user_error():
    assert parse_disabled("dedup, boilerplate") == frozenset({"dedup", "boilerplate"})
    with pytest.raises(UserError, match="unknown filter"):
        parse_disabled("boilerplate,nonsense")


def test_url_reason_shortcut_agrees_with_urlsplit():
    """The plain-http(s) shortcut decides exactly as the urlsplit-based rule on tricky URLs."""
    import random
    from urllib.parse import urlsplit

    from wit_pipeline.candidates.filters import url_reason

    def by_urlsplit(url):
        if url[:5].lower() == "data:":
            return "data_uri"
        try:
            parts = urlsplit(url)
        except ValueError:
            return "non_http_url"
        ok = parts.scheme in ("http", "https") and parts.netloc and not any(c in url for c in " \n\r\t")
        return None if ok else "non_http_url"

    rng = random.Random(1)
    pieces = ["http://", "https://", "HTTP://", "host.com", "/", "?", "#", "[", "]", "::1", "@", ":80", "é", "ﬁ",
              " ", "\t", "", ".", "data:", "%", "\x00", "/a.jpg"]
    for _ in range(20_000):
        url = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        assert url_reason(url) == by_urlsplit(url), url
