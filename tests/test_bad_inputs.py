"""Bad input through the `wit` command, one table row per case: each ends in a one-line error or a counted skip.

A case builds its inputs under a temporary directory and returns the command line. Then either

- ``exit=2`` (the default): stderr holds exactly one ``wit CMD: error: ...`` line matching ``message``
  (after argparse's usage block, for a bad flag value), and no traceback anywhere; or
- ``exit=0`` with ``check``: the run finished and ``check`` asserts that nothing was lost (the good rows
  came out, the bad ones are counted under a named reason in ``stats.json``).

Cases run in-process (Beam in-memory, as the rest of the suite); ``subprocess=True`` runs the real
``python -m wit_pipeline`` where a crash could take the interpreter down with it. The table grows with
every stage: add a case where its stage's section is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from wit_pipeline.cli import build_parser, main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def stats(self, out_dir: Path) -> dict:
        return json.loads((out_dir / "stats.json").read_text())


@dataclass
class Case:
    id: str
    make: Callable[[Path, pytest.FixtureRequest], list[str]]   # (tmp dir, request) -> argv after `wit`
    message: str = ""                                        # regex the one error line must match
    exit: int = 2
    check: Callable[[Path, Result], None] | None = None      # for exit 0: what must have come out
    subprocess: bool = False


def run_wit(argv: list[str], capfd, *, in_subprocess: bool) -> Result:
    if in_subprocess:
        env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
        done = subprocess.run([sys.executable, "-m", "wit_pipeline", *argv], capture_output=True, text=True,
                              timeout=300, env=env)
        return Result(done.returncode, done.stdout, done.stderr)
    try:
        code = main(argv)
    except SystemExit as exc:        # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    captured = capfd.readouterr()
    return Result(code, captured.out, captured.err)


def assert_one_line_error(result: Result, command: str, message: str) -> None:
    assert "Traceback" not in result.err, result.err[-3000:]
    errors = [line for line in result.err.splitlines() if line.startswith(f"wit {command}: error:")
              or line.startswith("wit: error:")
              or re.match(rf"wit {re.escape(command)}[\w -]*: error:", line)]
    assert len(errors) == 1, f"want exactly one error line in stderr:\n{result.err[-3000:]}"
    assert re.search(message, errors[0]), f"{errors[0]!r} does not match {message!r}"


def write(path: Path, data: bytes | str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    path.write_bytes(data)
    return str(path)


# --- cases: CLI-wide and flags -------------------------------------------------------------------------------

CASES: list[Case] = [
    Case("download-missing-input",
         lambda tmp, request: ["download", "--input", str(tmp / "nope.parquet"), "--out", str(tmp / "out")],
         message=r"nope\.parquet"),
]


def cli_config(tmp: Path, text: str | bytes) -> list[str]:
    """``wit build --dry-run`` on a config file holding ``text``."""
    return ["build", "--config", write(tmp / "wit.yaml", text), "--dry-run"]


def select_on_prism_without_a_binary(tmp: Path, request: pytest.FixtureRequest) -> list[str]:
    """``--runner PrismRunner`` where ``scripts/engines.sh prism fetch`` has built nothing (and no download)."""
    request.getfixturevalue("monkeypatch").setenv("WIT_ENGINES_CACHE", str(tmp / "no-engines"))
    return ["select", "--candidates", str(tmp / "cand"), "--queries", write(tmp / "q.txt", "cat\n"),
            "--out", str(tmp / "out"), "--runner", "PrismRunner"]


CASES += [
    Case("build-dry-run-misspelt-download-key", lambda tmp, request: cli_config(
        tmp, f"output: {tmp}\ndownload: {{image_sise: 64}}\n"), message=r"unknown key 'image_sise'; did you mean "
                                                                        r"'image_size'\?"),
    Case("build-dry-run-misspelt-select-key", lambda tmp, request: cli_config(
        tmp, f"output: {tmp}\nstages: [select]\nselect: {{cpa: 5}}\n"), message=r"did you mean 'cap'\?"),
    Case("build-dry-run-value-out-of-range", lambda tmp, request: cli_config(
        tmp, f"output: {tmp}\nstages: [download]\ndownload: {{image_size: -1}}\n"),
        message=r"config section 'download': argument --image-size: --image-size must be at least 1"),
    Case("build-dry-run-value-not-finite", lambda tmp, request: cli_config(
        tmp, f"output: {tmp}\nstages: [download]\ndownload: {{timeout: .nan}}\n"),
        message=r"config section 'download': .*--timeout must be a finite number"),
    Case("build-dry-run-unknown-beam-option", lambda tmp, request: cli_config(
        tmp, f"output: {tmp}\nstages: [download]\nbeam: {{runer: DirectRunner}}\n"),
        message=r"unknown Beam pipeline option '--runer'"),
    Case("prism-runner-without-a-local-binary", lambda tmp, request: select_on_prism_without_a_binary(tmp, request),
         message=r"--runner PrismRunner needs a Prism binary: none at .*no-engines/prism-v.*/bin/prism; build it "
                 r"with 'scripts/engines\.sh prism fetch' or pass --prism_location BINARY"),
    Case("flink-runner-without-a-job-server-jar", lambda tmp, request: [
        "select", "--candidates", str(tmp / "cand"), "--queries", write(tmp / "q.txt", "cat\n"), "--out",
        str(tmp / "out"), "--runner", "FlinkRunner", "--flink_master", "[local]"],
        message=r"--runner FlinkRunner needs --flink_job_server_jar JAR: 'scripts/engines\.sh flink env' prints"),
    Case("build-config-not-utf8", lambda tmp, request: cli_config(tmp, b"output: caf\xe9\n"),
         message=r"wit\.yaml:1: not UTF-8"),
    Case("build-dry-run-embed-without-a-checkpoint", lambda tmp, request: cli_config(
        tmp, f"output: {tmp}\nstages: [embed, filter]\nfilter: {{dedup: near}}\n"),
        message=r"stage 'embed' needs --checkpoint, .*\(embed: \{checkpoint: PATH\}\)"),
]

# --- cases: queries, candidates, select ----------------------------------------------------------------------

QCS_GOOD = [(f"http://img.example/{i}.jpg", f"a red car parked by house {i}") for i in range(4)]


def qcs_csv(tmp: Path, bad_line: bytes) -> str:
    """A url,text CSV: two good rows, ``bad_line``, two more good rows."""
    rows = [f"{url},{text}\n".encode() for url, text in QCS_GOOD]
    return write(tmp / "in.csv", b"url,text\n" + b"".join(rows[:2]) + bad_line + b"".join(rows[2:]))


def qcs_candidates(tmp: Path, name: str, bad_line: bytes, *extra: str) -> list[str]:
    path = qcs_csv(tmp, bad_line) if name.endswith(".csv") else write(tmp / name, bad_line)
    return ["candidates", "--source", "table", "--input", path, "--out", str(tmp / "out"), "--lang", "any", *extra]


def qcs_good_rows_and(reason: str, count: int = 1, *, rows: int = len(QCS_GOOD)):
    """check: the good rows came out and the bad one is counted under ``table_bad_rows_<reason>``."""
    def check(tmp: Path, result: Result) -> None:
        stats = result.stats(tmp / "out")
        assert stats["accounted"] and stats["out"] == rows, stats
        assert stats["counters"].get(f"table_bad_rows_{reason}") == count, stats["counters"]
    return check


def qcs_candidate_dir(tmp: Path, table) -> str:
    import pyarrow.parquet as pq
    (tmp / "cand").mkdir(exist_ok=True)
    pq.write_table(table, tmp / "cand" / "part-0.parquet")
    return str(tmp / "cand")


def qcs_select(tmp: Path, candidates: str | None = None, queries: str | None = None) -> list[str]:
    import pyarrow as pa
    if candidates is None:
        table = pa.table({"url": [url for url, _ in QCS_GOOD], "text": [text for _, text in QCS_GOOD]})
        candidates = qcs_candidate_dir(tmp, table)
    if queries is None:
        queries = write(tmp / "q.txt", "red car\nhouse\n")
    return ["select", "--candidates", candidates, "--queries", queries, "--out", str(tmp / "out"), "--lang", "any"]


def qcs_select_typed(tmp: Path, request) -> list[str]:
    # text as int64, a provenance column as a list, a uid as int64: numbers are taken as text, a list is a bad row
    import pyarrow as pa
    table = pa.table({"url": ["http://img.example/1.jpg", "http://img.example/2.jpg", "http://img.example/3.jpg"],
                      "text": ["a red car", "house by the road", "red car again"],
                      "uid": pa.array([1, 2, 3], pa.int64()),
                      "source": pa.array([["x"], None, None], pa.list_(pa.string())),
                      "page_url": pa.array([None, 2.5, None], pa.float64())})
    numbers = pa.table({"url": ["http://img.example/4.jpg"], "text": pa.array([7], pa.int64())})
    path = qcs_candidate_dir(tmp, table)
    import pyarrow.parquet as pq
    pq.write_table(numbers, tmp / "cand" / "part-1.parquet")
    return qcs_select(tmp, candidates=path)


def qcs_select_not_utf8(tmp: Path, request) -> list[str]:
    # a parquet string column holding bytes that are not UTF-8 (parquet writers do not check)
    import pyarrow as pa
    raw = pa.array([b"a red car", b"red \xff car", b"house"], pa.binary())
    text = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())
    return qcs_select(tmp, candidates=qcs_candidate_dir(tmp, pa.table({"url": ["http://i.example/1.jpg",
                                                                              "http://i.example/2.jpg",
                                                                              "http://i.example/3.jpg"],
                                                                      "text": text})))


def qcs_select_accounted(rows_in: int, out: int, bad_row: int):
    def check(tmp: Path, result: Result) -> None:
        stats = result.stats(tmp / "out")
        assert stats["accounted"] and stats["in"] == rows_in and stats["out"] == out, stats
        assert stats["dropped"].get("bad_row") == bad_row, stats["dropped"]
    return check


def qcs_query_lines_skipped(tmp: Path, result: Result) -> None:
    stats = result.stats(tmp / "out")
    assert stats["query_lines_skipped"] == {"line_too_long": 1} and stats["queries_total"] == 2, stats
    assert stats["out"] == len(QCS_GOOD)


def qcs_wiki(tmp: Path) -> str:
    from tests.queries.dumps import page_xml, write_plain
    pages = [page_xml("Red car", "The red car is a car. " * 20, page_id=1),
             page_xml("House", "A house is a house. " * 20, page_id=2)]
    return write_plain(str(tmp / "wiki.xml"), pages)


def qcs_queries(tmp: Path, *extra: str) -> list[str]:
    return ["queries", "build", "--wikipedia", qcs_wiki(tmp), "--out", str(tmp / "out"), "--min-count", "1",
            "--min-views", "1", *extra]


def qcs_pageviews(tmp: Path, bad_line: bytes) -> str:
    import gzip
    path = tmp / "pageviews-20240101-000000.gz"
    path.write_bytes(gzip.compress(b"en Red_car 5 0\n" + bad_line + b"\nen House 80 0\n"))
    return str(path)


def qcs_one_malformed_pageview(tmp: Path, result: Result) -> None:
    stats = result.stats(tmp / "out")
    assert stats["accounted"] and stats["inputs"]["pageview_lines_skipped"] == {"malformed": 1}, stats["inputs"]
    assert stats["inputs"]["distinct_viewed_titles"] == 2


def qcs_surrogate_replaced(tmp: Path, result: Result) -> None:
    import pyarrow.parquet as pq
    stats = result.stats(tmp / "out")
    assert stats["accounted"] and stats["out"] == len(QCS_GOOD) + 1, stats
    texts = pq.read_table(tmp / "out" / "parts").column("text").to_pylist()
    assert "a red car \ufffd by the road" in texts


def qcs_truncated_bz2(tmp: Path) -> str:
    import bz2
    blob = bz2.compress(Path(qcs_wiki(tmp)).read_bytes())
    return write(tmp / "wiki.xml.bz2", blob[: len(blob) // 2])


def qcs_latin1_page(tmp: Path) -> str:
    from tests.queries.dumps import FOOTER, HEADER, page_xml
    good = page_xml("Red car", "The red car is a car. " * 20, page_id=1).encode()
    latin1 = page_xml("Caf\u00e9", "caf\u00e9 red car " * 20, page_id=2).encode("latin-1")
    return write(tmp / "wiki.xml", HEADER.encode() + good + latin1 + FOOTER.encode())


def qcs_huge_page(tmp: Path) -> str:
    from tests.queries.dumps import page_xml, write_plain
    return write_plain(str(tmp / "wiki.xml"), [page_xml("Red car", "The red car is a car. " * 20, page_id=1),
                                               page_xml("Huge", "word " * (4 << 20), page_id=2)])


def qcs_page_skipped(reason: str):
    def check(tmp: Path, result: Result) -> None:
        stats = result.stats(tmp / "out")
        assert stats["accounted"] and stats["inputs"]["pages_counted"] == 1, stats["inputs"]
        assert stats["inputs"]["pages_skipped"] == {reason: 1}
    return check


def qcs_stats_dir(tmp: Path, content: bytes) -> list[str]:
    write(tmp / "q" / "stats.json", content)
    return ["queries", "stats", str(tmp / "q")]


CASES += [
    Case("candidates-table-row-not-utf8", lambda tmp, request: qcs_candidates(
        tmp, "in.csv", b"http://img.example/x.jpg,caf\xe9 red car here\n"), exit=0,
        check=qcs_good_rows_and("bad_encoding")),
    Case("candidates-table-row-not-utf8-strict", lambda tmp, request: qcs_candidates(
        tmp, "in.csv", b"http://img.example/x.jpg,caf\xe9 red car here\n", "--strict"),
        message=r"in\.csv:4: bytes that are not UTF-8"),
    Case("candidates-table-caption-col-missing", lambda tmp, request: qcs_candidates(
        tmp, "in.csv", b"", "--caption-col", "alt"),
        message=r"has no column\(s\) 'alt' \(it has: url, text\); set --url-col/--caption-col"),
    Case("candidates-table-url-list", lambda tmp, request: qcs_candidates(
        tmp, "urls.txt", b"http://img.example/1.jpg\n"), message=r"urls\.txt' is a url list \(\.txt\)"),
    Case("candidates-table-img2dataset-flag", lambda tmp, request: qcs_candidates(
        tmp, "in.csv", b"", "--caption_col", "text"),
        message=r"--caption_col is img2dataset's name: use --caption-col"),
    Case("candidates-jsonl-row-not-utf8", lambda tmp, request: qcs_candidates(
        tmp, "in.jsonl", b"".join(json.dumps({"url": u, "text": t}).encode() + b"\n" for u, t in QCS_GOOD)
        + b'{"url": "http://img.example/x.jpg", "text": "caf\xe9 red car"}\n'), exit=0,
        check=qcs_good_rows_and("bad_encoding")),
    Case("candidates-jsonl-lone-surrogate", lambda tmp, request: qcs_candidates(
        tmp, "in.jsonl", b"".join(json.dumps({"url": u, "text": t}).encode() + b"\n" for u, t in QCS_GOOD)
        + b'{"url": "http://img.example/s.jpg", "text": "a red car \\ud800 by the road"}\n'), exit=0,
        check=qcs_surrogate_replaced),
    Case("candidates-csv-field-too-large", lambda tmp, request: qcs_candidates(
        tmp, "in.csv", b'http://img.example/big.jpg,"' + b"x" * (200 << 10) + b'"\n'), exit=0,
        check=qcs_good_rows_and("field_too_large")),
    Case("candidates-csv-line-too-long", lambda tmp, request: qcs_candidates(
        tmp, "in.csv", b"http://img.example/big.jpg," + b"x" * (9 << 20) + b"\n"), exit=0,
        check=qcs_good_rows_and("line_too_long")),
    Case("candidates-zero-byte-parquet", lambda tmp, request: qcs_candidates(tmp, "in.parquet", b""),
         message=r"in\.parquet: not a readable parquet file"),
    Case("candidates-garbage-parquet", lambda tmp, request: qcs_candidates(tmp, "in.parquet", b"PAR1" + b"x" * 500),
         message=r"in\.parquet: not a readable parquet file"),
    Case("candidates-search-queries-over-http", lambda tmp, request: [
        "candidates", "--source", "search", "--endpoint", "https://api.example/v1/images/",
        "--input", "http://queries.example/q.txt", "--out", str(tmp / "out")],
        message=r"--input: http\(s\) URLs are not supported for this input; download the file first"),
    Case("candidates-input-scheme-not-installed", lambda tmp, request: [
        "candidates", "--source", "wat", "--input", "nosuchfs://bucket/x.wat.gz", "--out", str(tmp / "out")],
        message=r"--input: no file system for nosuchfs:// paths is installed"),

    Case("select-wrong-typed-columns", qcs_select_typed, exit=0, check=qcs_select_accounted(4, 2, 1)),
    Case("select-parquet-string-not-utf8", qcs_select_not_utf8, exit=0, check=qcs_select_accounted(3, 2, 1)),
    Case("select-zero-byte-candidates", lambda tmp, request: qcs_select(
        tmp, candidates=write(tmp / "cand" / "part-0.parquet", b"")), message=r"not a readable parquet file"),
    Case("select-garbage-queries-parquet", lambda tmp, request: qcs_select(
        tmp, queries=write(tmp / "q.parquet", b"garbage" * 50)), message=r"q\.parquet: not a readable parquet file"),
    Case("select-zero-byte-queries-parquet", lambda tmp, request: qcs_select(
        tmp, queries=write(tmp / "q.parquet", b"")), message=r"q\.parquet: not a readable parquet file"),
    Case("select-queries-over-http", lambda tmp, request: qcs_select(tmp, queries="http://queries.example/q.txt"),
         message=r"--queries: http\(s\) URLs are not supported for this input; download the file first"),
    Case("select-queries-not-utf8", lambda tmp, request: qcs_select(
        tmp, queries=write(tmp / "q.txt", b"red car\ncaf\xe9\n")),
        message=r"q\.txt:2: the query list is not UTF-8 text"),
    Case("select-query-line-too-long", lambda tmp, request: qcs_select(
        tmp, queries=write(tmp / "q.txt", b"red car\n" + b"a " * (1 << 20) + b"\nhouse\n")), exit=0,
        check=qcs_query_lines_skipped),
    Case("select-lang-list-with-a-bad-code", lambda tmp, request: [*qcs_select(tmp), "--lang", "en,,de"],
         message=r"--lang must be 'any', 'all', a language code like 'en' or a comma list like 'en,de,zh'"),

    Case("queries-pageview-count-overflows-int64", lambda tmp, request: qcs_queries(
        tmp, "--pageviews", qcs_pageviews(tmp, b"en House 99999999999999999999999999 0")), exit=0,
        check=qcs_one_malformed_pageview),
    Case("queries-pageview-line-too-long", lambda tmp, request: qcs_queries(
        tmp, "--pageviews", qcs_pageviews(tmp, b"en " + b"x" * (1 << 20) + b" 5 0")), exit=0,
        check=qcs_one_malformed_pageview),
    Case("queries-pageviews-not-gzip", lambda tmp, request: qcs_queries(
        tmp, "--pageviews", write(tmp / "pageviews-20240101-000000.gz", b"not gzip at all\n")),
        message=r"pageviews-20240101-000000\.gz: cannot read pageviews"),
    Case("queries-wikipedia-over-http", lambda tmp, request: [
        "queries", "build", "--wikipedia", "http://dumps.example/enwiki.xml.bz2", "--out", str(tmp / "out")],
        message=r"--wikipedia: http\(s\) URLs are not supported for this input; download the file first"),
    Case("queries-wordnet-over-http", lambda tmp, request: qcs_queries(tmp, "--wordnet", "http://wn.example/dict"),
         message=r"--wordnet: http\(s\) URLs are not supported"),
    Case("queries-wordnet-missing", lambda tmp, request: qcs_queries(tmp, "--wordnet", str(tmp / "no-wordnet")),
         message=r"--wordnet .*has none of data\.noun"),
    Case("queries-wordnet-omw-file-missing", lambda tmp, request: qcs_queries(
        tmp, "--wordnet", f"ja={tmp / 'wn-data-jpn.tab'}"), message=r"--wordnet ja=.*no such file"),
    Case("queries-wikipedia-lang-without-path", lambda tmp, request: qcs_queries(tmp, "--wikipedia", "zh="),
         message=r"--wikipedia 'zh=': no path after zh="),
    Case("queries-lang-thresholds-missing", lambda tmp, request: qcs_queries(
        tmp, "--lang-thresholds", str(tmp / "none.json")), message=r"--lang-thresholds .*none\.json' is not a file"),
    Case("queries-lang-thresholds-not-json", lambda tmp, request: qcs_queries(
        tmp, "--lang-thresholds", write(tmp / "t.json", b"{zh: 5")), message=r"t\.json.*not JSON"),
    Case("queries-lang-thresholds-unknown-threshold", lambda tmp, request: qcs_queries(
        tmp, "--lang-thresholds", write(tmp / "t.json", b'{"en": {"min_cnt": 5}}')),
        message=r"--lang-thresholds: en: unknown threshold\(s\) min_cnt"),
    Case("queries-lang-thresholds-bad-value", lambda tmp, request: qcs_queries(
        tmp, "--lang-thresholds", write(tmp / "t.json", b'{"en": {"min_count": 0}}')),
        message=r"--lang-thresholds: en\.min_count must be a whole number of at least 1, not 0"),
    Case("queries-truncated-bz2-dump", lambda tmp, request: [
        "queries", "build", "--wikipedia", qcs_truncated_bz2(tmp), "--out", str(tmp / "out")],
        message=r"wiki\.xml\.bz2: truncated bz2 stream"),
    # A worker process's UserError: the worker prints no traceback before the driver's one line.
    Case("queries-truncated-bz2-dump-worker-process", lambda tmp, request: [
        "queries", "build", "--wikipedia", qcs_truncated_bz2(tmp), "--out", str(tmp / "out"),
        "--direct_running_mode=multi_processing", "--direct_num_workers=1"],
        message=r"wiki\.xml\.bz2: truncated bz2 stream", subprocess=True),
    Case("queries-page-not-utf8", lambda tmp, request: [
        "queries", "build", "--wikipedia", qcs_latin1_page(tmp), "--out", str(tmp / "out"), "--min-count", "1"],
        exit=0, check=qcs_page_skipped("undecodable")),
    Case("queries-page-too-large", lambda tmp, request: [
        "queries", "build", "--wikipedia", qcs_huge_page(tmp), "--out", str(tmp / "out"), "--min-count", "1"],
        exit=0, check=qcs_page_skipped("too_large")),
    Case("queries-stats-not-json", lambda tmp, request: qcs_stats_dir(tmp, b"{not json"),
         message=r"stats\.json.*not JSON"),
    Case("queries-stats-not-utf8", lambda tmp, request: qcs_stats_dir(tmp, b"\xff\xfe{}"),
         message=r"stats\.json.*not UTF-8"),
    Case("queries-stats-not-an-object", lambda tmp, request: qcs_stats_dir(tmp, b"[1, 2]"),
         message=r"stats\.json.*an array"),
    Case("queries-stats-wrong-shape", lambda tmp, request: qcs_stats_dir(tmp, b'{"stage": "queries"}'),
         message=r"stats\.json is not a complete queries stats record \(KeyError"),
]

# --- cases: download, shards, overlap, train, eval -----------------------------------------------------------

def dsote_shards(tmp: Path, samples: int = 3) -> str:
    """A small `wit download` output made by hand: one shard (tar, status parquet, manifest.json)."""
    from io import BytesIO

    from PIL import Image

    from wit_pipeline.download.writer import sample_members, write_status
    from wit_pipeline.shardset import manifest_entry, write_manifest, write_tar_atomic

    out = tmp / "shards"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with write_tar_atomic(str(out / "00000.tar")) as tar:
        for i in range(samples):
            key, url = f"{i:09d}", f"http://img.example/{i}.jpg"
            jpg = BytesIO()
            Image.new("RGB", (16, 16), (60 * i, 90, 30)).save(jpg, "JPEG")
            tar.add_sample(key, sample_members(jpg.getvalue(), f"caption {i}", {"url": url, "queries": ["q"]}))
            rows.append({"key": key, "url": url, "caption": f"caption {i}", "status": "success"})
    write_status(str(out / "00000.parquet"), rows, tar.summary)
    write_manifest(str(out), {"shards": [manifest_entry("00000.tar", tar.summary, rows=samples)],
                              "total_samples": samples})
    return str(out)


def dsote_damaged(tmp: Path, name: str, data: bytes) -> str:
    """The hand-made shards with one file replaced by ``data``."""
    shards = dsote_shards(tmp)
    write(Path(shards) / name, data)
    return shards


def dsote_json_member(tmp: Path, json_bytes: bytes) -> str:
    """The hand-made shards whose first sample's ``.json`` member is ``json_bytes``."""
    import tarfile
    from io import BytesIO

    shards = Path(dsote_shards(tmp))
    source = BytesIO((shards / "00000.tar").read_bytes())
    with tarfile.open(fileobj=source) as old, tarfile.open(shards / "00000.tar", "w", format=tarfile.PAX_FORMAT) as new:
        for member in old.getmembers():
            data = old.extractfile(member).read()
            if member.name == "000000000.json":
                data, member.size = json_bytes, len(json_bytes)
            new.addfile(member, BytesIO(data))
    return str(shards)


