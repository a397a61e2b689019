import os
from itertools import pairwise

import pytest

from queries import wikidump
from queries.wikidump import iter_pages, iter_range_pages, parse_page, plan_ranges, scan_pages
from tests.queries.dumps import page_xml, write_multistream, write_plain
from wit_pipeline.errors import UserError


def _pages(n: int) -> list[str]:
    # Varied sizes so that range boundaries fall inside pages, between them and inside tags.
    return [page_xml(f"Page {i}", f"Text of page {i}. " + "word " * (i * 7 % 53), page_id=i) for i in range(n)]


def test_namespace_and_redirect_are_reported(tmp_path):
    path = write_plain(str(tmp_path / "d.xml"), [
        page_xml("Circle", "A circle."),
        page_xml("Talk:Circle", "chat", ns=1, page_id=2),
        page_xml("Round", "#REDIRECT [[Circle]]", redirect="Circle", page_id=3),
    ])
    pages = list(iter_pages(path))
    assert [(p.title, p.ns, p.redirect) for p in pages] == [
        ("Circle", 0, False), ("Talk:Circle", 1, False), ("Round", 0, True)]
    assert pages[0].text == "A circle."


def test_last_revision_text_and_old_redirect_syntax():
    page = parse_page(b"<page><title>X</title><ns>0</ns><revision><text>old</text></revision>"
                      b"<revision><text>#redirect [[Y]]</text></revision></page>")
    assert page.text == "#redirect [[Y]]" and page.redirect


@pytest.mark.parametrize("range_bytes", [97, 500, 1777])
def test_plain_ranges_read_every_page_exactly_once(tmp_path, range_bytes):
    path = write_plain(str(tmp_path / "d.xml"), _pages(60))
    whole = [p.title for p in iter_pages(path)]
    assert whole == [f"Page {i}" for i in range(60)]
    split = [p.title for r in plan_ranges(path, os.path.getsize(path), range_bytes) for p in iter_range_pages(r)]
    assert split == whole


@pytest.mark.parametrize("range_bytes", [50, 333, 2000])
def test_multistream_ranges_read_every_page_exactly_once(tmp_path, range_bytes):
    path = str(tmp_path / "d.xml.bz2")
    write_multistream(path, _pages(60), per_stream=3)
    whole = [p.title for p in iter_pages(path)]
    assert whole == [f"Page {i}" for i in range(60)]
    ranges = plan_ranges(path, os.path.getsize(path), range_bytes)
    assert len(ranges) > 1
    assert [p.title for r in ranges for p in iter_range_pages(r)] == whole


def test_pages_split_across_bz2_streams_are_read_once(tmp_path):
    # A bz2 made by a parallel compressor cuts streams anywhere, even inside a page.
    import bz2

    text = (open(write_plain(str(tmp_path / "p.xml"), _pages(20)), "rb").read())
    cuts = [0, 301, 302, 950, 2222, len(text)]
    data = b"".join(bz2.compress(text[a:b]) for a, b in pairwise(cuts))
    path = tmp_path / "cut.xml.bz2"
    path.write_bytes(data)
    for range_bytes in (40, 200, 10_000):
        ranges = plan_ranges(str(path), len(data), range_bytes)
        assert [p.title for r in ranges for p in iter_range_pages(r)] == [f"Page {i}" for i in range(20)]


def test_truncated_xml_names_file_and_byte(tmp_path):
    path = write_plain(str(tmp_path / "d.xml"), _pages(5))
    data = open(path, "rb").read()
    page4 = data.index(b"<page>", data.index(b"Page 3"))
    (tmp_path / "t.xml").write_bytes(data[:page4 + 40])  # the file ends inside page 4
    with pytest.raises(UserError, match=r"t\.xml: truncated XML: the page starting at byte %d never ends" % page4):
        list(iter_pages(str(tmp_path / "t.xml")))
    # Cut exactly between pages: every page is whole, but </mediawiki> is missing.
    between = data.index(b"  <page>", data.index(b"Page 3"))
    (tmp_path / "t2.xml").write_bytes(data[:between])
    with pytest.raises(UserError,
                       match=r"t2\.xml: truncated XML: the file ends at byte %d without </mediawiki>" % between):
        list(iter_pages(str(tmp_path / "t2.xml")))


