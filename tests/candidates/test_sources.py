"""The wat, warc and table sources on the sample web's files and on real Common Crawl records."""

import gzip
import io
import json
import os
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_pipeline.candidates.sources import valid_row
from wit_pipeline.candidates.sources.table import read_table
from wit_pipeline.candidates.sources.warc import largest_srcset, page_images, read_warc
from wit_pipeline.candidates.sources.wat import parse_wat_record, read_wat
from wit_pipeline.candidates.warc_records import iter_records
from wit_pipeline.errors import UserError

CC = "/work/shared/data/commoncrawl"


def expected_pairs(web, pages, srcset_largest: bool) -> Counter:
    """(absolute url, alt) of every image tag on ``pages``, worked out from the site model."""
    origin, site = web.base_url, web.site
    pairs = Counter()
    for page in pages:
        for tag in page.imgs:
            if tag.image_id is None:
                continue
            image = site.images[tag.image_id]
            path = image.path
            if page.base_href and tag.src.startswith("img/"):   # <base href="/media/"> + "img/NNNNN.jpg"
                path = "/media" + image.path
            elif tag.srcset and (not srcset_largest or image.width < 160):
                # WAT records only src (the 160w variant); in WARC the srcset's largest "w" wins,
                # which is the 160w variant for the few originals narrower than that.
                path = image.path + "?w=160"
            pairs[(origin + path, tag.alt or "")] += 1
    return pairs


def _read(reader, path):
    counts = Counter()
    with open(path, "rb") as handle:
        rows = list(reader(handle, path, counts))
    return rows, counts


def _image_pairs(rows):
    return Counter((r["url"], r["text"]) for r in rows if "/img/" in r["url"])


def test_wat_links_resolve_relative_protocol_relative_and_base_urls(sample_web, sample_files):
    half = (len(sample_web.site.pages) + 1) // 2
    rows, counts = _read(read_wat, sample_files.wat[0])
    assert _image_pairs(rows) == expected_pairs(sample_web, sample_web.site.pages[:half], srcset_largest=False)
    assert all(r["url"].startswith(("http://", "data:")) for r in rows)
    assert all(r["page_url"].startswith(sample_web.base_url + "/") and r["source"] == "wat" for r in rows)
    # The first file also holds the tdm_meta_page fault: a page with images whose pairs are dropped.
    assert counts["wat_with_images"] == half + 1 and counts["wat_bad_json"] == 0
    assert counts["dropped_opt_out_tdmrep"] == 2


def test_wat_truncated_json_record_is_counted_not_fatal(sample_web, sample_files):
    half = (len(sample_web.site.pages) + 1) // 2
    rows, counts = _read(read_wat, sample_files.wat[1])
    assert counts["wat_bad_json"] == 1
    assert _image_pairs(rows) == expected_pairs(sample_web, sample_web.site.pages[half:], srcset_largest=False)


def test_wat_json_nested_too_deeply_is_a_bad_record_not_a_lost_file():
    counts = Counter()
    payload = b'{"IMG@": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert parse_wat_record({"WARC-Type": "metadata"}, payload, counts) == (None, [])
    assert counts["wat_bad_json"] == 1


def test_wat_corrupt_gzip_member_keeps_the_good_records_before_it(sample_web, sample_files):
    rows, counts = _read(read_wat, sample_files.broken_wat[0])
    assert counts["bad_gzip_member"] == 1
    assert _image_pairs(rows) == expected_pairs(sample_web, sample_web.site.pages[:2], srcset_largest=False)


