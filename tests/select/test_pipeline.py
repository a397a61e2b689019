"""The selection Beam job: matches the pure rules, deterministic whatever the order or worker count."""

import os
import random

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_pipeline.cli import main
from wit_pipeline.language import detect_language
from wit_pipeline.schemas import CANDIDATE_SCHEMA, pair_uid
from wit_pipeline.select.balancing import keep_probabilistic, select_top
from wit_pipeline.select.matching import QueryMatcher
from wit_pipeline.select.pipeline import SelectOptions, run_select

QUERIES = ["dog", "red", "red car", "lighthouse", "zebra crossing", "bicycle", "never seen"]
FOREIGN = ["un chien rouge dans le jardin", "ein rotes Auto vor dem Haus", "un perro rojo en la playa"]


def _rows(n=500, seed=0):
    rng = random.Random(seed)
    subjects = ["dog"] * 8 + ["red car"] * 4 + ["lighthouse"] * 2 + ["bicycle", "zebra crossing", "teapot"]
    rows = []
    for i in range(n):
        text = f"a photo of a {rng.choice(subjects)} near the {rng.choice(['sea', 'house', 'road'])} number {i % 97}"
        url = f"http://img{i % 7}.example.com/{i}.jpg"
        rows.append({"uid": pair_uid(url, text), "url": url, "text": text, "page_url": None, "source": "table",
                     "source_file": "synthetic", "search_query": None, "license": None, "license_url": None,
                     "creator": None})
    for i, text in enumerate(FOREIGN * 3):
        url = f"http://foreign.example.com/{i}.jpg"
        rows.append(dict(rows[0], uid=pair_uid(url, text), url=url, text=text))
    return rows


def _write(rows, directory, n_files, seed):
    os.makedirs(directory, exist_ok=True)
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    for k in range(n_files):
        pq.write_table(pa.Table.from_pylist(rows[k::n_files], schema=CANDIDATE_SCHEMA),
                       os.path.join(directory, f"c{k}.parquet"))


@pytest.fixture(scope="module")
def candidates(tmp_path_factory):
    root = tmp_path_factory.mktemp("cands")
    rows = _rows()
    _write(rows, str(root / "a"), 3, seed=1)
    _write(rows, str(root / "b"), 5, seed=2)            # same rows, other files and order
    (root / "q.txt").write_text("\n".join(QUERIES) + "\n")
    return rows, root


def _bytes(out):
    sel = os.path.join(out, "selected")
    files = {n: open(os.path.join(sel, n), "rb").read() for n in sorted(os.listdir(sel))}
    files["query_counts"] = open(os.path.join(out, "query_counts.parquet"), "rb").read()
    return files


def test_top_selection_matches_the_pure_rule_and_reports_counts(candidates, tmp_path):
    rows, root = candidates
    out = str(tmp_path / "s")
    stats = run_select(SelectOptions(candidates=[str(root / "a")], queries=str(root / "q.txt"), out=out, cap=40,
                                     lang="any", seed=3, rows_per_part=100))
    matcher = QueryMatcher(QUERIES)
    matches = {r["uid"]: matcher.match(r["text"]) for r in rows}
    matches = {u: q for u, q in matches.items() if q}
    reference = select_top(matches, 40, seed=3)
    selected = pd.read_parquet(os.path.join(out, "selected"))
    assert set(selected.uid) == set(reference)
    assert all(list(q) == matches[u] for u, q in zip(selected.uid, selected.queries, strict=True))  # all listed
    assert stats["accounted"] and stats["in"] == len(rows)
    assert stats["dropped"]["no_match"] == len(rows) - len(matches)
    counts = pd.read_parquet(os.path.join(out, "query_counts.parquet")).set_index("query")
    assert set(counts.index) == set(QUERIES)                            # zero-match queries listed too
    assert counts.loc["never seen", ["matched", "kept", "selected"]].tolist() == [0, 0, 0]
    assert counts.lang.isna().all()                                     # a plain list has no languages
    assert counts.loc["dog", "matched"] > 40 and counts.loc["dog", "kept"] == 40
    assert counts.loc["zebra crossing", "kept"] == counts.loc["zebra crossing", "matched"] > 0
    assert (counts.kept <= 40).all() and (counts.selected >= counts.kept).all()
    html = open(os.path.join(out, "summary.html")).read()
    assert "data:image/png;base64," in html and os.path.getsize(os.path.join(out, "query_counts.png")) > 1000


def test_selection_is_identical_for_other_files_order_and_two_workers(candidates, tmp_path):
    _rows_, root = candidates
    common = dict(queries=str(root / "q.txt"), cap=40, lang="any", seed=3, rows_per_part=100)
    one = str(tmp_path / "one")
    two = str(tmp_path / "two")
    run_select(SelectOptions(candidates=[str(root / "a")], out=one, **common))
    run_select(SelectOptions(candidates=[str(root / "b")], out=two, **common),
               ["--direct_num_workers", "2", "--direct_running_mode", "multi_threading"])
    assert _bytes(one) == _bytes(two)


def test_probabilistic_balancing_matches_metaclip_rule(candidates, tmp_path):
    rows, root = candidates
    out = str(tmp_path / "p")
    stats = run_select(SelectOptions(candidates=[str(root / "a")], queries=str(root / "q.txt"), out=out, cap=40,
                                     balance="probabilistic", lang="any", seed=3))
    matcher = QueryMatcher(QUERIES)
    matches = {r["uid"]: matcher.match(r["text"]) for r in rows}
    matches = {u: q for u, q in matches.items() if q}
    count = {q: sum(q in qs for qs in matches.values()) for q in QUERIES}
    expected = {u for u, qs in matches.items() if keep_probabilistic(u, [count[q] for q in qs], 40, 3)}
    assert set(pd.read_parquet(os.path.join(out, "selected")).uid) == expected
    assert stats["accounted"]


def test_language_is_decided_once_per_distinct_matched_text(candidates, tmp_path):
    rows, root = candidates
    out = str(tmp_path / "l")
    stats = run_select(SelectOptions(candidates=[str(root / "a")], queries=str(root / "q.txt"), out=out,
                                     cap=10_000, lang="en"))
    matcher = QueryMatcher(QUERIES)
    matched_texts = {r["text"] for r in rows if matcher.match(r["text"])}
    assert stats["lang_detect_calls"] == len(matched_texts) < stats["in"]
    kept = {t for t in matched_texts if detect_language(t) == "en"}
    selected = pd.read_parquet(os.path.join(out, "selected"))
    assert set(selected.text) == kept
    assert stats["accounted"] and stats["dropped"]["lang"] == sum(
        1 for r in rows if r["text"] in matched_texts - kept)


def test_cli_reports_bad_inputs_in_one_line(candidates, tmp_path, capsys):
    _rows_, root = candidates
    code = main(["select", "--candidates", str(root / "a"), "--queries", str(tmp_path / "none.txt"),
                 "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "does not exist" in err and len(err.splitlines()) == 1
    (tmp_path / "empty").mkdir()
    code = main(["select", "--candidates", str(tmp_path / "empty"), "--queries", str(root / "q.txt"),
                 "--out", str(tmp_path / "x")])
    assert code == 2 and "matches no files" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:   # refused as the flag is parsed
        main(["select", "--candidates", str(root / "a"), "--queries", str(root / "q.txt"),
              "--out", str(tmp_path / "x"), "--cap", "0"])
    assert exited.value.code == 2 and "--cap must be at least 1" in capsys.readouterr().err