def test_corrupt_and_truncated_bz2_name_the_stream(tmp_path):
    path = str(tmp_path / "d.xml.bz2")
    offsets = write_multistream(path, _pages(12), per_stream=3)
    data = bytearray(open(path, "rb").read())
    middle = (offsets[2] + offsets[3]) // 2
    data[middle:middle + 8] = b"\x00" * 8
    (tmp_path / "bad.xml.bz2").write_bytes(bytes(data))
    with pytest.raises(UserError,
                       match=r"bad\.xml\.bz2: corrupt bz2 data in the stream starting at byte %d" % offsets[2]):
        list(iter_pages(str(tmp_path / "bad.xml.bz2")))
    (tmp_path / "short.xml.bz2").write_bytes(open(path, "rb").read()[: offsets[3] - 10])
    with pytest.raises(UserError, match=r"short\.xml\.bz2: truncated bz2 stream starting at byte %d" % offsets[2]):
        list(iter_pages(str(tmp_path / "short.xml.bz2")))


def test_malformed_and_undecodable_pages_are_skipped_and_reported(tmp_path):
    good = page_xml("Good", "fine text")
    malformed = "  <page>\n    <title>A & B</title>\n    <ns>0</ns>\n  </page>\n"
    path = tmp_path / "d.xml"
    path.write_bytes((HEADER_BYTES + good.encode() + malformed.encode()
                      + page_xml("Bad bytes", "x").encode().replace(b"x</text>", b"\xff\xfe</text>")
                      + page_xml("Also good", "more").encode() + b"</mediawiki>\n"))
    skipped = []
    titles = [p.title for p in iter_pages(str(path), on_skip=lambda reason, detail: skipped.append((reason, detail)))]
    assert titles == ["Good", "Also good"]
    assert [reason for reason, _ in skipped] == ["malformed", "undecodable"]
    assert all(str(path) in detail and "byte" in detail for _, detail in skipped)


@pytest.mark.parametrize("chunk_size", [7, 1000])
def test_a_page_too_large_is_skipped_without_being_held(tmp_path, monkeypatch, chunk_size):
    monkeypatch.setattr(wikidump, "MAX_PAGE_BYTES", 2000)
    pages = [page_xml("Before", "fine"), page_xml("Huge", "word " * 5000), page_xml("After", "fine too")]
    data = open(write_plain(str(tmp_path / "d.xml"), pages), "rb").read()
    chunks = [(data[i:i + chunk_size], True) for i in range(0, len(data), chunk_size)]
    scanner = wikidump._PageScanner(iter(chunks), path="d.xml", first_range=True, where=str)
    found, largest_window = [], 0
    for offset, page in scanner.pages():
        found.append((offset, page if page is None else page[:20]))
        largest_window = max(largest_window, len(scanner.buf))
    assert [offset for offset, _ in found] == [i for i in range(len(data)) if data.startswith(b"<page>", i)]
    assert [page is None for _, page in found] == [False, True, False]
    assert largest_window < 2000 + 2 * chunk_size
    skipped = []
    titles = [p.title for p in iter_pages(str(tmp_path / "d.xml"), on_skip=lambda reason, _: skipped.append(reason))]
    assert titles == ["Before", "After"] and skipped == ["too_large"]


def test_not_a_dump_is_an_error(tmp_path):
    path = tmp_path / "notes.xml"
    path.write_text("just some text, no pages\n")
    with pytest.raises(UserError, match="not a MediaWiki XML export"):
        list(iter_pages(str(path)))
    fake = tmp_path / "fake.xml.bz2"
    fake.write_bytes(b"plain bytes, not bz2")
    with pytest.raises(UserError, match=r"fake\.xml\.bz2: not a bz2 file"):
        list(iter_pages(str(fake)))
    empty = tmp_path / "empty.xml.bz2"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="not a bz2 file"):
        list(iter_pages(str(empty)))


HEADER_BYTES = b'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">\n'


@pytest.mark.parametrize("chunk_size", [1, 5, 7, 64, 1 << 20])
def test_scanner_finds_the_same_pages_whatever_the_chunk_size(tmp_path, chunk_size):
    # Tags split across chunks (<pa|ge>, </mediawi|ki>) must still be found, and nothing else.
    data = open(write_plain(str(tmp_path / "d.xml"), _pages(6)), "rb").read()
    chunks = [(data[i:i + chunk_size], True) for i in range(0, len(data), chunk_size)]
    pages = list(scan_pages(iter(chunks), path="d.xml", first_range=True, where=lambda offset: f"byte {offset}"))
    starts = [i for i in range(len(data)) if data.startswith(b"<page>", i)]
    assert [offset for offset, _ in pages] == starts
    assert all(page.startswith(b"<page>") and page.endswith(b"</page>") for _, page in pages)


