"""``wit download`` end to end on the loopback sample web, and ``wit shards`` on what it wrote."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from wit_pipeline.cli import main as wit
from wit_pipeline.download.pipeline import DownloadOptions, FindDuplicates
from wit_pipeline.download.shards import brace_urls, shard_stats, verify
from wit_pipeline.errors import UserError
from wit_pipeline.sampleweb import FAULTS, serve_sample_web
from wit_pipeline.sampleweb.render import web_image_bytes

MIN_SIZE, MAX_RATIO = 200, 3.0      # the defaults
FAST = ["--timeout", "1.0", "--retries", "1", "--threads", "8", "--allow-private-networks"]


def _statuses(out: str) -> dict[str, dict]:
    rows = {}
    for name in sorted(os.listdir(out)):
        if name.endswith(".parquet"):
            for row in pq.read_table(os.path.join(out, name)).to_pylist():
                rows[row["key"]] = row
    return rows


def _tar_keys(out: str) -> list[str]:
    keys = []
    for name in sorted(os.listdir(out)):
        if name.endswith(".tar"):
            keys += [s["__key__"] for s in wds.WebDataset(os.path.join(out, name), shardshuffle=False)]
    return keys


def _expected(web, kind: str, url: str) -> str:
    if kind != "image":
        return FAULTS[kind].expected
    image = web.site.images[int(url.rsplit("/", 1)[1].split(".")[0])]
    width, height = Image.open(io.BytesIO(web_image_bytes(web.site, image))).size
    if min(width, height) < MIN_SIZE:
        return "image_too_small"
    return "bad_aspect_ratio" if max(width, height) / min(width, height) > MAX_RATIO else "success"


@pytest.fixture(scope="module")
def downloaded(sample_web, sample_files, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("dl") / "shards")
    code = wit(["download", "--input", sample_files.urls_table, "--out", out, "--samples-per-shard", "100",
                "--max-bytes", "2M", *FAST])
    assert code == 0
    return out


def test_every_row_gets_its_declared_outcome(downloaded, sample_web, sample_files):
    table = pq.read_table(sample_files.urls_table).to_pylist()
    status = _statuses(downloaded)
    assert len(status) == len(table)                       # every input row accounted for, once
    keys = sorted(status)
    assert keys[0] == "000000000" and keys[100] == "000010000"
    by_url = {row["url"]: row for row in status.values()}
    for row in table:
        assert by_url[row["url"]]["status"] == _expected(sample_web, row["kind"], row["url"]), row
    kinds = {row["kind"] for row in table}
    assert kinds >= {k for k, f in FAULTS.items() if f.is_image}     # the faults really were in the input
    stats = json.load(open(os.path.join(downloaded, "stats.json")))
    assert stats["stage"] == "download" and stats["accounted"] is True
    assert stats["out"] + sum(stats["dropped"].values()) == stats["in"] == len(table)
    assert {"image_too_small", "bad_aspect_ratio", "timeout", "too_large"} <= set(stats["dropped"])
    assert stats["done_now"] == stats["shards"] == 3
    assert by_url[sample_web.url(FAULTS["not_found"].path)]["http_status"] == 404


def test_shards_are_webdataset_with_manifest(downloaded):
    names = sorted(os.listdir(downloaded))
    assert [n for n in names if n.endswith(".parquet")] == ["00000.parquet", "00001.parquet", "00002.parquet"]
    assert {n for n in names if not n.endswith((".parquet", ".tar"))} == {
        ".wit.lock", "manifest.json", "stats.json", "sizes.json",
        "00000_stats.json", "00001_stats.json", "00002_stats.json"}
    status = _statuses(downloaded)
    successes = sorted(k for k, r in status.items() if r["status"] == "success")
    samples = list(wds.WebDataset(f"{downloaded}/{{00000..00002}}.tar", shardshuffle=False))
    assert [s["__key__"] for s in samples] == successes
    first = samples[0]
    assert set(first) >= {"jpg", "txt", "json"}
    meta = json.loads(first["json"])
    assert meta["caption"] == first["txt"].decode() == status[first["__key__"]]["caption"]
    assert Image.open(io.BytesIO(first["jpg"])).size == (256, 256) == (meta["width"], meta["height"])
    assert meta["sha256"] == status[first["__key__"]]["sha256"] and "kind" in meta   # other columns carried
    manifest = json.load(open(os.path.join(downloaded, "manifest.json")))
    assert manifest["total_samples"] == len(successes)
    assert [s["path"] for s in manifest["shards"]] == ["00000.tar", "00001.tar", "00002.tar"]
    assert all(s["bytes"] == os.path.getsize(os.path.join(downloaded, s["path"])) for s in manifest["shards"])


def test_rerun_skips_complete_shards(downloaded, sample_web, sample_files, capsys):
    before = {n: os.stat(os.path.join(downloaded, n)).st_mtime_ns for n in os.listdir(downloaded)
              if n.endswith((".tar", ".parquet"))}
    hits = sample_web.hits("/img/00000.jpg") + sample_web.hits("/img/00000.png")
    assert wit(["download", "--input", sample_files.urls_table, "--out", downloaded, "--samples-per-shard", "100",
                "--max-bytes", "2M", *FAST]) == 0
    assert "(0 written now)" in capsys.readouterr().out
    after = {n: os.stat(os.path.join(downloaded, n)).st_mtime_ns for n in before}
    assert after == before
    assert sample_web.hits("/img/00000.jpg") + sample_web.hits("/img/00000.png") == hits


def test_resume_with_other_image_settings_is_refused(downloaded, sample_files, capsys):
    before = sorted(os.listdir(downloaded))
    code = wit(["download", "--input", sample_files.urls_table, "--out", downloaded, "--samples-per-shard", "100",
                "--max-bytes", "2M", "--image-size", "384", *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "--image-size 256 (now 384)" in err and "new --out" in err and "Traceback" not in err
    assert sorted(os.listdir(downloaded)) == before


def test_shards_cli(downloaded, tmp_path, capsys):
    assert wit(["shards", "ls", downloaded]) == 0
    listing = capsys.readouterr().out
    assert "00002.tar" in listing and "total" in listing
    assert wit(["shards", "stats", downloaded, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats == shard_stats(downloaded) and stats["failures"]["image_too_small"] > 0
    assert sum(stats["shorter_side_histogram"].values()) == stats["samples"]
    assert wit(["shards", "urls", downloaded]) == 0
    printed = capsys.readouterr()
    assert printed.out == f"{downloaded}/{{00000..00002}}.tar\n"       # the pattern alone on stdout
    assert printed.err == f"{stats['samples']} samples\n"
    sheet = str(tmp_path / "sheet.html")
    assert wit(["shards", "show", downloaded, "--html", sheet, "--n", "7"]) == 0
    html = open(sheet).read()
    assert html.count("<figure>") == 7 and "data:image/jpeg;base64," in html
    assert wit(["shards", "verify", downloaded]) == 0
    assert wit(["shards", "ls", str(tmp_path)]) == 2          # not a download output: one-line error


def test_verify_names_the_broken_shard_and_key(downloaded, tmp_path):
    copy = str(tmp_path / "copy")
    shutil.copytree(downloaded, copy)
    status = _statuses(copy)
    # Drop one success from shard 1's tar: verify must name the shard and the key.
    victim = min(k for k, r in status.items() if r["status"] == "success" and k.startswith("00001"))
    kept = [s for s in wds.WebDataset(os.path.join(copy, "00001.tar"), shardshuffle=False)
            if s["__key__"] != victim]
    with wds.TarWriter(os.path.join(copy, "00001.tar")) as sink:
        for sample in kept:
            sink.write({k: v for k, v in sample.items() if not k.startswith("__url")})
    problems = verify(copy)
    assert any("00001.tar" in p and victim in p for p in problems)
    assert any("00001.tar" in p and "sha256" in p for p in problems)
    assert not any(p.startswith(("00000", "00002")) for p in problems)
    assert wit(["shards", "verify", copy]) == 1


def test_private_addresses_refused_without_the_flag(sample_web, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"url": sample_web.url(f"/img/{i:05d}.jpg"), "text": "x"}) + "\n"
                              for i in range(3)) + json.dumps({"url": "ftp://x/y.jpg", "text": "y"}) + "\n")
    out = str(tmp_path / "out")
    assert wit(["download", "--input", str(source), "--out", out, "--timeout", "1"]) == 0
    statuses = [r["status"] for r in _statuses(out).values()]
    assert statuses == ["blocked_address"] * 3 + ["invalid_url"]


def test_malformed_input_rows_are_counted_or_with_strict_stop_the_run(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"url": "http://127.0.0.1:9/a.jpg", "text": "a"}) + "\n{not json\n"
                      + json.dumps({"url": "ftp://x/y.jpg", "text": "b"}) + "\n")
    out = str(tmp_path / "out")
    assert wit(["download", "--input", str(source), "--out", out, "--timeout", "1"]) == 0
    stats = json.load(open(os.path.join(out, "stats.json")))
    assert (stats["in"], stats["out"], stats["accounted"]) == (3, 0, True)
    assert stats["dropped"] == {"bad_row": 1, "blocked_address": 1, "invalid_url": 1}
    capsys.readouterr()
    assert wit(["download", "--input", str(source), "--out", str(tmp_path / "strict"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert "in.jsonl" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.fixture
def small_web():
    with serve_sample_web(seed=1, n_images=24, slow_s=0.5, oversized_bytes=1 << 20) as web:
        yield web


def test_retry_failed_redoes_only_failed_rows(small_web, tmp_path):
    urls = [small_web.url(small_web.site.images[i].path) for i in range(4)]
    flaky = small_web.url(FAULTS["unavailable_then_ok"].path)
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"url": urls[:2] + [flaky] + urls[2:], "text": ["a", "b", "c", "d", "e"],
                             "queries": [["a"], ["b"], ["c"], ["d"], ["e"]]}), source)
    out = str(tmp_path / "out")
    args = ["download", "--input", str(source), "--out", out, "--samples-per-shard", "3", "--retries", "0",
            "--min-image-size", "0", "--max-aspect-ratio", "100", "--allow-private-networks", "--timeout", "2"]
    assert wit(args) == 0
    assert _statuses(out)["000000002"]["status"] == "http_503"
    assert wit(args) == 0                                   # a plain re-run leaves complete shards alone
    assert _statuses(out)["000000002"]["status"] == "http_503"
    assert small_web.hits(FAULTS["unavailable_then_ok"].path) == 1
    assert wit(args + ["--retry-failed"]) == 0
    status = _statuses(out)
    assert [status[k]["status"] for k in sorted(status)] == ["success"] * 5
    assert _tar_keys(out) == ["000000000", "000000001", "000000002", "000010000", "000010001"]
    assert all(small_web.hits(small_web.site.images[i].path) == 1 for i in range(4))   # successes kept
    assert verify(out) == []
    assert json.load(open(os.path.join(out, "stats.json")))["out"] == 5


def test_retry_failed_with_an_unknown_reason_is_a_usage_error(tmp_path, capsys):
    args = ["download", "--input", str(tmp_path / "in.csv"), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        wit(args + ["--retry-failed", "timeout,timout"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "unknown reason 'timout'" in err and "http_<status>" in err
    assert len(err.strip().splitlines()[-1]) > 0 and not os.path.exists(tmp_path / "out")


def test_retry_failed_reasons_are_checked_for_library_callers_too(tmp_path):
    options = DownloadOptions(input=str(tmp_path / "in.csv"), out=str(tmp_path / "out"),
                              retry_failed=("http_503", "not_a_reason"))
    with pytest.raises(UserError, match="not_a_reason"):
        options.validate()
    DownloadOptions(input="x", out="y", retry_failed=("http_503", "timeout", "duplicate")).validate()


def test_library_callers_get_the_flags_limits():
    for bad, message in (({"image_size": 0}, "--image-size must be at least 1"),
                         ({"encode_quality": 101}, "--encode-quality must be at most 100"),
                         ({"resize_mode": "stretch"}, "--resize-mode 'stretch': choose from border"),
                         ({"timeout": 0.0}, "--timeout must be greater than 0"),
                         ({"timeout": float("nan")}, "--timeout must be a finite number")):
        with pytest.raises(UserError, match=message):
            DownloadOptions(input="x", out="y", **bad).validate()


def test_drop_duplicates_keeps_the_first_copy_across_shards(small_web, tmp_path):
    image = small_web.site.images[3].path
    urls = [small_web.url(small_web.site.images[1].path), small_web.url(image),
            small_web.url(small_web.site.images[2].path), small_web.url("/media" + image)]
    source = tmp_path / "in.csv"
    source.write_text("url,text\n" + "".join(f"{u},caption {i}\n" for i, u in enumerate(urls)))
    base = ["download", "--input", str(source), "--samples-per-shard", "2", "--min-image-size", "0",
            "--max-aspect-ratio", "100", "--allow-private-networks", "--timeout", "2"]
    assert wit(base + ["--out", str(tmp_path / "all")]) == 0
    assert len(_tar_keys(str(tmp_path / "all"))) == 4
    out = str(tmp_path / "dedup")
    assert wit(base + ["--out", out, "--drop-duplicates"]) == 0
    assert _tar_keys(out) == ["000000000", "000000001", "000010000"]
    dropped = _statuses(out)["000010001"]
    assert dropped["status"] == "duplicate" and "000000001" in dropped["error_message"]
    assert verify(out) == [] and brace_urls(out)[1] == 3


def test_a_full_disk_is_one_line_and_the_rerun_completes_as_if_uninterrupted(small_web, tmp_path, monkeypatch,
                                                                             capsys):
    from wit_pipeline import shardset

    source = tmp_path / "in.csv"
    source.write_text("url,text\n" + "".join(f"{small_web.url(image.path)},caption {i}\n"
                                             for i, image in enumerate(small_web.site.images[:12])))
    common = ["download", "--input", str(source), "--samples-per-shard", "3", "--min-image-size", "0",
              "--max-aspect-ratio", "100", "--allow-private-networks", "--timeout", "2"]
    reference = str(tmp_path / "reference")
    assert wit(common + ["--out", reference]) == 0
    write, written = shardset.HashingStream.write, [0]

    def fills_up(self, data):           # the disk is full once two shards' worth of tar bytes are down
        if written[0] > 2 * os.path.getsize(os.path.join(reference, "00000.tar")):
            raise OSError(errno.ENOSPC, "No space left on device")
        written[0] += len(data)
        return write(self, data)

    monkeypatch.setattr(shardset.HashingStream, "write", fills_up)
    out = str(tmp_path / "out")
    capsys.readouterr()
    assert wit(common + ["--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wit download: error: no space left on device writing {out} (")
    assert "bytes free): free space and rerun; completed work is kept" in err and len(err.splitlines()) == 1
    kept = [n for n in os.listdir(out) if n.endswith(".parquet")]
    assert 1 <= len(kept) < 4 and not os.path.exists(os.path.join(out, "stats.json"))

    monkeypatch.setattr(shardset.HashingStream, "write", write)      # space freed
    assert wit(common + ["--out", out]) == 0
    assert _tar_keys(out) == _tar_keys(reference) and len(_tar_keys(out)) == 12
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["shards"] == json.load(open(os.path.join(reference, "manifest.json")))["shards"]
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")] and verify(out) == []


def _run_wit(args, **kw):
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WIT_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-m", "wit_pipeline", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, **kw)


def test_kill_9_then_resume_gives_exactly_the_uninterrupted_keys(tmp_path):
    with serve_sample_web(seed=2, faults=False, latency_s=0.04, n_images=96) as web:
        source = tmp_path / "in.parquet"
        pq.write_table(pa.table({"url": [web.image_url(i) for i in web.site.images],
                                 "text": [i.caption for i in web.site.images]}), source)
        common = ["download", "--input", str(source), "--samples-per-shard", "8", "--threads", "2",
                  "--timeout", "5", "--allow-private-networks"]
        reference = str(tmp_path / "reference")
        done = _run_wit(common + ["--out", reference])
        assert done.wait(timeout=120) == 0, done.stdout.read().decode()[-2000:]

        out = str(tmp_path / "killed")
        run = _run_wit(common + ["--out", out, "--processes", "2"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.poll() is None:
            written = [n for n in os.listdir(out) if n.endswith(".parquet")] if os.path.isdir(out) else []
            if len(written) >= 3:
                break
            time.sleep(0.01)
        assert run.poll() is None, "the run finished before it could be killed"
        os.killpg(run.pid, signal.SIGKILL)                 # the run and its worker processes
        run.wait(timeout=30)
        partial = [n for n in os.listdir(out) if n.endswith(".parquet")]
        assert 3 <= len(partial) < 12 and not os.path.exists(os.path.join(out, "manifest.json"))

        resumed = _run_wit(common + ["--out", out, "--processes", "2"])
        assert resumed.wait(timeout=120) == 0, resumed.stdout.read().decode()[-2000:]
    assert _tar_keys(out) == _tar_keys(reference) and len(_tar_keys(out)) > 60
    ref_manifest = json.load(open(os.path.join(reference, "manifest.json")))
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["shards"] == ref_manifest["shards"]     # same bytes, whatever the workers and the kill
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    assert verify(out) == []


def test_find_duplicates_keeps_the_lowest_key_of_each_image():
    successes = [("a", (0, "000000001")), ("a", (1, "000010000")), ("b", (0, "000000000")),
                 ("a", (0, "000000003")), ("c", (1, "000010001"))]
    with TestPipeline() as p:
        found = (p | beam.Create(successes) | FindDuplicates()
                 | beam.MapTuple(lambda shard, drops: (shard, sorted(drops))))
        assert_that(found, equal_to([(0, [("000000003", "000000001")]), (1, [("000010000", "000000001")])]))