def test_reader_resynchronises_after_a_corrupt_member():
    def member(text):
        body = text.encode()
        return gzip.compress(b"WARC/1.0\r\nWARC-Type: metadata\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                             + b"\r\n\r\n")

    bad = member("lost")
    data = member('{"a": 1}') + bad[:12] + b"\x00garbage\xff" * 5 + member('{"b": 2}')
    counts = Counter()
    payloads = [p for _h, p in iter_records(io.BytesIO(data), counts)]
    assert payloads == [b'{"a": 1}', b'{"b": 2}']
    assert counts["bad_gzip_member"] == 1


def test_warc_uses_a_real_html_parser_srcset_largest_and_base(sample_web, sample_files):
    half = (len(sample_web.site.pages) + 1) // 2
    rows, counts = _read(read_warc, sample_files.warc[0])
    assert _image_pairs(rows) == expected_pairs(sample_web, sample_web.site.pages[:half], srcset_largest=True)
    assert counts["warc_html_pages"] == half + 1 and counts["warc_broken_html"] == 0   # + the tdm_meta_page fault
    assert counts["dropped_opt_out_tdmrep"] == 2


def test_warc_broken_html_is_counted_and_the_images_before_it_kept(sample_web, sample_files):
    rows, counts = _read(read_warc, sample_files.warc[1])
    assert counts["warc_broken_html"] == 1
    half = (len(sample_web.site.pages) + 1) // 2
    expected = expected_pairs(sample_web, sample_web.site.pages[half:], srcset_largest=True)
    found = _image_pairs(rows)
    # Every pair found is a real image of the site with its own alt text: nothing invented from the
    # broken tail (which may cut a srcset short, leaving the small variant) ...
    for url, alt in found:
        image_id = int(url.rsplit("/", 1)[1][:5])
        assert alt == (sample_web.site.images[image_id].caption or "")
    # ... and the pages before the broken one are all there.
    intact = expected_pairs(sample_web, sample_web.site.pages[half:-1], srcset_largest=True)
    assert not (intact - found)
    assert sum(found.values()) < sum(expected.values())


def test_real_common_crawl_warc_record():
    rows, counts = _read(read_warc, os.path.join(CC, "whirlwind.warc.gz"))
    by_text = {r["text"]: r["url"] for r in rows}
    # HTML entity decoded; protocol-relative URL resolved; the 2x srcset candidate chosen.
    assert by_text["Escudo d'armas"] == ("https://upload.wikimedia.org/wikipedia/commons/thumb/0/0a/"
                                         "Escudo_de_Escopete_%28Guadalajara%29.svg/"
                                         "140px-Escudo_de_Escopete_%28Guadalajara%29.svg.png")
    assert "https://an.wikipedia.org/static/images/icons/wikipedia.png" in {r["url"] for r in rows}  # site-relative
    assert all(r["page_url"] == "https://an.wikipedia.org/wiki/Escopete" for r in rows)
    assert counts["warc_html_pages"] == 1


def test_real_common_crawl_wat_without_links_is_read_cleanly():
    rows, counts = _read(read_wat, os.path.join(CC, "whirlwind.warc.wat.gz"))
    assert rows == []
    assert counts["wat_records"] == 2 and counts["wat_bad_json"] == 0


def test_srcset_largest_and_base_resolution():
    assert largest_srcset("a.jpg 1x, b.jpg 2x, c.jpg 1.5x") == "b.jpg"
    assert largest_srcset("small.jpg 160w, big.jpg 1200w, mid.jpg 600w") == "big.jpg"
    pairs, broken = page_images('<html><head><base href="https://cdn.example.org/m/"></head>'
                                '<body><IMG SRC="x/1.png" ALT="one &amp; two"><img src="../2.png"></body>',
                                "https://example.com/page/index.html")
    assert pairs == [("https://cdn.example.org/m/x/1.png", "one & two"), ("https://cdn.example.org/2.png", None)]
    assert not broken


def _table_rows(path, **columns):
    counts = Counter()
    return list(read_table(path, counts, **columns)), counts


def test_table_formats_and_configurable_columns(tmp_path):
    records = [{"link": "http://a.example/1.jpg", "caption": "first caption here"},
               {"link": "http://a.example/2.jpg", "caption": "second caption here"}]
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "t.parquet")
    (tmp_path / "t.tsv").write_text("link\tcaption\n" + "".join(f"{r['link']}\t{r['caption']}\n" for r in records))
    (tmp_path / "t.jsonl").write_text(json.dumps(records[0]) + "\n{not json\n" + json.dumps(records[1]) + "\n")
    for name in ("t.parquet", "t.tsv", "t.jsonl"):
        rows, counts = _table_rows(str(tmp_path / name), url_col="link", caption_col="caption")
        assert [(r["url"], r["text"]) for r in rows] == [(r["link"], r["caption"]) for r in records]
        assert all(r["source"] == "table" for r in rows)
    counts = _table_rows(str(tmp_path / "t.jsonl"), url_col="link", caption_col="caption")[1]
    assert counts["table_bad_rows"] == counts["table_bad_rows_malformed"] == 1
    with pytest.raises(UserError, match="no column"):
        _table_rows(str(tmp_path / "t.parquet"))


