"""Reading a shard directory back: listing, statistics, verification, contact sheet, brace URLs.

Library functions behind ``wit shards ls|stats|verify|show|urls``; they read
only what ``wit download`` wrote (``NNNNN.tar``, ``NNNNN.parquet``,
``manifest.json``), so they work on any copy of the directory.
"""

from __future__ import annotations

import base64
import html
import json
import tarfile
from collections import Counter
from dataclasses import dataclass

from .. import fileio
from ..errors import UserError
from ..shardset import HashingStream, iter_tar_keys, iter_tar_samples, read_manifest, shard_name
from .writer import list_shards, read_shard_meta, read_status

SIZE_BUCKETS = (0, 128, 200, 256, 384, 512, 768, 1024, 2048)
SAMPLE_MEMBERS = ("jpg", "txt", "json")     # what every sample of a download's tar holds


def _require_dir(out: str) -> list[int]:
    if not fileio.is_remote(out) and not fileio.exists(out):
        raise UserError(f"{out!r} does not exist")
    shards = list_shards(out)
    if not shards:
        raise UserError(f"{out!r} holds no shard status files (NNNNN.parquet): not a 'wit download' output")
    return shards


@dataclass
class ShardRow:
    shard: str
    rows: int
    samples: int
    bytes: int
    success_rate: float


def list_shard_rows(out: str) -> list[ShardRow]:
    result = []
    for shard_id in _require_dir(out):
        meta = read_shard_meta(fileio.join(out, f"{shard_name(shard_id)}.parquet")) or {}
        rows, samples = int(meta.get("rows", 0)), int(meta.get("samples", 0))
        result.append(ShardRow(f"{shard_name(shard_id)}.tar", rows, samples, int(meta.get("bytes", 0)),
                               samples / rows if rows else 0.0))
    return result


def status_table(out: str, columns: list[str] | None = None) -> dict[str, list]:
    """Every shard's status rows concatenated, as ``{column: values}``."""
    merged: dict[str, list] = {}
    for shard_id in _require_dir(out):
        table = read_status(fileio.join(out, f"{shard_name(shard_id)}.parquet"), columns=columns)
        for name in table.column_names:
            merged.setdefault(name, []).extend(table[name].to_pylist())
    return merged


def _bucket(side: int | None) -> str:
    if side is None:
        return "unknown"
    lower = max(b for b in SIZE_BUCKETS if b <= side)
    higher = [b for b in SIZE_BUCKETS if b > side]
    return f"{lower}-{higher[0] - 1}" if higher else f">={lower}"


def shard_stats(out: str, top: int = 10) -> dict:
    """Totals, failure reasons, a histogram of original shorter sides, top and bottom queries by samples."""
    table = status_table(out, ["status", "original_width", "original_height", "queries"])
    statuses = Counter(table["status"])
    rows = len(table["status"])
    sizes: Counter = Counter()
    queries: Counter = Counter()
    seen_queries: set[str] = set()
    for status, w, h, qs in zip(table["status"], table["original_width"], table["original_height"],
                                table["queries"], strict=True):
        for q in qs or ():
            seen_queries.add(q)
            if status == "success":
                queries[q] += 1
        if status == "success":
            sizes[_bucket(min(w, h) if w and h else None)] += 1
    ordered = sorted(((queries.get(q, 0), q) for q in seen_queries), key=lambda t: (-t[0], t[1]))
    bucket_order = [_bucket(b) for b in SIZE_BUCKETS] + ["unknown"]
    return {
        "rows": rows, "samples": statuses.get("success", 0),
        "success_rate": round(statuses.get("success", 0) / rows, 4) if rows else 0.0,
        "failures": dict(sorted(((k, v) for k, v in statuses.items() if k != "success"),
                                key=lambda kv: (-kv[1], kv[0]))),
        "shorter_side_histogram": {b: sizes[b] for b in bucket_order if sizes.get(b)},
        "queries": len(seen_queries),
        "top_queries": [[q, n] for n, q in ordered[:top]],
        "bottom_queries": [[q, n] for n, q in sorted(ordered, key=lambda t: (t[0], t[1]))[:top]],
    }


def verify(out: str) -> list[str]:
    """Every problem found, one line each naming the shard (and key); empty when all is consistent."""
    shards = _require_dir(out)
    manifest = read_manifest(out)
    listed = {entry["path"]: entry for entry in manifest.get("shards", [])} if manifest is not None else None
    problems = _manifest_problems(manifest, listed or {})
    tars = set(list_shards(out, "tar"))
    problems += [f"{shard_name(extra)}.tar: no status parquet beside it" for extra in sorted(tars - set(shards))]
    for shard_id in shards:
        problems += _shard_problems(out, shard_id, shard_id in tars, listed)
    written = {f"{shard_name(s)}.tar" for s in shards}
    problems += [f"{path}: listed in manifest.json but has no status parquet"
                 for path in sorted(set(listed or {}) - written)]
    return problems


def _manifest_problems(manifest: dict | None, listed: dict[str, dict]) -> list[str]:
    if manifest is None:
        return ["manifest.json: missing"]
    if manifest.get("total_samples") != sum(e.get("samples", 0) for e in listed.values()):
        return ["manifest.json: total_samples is not the sum of its shards' samples"]
    return []


