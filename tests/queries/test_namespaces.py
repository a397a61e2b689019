"""A dump in another language links files and categories by its wiki's own namespace names (``Datei``,
``ファイル``, ``分类``); a query build drops those links with their captions, in every read range."""

import bz2
import json

import pandas as pd
import pytest

from queries.namespaces import CANONICAL_LINK_NAMES, dropped_link_names
from queries.pipeline import QueryOptions, run_queries
from tests.queries.dumps import FOOTER, page_xml
from wit_pipeline.cli import main


def siteinfo_header(names: dict[int, str] | None, lang: str) -> str:
    """A dump's opening, with ``<siteinfo><namespaces>`` listing ``names`` (none at all when None)."""
    opening = f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="{lang}">\n'
    if names is None:
        return opening
    listed = "".join(f'      <namespace key="{key}" case="first-letter">{name}</namespace>\n'
                     for key, name in sorted(names.items()))
    return (opening + f"  <siteinfo>\n    <sitename>Wikipedia</sitename>\n    <dbname>{lang}wiki</dbname>\n"
            f'    <namespaces>\n      <namespace key="0" case="first-letter" />\n{listed}    </namespaces>\n'
            "  </siteinfo>\n")


DE_NAMES = {-2: "Medium", 1: "Diskussion", 6: "Datei", 10: "Vorlage", 14: "Kategorie"}
JA_NAMES = {-2: "メディア", 1: "ノート", 6: "ファイル", 10: "Template", 14: "Category"}
ZH_NAMES = {-2: "Media", 1: "Talk", 6: "File", 10: "Template", 14: "Category"}   # as zhwiki's dumps say
EO_NAMES = {-2: "Aŭdvidaĵo", 1: "Diskuto", 6: "Dosiero", 10: "Ŝablono", 14: "Kategorio"}   # in no built-in table


def build(tmp_path, lang: str, header: str, pages: list[str], *extra: str) -> set[str]:
    dump = tmp_path / f"{lang}wiki.xml"
    dump.write_text(header + "".join(pages) + FOOTER, encoding="utf-8")
    out = tmp_path / "out"
    code = main(["queries", "build", "--wikipedia", f"{lang}={dump}", "--min-count", "1", "--out", str(out), *extra])
    assert code == 0
    return set(pd.read_parquet(out / "queries.parquet")["query"])


def test_a_german_dump_drops_its_file_and_category_links_with_their_captions(tmp_path):
    text = ("Die Katze schläft im Garten. [[Datei:Foo.jpg|mini|Ein Bild]] [[Kategorie:Tiere]]\n"
            "Der [[Hund]] bellt. [[Bild:Zebra.png|links|Zebrastreifen]] [[Medium:Laut.ogg|Tonaufnahme]]")
    queries = build(tmp_path, "de", siteinfo_header(DE_NAMES, "de"), [page_xml("Katze", text)])
    assert {"katze", "schläft", "garten", "hund", "bellt"} <= queries
    assert not queries & {"foo", "jpg", "mini", "ein", "bild", "kategorie", "tiere", "zebra", "png", "links",
                          "zebrastreifen", "medium", "laut", "tonaufnahme"}


def test_a_japanese_dump_drops_its_file_links_with_their_captions(tmp_path):
    text = "公園で猫を見ました。[[ファイル:Foo.jpg|サムネイル|桜の写真]][[画像:Bar.png|左|富士山]][[カテゴリ:動物]]"
    queries = build(tmp_path, "ja", siteinfo_header(JA_NAMES, "ja"), [page_xml("猫", text)])
    assert {"公園", "猫"} <= queries
    assert not queries & {"foo", "jpg", "サムネイル", "桜", "写真", "bar", "左", "富士", "富士山", "動物"}


def test_a_chinese_dump_drops_links_by_the_aliases_its_siteinfo_does_not_list(tmp_path):
    text = "今天我们在动物园看到了熊猫。[[文件:Foo.jpg|缩略图|老虎的照片]][[分类:动物]][[File:Bar.png|thumb|长城]]"
    queries = build(tmp_path, "zh", siteinfo_header(ZH_NAMES, "zh"), [page_xml("熊猫", text)])
    assert "熊猫" in queries
    assert not queries & {"foo", "jpg", "缩略图", "老虎", "照片", "分类", "bar", "thumb", "长城"}


