"""The Beam job end to end on a hand-computable dump (DirectRunner, in-process)."""

import json
import math
import os

import pandas as pd
import pytest

from queries.demo import DEMO_THRESHOLDS
from queries.output import load_queries
from queries.pipeline import QueryOptions, run_queries
from tests.queries.dumps import page_xml, write_multistream, write_pageviews, write_plain, write_wndb
from wit_pipeline.cli import main
from wit_pipeline.errors import UserError

# Counted pages (N = 12 tokens):
#   "alpha beta gamma." "alpha beta delta." "alpha beta"  -> alpha 3, beta 3, gamma 1, delta 1
#   "Gamma ray." "Omega omega."                             -> gamma 2, ray 1, omega 2
PAGES = [
    page_xml("Alpha beta", "alpha beta gamma. {{Infobox|gamma gamma}}alpha [[Beta (letter)|beta]] delta."
             "<ref>omega</ref>\n'''alpha''' [[beta]]\n[[Category:Letters]] [[File:Omega.svg|thumb|omega omega]]",
             page_id=1),
    page_xml("Talk:Alpha beta", "alpha alpha alpha", ns=1, page_id=2),
    page_xml("Alpha", "#REDIRECT [[Alpha beta]]", redirect="Alpha beta", page_id=3),
    page_xml("Gamma ray", "Gamma ray. Omega omega.", page_id=4),
]
THRESHOLDS = {"min_count": 2, "min_pmi": 2.0, "min_bigram_count": 1, "min_views": 70}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("queries-in")
    dump = write_plain(str(root / "enwiki-pages-articles.xml"), PAGES)
    views = [
        write_pageviews(str(root / "pageviews-20240101-000000.gz"), [
            "en Alpha_beta 40 0", "en.m Alpha_beta 25 0", "de Alpha_beta 1000 0", "en Talk:Alpha_beta 500 0",
            "en Gamma_ray 30 0", "en Nowhere 999 0", "garbage"]),
        write_pageviews(str(root / "pageviews-20240101-010000.gz"), ["en Alpha_beta 5 0", "en.m Gamma_ray 39 0"]),
    ]
    wordnet = str(root / "wordnet")
    write_wndb(wordnet, {
        "data.noun": ["{offset} 05 n 01 alpha 0 000 | first letter",
                      "{offset} 05 n 02 zeta_function 0 Zeta 0 000 | a function"],
        "data.adj": ["{offset} 00 a 01 red(a) 0 000 | coloured like blood"],
    })
    return {"dump": dump, "pageviews": views, "wordnet": wordnet, "root": root}


@pytest.fixture(scope="module")
def built(inputs):
    out = str(inputs["root"] / "out")
    stats = run_queries(QueryOptions(wikipedia=[inputs["dump"]], out=out, pageviews=inputs["pageviews"],
                                     wordnet=inputs["wordnet"], **THRESHOLDS))
    return out, stats


def test_entries_sources_and_statistics(built):
    out, _ = built
    rows = pd.read_parquet(os.path.join(out, "queries.parquet"))
    by_query = {r["query"]: r for r in rows.to_dict("records")}
    assert list(rows["query"]) == sorted(by_query) == [
        "alpha", "alpha beta", "beta", "beta delta", "gamma", "gamma ray", "omega", "red", "zeta", "zeta function"]
    # min-count 2: gamma (exactly 2) is in, delta and ray (1) are out; the Talk page's alphas do not count.
    assert by_query["alpha"]["count"] == 3 and list(by_query["alpha"]["sources"]) == ["unigram", "wordnet"]
    assert by_query["gamma"]["count"] == 2
    # PMI = log2(c(ab) N / (c(a) c(b))), N = 12; min-pmi 2.0 admits exactly 2.0.
    assert by_query["alpha beta"]["pmi"] == 2.0 and by_query["alpha beta"]["count"] == 3
    assert by_query["beta delta"]["pmi"] == 2.0
    assert by_query["gamma ray"]["pmi"] == pytest.approx(math.log2(6))
    # beta gamma (1.0) and omega omega (log2 3) are below; "delta alpha" crosses a sentence end.
    # Title views: 40 + 25 (en.m) + 5 (second file) = 70 >= min-views; Gamma ray has 69; de/Talk ignored.
    assert list(by_query["alpha beta"]["sources"]) == ["bigram", "title"] and by_query["alpha beta"]["views"] == 70
    assert pd.isna(by_query["gamma ray"]["views"])
    assert list(by_query["zeta function"]["sources"]) == ["wordnet"] and by_query["zeta"]["synsets"] == 1
    with open(os.path.join(out, "queries.txt")) as handle:
        assert handle.read().splitlines() == list(rows["query"])


