import math
from collections import Counter

from queries.counting import count_plain_text, merge_entry, pmi, summarize_sources, title_query


def test_words_and_bigrams_within_sentences_only():
    unigrams, bigrams = Counter(), Counter()
    tokens = count_plain_text("Red circle. Red square!\nBlue, blue sky", False, unigrams, bigrams)
    assert tokens == 7
    assert unigrams == Counter({"red": 2, "circle": 1, "square": 1, "blue": 2, "sky": 1})
    # "circle red", "square blue" would cross a sentence end: not counted.
    assert bigrams == Counter({"red\tcircle": 1, "red\tsquare": 1, "blue\tblue": 1, "blue\tsky": 1})


def test_keep_case():
    unigrams, bigrams = Counter(), Counter()
    count_plain_text("Red red", True, unigrams, bigrams)
    assert unigrams == Counter({"Red": 1, "red": 1})


def test_pmi_is_nltk_definition():
    # log2(c(ab) * N / (c(a) c(b)))
    assert pmi(3, 3, 3, 12) == 2.0
    assert pmi(1, 2, 1, 12) == math.log2(6)
    assert abs(pmi(10, 1000, 2000, 3_000_000_000) - (math.log2(10 * 3e9) - math.log2(1000 * 2000))) < 1e-9


def test_title_query_drops_disambiguator_and_underscores():
    assert title_query("Mercury_(planet)") == "mercury"
    assert title_query("Star_Wars:_Episode_IV") == "star wars episode iv"
    assert title_query("(Untitled)") == "untitled"
    assert title_query("New_York", keep_case=True) == "New York"


def test_merge_and_summarize():
    row = merge_entry("red", [("wordnet", 2), ("unigram", 7), ("title", 90)])
    assert row == {"query": "red", "lang": "en", "sources": ["unigram", "title", "wordnet"], "count": 7, "pmi": None,
                   "views": 90, "synsets": 2}
    summary = summarize_sources([row, merge_entry("red circle", [("bigram", (3, 4.5))])])
    assert summary["entries"] == 2
    assert summary["by_source"] == {"unigram": 1, "bigram": 1, "title": 1, "wordnet": 1}
    assert summary["only_source"]["bigram"] == 1
    assert summary["overlap"]["unigram+title"] == 1 and summary["overlap"]["unigram+bigram"] == 0


def test_merged_statistics_fit_the_int64_columns():
    row = merge_entry("red", [("title", 10**30), ("unigram", 2**70)])
    assert row["views"] == row["count"] == 2**63 - 1
