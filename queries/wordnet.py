"""WordNet databases: Princeton's ``wndb`` format (``data.noun``, ``data.verb``, ``data.adj``, ``data.adv``)
and the Open Multilingual Wordnet's tab-separated files (``wn-data-LANG.tab``, ``iter_omw_lemmas``).

Read directly, line by line: nltk's reader insists on a ``lexnames`` file that
Debian's ``wordnet-base`` does not ship. A data line (wndb(5WN)) is::

    synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id ...] p_cnt [ptr ...] ... | gloss

``w_cnt`` is two hex digits; words use ``_`` for spaces; adjectives may carry a
syntactic marker ``(a)``, ``(p)`` or ``(ip)``. Lines starting with two spaces are
the licence header. ``synset_offset`` is the byte offset of the line in its
file; a mismatch means the file was altered (e.g. line endings converted) and
is counted. A line longer than ``MAX_LINE_BYTES`` is malformed: skipped unread
(the offsets after it are then not checked).

An OMW file has a ``#`` header line and one line per fact, ``offset-pos<TAB>type<TAB>value``; the
lines whose type is ``lemma`` or ``LANG:lemma`` name a lemma of that synset (``def`` and ``exe``
lines, definitions and examples, are not lemmas and are passed over). Such a file is given as
``--wordnet LANG=PATH``; ``wordnet_files`` tells the two kinds apart (a directory is wndb).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterator

from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.tables import bounded_lines

DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
_ADJECTIVE_MARKER = re.compile(r"\((?:a|p|ip)\)$")
MAX_LINE_BYTES = 1 << 20   # WordNet 3.0's longest data line is under 16 KB


@dataclass(frozen=True)
class Synset:
    offset: int
    pos: str
    lemmas: tuple[str, ...]   # with spaces, markers removed, as written (case kept)
    offset_ok: bool           # the offset field equals the line's byte offset


def parse_data_line(line: str, byte_offset: int | None = None) -> Synset:
    """One non-header data line -> Synset; ValueError if it does not follow wndb(5WN)."""
    fields = line.split(" ")
    offset = int(fields[0])
    pos = fields[2]
    if pos not in ("n", "v", "a", "s", "r"):
        raise ValueError(f"unknown ss_type {pos!r}")
    count = int(fields[3], 16)
    if count < 1 or len(fields) < 4 + 2 * count:
        raise ValueError("word count does not match the line")
    lemmas = tuple(_ADJECTIVE_MARKER.sub("", fields[4 + 2 * i]).replace("_", " ") for i in range(count))
    return Synset(offset=offset, pos=pos, lemmas=lemmas, offset_ok=byte_offset is None or byte_offset == offset)


def data_files(directory: str) -> list[str]:
    """The data.* files of a wndb directory; UserError when there are none."""
    found = [fileio.join(directory, name) for name in DATA_FILES if fileio.exists(fileio.join(directory, name))]
    if not found:
        raise UserError(f"--wordnet {directory!r} has none of {', '.join(DATA_FILES)} (a WordNet 'dict' directory, "
                        f"e.g. /usr/share/wordnet from Debian's wordnet-base)")
    return found


_OMW_SYNSET = re.compile(r"^\d{1,10}-[nvasr]$")


def wordnet_files(lang: str, path: str) -> list[str]:
    """The files of one ``--wordnet`` value: a wndb directory's data.* files, or one OMW ``.tab`` file."""
    if fileio.is_remote(path) or not os.path.isdir(path):
        if fileio.exists(path):
            return [path]
        if lang != "en":
            raise UserError(f"--wordnet {lang}={path}: no such file (an Open Multilingual Wordnet "
                            f"wn-data-LANG.tab file, or a wndb directory)")
    return data_files(path)


def parse_omw_line(line: str) -> tuple[str, str] | None | str:
    """One OMW line -> ``(synset, lemma)``; None for a line that is not a lemma (header, def, exe, blank);
    an error message for a line of another shape."""
    if not line.strip() or line.startswith("#"):
        return None
    fields = line.split("\t")
    if len(fields) < 3 or not _OMW_SYNSET.match(fields[0]):
        return "not offset-pos<TAB>type<TAB>value"
    kind = fields[1].rsplit(":", 1)[-1]
    if kind != "lemma":
        return None
    lemma = fields[2].strip()
    return (fields[0], lemma) if lemma else "an empty lemma"


def iter_omw_lemmas(path: str) -> Iterator[tuple[str, str] | str]:
    """``(synset, lemma)`` of every lemma line of one OMW file; a malformed line yields a message naming it."""
    with fileio.open_read(path) as handle:
        for number, raw in enumerate(bounded_lines(handle, MAX_LINE_BYTES), start=1):
            if raw is None:
                yield f"{os.path.basename(path)}:{number}: a line longer than {MAX_LINE_BYTES} bytes"
                continue
            parsed = parse_omw_line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
            if isinstance(parsed, str):
                yield f"{os.path.basename(path)}:{number}: {parsed}"
            elif parsed is not None:
                yield parsed


def iter_synsets(path: str) -> Iterator[Synset | str]:
    """Every synset of one data file; a malformed line yields an error string naming file and byte."""
    position: int | None = 0   # None once an over-long line was skipped: its length is unknown
    with fileio.open_read(path) as handle:
        for raw in bounded_lines(handle, MAX_LINE_BYTES):
            line_offset = position
            if raw is None:
                position = None
                at = "" if line_offset is None else f" at byte {line_offset}"
                yield f"{os.path.basename(path)}: a line longer than {MAX_LINE_BYTES} bytes{at}"
                continue
            position = None if position is None else position + len(raw)
            if raw.startswith(b"  ") or not raw.strip():
                continue
            try:
                yield parse_data_line(raw.decode("utf-8", errors="replace").rstrip("\r\n"), line_offset)
            except (ValueError, IndexError) as exc:   # the message may quote the line: printable and short
                detail = str(exc).encode("ascii", "backslashreplace").decode("ascii")
                yield f"{os.path.basename(path)}: byte {line_offset}: {detail[:100]}"
