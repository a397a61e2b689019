"""The candidate Beam job: every pair accounted for, exact de-dup, deterministic parts, clear errors."""

import json
import os
from collections import Counter

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wit_pipeline.candidates.filters import clean_pair
from wit_pipeline.candidates.pipeline import DEFAULT_FILTERS, CandidateOptions, run_candidates
from wit_pipeline.candidates.sources.warc import read_warc
from wit_pipeline.candidates.sources.wat import read_wat
from wit_pipeline.cli import main
from wit_pipeline.sampleweb.site import FOREIGN_CAPTIONS


def _parts(directory):
    return {name: open(os.path.join(directory, name), "rb").read()
            for name in sorted(os.listdir(directory)) if name.endswith(".parquet")}


def test_wat_job_accounts_for_every_pair_and_matches_the_pure_functions(sample_files, tmp_path):
    inputs = list(sample_files.wat) + list(sample_files.broken_wat)
    out = str(tmp_path / "a")
    stats = run_candidates(CandidateOptions(source="wat", inputs=inputs, out=out, rows_per_part=50))
    reference, raw = set(), 0
    for path in inputs:
        with open(path, "rb") as handle:
            for row in read_wat(handle, path, Counter()):
                raw += 1
                url, text, reason = clean_pair(row["url"], row["text"], DEFAULT_FILTERS)
                if reason is None:
                    reference.add((url, text))
    table = pd.read_parquet(os.path.join(out, "parts"))
    assert set(zip(table.url, table.text, strict=True)) == reference
    assert len(table) == len(reference) == stats["out"]          # exact (url, text) de-dup
    # The sample web's tdm_meta_page fault reserves TDM rights: its two pairs are read, then dropped.
    assert stats["dropped"]["opt_out_tdmrep"] == 2
    assert stats["in"] == raw + stats["dropped"]["opt_out_tdmrep"] and stats["accounted"]
    for reason in ("data_uri", "boilerplate", "empty_text", "duplicate"):
        assert stats["dropped"][reason] > 0, reason
    assert stats["counters"]["bad_gzip_member"] == 1 and stats["counters"]["wat_bad_json"] == 1
    assert not table.text.isin(["logo", "IMG_1234.JPG", "DSC00042.jpg", ""]).any()
    assert table.url.str.startswith("http://").all() and table.uid.is_unique
    assert len(_parts(os.path.join(out, "parts"))) == -(-len(table) // 50)

    # Same inputs in another order: byte-identical part files; a rerun with larger parts leaves no stale part.
    again = str(tmp_path / "b")
    run_candidates(CandidateOptions(source="wat", inputs=inputs[::-1], out=again, rows_per_part=50))
    assert _parts(os.path.join(again, "parts")) == _parts(os.path.join(out, "parts"))
    run_candidates(CandidateOptions(source="wat", inputs=inputs, out=out, rows_per_part=10_000))
    assert list(_parts(os.path.join(out, "parts"))) == ["part-00000-of-00001.parquet"]


def test_language_filter_in_the_candidate_stage_runs_once_per_distinct_text(sample_files, tmp_path):
    out = str(tmp_path / "en")
    stats = run_candidates(CandidateOptions(source="warc", inputs=list(sample_files.warc), out=out, lang="en"))
    table = pd.read_parquet(os.path.join(out, "parts"))
    assert stats["dropped"]["lang"] > 0 and stats["accounted"]
    assert not table.text.isin(FOREIGN_CAPTIONS).any()
    texts = set()
    for path in sample_files.warc:
        with open(path, "rb") as handle:
            for row in read_warc(handle, path, Counter()):
                _url, text, reason = clean_pair(row["url"], row["text"], DEFAULT_FILTERS)
                if reason is None:
                    texts.add(text)
    assert stats["counters"]["lang_detect_calls"] == len(texts) < stats["in"]


def test_search_source_job_keeps_licence_provenance(sample_web, tmp_path):
    queries = tmp_path / "q.txt"
    queries.write_text("circle\nred star\n")
    out = str(tmp_path / "s")
    stats = run_candidates(CandidateOptions(source="search", inputs=[str(queries)], out=out, api="mediawiki",
                                            endpoint=sample_web.base_url + "/w/api.php", rate_per_host=0,
                                            allow_private_networks=True))
    table = pd.read_parquet(os.path.join(out, "parts"))
    expected = {sample_web.image_url(i) for q in ("circle", "red star") for i in sample_web.search(q)}
    assert set(table.url) == expected and stats["accounted"]
    assert table.license.notna().all() and table.creator.notna().all()
    assert set(table.search_query) <= {"circle", "red star"}


def test_search_rate_holds_for_the_whole_job_with_several_crawlers(sample_web, tmp_path):
    """Three crawls in three worker threads share --rate: the host never sees more than the rate."""
    words = ["circle", "square", "star", "triangle", "red", "blue"]
    queries = tmp_path / "q.txt"
    queries.write_text("\n".join(words) + "\n")
    start, rate = len(sample_web.requests), 15.0
    run_candidates(CandidateOptions(source="search", inputs=[str(queries)], out=str(tmp_path / "s"),
                                    endpoint=sample_web.base_url + "/v1/images/", page_size=2, rate_per_host=rate,
                                    crawlers=3, allow_private_networks=True),
                   ["--direct_running_mode", "multi_threading", "--direct_num_workers", "3"])
    times = [t for t, path, _ua in sample_web.requests[start:] if path.startswith("/v1/images/")]
    expected = {sample_web.image_url(i) for w in words for i in sample_web.search(w)}
    assert set(pd.read_parquet(os.path.join(tmp_path / "s", "parts")).url) == expected
    # Each crawl reserves its requests 3 / rate apart, so any n requests span at least (n - 6) / rate
    # seconds (3 crawls, each with one request that may leave its slot late). Per-worker limits (the
    # old behaviour) would send them 3x as fast: ~(n - 1) / (3 * rate).
    window = 16
    assert len(times) > window
    assert min(b - a for a, b in zip(times, times[window - 1:], strict=False)) >= (window - 6) / rate - 0.05


def test_cli_errors_are_one_line(tmp_path, capsys):
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"link": ["http://a.example/1.jpg"], "caption": ["a caption here"]}), table)
    code = main(["candidates", "--source", "table", "--input", str(table), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no column(s) 'url' (it has: link, caption)" in err and len(err.splitlines()) == 1
    code = main(["candidates", "--source", "wat", "--input", str(tmp_path / "missing-*.wat.gz"),
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "matches no files" in capsys.readouterr().err
    code = main(["candidates", "--source", "wat", "--input", str(table), "--out", str(tmp_path / "o"),
                 "--disable", "nonsense"])
    assert code == 2 and "unknown filter" in capsys.readouterr().err
    code = main(["candidates", "--source", "table", "--input", str(table), "--out", str(tmp_path / "o"),
                 "--url-col", "link", "--text-col", "caption"])
    assert code == 0 and len(pd.read_parquet(tmp_path / "o" / "parts")) == 1


def test_table_source_counts_bad_rows_and_strict_stops_at_the_first(tmp_path, capsys):
    table = tmp_path / "t.jsonl"
    table.write_text('{"url": "http://a.example/1.jpg", "text": "a caption here"}\n{not json\n')
    argv = ["candidates", "--source", "table", "--input", str(table), "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    stats = json.loads((tmp_path / "o" / "stats.json").read_text())
    assert stats["counters"]["table_bad_rows"] == 1 and stats["out"] == 1 and stats["accounted"]
    assert stats["settings"]["strict"] is False
    capsys.readouterr()
    assert main(argv + ["--strict"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{table}:2" in err and len(err.splitlines()) == 1


# -- batches: the job's elements are lists of raw rows and Arrow tables, with the rows' outcomes unchanged --

def _candidate(url, text, **provenance):
    from wit_pipeline.schemas import candidate_row, pair_uid

    return dict(candidate_row(url, text, source=provenance.pop("source", "wat"), **provenance),
                uid=pair_uid(url, text))


def test_distinct_table_keeps_the_row_first_by_provenance_keeps_whatever_the_order():
    import random

    from wit_pipeline.pairs import distinct_table, first_by_provenance
    from wit_pipeline.schemas import CANDIDATE_SCHEMA

    rng = random.Random(0)
    rows = [_candidate(f"http://a.example/{rng.randrange(40)}.jpg", "a red circle on white",
                       page_url=rng.choice([None, "", "http://p/a", "http://p/b"]),
                       source_file=rng.choice([None, "x.wat.gz", "y.wat.gz"]), creator=rng.choice([None, "é", "z"]))
            for _ in range(300)]
    expected = {}
    for row in rows:
        expected.setdefault(row["uid"], []).append(row)
    expected = {uid: first_by_provenance(copies) for uid, copies in expected.items()}
    for _ in range(3):
        rng.shuffle(rows)
        kept = distinct_table(pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)).to_pylist()
        assert len(kept) == len(expected)
        # a null and an empty provenance value tie, as in first_by_provenance: compare with nulls as ""
        assert sorted((row["uid"], *(v or "" for v in row.values())) for row in kept) == sorted(
            (row["uid"], *(v or "" for v in row.values())) for row in expected.values())


def test_parts_are_the_same_bytes_however_the_rows_are_batched(tmp_path):
    import apache_beam as beam

    from wit_pipeline.parquet_parts import WriteParquetParts, WriteParquetTables
    from wit_pipeline.schemas import CANDIDATE_SCHEMA

    rows = [_candidate(f"http://a.example/{i}.jpg", f"caption number {i} here", page_url=f"http://p/{i % 7}")
            for i in range(1000)]
    with beam.Pipeline() as pipeline:
        (pipeline | "Rows" >> beam.Create(rows)
         | "WriteRows" >> WriteParquetParts(str(tmp_path / "rows"), CANDIDATE_SCHEMA, rows_per_part=300))
        (pipeline | "Tables" >> beam.Create([rows[i:i + 97] for i in range(0, len(rows), 97)])
         | "ToTables" >> beam.Map(lambda batch: pa.Table.from_pylist(batch, schema=CANDIDATE_SCHEMA))
         | "WriteTables" >> WriteParquetTables(str(tmp_path / "tables"), CANDIDATE_SCHEMA, rows_per_part=300))
    parts = _parts(tmp_path / "rows")
    assert len(parts) == 4 and parts == _parts(tmp_path / "tables")
    table = pd.read_parquet(tmp_path / "rows")
    assert sorted(table.uid) == sorted(row["uid"] for row in rows)
    for name in parts:   # each part sorted by uid
        uids = pq.read_table(tmp_path / "rows" / name).column("uid").to_pylist()
        assert uids == sorted(uids)


def test_copies_of_a_file_keep_the_smallest_source_file_and_count_the_duplicates(sample_files, tmp_path):
    import shutil

    first = str(tmp_path / "a.wat.gz")
    second = str(tmp_path / "b.wat.gz")
    shutil.copy(sample_files.wat[0], first)
    shutil.copy(sample_files.wat[0], second)
    one = run_candidates(CandidateOptions(source="wat", inputs=[first], out=str(tmp_path / "one")))
    both = run_candidates(CandidateOptions(source="wat", inputs=[second, first], out=str(tmp_path / "both"),
                                           rows_per_part=7))
    table = pd.read_parquet(tmp_path / "both" / "parts")
    assert both["out"] == one["out"] == len(table) and table.uid.is_unique
    assert both["dropped"]["duplicate"] == one["out"] + one["dropped"]["duplicate"] * 2 and both["accounted"]
    assert set(table.source_file) == {first}
    assert sorted(table.uid) == sorted(pd.read_parquet(tmp_path / "one" / "parts").uid)


def test_a_batched_read_keeps_the_rows_read_before_a_file_turns_out_damaged():
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from wit_pipeline.candidates.sources import ReadFilesFn
    from wit_pipeline.schemas import candidate_row

    def read(path, options, counts):
        for i in range(5):
            yield candidate_row(f"http://a.example/{path}/{i}.jpg", "text", source="wat")
        if path == "broken":
            raise OSError("cut off")

    with beam.Pipeline() as pipeline:
        batches = pipeline | beam.Create(["good", "broken"]) | beam.ParDo(ReadFilesFn(read, None, batch_rows=2))
        assert_that(batches | beam.Map(len), equal_to([2, 2, 1, 2, 2, 1]))


def test_many_inputs_de_duplicate_row_by_row_with_the_same_parts(sample_files, tmp_path, monkeypatch):
    import shutil

    from wit_pipeline import pairs

    inputs = []
    for name in ("a", "b"):
        inputs.append(str(tmp_path / f"{name}.wat.gz"))
        shutil.copy(sample_files.wat[0], inputs[-1])
    bucketed = run_candidates(CandidateOptions(source="wat", inputs=inputs, out=str(tmp_path / "tables")))
    monkeypatch.setattr(pairs, "MAX_BUCKETS", 4)   # two inputs now count as "many": DedupPairs on rows
    assert pairs.dedup_buckets(2) is None
    by_row = run_candidates(CandidateOptions(source="wat", inputs=inputs, out=str(tmp_path / "rows")))
    assert _parts(tmp_path / "rows" / "parts") == _parts(tmp_path / "tables" / "parts")
    assert by_row["dropped"] == bucketed["dropped"] and by_row["dropped"]["duplicate"] > 0
