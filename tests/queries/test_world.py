"""One query list over several languages: `wit queries build --wikipedia LANG=PATH ...` (issue #18 items 1-3)."""

import json
import os

import pandas as pd
import pytest

from queries.languages import Thresholds, parse_thresholds, split_lang
from queries.pipeline import QueryOptions, run_queries
from queries.wordnet import parse_omw_line
from tests.queries.dumps import page_xml, write_pageviews, write_plain
from wit_pipeline import segment
from wit_pipeline.cli import main
from wit_pipeline.errors import UserError

# Each word appears only inside unsegmented sentences (zh, ja) or in a capitalised form (de).
ZH = ("今天我们在动物园看到了{}。", {"熊猫": 120, "老虎": 99})        # panda 120, tiger 99
JA = ("公園で{}を見ました。", {"桜": 130, "猫": 80})                  # cherry blossom 130, cat 80
DE = ("Im Garten schläft die {}.", {"Katze": 110, "Hund": 90})      # cat 110, dog 90


def _dump(path, template: str, counts: dict[str, int], per_page: int = 25) -> str:
    sentences = [template.format(word) for word, n in counts.items() for _ in range(n)]
    pages = [page_xml(f"Seite {i}", "\n".join(sentences[i:i + per_page]), page_id=i + 1)
             for i in range(0, len(sentences), per_page)]
    return write_plain(str(path), pages)


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    return {"root": root, "zh": _dump(root / "zhwiki.xml", *ZH), "ja": _dump(root / "jawiki.xml", *JA),
            "de": _dump(root / "dewiki.xml", *DE)}


@pytest.fixture(scope="module")
def built(dumps):
    out = dumps["root"] / "out"
    code = main(["queries", "build", "--wikipedia", f"zh={dumps['zh']}", "--wikipedia", f"ja={dumps['ja']}",
                 "--wikipedia", f"de={dumps['de']}", "--min-count", "100", "--out", str(out)])
    assert code == 0
    return out, pd.read_parquet(out / "queries.parquet"), json.loads((out / "stats.json").read_text())


def _queries(rows: pd.DataFrame, lang: str) -> set[str]:
    return set(rows[rows["lang"] == lang]["query"])


def test_each_language_admits_its_words_seen_min_count_times_and_not_rarer_ones(built):
    _, rows, _ = built
    assert "熊猫" in _queries(rows, "zh") and "老虎" not in _queries(rows, "zh")
    assert "桜" in _queries(rows, "ja") and "猫" not in _queries(rows, "ja")
    assert "katze" in _queries(rows, "de") and "hund" not in _queries(rows, "de")
    counts = dict(zip(rows["lang"] + ":" + rows["query"], rows["count"], strict=True))
    assert (counts["zh:熊猫"], counts["ja:桜"], counts["de:katze"]) == (120, 130, 110)


def test_the_list_has_a_non_null_lang_and_one_row_per_language_and_query(built):
    out, rows, _ = built
    assert set(rows["lang"]) == {"zh", "ja", "de"} and rows["lang"].notna().all()
    assert not rows.duplicated(["lang", "query"]).any()
    text = (out / "queries.txt").read_text(encoding="utf-8").splitlines()
    assert text == sorted(set(rows["query"]))


def test_stats_report_each_language_and_add_up(built):
    _, rows, stats = built
    assert stats["accounted"]
    languages = stats["languages"]
    assert set(languages) == {"zh", "ja", "de"}
    for lang, figures in languages.items():
        assert figures["entries"] == figures["out"] == int((rows["lang"] == lang).sum())
        assert figures["in"] == figures["out"] + sum(figures["dropped"].values())
        assert figures["thresholds"]["min_count"] == 100 and figures["pages_counted"] > 0
    assert sum(figures["in"] for figures in languages.values()) == stats["in"]


def test_lang_thresholds_override_the_flags_for_the_languages_named(dumps, tmp_path):
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"zh": {"min_count": 99, "min_pmi": 0, "min_bigram_count": 99}}))
    stats = run_queries(QueryOptions(wikipedia=[f"zh={dumps['zh']}", f"de={dumps['de']}"], min_count=100,
                                     lang_thresholds=str(limits), out=str(tmp_path / "out")))
    rows = pd.read_parquet(tmp_path / "out" / "queries.parquet")
    assert {"熊猫", "老虎"} <= _queries(rows, "zh") and "hund" not in _queries(rows, "de")
    bigrams = rows[(rows["lang"] == "zh") & rows["sources"].map(lambda s: "bigram" in s)]["query"]
    assert "看到了" in set(bigrams) and not any(" " in query for query in bigrams)   # joined as written
    assert stats["languages"]["zh"]["thresholds"]["min_count"] == 99
    assert stats["languages"]["de"]["thresholds"]["min_count"] == 100