def dsote_reported(*needles: str, stream: str = "err"):
    """``check``: the command finished and named each of ``needles`` (the damage) on stdout or stderr."""
    def check(tmp: Path, result: Result) -> None:
        text = result.err if stream == "err" else result.out
        for needle in needles:
            assert re.search(needle, text), f"{needle!r} not reported in:\n{text[-2000:]}"
    return check


def dsote_overlap(tmp: Path, report: bytes) -> str:
    write(tmp / "overlap" / "overlap.json", report)
    return str(tmp / "overlap")


def dsote_predictions(tmp: Path, content: bytes) -> list[str]:
    report = b'{"eval_sets": {"e": {"pairs": [], "flagged_ids": []}}}'
    return ["overlap", "accuracy", "--overlap", dsote_overlap(tmp, report),
            "--predictions", write(tmp / "predictions.jsonl", content), "--out", str(tmp / "acc")]


def dsote_imagefolder(tmp: Path) -> str:
    from trainer.synthetic import write_shape_imagefolder

    return write_shape_imagefolder(str(tmp / "eval"), per_class=1, image_size=16)


def dsote_train(tmp: Path, *flags: str, out: str | None = None) -> list[str]:
    return ["train", "--shards", dsote_shards(tmp), "--out", out or str(tmp / "run"), "--model", "tiny",
            "--steps", "1", "--batch-size", "2", "--workers", "0", *flags]