def _shard_problems(out: str, shard_id: int, has_tar: bool, listed: dict[str, dict] | None) -> list[str]:
    """One shard's tar against its status parquet (``listed``: the manifest's rows, None without a manifest)."""
    name = shard_name(shard_id)
    tar_name = f"{name}.tar"
    table = read_status(fileio.join(out, f"{name}.parquet"), columns=["key", "status"])
    expected = [k for k, s in zip(table["key"].to_pylist(), table["status"].to_pylist(), strict=True)
                if s == "success"]
    if not has_tar:
        return [f"{tar_name}: missing"]
    try:
        found, incomplete, stream = _tar_contents(fileio.join(out, tar_name), tar_name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        return [f"{tar_name}: does not open as a tar ({exc})"]
    problems = incomplete + _key_problems(tar_name, f"{name}.parquet", expected, found)
    if listed is not None:
        problems += _entry_problems(tar_name, listed.get(tar_name), len(found), stream)
    return problems


def _tar_contents(path: str, name: str) -> tuple[list[str], list[str], HashingStream]:
    """The tar's keys in order, a line for each sample that lacks a member, and the stream that hashed it."""
    found, incomplete = [], []
    with fileio.open_read(path, decompress=False) as handle:
        stream = HashingStream(handle)
        for key, extensions in iter_tar_keys(stream):
            found.append(key)
            missing = set(SAMPLE_MEMBERS) - extensions
            if missing:
                incomplete.append(f"{name}: key {key} lacks .{', .'.join(sorted(missing))}")
        stream.drain()
    return found, incomplete, stream


def _key_problems(tar_name: str, status_name: str, expected: list[str], found: list[str]) -> list[str]:
    problems = [f"{tar_name}: key {key} is a success in {status_name} but not in the tar"
                for key in sorted(set(expected) - set(found))]
    problems += [f"{tar_name}: key {key} is in the tar but not a success in {status_name}"
                 for key in sorted(set(found) - set(expected))]
    twice = sorted(k for k, n in Counter(found).items() if n > 1)
    if twice:
        problems.append(f"{tar_name}: key {twice[0]} appears more than once")
    return problems


def _entry_problems(tar_name: str, entry: dict | None, samples: int, stream: HashingStream) -> list[str]:
    if entry is None:
        return [f"{tar_name}: not listed in manifest.json"]
    problems = []
    if entry.get("samples") != samples:
        problems.append(f"{tar_name}: manifest says {entry.get('samples')} samples, tar has {samples}")
    if entry.get("bytes") != stream.size:
        problems.append(f"{tar_name}: manifest says {entry.get('bytes')} bytes, tar has {stream.size}")
    if entry.get("sha256") != stream.sha256:
        problems.append(f"{tar_name}: sha256 differs from manifest.json")
    return problems


def brace_urls(out: str) -> tuple[str, int]:
    """The shard pattern webdataset and OpenCLIP take (``DIR/{00000..00041}.tar``) and the sample count."""
    shards = _require_dir(out)
    manifest = read_manifest(out)
    samples = manifest["total_samples"] if manifest else sum(r.samples for r in list_shard_rows(out))
    base = out.rstrip("/")
    names = [shard_name(s) for s in shards]
    if len(names) == 1:
        return f"{base}/{names[0]}.tar", samples
    if shards == list(range(shards[0], shards[-1] + 1)):
        return f"{base}/{{{names[0]}..{names[-1]}}}.tar", samples
    return "::".join(f"{base}/{n}.tar" for n in names), samples


def contact_sheet_html(out: str, n: int = 100) -> str:
    """An HTML page of the first ``n`` samples: thumbnail, caption, matched queries, sizes, url."""
    cards, shown = [], 0
    for shard_id in _require_dir(out):
        if shown >= n:
            break
        tar = fileio.join(out, f"{shard_name(shard_id)}.tar")
        if not fileio.exists(tar):
            continue
        for key, members in iter_tar_samples(tar):
            meta = json.loads(members.get("json", b"{}") or b"{}")
            caption = members.get("txt", b"").decode("utf-8", "replace")
            queries = meta.get("queries") or []
            image = base64.b64encode(members.get("jpg", b"")).decode()
            cards.append(
                f'<figure><img src="data:image/jpeg;base64,{image}" alt="{html.escape(caption)}">'
                f"<figcaption><b>{html.escape(key)}</b> {html.escape(caption)}"
                + (f'<br><span class="q">{html.escape(", ".join(map(str, queries)))}</span>' if queries else "")
                + f'<br><span class="m">{meta.get("original_width")}x{meta.get("original_height")} &rarr; '
                f'{meta.get("width")}x{meta.get("height")} &middot; '
                f'<a href="{html.escape(str(meta.get("url", "")))}">source</a></span></figcaption></figure>')
            shown += 1
            if shown >= n:
                break
    stats = shard_stats(out)
    failures = ", ".join(f"{k} {v}" for k, v in stats["failures"].items()) or "none"
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>wit shards: " + html.escape(out)
            + "</title><style>body{font-family:sans-serif;margin:1em}"
            "figure{display:inline-block;width:200px;margin:6px;vertical-align:top;font-size:12px}"
            "img{width:200px;height:200px;object-fit:contain;background:#eee}.q{color:#06c}.m{color:#777}"
            "</style></head><body>"
            f"<h1>{html.escape(out)}</h1><p>{stats['samples']} samples from {stats['rows']} rows "
            f"({stats['success_rate']:.1%}); failures: {html.escape(failures)}. Showing {shown}.</p>"
            + "".join(cards) + "</body></html>\n")


def write_contact_sheet(out: str, path: str, n: int = 100) -> str:
    fileio.write_text_atomic(path, contact_sheet_html(out, n))
    return path

