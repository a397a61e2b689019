"""Readers for eval sets (ImageFolder, WebDataset tars, CSV / JSONL lists) and for WebDataset shards.

Every reader yields ``EvalExample``s with a stable ``eval_id``:

- ImageFolder (``ROOT/class/xxx.jpg``): the path relative to ROOT with ``/``
  separators (``circle/00012.jpg``), the id the trainer's zero-shot eval
  writes into predictions.jsonl; the label is the first folder.
- WebDataset tars (one ``.tar``, a glob, or a folder of ``.tar`` files): the
  sample key (``000123``); ``TARNAME/key`` if two tars share a key. Text from
  ``.txt``, label from ``.cls`` or the ``.json``'s ``label``.
- CSV / TSV / JSONL: one row per example. The image path is the first of the
  columns ``image``, ``image_path``, ``path``, ``file``, ``filepath``,
  ``filename`` (relative paths are relative to the list's folder); text is
  ``text``, ``caption`` or ``title``; label ``label``, ``class`` or ``cls``; the
  id is ``eval_id`` or ``id`` if present, else the image path as written. A row
  without an image is a text-only example.

Unreadable files never stop a reader: the example comes with ``error`` set.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import tarfile
from dataclasses import dataclass
from typing import Iterator

from wit_pipeline import fileio
from wit_pipeline.errors import UserError
from wit_pipeline.shardset import iter_tar_samples, read_manifest

from .signatures import IMAGE_EXTENSIONS

IMAGE_COLUMNS = ("image", "image_path", "path", "file", "filepath", "filename")
TEXT_COLUMNS = ("text", "caption", "title")
LABEL_COLUMNS = ("label", "class", "cls")
ID_COLUMNS = ("eval_id", "id")


@dataclass
class EvalExample:
    eval_id: str
    image: bytes | None = None        # the image bytes (None: text-only, or unreadable)
    text: str | None = None
    label: str | None = None
    source: str | None = None         # the file the image came from (an image, or a tar)
    member: str | None = None         # the sample key inside ``source`` when it is a tar
    error: str | None = None          # why the image could not be read


# --------------------------------------------------------------------------- WebDataset tars


def image_member(members: dict[str, bytes]) -> tuple[str, bytes] | None:
    """The sample's image member ``(extension, bytes)``, trying the usual extensions in order."""
    for extension in IMAGE_EXTENSIONS:
        if extension in members:
            return extension, members[extension]
    return None


def text_member(members: dict[str, bytes], meta: dict | None = None) -> str | None:
    if "txt" in members:
        return members["txt"].decode("utf-8", errors="replace")
    if meta and isinstance(meta.get("caption"), str):
        return meta["caption"]
    return None


def json_member(members: dict[str, bytes]) -> dict:
    if "json" not in members:
        return {}
    try:
        value = json.loads(members["json"].decode("utf-8", errors="replace"))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def list_tars(spec: str) -> list[str]:
    """A ``.tar`` file, a glob, or a folder's top-level ``*.tar`` files (a ``manifest.json`` there wins)."""
    if (not fileio.is_remote(spec) and os.path.isdir(spec)) or (fileio.is_remote(spec) and spec.endswith("/")):
        manifest = read_manifest(spec)
        if manifest is not None:
            try:
                paths = [fileio.join(spec, s["path"]) for s in manifest.get("shards", [])]
            except (KeyError, TypeError) as exc:
                raise UserError(f"{fileio.join(spec, 'manifest.json')}: not a shard manifest "
                                f"({exc.__class__.__name__})") from exc
            if paths:
                return paths
        return sorted(fileio.expand(fileio.join(spec, "*.tar"), what="shards"))
    found = [p for p in fileio.expand(spec, what="shards") if p.endswith((".tar", ".tar.gz", ".tgz"))]
    if not found:
        raise UserError(f"{spec!r} matches no .tar files")
    return sorted(found)


# --------------------------------------------------------------------------- eval sets


def detect_format(path: str) -> str:
    """``imagefolder``, ``webdataset``, ``csv`` or ``jsonl`` for an eval set path."""
    lowered = path.lower()
    if lowered.endswith((".csv", ".tsv")):
        return "csv"
    if lowered.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if lowered.endswith((".tar", ".tar.gz", ".tgz")) or any(c in path for c in "*?["):
        return "webdataset"
    if not fileio.is_remote(path) and os.path.isdir(path):
        names = os.listdir(path)
        if any(n.endswith(".tar") for n in names) and not any(os.path.isdir(os.path.join(path, n)) for n in names):
            return "webdataset"
        return "imagefolder"
    if fileio.is_remote(path):
        return "webdataset"
    raise UserError(f"eval set {path!r} is not a folder, .tar, .csv or .jsonl (or does not exist)")