def test_rows_of_every_source_encode_as_utf8_lone_surrogates_replaced():
    # a WAT record, a JSONL table or an API answer can carry "\\ud800" escapes; Beam's coder cannot encode them
    row = {"url": "http://a.example/\ud800.jpg", "text": "caf\u00e9 \udfff ok", "page_url": None, "source": "wat"}
    assert valid_row(row) == {"url": "http://a.example/\ufffd.jpg", "text": "caf\u00e9 \ufffd ok", "page_url": None,
                              "source": "wat"}


def _wat_member(payload: bytes) -> bytes:
    head = (b"WARC/1.0\r\nWARC-Type: metadata\r\nWARC-Target-URI: http://page.example/\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload))
    return gzip.compress(head + payload + b"\r\n\r\n")


def test_wat_rows_are_valid_utf8_a_lone_surrogate_escape_replaced_a_paired_one_kept():
    links = [{"path": "IMG@/src", "url": "/a.jpg", "alt": "caf\u00e9 PLACEHOLDER_LONE ok"},
             {"path": "IMG@/src", "url": "/b.jpg", "alt": "smile PLACEHOLDER_PAIR"}]
    envelope = {"Envelope": {"WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Target-URI": "http://page.example/"},
                             "Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": {"Links": links}}}}}
    payload = (json.dumps(envelope).replace("PLACEHOLDER_LONE", "\\ud800").replace("PLACEHOLDER_PAIR", "\\ud83d\\ude00")
               .encode())
    rows = list(read_wat(io.BytesIO(_wat_member(payload)), "x.wat.gz", Counter()))
    assert [row["text"] for row in rows] == ["caf\u00e9 \ufffd ok", "smile \U0001f600"]
    "".join(value for row in rows for value in row.values() if isinstance(value, str)).encode("utf-8")   # no raise


def test_resolve_shortcut_joins_exactly_as_urljoin():
    """The absolute-path shortcut must give urljoin's answer for every reference it takes."""
    import itertools
    import random
    from urllib.parse import urljoin

    from wit_pipeline.candidates.sources.wat import origin, resolve

    rng = random.Random(3)
    pieces = ["/", "a", "img", ".", "..", "", "x.jpg", ";p=1", "?q=1", "?", "#f", "#", "//", "%20", "é", "\t", " ",
              ":", "@", "\\", "~u", "&amp;"]
    bases = ["https://Example.com/dir/page.html", "http://h:8080", "HTTPS://h/a/b/", "https://user@h/p?x#y",
             "https://h/a/./b/../c", "https://[::1]/x", "ftp://h/x", "page.html", "https://h\t/x"]
    refs = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 6))) for _ in range(3000)]
    refs += ["/" + r for r in refs] + ["/images/a.jpg", "/a/b/c.png?w=200&h=100", "/a;b/c;d"]
    for base, ref in itertools.product(bases, refs):
        try:
            expected = urljoin(base, ref.strip())
        except ValueError:
            expected = ref.strip()
        if ref.strip().startswith(("http://", "https://", "data:")):
            expected = ref.strip()
        assert resolve(base, ref, origin(base)) == expected, (base, ref)
