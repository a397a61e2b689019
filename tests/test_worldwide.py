"""Worldwide curation end to end through the CLI (issue #18, "Done when" 2).

Mini Wikipedia dumps in Chinese, Japanese, German and English hold one word just above ``--min-count 100``
and one just below it, each only inside sentences (unsegmented ones in Chinese and Japanese); every
sentence's other words stay below 100, so each list holds the word above and little else. Then
``wit queries build`` over the four dumps, ``wit candidates --source table`` on alt texts in those
languages and ``wit select --lang all``: each language's text with its admitted word is selected, with
its ``lang`` and that word in ``queries``; the words below the threshold select nothing; and a German
alt text holding an English-only query word is not matched through the English list.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_pipeline.cli import main
from wit_pipeline.sampleweb.wiki import write_dump

pytest.importorskip("jieba")
pytest.importorskip("fugashi")
pytest.importorskip("unidic_lite")

# Per language: (word admitted, times), (word left out, times), sentence templates. The words and their
# counts are those of tests/queries/test_world.py (the "Done when" 1). Sentence i uses template
# i % 5, so each template's own words occur about total / 5 < 100 times and stay out of the list.
DUMPS = {
    "zh": (("熊猫", 120), ("老虎", 99), (
        "我们昨天看到了{w}。", "{w}的样子非常可爱。", "很多游客喜欢拍{w}。", "他在动物园遇到{w}。",
        "{w}生活在山林中。")),
    "ja": (("桜", 130), ("猫", 80), (
        "公園で{w}を見た。", "{w}は静かだ。", "古い{w}が見える。", "友達と{w}について話す。", "{w}の写真を撮った。")),
    "de": (("Katze", 110), ("Hund", 90), (
        "Das Wort {w} kommt oft vor.", "Wir lasen über {w} im Buch.", "Jedes Kind kennt {w} aus Geschichten.",
        "Ein Bild zeigt {w} im Schnee.", "Neben {w} sitzt ein Vogel.")),
    "en": (("lighthouse", 120), ("harbour", 60), (
        "The old {w} stands on a cliff.", "Sailors watched one {w} at night.", "Every {w} has a keeper.",
        "A storm hit that {w} last winter.", "Tourists photograph this {w} often.")),
}
ADMITTED = {lang: spec[0][0].lower() for lang, spec in DUMPS.items()}
LEFT_OUT = {lang: spec[1][0].lower() for lang, spec in DUMPS.items()}

# Alt texts: (text, the language and query it is selected with, or None when it must not be selected).
ALT_TEXTS = [
    ("熊猫的可爱照片，第3张", ("zh", "熊猫")),
    ("一只老虎在森林里散步", None),                          # 老虎: 99 times, not a query
    ("満開の桜の写真", ("ja", "桜")),
    ("窓辺で眠る猫の写真", None),                            # 猫: 80 times
    ("Eine schwarze Katze schläft auf dem Sofa", ("de", "katze")),
    ("Der Hund spielt im Garten mit einem Ball", None),        # Hund: 90 times
    # German, with a word only the English list holds: matched against the German list only.
    ("Blick auf den lighthouse bei Sonnenuntergang an der Nordseeküste", None),
    ("An old lighthouse on the rocky coast at dawn", ("en", "lighthouse")),
]


def _dump_pages(lang: str) -> list[dict]:
    (above, n_above), (below, n_below), templates = DUMPS[lang]
    words = [above] * n_above + [below] * n_below
    sentences = [templates[i % len(templates)].format(w=word) for i, word in enumerate(words)]
    joiner = "" if lang in ("zh", "ja") else " "
    pages = []
    for start in range(0, len(sentences), 20):
        text = f"'''{lang.upper()} {start}'''\n" + joiner.join(sentences[start:start + 20]) + "\n[[Category:Sample]]"
        pages.append({"title": f"{lang.upper()} {start}", "ns": 0, "id": len(pages) + 1, "text": text,
                      "redirect": None})
    return pages


def _url(index: int) -> str:
    return f"http://images.example/{index}.jpg"


@pytest.fixture(scope="module")
def query_list(tmp_path_factory):
    root = tmp_path_factory.mktemp("worldwide")
    argv = ["queries", "build", "--min-count", "100", "--out", str(root / "queries")]
    for lang in ("zh", "ja", "de", "en"):
        dump = str(root / f"{lang}wiki-pages-articles-multistream.xml.bz2")
        write_dump(dump, str(root / f"{lang}wiki-index.txt.bz2"), _dump_pages(lang), lang)
        argv += ["--wikipedia", f"{lang}={dump}"]
    assert main(argv) == 0
    return root / "queries"


def test_each_language_admits_its_word_above_min_count_and_not_the_one_below(query_list):
    rows = pq.read_table(query_list / "queries.parquet", columns=["query", "lang"]).to_pylist()
    entries = {(row["lang"], row["query"]) for row in rows}
    for lang in DUMPS:
        assert (lang, ADMITTED[lang]) in entries, lang
        assert not any(query == LEFT_OUT[lang] for _, query in entries), lang
    assert ("en", "lighthouse") in entries and not any(q == "lighthouse" for lang, q in entries if lang != "en")


def test_select_lang_all_routes_each_text_to_its_own_language_list(query_list, tmp_path):
    table = tmp_path / "alt_texts.parquet"
    pq.write_table(pa.table({"url": [_url(i) for i in range(len(ALT_TEXTS))],
                             "text": [text for text, _ in ALT_TEXTS]}), table)
    assert main(["candidates", "--source", "table", "--input", str(table), "--out", str(tmp_path / "cand")]) == 0
    candidates = json.loads((tmp_path / "cand" / "stats.json").read_text())
    assert candidates["out"] == len(ALT_TEXTS), candidates["dropped"]    # no script is dropped as few_words

    assert main(["select", "--candidates", str(tmp_path / "cand"), "--queries", str(query_list),
                 "--out", str(tmp_path / "sel"), "--lang", "all"]) == 0
    stats = json.loads((tmp_path / "sel" / "stats.json").read_text())
    assert stats["accounted"] is True
    # By URL: the candidate stage normalises the texts (NFKC: "，" becomes ",").
    selected = {row["url"]: row for row in pq.read_table(tmp_path / "sel" / "selected").to_pylist()}
    expected = {_url(i): (text, match) for i, (text, match) in enumerate(ALT_TEXTS) if match}
    assert set(selected) == set(expected), [ALT_TEXTS[int(url.split("/")[-1][:-4])][0]
                                            for url in set(selected) ^ set(expected)]
    for url, (text, (lang, query)) in expected.items():
        assert selected[url]["lang"] == lang, text
        assert query in selected[url]["queries"], (text, selected[url]["queries"])