def test_scanner_stops_at_the_first_page_starting_in_bytes_it_does_not_own(tmp_path):
    data = open(write_plain(str(tmp_path / "d.xml"), _pages(6)), "rb").read()
    fourth = data.index(b"<page>", data.index(b"Page 2"))   # owned bytes end just before it
    chunks = [(data[:fourth - 3], True), (data[fourth - 3:], False)]
    pages = list(scan_pages(iter(chunks), path="d.xml", first_range=True, where=str))
    assert len(pages) == 3 and b"Page 2" in pages[-1][1]


SITEINFO = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" xml:lang="de">\n  <siteinfo>\n'
            '    <sitename>Wikipedia</sitename>\n    <namespaces>\n      <namespace key="0" case="first-letter" />\n'
            '      <namespace key="-2" case="first-letter">Medium</namespace>\n'
            '      <namespace key="1" case="first-letter">Diskussion</namespace>\n'
            '      <namespace key="6" case="first-letter">Datei</namespace>\n'
            '      <namespace key="14" case="first-letter">Kategorie</namespace>\n    </namespaces>\n  </siteinfo>\n')
DE_SITE = {-2: "Medium", 1: "Diskussion", 6: "Datei", 14: "Kategorie"}


def _write_gz(path: str, text: str) -> str:
    import gzip

    with gzip.open(path, "wb") as handle:
        handle.write(text.encode("utf-8"))
    return path


def _bz2_streams(parts: list[str]) -> bytes:
    import bz2

    return b"".join(bz2.compress(part.encode("utf-8")) for part in parts)


def test_every_range_reads_the_namespace_names_of_its_file_header(tmp_path):
    body = "".join(_pages(30)) + "</mediawiki>\n"
    plain = tmp_path / "d.xml"
    plain.write_text(SITEINFO + body, encoding="utf-8")
    multistream = tmp_path / "d.xml.bz2"   # Wikimedia's layout: the header is a stream of its own
    multistream.write_bytes(_bz2_streams([SITEINFO, *_pages(30), "</mediawiki>\n"]))
    gz = _write_gz(str(tmp_path / "d.xml.gz"), SITEINFO + body)
    for path in (str(plain), str(multistream), gz):
        ranges = plan_ranges(path, os.path.getsize(path), 300)
        assert len(ranges) > 1 or path == gz
        assert [wikidump.read_site_namespaces(r) for r in ranges] == [DE_SITE] * len(ranges)


def test_a_header_without_namespaces_or_siteinfo_has_no_names(tmp_path):
    bare = write_plain(str(tmp_path / "bare.xml"), _pages(2))   # <siteinfo> without <namespaces>
    none = tmp_path / "none.xml"
    none.write_bytes(HEADER_BYTES + "".join(_pages(2)).encode() + b"</mediawiki>\n")
    late = tmp_path / "late.xml"   # a <siteinfo> after the first page is no header
    late.write_text(HEADER_BYTES.decode() + _pages(1)[0] + SITEINFO.split("\n", 1)[1] + "</mediawiki>\n")
    for path in (bare, str(none), str(late)):
        assert wikidump.read_site_namespaces(plan_ranges(path, os.path.getsize(path))[0]) == {}


def test_a_malformed_siteinfo_falls_back_to_the_canonical_names(tmp_path, caplog):
    path = tmp_path / "d.xml"
    path.write_text(SITEINFO.replace("</namespaces>", "</namespaces") + "".join(_pages(2)) + "</mediawiki>\n")
    assert wikidump.read_site_namespaces(plan_ranges(str(path), os.path.getsize(path))[0]) == {}
    assert "not well-formed" in caplog.text
    assert [p.title for p in iter_pages(str(path))] == ["Page 0", "Page 1"]


def test_a_page_without_ns_is_namespaced_by_the_dump_names_too(tmp_path):
    pages = ["  <page><title>Diskussion:Katze</title><revision><text>x</text></revision></page>\n",
             "  <page><title>Talk:Katze</title><revision><text>x</text></revision></page>\n",
             "  <page><title>Katze: Ein Tier</title><revision><text>x</text></revision></page>\n"]
    path = tmp_path / "old.xml"
    path.write_text(SITEINFO + "".join(pages) + "</mediawiki>\n", encoding="utf-8")
    assert [(p.title, p.ns) for p in iter_pages(str(path))] == [
        ("Diskussion:Katze", -1), ("Talk:Katze", -1), ("Katze: Ein Tier", 0)]
