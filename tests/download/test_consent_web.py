"""Issue #16, "Done when": on a loopback web of three origins serving plain images and images under each
opt-out signal, plus a blocklist of sha256, md5 and PDQ lines (the PDQ ones for re-encoded, resized
copies), ``wit download --blocklist-hashes FILE`` stores exactly the plain images, gives every other row
its status, identifies as ``wit-pipeline``, and leaves no byte of a refused image under its output."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile

import pyarrow.parquet as pq
import pytest

from wit_pipeline.cli import main as wit
from wit_pipeline.schemas import REFUSAL_REASONS

FAST = ["--timeout", "2.0", "--retries", "1", "--threads", "4", "--allow-private-networks"]


@pytest.fixture(scope="module")
def consent_web():
    from wit_pipeline.sampleweb.consent_web import serve_consent_web

    with serve_consent_web() as web:
        yield web


@pytest.fixture(scope="module")
def consent_run(consent_web, tmp_path_factory):
    root = tmp_path_factory.mktemp("consent")
    files = consent_web.write_files(str(root / "web"))
    out = str(root / "shards")
    code = wit(["download", "--input", files.urls_table, "--out", out, "--blocklist-hashes", files.blocklist,
                "--samples-per-shard", "10", *FAST])
    assert code == 0
    return out


def _status_rows(out: str) -> dict[str, dict]:
    rows = {}
    for name in sorted(os.listdir(out)):
        if name.endswith(".parquet"):
            for row in pq.read_table(os.path.join(out, name)).to_pylist():
                rows[row["url"]] = row
    return rows


def _stored_urls(out: str) -> list[str]:
    """The url of every sample in every tar (a shard whose rows were all refused has an empty tar)."""
    urls = []
    for name in sorted(n for n in os.listdir(out) if n.endswith(".tar")):
        with tarfile.open(os.path.join(out, name)) as tar:
            urls += [json.load(tar.extractfile(m))["url"] for m in tar.getmembers() if m.name.endswith(".json")]
    return urls


def test_the_web_covers_every_signal_and_both_kinds_of_blocklist_match(consent_web):
    expected = {image.expected for image in consent_web.images}
    assert expected == set(REFUSAL_REASONS) | {"success"}
    assert len({image.body for image in consent_web.images}) == len(consent_web.images)   # all distinct
    lines = consent_web.blocklist_lines
    assert {line.split(":")[0] for line in lines} == {"sha256", "md5", "pdq"}
    assert len({o.address for o in consent_web.origins}) == 3


def test_download_stores_exactly_the_plain_images(consent_web, consent_run):
    plain = sorted(consent_web.url(i) for i in consent_web.images if i.expected == "success")
    assert sorted(_stored_urls(consent_run)) == plain


def test_every_other_row_gets_its_refusal_status(consent_web, consent_run):
    rows = _status_rows(consent_run)
    assert len(rows) == len(consent_web.images)
    got = {consent_web.url(i): rows[consent_web.url(i)]["status"] for i in consent_web.images}
    assert got == {consent_web.url(i): i.expected for i in consent_web.images}
    stats = json.load(open(os.path.join(consent_run, "stats.json")))
    assert stats["accounted"] is True
    for reason in REFUSAL_REASONS:
        assert stats["dropped"].get(reason, 0) == sum(i.expected == reason for i in consent_web.images), reason


def test_refused_rows_say_why_and_nothing_about_the_image(consent_web, consent_run):
    rows = _status_rows(consent_run)
    for image in consent_web.images:
        row = rows[consent_web.url(image)]
        if image.expected == "success":
            continue
        assert row["caption"] == image.caption and row["error_message"], row
        assert row["sha256"] is None and row["width"] is None and row["original_width"] is None, row
        assert not row.get("exif"), row
        if image.expected == "blocklisted":
            assert row["error_message"].startswith("line "), row   # only the matched line number


def test_requests_identify_as_wit_pipeline(consent_web, consent_run):
    agents = {agent for _, _, agent in consent_web.requests}
    assert consent_web.requests and all(agent.startswith("wit-pipeline") for agent in agents), agents


def test_origin_files_are_fetched_once_per_origin(consent_web, consent_run):
    # Origin 1's robots.txt refuses every image, so its other files need not be read at all.
    for index, origin in enumerate(consent_web.origins):
        for path in ("/robots.txt", "/.well-known/tdmrep.json", "/ai.txt"):
            hits = origin.hits(path)
            assert hits == 1 or (index == 1 and path != "/robots.txt" and hits == 0), (origin.base_url, path)


def test_no_byte_of_a_refused_image_is_stored_anywhere(consent_web, consent_run):
    # The reports too: a contact sheet of every sample, and the statistics.
    assert wit(["shards", "show", consent_run, "--html", os.path.join(consent_run, "report", "sheet.html")]) == 0
    refused = [image for image in consent_web.images if image.expected != "success"]
    needles = []
    for image in refused:
        body = image.body
        middle = len(body) // 2
        needles += [body, body[middle: middle + 256], hashlib.sha256(body).hexdigest().encode()]
    files = [os.path.join(d, n) for d, _, names in os.walk(consent_run) for n in names]
    assert {".tar", ".parquet", ".json", ".html"} <= {os.path.splitext(f)[1] for f in files}
    for path in files:
        data = open(path, "rb").read()
        for needle in needles:
            assert needle not in data, path


def test_shards_stats_counts_each_signal(consent_web, consent_run, capsys):
    assert wit(["shards", "stats", consent_run, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["opt_outs"] == {reason: sum(i.expected == reason for i in consent_web.images)
                                 for reason in REFUSAL_REASONS}
    assert wit(["shards", "stats", consent_run]) == 0
    text = capsys.readouterr().out
    assert "opt-outs:" in text and "opt_out_c2pa" in text and "blocklisted" in text


def test_robots_agents_also_obeys_the_rules_for_other_ai_crawlers(sample_web, tmp_path):
    from wit_pipeline.sampleweb import FAULTS

    urls = tmp_path / "urls.txt"
    urls.write_text("".join(sample_web.url(FAULTS[k].path) + "\n" for k in ("robots_ours", "robots_other_ai")))
    for agents, expected in (([], ["opt_out_robots", "success"]), (["--robots-agents", "GPTBot"],
                                                                    ["opt_out_robots", "opt_out_robots"])):
        out = str(tmp_path / f"out{len(agents)}")
        assert wit(["download", "--input", str(urls), "--out", out, *agents, *FAST]) == 0
        rows = _status_rows(out)
        assert [rows[sample_web.url(FAULTS[k].path)]["status"] for k in ("robots_ours", "robots_other_ai")] \
            == expected
