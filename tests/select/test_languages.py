"""``wit select`` with a query list per language: language before matching, routed lists, ``lang`` columns,
per-(lang, query) counts, ``--lang`` lists and ``--cap-rule``."""

import json
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_pipeline.errors import UserError
from wit_pipeline.querylist import load_query_lists
from wit_pipeline.schemas import CANDIDATE_SCHEMA, pair_uid
from wit_pipeline.select.caps import choose_caps
from wit_pipeline.select.matching import QueryIndex
from wit_pipeline.select.pipeline import SelectOptions, parse_select_lang, run_select

LISTS = {"en": ["dog", "house", "garden"], "de": ["hund", "haus"], "zh": ["长城"], "ja": ["富士山"]}
TEXTS = {   # text -> (its language, the queries it is selected with under --lang all)
    "Ein großer Hund schläft vor dem alten Haus im Garten": ("de", ["haus", "hund"]),
    "Der Hund und die Katze spielen zusammen im Haus": ("de", ["haus", "hund"]),
    "A big dog sleeps in front of the old house in the garden": ("en", ["dog", "garden", "house"]),
    "The Haus of Gucci poster in the cinema lobby tonight": ("en", None),      # "haus" is German's entry
    "Der Dog Walker wartet vor der Tür auf den Besitzer": ("de", None),       # "dog" is English's entry
    "Die Chinesische Mauer 长城 im Winter bei Peking": ("de", None),           # "长城" is Chinese's entry
    "长城的美丽照片，第3张": ("zh", ["长城"]),                                 # substring: no spaces in Chinese
    "北京附近的长城在冬天的景色": ("zh", ["长城"]),
    "富士山の美しい写真です": ("ja", ["富士山"]),
    "冬の富士山と湖の風景写真": ("ja", ["富士山"]),
}


def _query_dir(root, lists=LISTS):
    folder = root / "queries"
    folder.mkdir()
    rows = [{"query": q, "lang": lang} for lang, queries in lists.items() for q in queries]
    pq.write_table(pa.Table.from_pylist(rows), folder / "queries.parquet")
    return str(folder)


def _candidates(root):
    folder = root / "cands"
    folder.mkdir()
    rows = []
    for i, text in enumerate(TEXTS):
        url = f"http://img.example/{i}.jpg"
        rows.append({"uid": pair_uid(url, text), "url": url, "text": text, "source": "table"})
    pq.write_table(pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA), folder / "c.parquet")
    return str(folder)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    return _candidates(root), _query_dir(root)


def _run(inputs, out, **settings):
    candidates, queries = inputs
    stats = run_select(SelectOptions(candidates=[candidates], queries=queries, out=str(out), **settings))
    selected = pd.read_parquet(os.path.join(out, "selected"))
    counts = pd.read_parquet(os.path.join(out, "query_counts.parquet"))
    return stats, selected, counts


def test_every_language_is_matched_only_against_its_own_list(inputs, tmp_path):
    stats, selected, counts = _run(inputs, tmp_path / "all", lang="all", cap=100)
    expected = {text: (lang, queries) for text, (lang, queries) in TEXTS.items() if queries}
    assert {t: (lang, list(q)) for t, lang, q in zip(selected.text, selected.lang, selected.queries,
                                                     strict=True)} == expected
    assert stats["accounted"] and stats["dropped"]["lang"] == 3    # matched only another language's list
    by_entry = counts.set_index(["lang", "query"])
    assert by_entry.loc[("de", "hund"), "selected"] == 2 and by_entry.loc[("de", "haus"), "matched"] == 2
    assert by_entry.loc[("en", "dog"), "matched"] == 1               # the German "Dog Walker" is not counted
    assert by_entry.loc[("zh", "长城"), "matched"] == 2 and by_entry.loc[("ja", "富士山"), "kept"] == 2
    assert len(counts) == sum(map(len, LISTS.values())) and counts.columns[0] == "lang"
    assert stats["caps"] == {"de": 100, "en": 100, "ja": 100, "zh": 100}


def test_py3langid_routes_the_same_texts(inputs, tmp_path):
    stats, selected, _counts = _run(inputs, tmp_path / "fast", lang="all", lang_detector="py3langid")
    assert {t: lang for t, lang in zip(selected.text, selected.lang, strict=True)} == {
        text: lang for text, (lang, queries) in TEXTS.items() if queries}
    assert stats["lang_detect_calls"] == len(TEXTS)                  # texts sent to the detector, whichever


def test_a_comma_list_keeps_those_languages_and_en_keeps_english(inputs, tmp_path):
    _stats, selected, counts = _run(inputs, tmp_path / "dezh", lang="de,zh")
    assert set(selected.lang) == {"de", "zh"} and len(selected) == 4
    assert set(counts.lang) == {"de", "zh"}                          # only the kept languages' lists
    stats, selected, _counts = _run(inputs, tmp_path / "en", lang="en")
    assert list(selected.text) == ["A big dog sleeps in front of the old house in the garden"]
    assert list(selected.lang) == ["en"] and stats["accounted"]


def test_lang_any_matches_every_list_and_leaves_lang_empty(inputs, tmp_path):
    stats, selected, _counts = _run(inputs, tmp_path / "any", lang="any")
    assert len(selected) == len(TEXTS) and selected.lang.isna().all()
    assert stats["lang_detect_calls"] == 0
    row = selected.set_index("text").loc["Die Chinesische Mauer 长城 im Winter bei Peking"]
    assert list(row.queries) == ["长城"]


def test_metaclip2_caps_are_chosen_from_each_languages_counts(inputs, tmp_path):
    stats, _selected, counts = _run(inputs, tmp_path / "mc2", lang="all", cap=1, cap_rule="metaclip2")
    matched = {lang: list(group.matched) for lang, group in counts.groupby("lang")}
    assert stats["caps"] == choose_caps(matched, 1, "metaclip2").caps
    capped = counts.set_index(["lang", "query"])
    for (lang, _query), row in capped.iterrows():
        assert row.kept == min(row.matched, stats["caps"][lang])
    assert json.load(open(tmp_path / "mc2" / "stats.json"))["settings"]["cap_rule"] == "metaclip2"


def test_query_lists_are_read_per_language_and_a_text_list_is_neutral(tmp_path):
    assert load_query_lists(_query_dir(tmp_path)) == LISTS
    (tmp_path / "q.txt").write_text("Dog\nhouse\n")
    assert load_query_lists(str(tmp_path / "q.txt")) == {None: ["dog", "house"]}


def test_languages_without_spaces_match_substrings_the_others_words():
    index = QueryIndex({"en": ["cat"], "zh": ["长城"], None: ["red"]})
    assert [index.entries[i] for i in index.match_ids("concatenate 长城的照片 red")] == [(None, "red"), ("zh", "长城")]
    assert index.route(index.match_ids("a red cat 长城"), "en") == [0, 1]


def test_lang_values_are_checked_and_normalised():
    assert parse_select_lang(" EN,de,zh-CN,de ") == "en,de,zh"
    assert parse_select_lang("all") == "all" and parse_select_lang("any") == "any"
    for bad in ("", "en,,de", "english!", "e"):
        with pytest.raises(UserError, match="--lang must be"):
            parse_select_lang(bad)
