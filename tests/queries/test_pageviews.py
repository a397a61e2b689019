from queries.pageviews import PageviewLine, is_article_view, iter_pageview_file, parse_pageview_line
from tests.queries.dumps import write_pageviews


def test_parse_lines():
    assert parse_pageview_line(b"en Circle_(geometry) 12 0") == PageviewLine("en", "Circle (geometry)", 12)
    assert parse_pageview_line("en.m Caf%C3%A9 3 0") == PageviewLine("en.m", "Café", 3)
    assert parse_pageview_line("en 100%_Love 4 0") == PageviewLine("en", "100% Love", 4)
    assert parse_pageview_line("en Three_fields 7") == PageviewLine("en", "Three fields", 7)
    assert parse_pageview_line("en Broken") is None
    assert parse_pageview_line("en X notanumber 0") is None
    assert parse_pageview_line(b"en \xff 1 0") is None


def test_implausible_counts_are_malformed_lines_not_int64_overflows():
    assert parse_pageview_line("en A 1000000000000 0") == PageviewLine("en", "A", 10**12)
    assert parse_pageview_line("en A 1000000000001 0") is None
    assert parse_pageview_line("en A " + "9" * 26 + " 0") is None
    assert parse_pageview_line("en A " + "9" * 5000 + " 0") is None          # never handed to int()
    assert parse_pageview_line("en A \u0661\u0662 0") is None                 # digits, but not ASCII ones


def test_an_over_long_line_is_one_malformed_line(tmp_path):
    path = write_pageviews(str(tmp_path / "pageviews-20240101-000000.gz"), ["en A 1 0", "en " + "x" * (1 << 20)
                                                                            + " 5 0", "en B 2 0"])
    assert list(iter_pageview_file(path)) == [PageviewLine("en", "A", 1), None, PageviewLine("en", "B", 2)]


def test_only_english_articles_count():
    assert is_article_view(PageviewLine("en", "Circle", 1)) is None
    assert is_article_view(PageviewLine("en.m", "Circle", 1)) is None
    assert is_article_view(PageviewLine("de", "Circle", 1)) == "other_wiki"
    assert is_article_view(PageviewLine("en.wikibooks", "Circle", 1)) == "other_wiki"
    for title in ("Talk:Circle", "File:Red.svg", "Special:Search", "Category:Shapes", "User talk:Bob"):
        assert is_article_view(PageviewLine("en", title, 1)) == "namespace"
    assert is_article_view(PageviewLine("en", "Star Wars: Episode IV", 1)) is None


def test_gz_file_lines(tmp_path):
    path = write_pageviews(str(tmp_path / "pageviews-20240101-000000.gz"), ["en A 1 0", "bad", "de B 2 0"])
    assert list(iter_pageview_file(path)) == [PageviewLine("en", "A", 1), None, PageviewLine("de", "B", 2)]