def dsote_balance(tmp: Path, counts: bytes | None = None, *flags: str) -> list[str]:
    """`wit train --epochs 1 --balance-cap 5` on the hand-made shards, reading ``counts`` as select's file."""
    argv = ["train", "--shards", dsote_shards(tmp), "--out", str(tmp / "run"), "--model", "tiny", "--batch-size",
            "2", "--workers", "0", "--allow-partial", "--epochs", "1", "--balance-cap", "5", *flags]
    return argv + (["--balance-counts", write(tmp / "query_counts.parquet", counts)] if counts is not None else [])


def dsote_counts_parquet(**columns) -> bytes:
    from io import BytesIO

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def dsote_zeroshot(tmp: Path, *flags: str) -> list[str]:
    return ["eval", "zeroshot", "--checkpoint", str(tmp / "no-checkpoint.pt"), "--eval", dsote_imagefolder(tmp),
            "--out", str(tmp / "zs"), *flags]


def dsote_download(tmp: Path, input_path: str, *flags: str) -> list[str]:
    return ["download", "--input", input_path, "--out", str(tmp / "out"), *flags]


def dsote_disk_full(tmp: Path, request) -> list[str]:
    """A download whose tar writes hit a full disk (ENOSPC) inside the Beam worker."""
    import errno

    from wit_pipeline import shardset

    web = request.getfixturevalue("sample_web")
    monkeypatch = request.getfixturevalue("monkeypatch")

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shardset.HashingStream, "write", full)
    rows = "".join(json.dumps({"url": web.url(f"/img/{i:05d}.jpg"), "text": f"image {i}"}) + "\n" for i in range(3))
    return dsote_download(tmp, write(tmp / "in.jsonl", rows), "--allow-private-networks", "--min-image-size", "0")