def test_stats_json(built):
    out, stats = built
    assert json.load(open(os.path.join(out, "stats.json"))) == json.loads(json.dumps(stats))
    assert stats["stage"] == "queries" and stats["out"] == 10
    assert stats["by_source"] == {"unigram": 4, "bigram": 3, "title": 1, "wordnet": 4}
    assert stats["overlap"]["unigram+wordnet"] == 1 and stats["overlap"]["bigram+title"] == 1
    inputs = stats["inputs"]
    assert inputs["pages_read"] == 4 and inputs["pages_counted"] == 2
    assert inputs["pages_skipped"] == {"namespace": 1, "redirect": 1}
    assert inputs["tokens"] == 12
    assert inputs["pageview_lines"] == 9
    assert inputs["pageview_lines_skipped"] == {"malformed": 1, "namespace": 1, "other_wiki": 1}
    assert inputs["titles_viewed_not_in_dump"] == 1 and inputs["titles_below_min_views"] == 1
    assert inputs["wordnet_synsets"] == 3 and inputs["wordnet_offset_mismatches"] == 0


def test_stats_account_for_every_candidate_entry(built):
    _, stats = built
    # Candidates: 6 words, 5 bigrams, 2 article titles (Alpha beta, Gamma ray), 4 WordNet lemmas.
    # Dropped: delta and ray (count 1); beta gamma and omega omega (pmi); Gamma ray (69 views).
    # 12 admitted entries make 10 rows: alpha (unigram + wordnet) and alpha beta (bigram + title) merge.
    assert stats["in"] == 6 + 5 + 2 + 4
    assert stats["dropped"] == {"below_min_count": 2, "below_min_bigram_count": 0, "below_min_pmi": 2,
                                "below_min_views": 1, "merged": 2}
    assert stats["accounted"] is True
    assert stats["settings"]["min_count"] == 2 and stats["thresholds"]["min_views"] == 70


def test_min_count_boundary_and_keep_case(inputs, tmp_path):
    out = str(tmp_path / "out")
    run_queries(QueryOptions(wikipedia=[inputs["dump"]], out=out, pageviews=inputs["pageviews"], min_count=3,
                             min_pmi=100.0, min_bigram_count=1, min_views=71, keep_case=True))
    # min-count 3: alpha and beta (3) in, gamma (2) out; keep-case keeps "Gamma" apart from "gamma".
    assert load_queries(out) == ["alpha", "beta"]


def test_split_multistream_gives_the_same_list(inputs, built, tmp_path):
    dump = str(tmp_path / "enwiki-multistream.xml.bz2")
    write_multistream(dump, PAGES, per_stream=1)
    out = str(tmp_path / "out")
    run_queries(QueryOptions(wikipedia=[dump], out=out, pageviews=inputs["pageviews"], wordnet=inputs["wordnet"],
                             **THRESHOLDS, range_bytes=64, flush_keys=2, count_buckets=3))
    assert pd.read_parquet(os.path.join(out, "queries.parquet")).equals(
        pd.read_parquet(os.path.join(built[0], "queries.parquet")))