def read_eval_set(path: str) -> Iterator[EvalExample]:
    """The examples of one eval set, in a deterministic order; an eval set with none (an empty list, a
    header alone, empty tars) is a ``UserError``: a scan against it would report a clean 0%."""
    kind = detect_format(path)
    if kind == "imagefolder":
        examples = _read_imagefolder(path)
    elif kind == "webdataset":
        examples = _read_webdataset(path)
    elif kind == "csv":
        examples = _read_rows(path, _csv_rows(path))
    else:
        examples = _read_rows(path, jsonl_rows(path))
    empty = True
    for example in examples:
        empty = False
        yield example
    if empty:
        raise UserError(f"eval set {path!r} has no examples (an empty {kind} list or set); "
                        "give a file or folder with at least one image or text")


def _read_file(path: str) -> tuple[bytes | None, str | None]:
    try:
        return fileio.read_bytes(path), None
    except Exception as exc:  # missing, permission, a directory: counted, never fatal
        return None, f"{exc.__class__.__name__}: {exc}".splitlines()[0][:200]


def _read_imagefolder(root: str) -> Iterator[EvalExample]:
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if name.startswith(".") or name.rsplit(".", 1)[-1].lower() not in IMAGE_EXTENSIONS:
                continue
            files.append(os.path.join(folder, name))
    if not files:
        raise UserError(f"eval set {root!r} has no image files (ImageFolder layout: ROOT/class/xxx.jpg)")
    for full in sorted(files):
        rel = os.path.relpath(full, root).replace(os.sep, "/")
        label = rel.split("/", 1)[0] if "/" in rel else None
        data, error = _read_file(full)
        yield EvalExample(eval_id=rel, image=data, label=label, source=full, error=error)


def _read_webdataset(spec: str) -> Iterator[EvalExample]:
    seen: set[str] = set()
    for tar in list_tars(spec):
        stem = posixpath.basename(tar).split(".", 1)[0]
        try:
            for key, members in iter_tar_samples(tar):
                eval_id = key if key not in seen else f"{stem}/{key}"
                seen.add(eval_id)
                meta = json_member(members)
                image = image_member(members)
                label = members["cls"].decode("utf-8", errors="replace").strip() if "cls" in members else \
                    (str(meta["label"]) if "label" in meta else None)
                yield EvalExample(eval_id=eval_id, image=image[1] if image else None,
                                  text=text_member(members, meta), label=label, source=tar, member=key,
                                  error=None if image or "txt" in members else "no image member")
        except (tarfile.TarError, EOFError, OSError) as exc:
            yield EvalExample(eval_id=f"{stem}/<rest of tar>", source=tar,
                              error=f"unreadable tar: {exc.__class__.__name__}: {exc}"[:200])


def _pick(row: dict, names: tuple[str, ...]) -> str | None:
    lowered = {str(k).lower(): v for k, v in row.items() if k is not None}
    for name in names:
        value = lowered.get(name)
        if value not in (None, ""):
            return str(value)
    return None


def _csv_rows(path: str) -> Iterator[dict]:
    text = fileio.read_text(path)
    dialect = "excel-tab" if path.lower().endswith(".tsv") else "excel"
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    try:
        yield from reader
    except csv.Error as exc:     # a NUL byte, an unclosed quote, a field over csv's size limit
        raise UserError(f"{path}:{reader.line_num}: not readable CSV ({exc})") from None


def jsonl_rows(path: str) -> Iterator[dict]:
    """The object rows of a JSONL file (or of a JSON array); a line that is not UTF-8, not JSON or not an
    object is a ``UserError`` naming it."""
    text = fileio.read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array of rows
        for number, row in enumerate(fileio.parse_json(text, path, expect=list)):
            if not isinstance(row, dict):
                raise UserError(f"{path}: row {number} of the array is not a JSON object")
            yield row
        return
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield fileio.parse_json(line, path, line=number, expect=dict)


def _read_rows(path: str, rows: Iterator[dict]) -> Iterator[EvalExample]:
    base = fileio.join(posixpath.dirname(path) if fileio.is_remote(path) else os.path.dirname(path) or ".", "")
    for number, row in enumerate(rows, 1):
        image_path = _pick(row, IMAGE_COLUMNS)
        text = _pick(row, TEXT_COLUMNS)
        eval_id = _pick(row, ID_COLUMNS) or image_path or f"row{number}"
        example = EvalExample(eval_id=eval_id, text=text, label=_pick(row, LABEL_COLUMNS))
        if image_path:
            full = image_path if fileio.is_remote(image_path) or os.path.isabs(image_path) else \
                fileio.join(base, image_path)
            example.source = full
            example.image, example.error = _read_file(full)
        elif not text:
            example.error = "row has neither an image path nor a text"
        yield example