def dsote_read_only(tmp: Path, request) -> list[str]:
    """`overlap accuracy` writing into a read-only file system (EROFS when its folder is made)."""
    import errno

    monkeypatch = request.getfixturevalue("monkeypatch")
    argv = dsote_predictions(tmp, b'{"eval_id": "a", "correct": true}\n')
    real_makedirs = os.makedirs

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(tmp / "acc")):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_makedirs(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", read_only)
    return argv


CASES += [
    # wit shards on the damage it exists to report: counted in its output, never a traceback
    Case("shards-verify-status-parquet-garbage", lambda tmp, request: [
        "shards", "verify", dsote_damaged(tmp, "00000.parquet", b"PAR1 not a parquet")], exit=1,
        check=dsote_reported(r"00000\.parquet: not a readable status parquet", r"1 problem\(s\)")),
    Case("shards-stats-status-parquet-empty", lambda tmp, request: [
        "shards", "stats", dsote_damaged(tmp, "00000.parquet", b"")], exit=0,
        check=dsote_reported(r"00000\.parquet: not a readable status parquet", r"1 problem\(s\)")),
    Case("shards-ls-status-parquet-garbage", lambda tmp, request: [
        "shards", "ls", dsote_damaged(tmp, "00000.parquet", b"garbage")], exit=0,
        check=dsote_reported(r"00000\.parquet: not a readable status parquet", r"left out of the total")),
    Case("shards-show-status-parquet-garbage", lambda tmp, request: [
        "shards", "show", dsote_damaged(tmp, "00000.parquet", b"garbage"), "--html", str(tmp / "sheet.html")],
        exit=0, check=dsote_reported(r"00000\.parquet: not a readable status parquet")),
    Case("shards-verify-manifest-not-json", lambda tmp, request: [
        "shards", "verify", dsote_damaged(tmp, "manifest.json", b"{not json")], exit=1,
        check=dsote_reported(r"manifest\.json: not a shard manifest")),
    Case("shards-urls-manifest-not-json", lambda tmp, request: [
        "shards", "urls", dsote_damaged(tmp, "manifest.json", b"{not json")], exit=0,
        check=lambda tmp, result: (dsote_reported(r"manifest\.json: not a shard manifest")(tmp, result),
                                   dsote_reported(r"(?m)^3 samples$")(tmp, result),
                                   dsote_reported(r"\A\S*/00000\.tar\n\Z", stream="out")(tmp, result))),
    Case("shards-verify-sizes-json-not-json", lambda tmp, request: [
        "shards", "verify", dsote_damaged(tmp, "sizes.json", b"{not json")], exit=1,
        check=dsote_reported(r"sizes\.json: not OpenCLIP's sizes\.json", r"1 problem\(s\)")),
    Case("shards-verify-shard-stats-not-counts", lambda tmp, request: [
        "shards", "verify", dsote_damaged(tmp, "00000_stats.json", b'{"count": "3"}')], exit=1,
        check=dsote_reported(r"00000_stats\.json: not a per-shard stats file", r"1 problem\(s\)")),
    Case("shards-verify-json-member-not-json", lambda tmp, request: [
        "shards", "verify", dsote_json_member(tmp, b"{not json \xff")], exit=1,
        check=dsote_reported(r"key 000000000: its \.json is not a JSON object")),
    Case("shards-show-json-member-a-list", lambda tmp, request: [
        "shards", "show", dsote_json_member(tmp, b"[1, 2]"), "--html", str(tmp / "sheet.html")], exit=0,
        check=dsote_reported(r"key 000000000: its \.json is not a JSON object")),
    Case("shards-show-truncated-tar", lambda tmp, request: [
        "shards", "show", dsote_damaged(tmp, "00000.tar", b"\0" * 700), "--html", str(tmp / "sheet.html")],
        exit=0, check=dsote_reported(r"00000\.tar: damaged")),
    Case("shards-stats-top-negative", lambda tmp, request: ["shards", "stats", str(tmp), "--top", "-1"],
         message=r"--top must be at least 0"),
    Case("shards-show-n-zero", lambda tmp, request: [
        "shards", "show", str(tmp), "--html", str(tmp / "x.html"), "--n", "0"], message=r"--n must be at least 1"),
    # overlap filter / accuracy on broken JSON
    Case("overlap-filter-report-not-json", lambda tmp, request: [
        "overlap", "filter", "--shards", dsote_shards(tmp), "--overlap", dsote_overlap(tmp, b'{"eval_sets": {\n'),
        "--out", str(tmp / "filtered"), "--allow-partial"], message=r"overlap\.json:2: not JSON"),
    Case("overlap-filter-report-not-utf8", lambda tmp, request: [
        "overlap", "filter", "--shards", dsote_shards(tmp), "--overlap", dsote_overlap(tmp, b"\xff\xfe{}"),
        "--out", str(tmp / "filtered"), "--allow-partial"], message=r"overlap\.json:1: not UTF-8"),
    Case("overlap-filter-report-wrong-shape", lambda tmp, request: [
        "overlap", "filter", "--shards", dsote_shards(tmp),
        "--overlap", dsote_overlap(tmp, b'{"eval_sets": {"e": {"pairs": [{"shard": "00000.tar"}]}}}'),
        "--out", str(tmp / "filtered"), "--allow-partial"], message=r"not an overlap report .*no 'shard_key'"),
    Case("overlap-accuracy-report-an-array", lambda tmp, request: [
        "overlap", "accuracy", "--overlap", dsote_overlap(tmp, b"[1]"),
        "--predictions", write(tmp / "p.jsonl", '{"eval_id": "a", "correct": 1}\n')],
        message=r"overlap\.json: is JSON an array where an object is expected"),
    Case("overlap-accuracy-predictions-not-json", lambda tmp, request: dsote_predictions(
        tmp, b'{"eval_id": "a", "correct": true}\n{"eval_id": "b", broken\n'),
        message=r"predictions\.jsonl:2: not JSON"),
    Case("overlap-accuracy-predictions-not-utf8", lambda tmp, request: dsote_predictions(
        tmp, b'{"eval_id": "a", "correct": true}\n{"eval_id": "\xff"}\n'),
        message=r"predictions\.jsonl:2: not UTF-8"),
    Case("overlap-accuracy-predictions-empty", lambda tmp, request: dsote_predictions(tmp, b""),
         message=r"predictions\.jsonl: no prediction rows"),
    Case("overlap-accuracy-predictions-not-objects", lambda tmp, request: dsote_predictions(tmp, b"[1, 2]\n"),
         message=r"predictions\.jsonl: row 0 of the array is not a JSON object"),
    Case("overlap-scan-eval-list-empty", lambda tmp, request: [
        "overlap", "scan", "--shards", dsote_shards(tmp), "--eval", f"e={write(tmp / 'eval.csv', 'path,label')}",
        "--out", str(tmp / "scan"), "--allow-partial"], message=r"eval set .*eval\.csv' has no examples"),
    Case("overlap-scan-eval-list-not-utf8", lambda tmp, request: [
        "overlap", "scan", "--shards", dsote_shards(tmp),
        "--eval", "e=" + write(tmp / "eval.csv", b"path\ncaf\xe9.jpg"), "--out", str(tmp / "scan"),
        "--allow-partial"], message=r"eval\.csv:2: not UTF-8"),
    Case("overlap-accuracy-read-only-out", dsote_read_only, message=r"read-only file system: cannot write .*acc"),
    # train and eval: flags refused where parsed, broken files named
    Case("train-blocklist-not-json", lambda tmp, request: dsote_train(
        tmp, "--blocklist", write(tmp / "block.json", '{"keys": [\n"a",\n'), "--allow-partial"),
        message=r"block\.json:3: not JSON"),
    Case("train-blocklist-jsonl-not-json", lambda tmp, request: dsote_train(
        tmp, "--blocklist", write(tmp / "block.jsonl", '{"key": "a"}\nnot json\n'), "--allow-partial"),
        message=r"block\.jsonl:2: not JSON"),
    Case("train-lr-negative", lambda tmp, request: dsote_train(tmp, "--lr", "-1"),
         message=r"--lr must be greater than 0"),
    Case("train-lr-nan", lambda tmp, request: dsote_train(tmp, "--lr", "nan"), message=r"--lr must be a finite"),
    Case("train-beta2-one", lambda tmp, request: dsote_train(tmp, "--beta2", "1"),
         message=r"--beta2 must be less than 1"),
    Case("train-steps-zero", lambda tmp, request: dsote_train(tmp, "--steps", "0"),
         message=r"--steps must be at least 1"),
    Case("train-workers-negative", lambda tmp, request: dsote_train(tmp, "--workers", "-1"),
         message=r"--workers must be at least 0"),
    Case("train-vocab-size-one", lambda tmp, request: dsote_train(tmp, "--vocab-size", "1"),
         message=r"--vocab-size must be at least 258"),
    Case("train-device-bogus", lambda tmp, request: dsote_train(tmp, "--device", "bogus"),
         message=r"--device 'bogus': use cpu, cuda, cuda:N or mps"),
    Case("train-device-missing-gpu", lambda tmp, request: dsote_train(tmp, "--device", "cuda:99"),
         message=r"--device cuda:99: this machine has .*use --device cpu"),
    Case("train-out-is-a-file", lambda tmp, request: dsote_train(tmp, "--allow-partial",
                                                                 out=write(tmp / "a-file", "x")), message=r"a-file"),
    Case("train-epochs-with-steps", lambda tmp, request: dsote_train(tmp, "--epochs", "2"),
         message=r"give --epochs or --steps/--samples, not both"),
    Case("train-epochs-zero", lambda tmp, request: dsote_balance(tmp, None, "--epochs", "0"),
         message=r"--epochs must be at least 1"),
    Case("train-balance-cap-without-epochs", lambda tmp, request: dsote_train(tmp, "--balance-cap", "10"),
         message=r"--balance-cap needs --epochs N"),
    Case("train-balance-counts-without-cap", lambda tmp, request: dsote_train(tmp, "--balance-counts", "c.parquet"),
         message=r"--balance-counts needs --balance-cap"),
    Case("train-balance-counts-missing", lambda tmp, request: dsote_balance(
        tmp, None, "--balance-counts", str(tmp / "none.parquet")),
        message=r"--balance-counts .*none\.parquet.* does not exist"),
    Case("train-balance-counts-not-parquet", lambda tmp, request: dsote_balance(tmp, b"not parquet"),
         message=r"--balance-counts: .*query_counts\.parquet: not a readable parquet file"),
    Case("train-balance-counts-without-matched", lambda tmp, request: dsote_balance(
        tmp, dsote_counts_parquet(query=["q"], kept=[1])), message=r"--balance-counts: .* no column\(s\) 'matched'"),
    Case("train-balance-counts-negative", lambda tmp, request: dsote_balance(
        tmp, dsote_counts_parquet(query=["q"], matched=[-3])), message=r"row 1: .*'matched' a whole number >= 0"),
    Case("train-caption-keys-bad-sum", lambda tmp, request: dsote_train(tmp, "--caption-keys", "txt=0.5"),
         message=r"--caption-keys 'txt=0\.5': the probabilities sum to 0\.5, not 1"),
    Case("train-caption-keys-malformed", lambda tmp, request: dsote_train(tmp, "--caption-keys", "txt:1"),
         message=r"--caption-keys 'txt:1': 'txt:1' is not FIELD=PROBABILITY"),
    Case("eval-zeroshot-batch-size-negative", lambda tmp, request: dsote_zeroshot(tmp, "--batch-size", "-1"),
         message=r"--batch-size must be at least 1"),
    Case("eval-zeroshot-device-bogus", lambda tmp, request: dsote_zeroshot(tmp, "--device", "gpu"),
         message=r"--device 'gpu': use cpu"),
    Case("eval-zeroshot-templates-not-utf8", lambda tmp, request: dsote_zeroshot(
        tmp, "--templates", write(tmp / "templates.txt", b"a photo of a {}.\n\xff {}\n")),
        message=r"templates\.txt:2: not UTF-8"),
    Case("eval-linear-probe-device-bogus", lambda tmp, request: [
        "eval", "linear-probe", "--checkpoint", str(tmp / "c.pt"), "--train", str(tmp), "--test", str(tmp),
        "--device", "cuda:x"], message=r"--device 'cuda:x'"),
    # download: inputs and flags
    Case("download-garbage-parquet", lambda tmp, request: dsote_download(
        tmp, write(tmp / "in.parquet", b"PAR1" + b"x" * 100)), message=r"in\.parquet: not a readable parquet file"),
    Case("download-zero-byte-parquet", lambda tmp, request: dsote_download(tmp, write(tmp / "in.parquet", b"")),
         message=r"in\.parquet: not a readable parquet file"),
    Case("download-timeout-nan", lambda tmp, request: dsote_download(tmp, str(tmp), "--timeout", "nan"),
         message=r"--timeout must be a finite number"),
    Case("download-timeout-inf", lambda tmp, request: dsote_download(tmp, str(tmp), "--timeout", "inf"),
         message=r"--timeout must be a finite number"),
    Case("download-timeout-zero", lambda tmp, request: dsote_download(tmp, str(tmp), "--timeout", "0"),
         message=r"--timeout must be greater than 0"),
    Case("download-timeout-too-large", lambda tmp, request: dsote_download(tmp, str(tmp), "--timeout", "1e12"),
         message=r"--timeout must be at most 3600"),
    Case("download-max-aspect-ratio-nan", lambda tmp, request: dsote_download(
        tmp, str(tmp), "--max-aspect-ratio", "nan"), message=r"--max-aspect-ratio must be a finite number"),
    Case("download-out-is-a-file", lambda tmp, request: dsote_download(
        tmp, write(tmp / "in.jsonl", '{"url": "http://img.example/a.jpg", "text": "a"}\n'))[:3]
        + ["--out", write(tmp / "a-file", "x")], message=r"a-file"),
    Case("download-out-under-a-file", lambda tmp, request: dsote_download(
        tmp, write(tmp / "in.jsonl", '{"url": "http://img.example/a.jpg", "text": "a"}\n'))[:3]
        + ["--out", str(Path(write(tmp / "a-file", "x")) / "out")], message=r"a-file"),
    Case("download-caption-col-missing", lambda tmp, request: dsote_download(
        tmp, write(tmp / "in.csv", "url,caption\nhttp://img.example/a.jpg,a\n"), "--caption-col", "alt"),
        message=r"has no column\(s\) 'alt' \(it has: url, caption\); set --url-col/--caption-col"),
    Case("download-broken-json-array", lambda tmp, request: dsote_download(
        tmp, write(tmp / "in.json", '[{"url": "http://img.example/a.jpg", "text": "a"},')),
        message=r"in\.json: not a JSON array"),
    Case("download-img2dataset-flag", lambda tmp, request: dsote_download(tmp, str(tmp), "--image_size", "64"),
         message=r"--image_size is img2dataset's name: use --image-size"),
    Case("download-opt-out-signals-unknown", lambda tmp, request: dsote_download(
        tmp, str(tmp), "--opt-out-signals", "robots,noindex"),
        message=r"--opt-out-signals: unknown signal 'noindex'; use all, none or a comma list of: robots, noai, "
        r"tdmrep, content_usage, ai_txt, metadata, c2pa"),
    Case("download-robots-agents-not-a-token", lambda tmp, request: dsote_download(
        tmp, str(tmp), "--robots-agents", "GPTBot,Google Extended"),
        message=r"--robots-agents: 'Google Extended' is not a robots.txt product token"),
    Case("download-user-agent-empty", lambda tmp, request: dsote_download(tmp, str(tmp), "--user-agent", " "),
         message=r"--user-agent: ' ' is not a User-Agent header value"),
    Case("download-verify-hash-unknown-algorithm", lambda tmp, request: dsote_download(
        tmp, write(tmp / "in.jsonl", '{"url": "http://img.example/a.jpg", "text": "a", "h": "00"}\n'),
        "--verify-hash", "h,crc32"),
        message=r"--verify-hash 'h,crc32': unknown algorithm 'crc32' \(known: sha256, md5\)"),
    Case("download-verify-hash-missing-column", lambda tmp, request: dsote_download(
        tmp, write(tmp / "in.jsonl", '{"url": "http://img.example/a.jpg", "text": "a", "h": "00"}\n'),
        "--verify-hash", "sha256"),
        message=r"--verify-hash: the input has no column 'sha256' \(its other columns: h\)"),
    Case("download-blocklist-missing", lambda tmp, request: dsote_download(
        tmp, write(tmp / "in.jsonl", '{"url": "http://img.example/a.jpg", "text": "a"}\n'),
        "--blocklist-hashes", str(tmp / "nope.txt")), message=r"--blocklist-hashes: .*nope\.txt"),
    Case("download-blocklist-malformed-line", lambda tmp, request: dsote_download(
        tmp, write(tmp / "in.jsonl", '{"url": "http://img.example/a.jpg", "text": "a"}\n'),
        "--blocklist-hashes", write(tmp / "list.txt", "# hashes\nsha256:" + "ab" * 32 + "\nsha1:abcd\n")),
        message=r"--blocklist-hashes .*list\.txt:3: expected sha256:HEX, md5:HEX or pdq:HEX, got 'sha1:abcd'"),
    Case("download-blocklist-short-pdq", lambda tmp, request: dsote_download(
        tmp, write(tmp / "in.jsonl", '{"url": "http://img.example/a.jpg", "text": "a"}\n'),
        "--blocklist-hashes", write(tmp / "list.txt", "pdq:abcd\n")),
        message=r"--blocklist-hashes .*list\.txt:1: a pdq hash is 64 hex digits, got 'abcd'"),
    Case("download-pdq-max-distance-negative", lambda tmp, request: dsote_download(
        tmp, str(tmp), "--pdq-max-distance", "-1"), message=r"--pdq-max-distance must be at least 0"),
    Case("download-pdq-max-distance-over-256", lambda tmp, request: dsote_download(
        tmp, str(tmp), "--pdq-max-distance", "257"), message=r"--pdq-max-distance must be at most 256"),
    Case("download-c2pa-constrained-unknown", lambda tmp, request: dsote_download(
        tmp, str(tmp), "--c2pa-constrained", "maybe"), message=r"--c2pa-constrained: invalid choice: 'maybe'"),
    Case("download-blur-bbox-col-missing", lambda tmp, request: dsote_download(
        tmp, write(tmp / "in.jsonl", '{"url": "http://img.example/a.jpg", "text": "a", "boxes": []}\n'),
        "--blur-bbox-col", "faces"),
        message=r"--blur-bbox-col: the input has no column 'faces' \(its other columns: boxes\)"),
    Case("download-disk-full", dsote_disk_full,
         message=r"no space left on device writing .*out \(\d+ bytes free\): free space and rerun; "
                 r"completed work is kept"),
]

# --- cases: embed ------------------------------------------------------------------------------------------


def embed_argv(tmp: Path, shards: str | None = None, *flags: str) -> list[str]:
    return ["embed", "--shards", shards or dsote_shards(tmp), "--out", str(tmp / "emb"), *flags]


def embed_without_cuda(tmp: Path, request) -> list[str]:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: --device cuda is no mistake")
    return embed_argv(tmp, None, "--checkpoint", str(tmp / "ckpt.pt"), "--device", "cuda")


def embed_no_shards(tmp: Path) -> str:
    (tmp / "empty").mkdir()
    return str(tmp / "empty")


CASES += [
    Case("embed-missing-checkpoint", lambda tmp, request: embed_argv(tmp, None, "--checkpoint", str(tmp / "no.pt")),
         message=r"checkpoint '.*no\.pt' does not exist"),
    Case("embed-checkpoint-not-a-checkpoint", lambda tmp, request: embed_argv(
        tmp, None, "--checkpoint", write(tmp / "notes.pt", b"not a checkpoint")),
        message=r"cannot load checkpoint '.*notes\.pt'"),
    Case("embed-no-shards", lambda tmp, request: embed_argv(tmp, embed_no_shards(tmp), "--checkpoint", "x.pt"),
         message=r"shards '.*empty/\*\.tar' matches no files"),
    Case("embed-cuda-missing", embed_without_cuda, message=r"--device cuda: .*use --device cpu"),
    Case("embed-no-model", lambda tmp, request: embed_argv(tmp), message=r"give exactly one model: --checkpoint"),
    Case("embed-batch-size-zero", lambda tmp, request: embed_argv(tmp, None, "--checkpoint", "x", "--batch-size", "0"),
         message=r"--batch-size must be at least 1, not '0'"),
]

# --- cases: filter -----------------------------------------------------------------------------------------


def dsote_embeddings(out: Path, width: int, drop: str | None = None) -> str:
    """A one-part embeddings folder for dsote_shards' samples (``drop``: a metadata column left out)."""
    import numpy as np
    import pyarrow.parquet as pq

    from tests.filter.helpers import write_embeddings

    vectors = np.eye(width, dtype=np.float32)
    write_embeddings(str(out), [("00000.tar", [(f"{i:09d}", 0.5, vectors[i % width]) for i in range(3)])])
    if drop:
        path = out / "metadata" / "metadata_0.parquet"
        pq.write_table(pq.read_table(path).drop_columns([drop]), path)
    return str(out)


def dsote_filter(tmp: Path, *flags: str) -> list[str]:
    return ["filter", "--shards", dsote_shards(tmp), "--out", str(tmp / "filtered"), "--allow-partial", *flags]


CASES += [
    Case("filter-no-rule", lambda tmp, request: dsote_filter(tmp), message=r"name at least one rule"),
    Case("filter-clip-score-without-embeddings", lambda tmp, request: dsote_filter(tmp, "--clip-score-min", "0.2"),
         message=r"--embeddings is required by --clip-score-min"),
    Case("filter-clip-score-top-zero", lambda tmp, request: dsote_filter(tmp, "--clip-score-top", "0"),
         message=r"--clip-score-top must be greater than 0, not '0'"),
    Case("filter-semdedup-eps-one", lambda tmp, request: dsote_filter(tmp, "--semdedup-eps", "1"),
         message=r"--semdedup-eps must be less than 1, not '1'"),
    Case("filter-dedup-unknown", lambda tmp, request: dsote_filter(tmp, "--dedup", "fuzzy"),
         message=r"--dedup: invalid choice: 'fuzzy'"),
    Case("filter-embeddings-not-an-embeddings-folder", lambda tmp, request: dsote_filter(
        tmp, "--embeddings", str(tmp), "--clip-score-top", "0.5"),
        message=r"--embeddings .*: no metadata/metadata_\*\.parquet"),
    Case("filter-eval-not-name-path", lambda tmp, request: dsote_filter(
        tmp, "--dedup", "exact", "--image-cluster-eval", "probe"),
        message=r"--image-cluster-eval 'probe': expected NAME=PATH"),
    Case("filter-eval-width-differs", lambda tmp, request: dsote_filter(
        tmp, "--embeddings", dsote_embeddings(tmp / "emb", 4), "--image-cluster-eval",
        f"probe={dsote_embeddings(tmp / 'eval', 8)}"),
        message=r"--image-cluster-eval probe=.*: embeddings of width 8, the set's are 4"),
    Case("filter-metadata-without-clip-score", lambda tmp, request: dsote_filter(
        tmp, "--embeddings", dsote_embeddings(tmp / "emb", 4, drop="clip_score"), "--clip-score-min", "0.1"),
        message=r"metadata_0\.parquet: no clip_score column"),
]

# --- cases: network (SSRF, malformed URLs, redirects) --------------------------------------------------------

NETWORK_MALFORMED = ["http://www..example.com/a.jpg", "http://" + "a" * 64 + ".example.com/a.jpg",
                     "http://[::1/x.jpg", "http://[zzzz]/x.jpg", "http://example.com:99999/x.jpg",
                     "http://exa mple.com/x.jpg", "http://ex\x01ample.com/x.jpg", "javascript:alert(1)"]
NETWORK_PRIVATE = ["http://169.254.169.254/latest/meta-data/iam/security-credentials/", "http://10.0.0.1/admin.jpg",
                   "http://127.0.0.1:9/x.jpg", "http://[::1]:9/x.jpg", "http://2130706433:9/x.jpg",
                   "http://[::ffff:127.0.0.1]:9/x.jpg", "http://[2002:7f00:1::]:9/x.jpg",
                   "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/"]
NETWORK_LENIENT = ["--min-image-size", "0", "--max-aspect-ratio", "100", "--timeout", "2", "--retries", "0"]


def network_download(urls: list[str], *flags: str):
    def make(tmp: Path, request) -> list[str]:
        good = [url(request) if callable(url) else url for url in urls]
        source = write(tmp / "in.jsonl", "".join(json.dumps({"url": u, "text": "a caption"}) + "\n" for u in good))
        return ["download", "--input", source, "--out", str(tmp / "out"), *NETWORK_LENIENT, *flags]
    return make


def network_sample_image(index: int):
    def url(request) -> str:
        web = request.getfixturevalue("sample_web")
        return web.image_url(web.site.images[index])
    return url


def network_counted(out: int, dropped: dict[str, int]):
    def check(tmp: Path, result: Result) -> None:
        stats = result.stats(tmp / "out")
        assert stats["accounted"] and stats["out"] == out and stats["dropped"] == dropped, stats
    return check


def network_train_shards(url: str):
    return lambda tmp, request: ["train", "--shards", url, "--out", str(tmp / "run"), "--workers", "0",
                                 "--steps", "1"]


def network_search_counted(counter: str):
    def check(tmp: Path, result: Result) -> None:
        assert json.loads((tmp / "cands" / "stats.json").read_text())["counters"][counter] == 1
    return check


def network_search(endpoint: Callable[[pytest.FixtureRequest], str], *flags: str):
    def make(tmp: Path, request) -> list[str]:
        return ["candidates", "--source", "search", "--input", write(tmp / "q.txt", "circle\n"),
                "--out", str(tmp / "cands"), "--rate", "0", "--endpoint", endpoint(request), *flags]
    return make


def network_api_answering(body: bytes):
    """A loopback search API that answers every request with ``body`` (stopped when the case ends)."""
    def endpoint(request) -> str:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Answer(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        request.addfinalizer(lambda: (server.shutdown(), server.server_close()))
        return f"http://127.0.0.1:{server.server_address[1]}/v1/images/"
    return endpoint


CASES += [
    Case("download-malformed-urls-between-good-rows",
         network_download([u for bad in NETWORK_MALFORMED for u in (bad, network_sample_image(0))],
                          "--allow-private-networks"),
         exit=0, check=network_counted(len(NETWORK_MALFORMED), {"invalid_url": len(NETWORK_MALFORMED)})),
    Case("download-private-targets-refused", network_download(NETWORK_PRIVATE),
         exit=0, check=network_counted(0, {"blocked_address": len(NETWORK_PRIVATE)})),
    Case("download-private-targets-refused-with-allow-proxy", network_download(NETWORK_PRIVATE, "--allow-proxy"),
         exit=0, check=network_counted(0, {"blocked_address": len(NETWORK_PRIVATE)})),
    Case("train-http-shard-on-loopback", network_train_shards("http://127.0.0.1:9/x.tar"),
         message=r"blocked_address.*--allow-private-networks"),
    Case("train-http-shard-on-ipv6-loopback", network_train_shards("http://[::1]:9/x.tar"),
         message=r"blocked_address"),
    Case("train-http-shard-on-a-decimal-ip", network_train_shards("http://2130706433:9/x.tar"),
         message=r"blocked_address"),
    Case("train-http-shard-malformed-url", network_train_shards("http://[::1/x.tar"), message=r"invalid_url"),
    Case("candidates-search-endpoint-on-link-local",
         network_search(lambda request: "http://169.254.169.254/latest/meta-data/"),
         exit=0, check=network_search_counted("search_failed_blocked_address")),
    Case("candidates-search-endpoint-on-link-local-with-allow-proxy",
         network_search(lambda request: "http://169.254.169.254/latest/meta-data/", "--allow-proxy"),
         exit=0, check=network_search_counted("search_failed_blocked_address")),
    Case("candidates-search-api-answers-the-wrong-shape",
         network_search(network_api_answering(b'{"results": 5, "page_count": "x"}'), "--allow-private-networks"),
         exit=0, check=network_search_counted("search_bad_response")),
    Case("candidates-search-api-answers-deeply-nested-json",
         network_search(network_api_answering(b"[" * 100_000 + b"]" * 100_000), "--allow-private-networks"),
         exit=0, check=network_search_counted("search_bad_response")),
]

# --- cases: integrity (locks, partial inputs, damaged shards and checkpoints) -------------------------------

def integrity_unfinished(folder: Path, stage: str) -> str:
    """``folder`` as a run of ``stage`` leaves it when killed: its lock file written, no stats.json."""
    from wit_pipeline.stage import output_lock

    with output_lock(str(folder), stage):
        pass
    return str(folder)


def integrity_shards(folder: Path) -> str:
    from trainer.synthetic import write_shape_shards

    write_shape_shards(str(folder), shards=2, samples_per_shard=2, image_size=16)
    return str(folder)


def integrity_busy(folder: Path, request: pytest.FixtureRequest) -> str:
    """``folder`` locked by another process (a running wit stage) until the test ends."""
    code = ("import time\nfrom wit_pipeline.stage import output_lock\n"
            f"with output_lock({str(folder)!r}, 'train'):\n    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    request.addfinalizer(lambda: (holder.kill(), holder.wait(timeout=30), holder.stdout.close()))
    assert holder.stdout.readline().strip() == "held"
    return str(folder)


def integrity_selected(tmp: Path) -> str:
    sel = tmp / "sel"
    write(sel / "selected" / "part-00000.parquet", b"")
    integrity_unfinished(sel, "select")
    return str(sel / "selected")


CASES += [
    Case("download-unfinished-select-output",
         lambda tmp, request: ["download", "--input", integrity_selected(tmp), "--out", str(tmp / "out")],
         message=r"sel/selected is an unfinished `wit select` output .*pass --allow-partial"),
    Case("overlap-scan-unfinished-shards",
         lambda tmp, request: ["overlap", "scan", "--shards",
                               integrity_unfinished(Path(integrity_shards(tmp / "shards")), "download"),
                               "--eval", f"toy={tmp / 'eval'}", "--out", str(tmp / "out")],
         message=r"shards is an unfinished `wit download` output .*was interrupted or failed.*--allow-partial"),
    Case("overlap-filter-unfinished-scan",
         lambda tmp, request: ["overlap", "filter", "--shards", integrity_shards(tmp / "shards"),
                               "--overlap", integrity_unfinished(tmp / "scan", "overlap"), "--out", str(tmp / "out")],
         message=r"scan is an unfinished `wit overlap scan` output"),
    Case("train-unfinished-shards",
         lambda tmp, request: ["train", "--shards", integrity_unfinished(Path(integrity_shards(tmp / "s")), "download"),
                               "--out", str(tmp / "run")],
         message=r"unfinished `wit download` output"),
    Case("train-out-in-use",
         lambda tmp, request: ["train", "--shards", integrity_shards(tmp / "s"),
                               "--out", integrity_busy(tmp / "run", request)],
         message=r"run is in use by another wit run \(pid \d+ on .*\): wait for it to finish or use another --out"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, tmp_path, request, capfd):
    argv = case.make(tmp_path, request)
    result = run_wit(argv, capfd, in_subprocess=case.subprocess)
    assert "Traceback" not in result.err, result.err[-3000:]
    assert result.code == case.exit, f"exit {result.code}, stderr:\n{result.err[-3000:]}"
    if case.exit == 2:
        assert_one_line_error(result, argv[0], case.message)
    if case.check is not None:
        case.check(tmp_path, result)


def test_the_table_covers_every_command():
    # A case's id starts with its command; a new command gets at least one bad-input case.
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = set(subparsers.choices) - {"demo", "sampleweb"}
    tested = {case.id.split("-", 1)[0] for case in CASES}
    assert commands <= tested, f"commands without a bad-input case: {sorted(commands - tested)}"