def test_a_bare_path_is_english_and_an_english_build_has_no_per_language_counters(tmp_path):
    dump = _dump(tmp_path / "enwiki.xml", "The {} sleeps.", {"cat": 3})
    stats = run_queries(QueryOptions(wikipedia=[dump], min_count=3, out=str(tmp_path / "out")))
    rows = pd.read_parquet(tmp_path / "out" / "queries.parquet")
    assert set(rows["lang"]) == {"en"} and "cat" in set(rows["query"])
    assert not any("@" in name for name in stats["counters"]) and not any("@" in r for r in stats["dropped"])
    assert stats["languages"]["en"]["out"] == stats["out"]


def test_titles_count_the_views_of_their_own_languages_wikipedia(tmp_path):
    zh = write_plain(str(tmp_path / "zh.xml"), [page_xml("熊猫", "熊猫生活在四川。", page_id=1)])
    de = write_plain(str(tmp_path / "de.xml"), [page_xml("Katze", "Die Katze schläft.", page_id=1)])
    views = write_pageviews(str(tmp_path / "pageviews-20240101-000000.gz"), [
        "zh 熊猫 80 0", "zh.m %E7%86%8A%E7%8C%AB 10 0", "de Katze 50 0", "de.m Katze 30 0",
        "en Katze 500 0", "zh.d 熊猫 999 0", "ja 熊猫 999 0", "de Diskussion:Katze 999 0"])
    run_queries(QueryOptions(wikipedia=[f"zh={zh}", f"de={de}"], pageviews=[views], min_views=70,
                             out=str(tmp_path / "out")))
    rows = pd.read_parquet(tmp_path / "out" / "queries.parquet")
    titles = rows[rows["sources"].map(lambda s: "title" in s)]
    assert set(zip(titles["lang"], titles["query"], titles["views"], strict=True)) == {("zh", "熊猫", 90),
                                                                                      ("de", "katze", 80)}


def test_omw_wordnet_files_add_that_languages_lemmas(dumps, tmp_path):
    omw = tmp_path / "wn-data-jpn.tab"
    omw.write_text("# Japanese Wordnet\tjpn\thttp://example\tlicence\n"
                   "02121620-n\tjpn:lemma\t猫\n02121620-n\tjpn:def\t0\t小型の肉食動物\n"
                   "02084071-n\tlemma\t犬\nnot a line\n", encoding="utf-8")
    stats = run_queries(QueryOptions(wikipedia=[f"ja={dumps['ja']}"], wordnet=[f"ja={omw}"], min_count=100,
                                     out=str(tmp_path / "out")))
    rows = pd.read_parquet(tmp_path / "out" / "queries.parquet")
    wordnet = rows[rows["sources"].map(lambda s: "wordnet" in s)]
    assert set(zip(wordnet["lang"], wordnet["query"], strict=True)) == {("ja", "猫"), ("ja", "犬")}
    assert stats["inputs"]["wordnet_lines_skipped_malformed"] == 1


@pytest.mark.parametrize("value, expected", [
    ("zh=/d/zhwiki.xml.bz2", ("zh", "/d/zhwiki.xml.bz2")), ("/d/enwiki.xml", ("en", "/d/enwiki.xml")),
    ("zh-yue=y.xml", ("yue", "y.xml")), ("gs://b/dt=1/x.xml", ("en", "gs://b/dt=1/x.xml")),
    ("ZH_CN=x.xml", ("zh", "x.xml"))])
def test_split_lang_reads_an_optional_language_prefix(value, expected):
    assert split_lang(value, "--wikipedia") == expected


@pytest.mark.parametrize("document, message", [
    ([], "expected a JSON object"), ({"zh": {"min_cnt": 5}}, "unknown threshold"),
    ({"zh": {"min_count": 0}}, "at least 1"), ({"zh": {"min_pmi": "x"}}, "finite number"),
    ({"zh": 5}, "must map to an object"), ({"not a code": {}}, "not a language code")])
def test_bad_lang_thresholds_are_one_line_errors(document, message):
    with pytest.raises(UserError, match=message):
        parse_thresholds(document, Thresholds(min_count=100, min_pmi=30.0, min_bigram_count=2, min_views=70))


def test_omw_lines():
    assert parse_omw_line("02121620-n\tjpn:lemma\t猫") == ("02121620-n", "猫")
    assert parse_omw_line("02121620-n\tjpn:exe\t0\t猫がいる") is None
    assert parse_omw_line("# header") is None
    assert isinstance(parse_omw_line("garbage"), str)


def test_a_language_whose_segmenter_is_missing_is_one_error_naming_the_extra(dumps, tmp_path, monkeypatch):
    monkeypatch.setattr(segment.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"pip install 'wit-pipeline\[zh\]'"):
        run_queries(QueryOptions(wikipedia=[f"zh={dumps['zh']}"], out=str(tmp_path / "out")))
    assert not os.path.exists(tmp_path / "out" / "queries.parquet")