def test_the_dump_siteinfo_names_are_dropped_in_every_read_range(tmp_path):
    # Esperanto is in no built-in table: only the siteinfo can say "Dosiero" is the file namespace.
    pages = [page_xml(f"Paĝo {i}", f"La kato dormas. [[Dosiero:Bildo{i}.jpg|eta|Kaŝita priskribo]] "
                      f"[[Kategorio:Bestoj]] " + "vorto " * 40, page_id=i + 1) for i in range(40)]
    data = (siteinfo_header(EO_NAMES, "eo") + "".join(pages) + FOOTER).encode("utf-8")
    dump = tmp_path / "eowiki.xml"
    dump.write_bytes(data)
    out = tmp_path / "out"
    options = QueryOptions(wikipedia=[f"eo={dump}"], out=str(out), min_count=1, range_bytes=len(data) // 7)
    stats = run_queries(options)
    queries = set(pd.read_parquet(out / "queries.parquet")["query"])
    assert stats["inputs"]["wikipedia_read_ranges"] >= 7 and stats["inputs"]["pages_counted"] == 40
    assert {"kato", "dormas", "vorto"} <= queries
    assert not queries & {"kaŝita", "priskribo", "eta", "bestoj", "kategorio", "dosiero"}


def test_a_dump_without_siteinfo_drops_the_canonical_names_and_keeps_unknown_prefixes(tmp_path):
    text = "La kato dormas. [[File:Foo.jpg|thumb|Kaŝita]] [[Category:Bestoj]] [[Dosiero:Bar.jpg|eta|Videbla]]"
    queries = build(tmp_path, "eo", siteinfo_header(None, "eo"), [page_xml("Kato", text)])
    assert {"kato", "dormas", "videbla"} <= queries   # MediaWiki shows [[Dosiero:...]] as a link here
    assert not queries & {"foo", "thumb", "kaŝita", "bestoj"}


def test_pages_in_localised_namespaces_are_not_counted(tmp_path):
    pages = [page_xml("Katze", "Die Katze schläft."),
             page_xml("Diskussion:Katze", "Streit Streit Streit", ns=1, page_id=2),
             page_xml("Datei:Foo.jpg", "Bildbeschreibung", ns=6, page_id=3),
             page_xml("Kategorie:Tiere", "Sammelseite", ns=14, page_id=4)]
    queries = build(tmp_path, "de", siteinfo_header(DE_NAMES, "de"), pages)
    assert queries == {"die", "katze", "schläft"}
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["inputs"]["pages_skipped"] == {"namespace": 3}


def test_a_multistream_dump_reads_its_header_stream_for_every_range(tmp_path):
    header = siteinfo_header(EO_NAMES, "eo")
    pages = [page_xml(f"Paĝo {i}", f"Hundo kuras. [[Kategorio:Kaŝitaj {i}]]", page_id=i + 1) for i in range(12)]
    blobs = [bz2.compress(part.encode("utf-8")) for part in (header, *["".join(pages[i:i + 3]) for i in (0, 3, 6, 9)],
                                                            FOOTER)]
    dump = tmp_path / "eowiki.xml.bz2"
    dump.write_bytes(b"".join(blobs))
    out = tmp_path / "out"
    stats = run_queries(QueryOptions(wikipedia=[f"eo={dump}"], out=str(out), min_count=1, range_bytes=len(blobs[1])))
    assert stats["inputs"]["wikipedia_read_ranges"] > 3 and stats["inputs"]["pages_counted"] == 12
    assert set(pd.read_parquet(out / "queries.parquet")["query"]) >= {"hundo", "kuras"}
    assert "kaŝitaj" not in set(pd.read_parquet(out / "queries.parquet")["query"])


@pytest.mark.parametrize("names", [{-2: "Media", 6: "File", 14: "Category"}, {}])
def test_english_drops_exactly_the_canonical_names(names):
    assert dropped_link_names(names, "en") is CANONICAL_LINK_NAMES


def test_dropped_names_join_the_siteinfo_the_language_table_and_the_canonical_ones():
    names = dropped_link_names({6: "Dosiero", 14: "Kategorio", 1: "Diskuto"}, "eo")
    assert names == CANONICAL_LINK_NAMES | {"dosiero", "kategorio"}
    assert {"datei", "bild", "kategorie", "medium"} <= dropped_link_names({}, "de")
