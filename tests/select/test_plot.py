"""The summary plot and page: one curve and cap per language when query_counts carry several languages."""

from __future__ import annotations

import os
import warnings

from wit_pipeline.select.plot import (
    MAX_PLOTTED_LANGUAGES,
    by_language,
    plot_languages_png,
    summary_html,
    write_summary,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STATS = {"balance": "top", "cap": 3, "rows_in": 40}


def rows(lang, counts, cap):
    return [{"lang": lang, "query": f"{lang}-{i}", "matched": c, "kept": min(c, cap), "selected": min(c, cap)}
            for i, c in enumerate(counts)]


def read(out, name):
    with open(os.path.join(out, name), "rb") as handle:
        return handle.read()


def test_a_single_language_run_draws_the_same_page_with_or_without_a_lang_column(tmp_path):
    plain = [{k: v for k, v in r.items() if k != "lang"} for r in rows("en", [9, 4, 2, 1, 0], 3)]
    write_summary(str(tmp_path / "plain"), plain, STATS, 3)
    write_summary(str(tmp_path / "en"), rows("en", [9, 4, 2, 1, 0], 3), STATS, 3, caps={"en": 3})
    for name in ("query_counts.png", "summary.html"):
        assert read(tmp_path / "plain", name) == read(tmp_path / "en", name)
    page = read(tmp_path / "en", "summary.html").decode()
    assert "Caps per language" not in page and "<th>language</th>" not in page


def test_several_languages_list_each_cap_and_language_on_the_page(tmp_path):
    counts = rows("en", [9, 4, 2], 3) + rows("de", [6, 1], 2) + rows("zh", [5, 5, 0], 4)
    _png, page_path = write_summary(str(tmp_path), counts, STATS, 3, caps={"en": 3, "de": 2, "zh": 4})
    page = read(tmp_path, "summary.html").decode()
    assert "Caps per language" in page
    # language, cap, queries, queries matched, queries capped, matches
    assert "<td>en</td><td>3</td><td>3</td><td>3</td><td>2</td><td>15</td>" in page
    assert "<td>zh</td><td>4</td><td>3</td><td>2</td><td>2</td><td>10</td>" in page
    assert "<td>de</td><td>2</td><td>2</td><td>2</td><td>1</td><td>7</td>" in page
    assert "<tr><td>en</td><td>en-0</td><td>9</td>" in page        # the heaviest queries name their language
    assert read(tmp_path, "query_counts.png").startswith(PNG_SIGNATURE)


def test_a_language_the_caps_do_not_name_is_drawn_with_the_cap():
    languages = by_language(rows("en", [1], 3) + rows("de", [8, 1], 3), 3, caps={"de": 2})
    assert [(g.lang, g.cap) for g in languages] == [("de", 2), ("en", 3)]     # most matches first


def test_queries_without_a_language_are_one_group_labelled_as_such():
    languages = by_language(rows(None, [4], 3) + rows("en", [1, 1], 3), 3)
    assert [g.label for g in languages] == ["no language", "en"]
    assert "<td>no language</td>" in summary_html(b"", STATS, [], languages)


def test_each_language_cap_changes_the_picture():
    counts = rows("en", [50, 20, 5, 1], 10) + rows("de", [40, 9, 2], 10)
    a = plot_languages_png(by_language(counts, 10, {"en": 10, "de": 10}))
    b = plot_languages_png(by_language(counts, 10, {"en": 10, "de": 3}))
    assert a.startswith(PNG_SIGNATURE) and a != b


def test_languages_beyond_the_plotted_ones_and_languages_without_matches_draw_without_warnings():
    counts = [r for i in range(MAX_PLOTTED_LANGUAGES + 3) for r in rows(f"l{i}", [i + 2, 1], 2)]
    counts += rows("xx", [0, 0], 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_languages_png(by_language(counts, 2)).startswith(PNG_SIGNATURE)
        assert plot_languages_png(by_language(rows("a", [0], 2) + rows("b", [0], 2), 2)).startswith(PNG_SIGNATURE)


def test_a_long_curve_is_drawn_through_log_spaced_ranks_from_the_first_to_the_last():
    from wit_pipeline.select.plot import MAX_CURVE_POINTS, curve

    counts = [0] * 10 + list(range(1, 300_001))
    ranks, values = curve(counts)
    assert len(ranks) <= MAX_CURVE_POINTS and ranks[0] == 1 and ranks[-1] == 300_000
    assert ranks == sorted(set(ranks)) and values == [300_001 - rank for rank in ranks]   # descending, zeros out
    assert curve([0, 5, 3]) == ([1, 2], [5, 3])
