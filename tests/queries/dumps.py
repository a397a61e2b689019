"""Helpers that write small MediaWiki exports, pageview dumps and wndb files for the tests."""

from __future__ import annotations

import bz2
import gzip
import os
from xml.sax.saxutils import escape

HEADER = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="en">\n'
          "  <siteinfo><sitename>Wikipedia</sitename></siteinfo>\n")
FOOTER = "</mediawiki>\n"


def page_xml(title: str, text: str, ns: int = 0, redirect: str | None = None, page_id: int = 1) -> str:
    redirect_xml = f'    <redirect title="{escape(redirect)}" />\n' if redirect else ""
    return (f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>\n"
            f"{redirect_xml}    <revision>\n      <id>{page_id + 100}</id>\n"
            f"      <text xml:space=\"preserve\">{escape(text)}</text>\n    </revision>\n  </page>\n")


def write_plain(path: str, pages: list[str]) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(HEADER + "".join(pages) + FOOTER)
    return path


def write_multistream(path: str, pages: list[str], per_stream: int = 2) -> list[int]:
    """Wikimedia's layout: header stream, streams of ``per_stream`` pages, footer stream; returns stream offsets."""
    parts = [HEADER] + ["".join(pages[i:i + per_stream]) for i in range(0, len(pages), per_stream)] + [FOOTER]
    blobs = [bz2.compress(part.encode("utf-8")) for part in parts]
    offsets, position = [], 0
    for blob in blobs:
        offsets.append(position)
        position += len(blob)
    with open(path, "wb") as handle:
        handle.write(b"".join(blobs))
    return offsets


def write_pageviews(path: str, lines: list[str]) -> str:
    with gzip.open(path, "wb") as handle:
        handle.write("".join(line + "\n" for line in lines).encode("utf-8"))
    return path


def write_wndb(directory: str, files: dict[str, list[str]]) -> None:
    """``files``: name -> synset lines written with ``{offset}`` filled by each line's byte offset."""
    os.makedirs(directory, exist_ok=True)
    header = "  1 test licence header line  \n  2 second line  \n"
    for name, lines in files.items():
        out, position = header, len(header)
        for line in lines:
            filled = line.format(offset=f"{position:08d}") + "\n"
            out += filled
            position += len(filled.encode("ascii"))
        with open(os.path.join(directory, name), "w", encoding="ascii", newline="") as handle:
            handle.write(out)