def test_load_queries_from_text_file(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("Red Circle\n\nred   circle\nblue, square\n")
    assert load_queries(str(path)) == ["red circle", "blue square"]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(UserError, match="is empty"):
        load_queries(str(tmp_path / "empty.txt"))


def test_cli_build_error_is_one_line_with_the_default_runner(inputs, tmp_path, capsys):
    # The multi-process DirectRunner users get by default: a worker's error still comes back as one line.
    data = open(inputs["dump"], "rb").read()
    broken = tmp_path / "broken.xml"
    broken.write_bytes(data[: data.index(b"Gamma ray") + 20])
    code = main(["queries", "build", "--wikipedia", str(broken), "--out", str(tmp_path / "o"),
                 "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err.startswith("wit queries: error: ") and "broken.xml: truncated XML: the page starting at byte" in err


def test_cli_stats_prints_the_table(built, capsys):
    assert main(["queries", "stats", built[0]]) == 0
    text = capsys.readouterr().out
    assert "unigram" in text and "bigram+title" in text and "pages_counted" in text
    assert main(["queries", "stats", "/nonexistent/dir"]) == 2


def test_sample_inputs_give_queries_matching_the_captions(sample_files, tmp_path):
    from wit_pipeline.sampleweb.draw import COLOURS, SHAPES

    out = str(tmp_path / "sample-queries")
    stats = run_queries(QueryOptions(wikipedia=sample_files.wikipedia, out=out, pageviews=sample_files.pageviews,
                                     wordnet=sample_files.wordnet, **DEMO_THRESHOLDS))
    queries = set(load_queries(out))
    assert set(COLOURS) | set(SHAPES) | {"background"} <= queries
    assert all(stats["by_source"][source] > 0 for source in ("unigram", "bigram", "title", "wordnet"))
    assert stats["inputs"]["pages_skipped"]["namespace"] >= 3 and stats["inputs"]["pages_skipped"]["redirect"] >= 1
    assert stats["accounted"] is True


def test_index_files_are_left_out_and_buckets_partition_keys(tmp_path):
    from queries.pipeline import plan_dump_ranges
    from queries.transforms import bucket_of, split_into_buckets

    write_multistream(str(tmp_path / "enwiki-pages-articles-multistream.xml.bz2"), PAGES)
    (tmp_path / "enwiki-pages-articles-multistream-index.txt.bz2").write_bytes(b"")
    ranges, left_out = plan_dump_ranges([str(tmp_path)], range_bytes=100)
    assert [os.path.basename(p) for p in left_out] == ["enwiki-pages-articles-multistream-index.txt.bz2"]
    assert {os.path.basename(r.path) for r in ranges} == {"enwiki-pages-articles-multistream.xml.bz2"}
    counts = {f"w{i}": i for i in range(50)}
    parts = split_into_buckets(counts, 7)
    assert sum(len(part) for _, part in parts) == 50
    assert all(bucket_of(key, 7) == bucket for bucket, part in parts for key in part)
    assert bucket_of("circle", 1024) == 0xd4b76579 % 1024  # stable across processes (crc32), unlike hash()


def test_library_callers_get_the_flag_minimums(tmp_path):
    with pytest.raises(UserError, match="--range-mb must be at least 1"):
        run_queries(QueryOptions(wikipedia=["x.xml"], out=str(tmp_path / "o"), range_bytes=0))
    with pytest.raises(UserError, match="--count-buckets must be at least 1"):
        run_queries(QueryOptions(wikipedia=["x.xml"], out=str(tmp_path / "o"), count_buckets=0))


def test_options_come_from_the_flags():
    import argparse

    from wit_pipeline.options import add_options, from_args

    parser = argparse.ArgumentParser()
    add_options(parser, QueryOptions)
    options = from_args(QueryOptions, parser.parse_args(
        ["--wikipedia", "a.xml", "b.xml.bz2", "--out", "o", "--range-mb", "3", "--keep-case", "--min-pmi", "7.5"]))
    assert options == QueryOptions(wikipedia=["a.xml", "b.xml.bz2"], out="o", range_bytes=3 << 20, keep_case=True,
                                   min_pmi=7.5)
    assert (options.min_count, options.min_bigram_count, options.min_views, options.pageviews) == (100, 2, 70, [])
