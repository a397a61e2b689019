"""Reading a shard directory back: listing, statistics, verification, contact sheet, brace URLs.

Library functions behind ``wit shards ls|stats|verify|show|urls``; they read
only what ``wit download`` wrote (``NNNNN.tar``, ``NNNNN.parquet``,
``manifest.json``), so they work on any copy of the directory.

They exist to inspect damage, so damage is reported, not raised: a status parquet
that does not read, a ``manifest.json`` that is not a manifest, a tar that is cut
short or not a tar, a ``.json`` member that is not a JSON object each become a
line naming the file (``verify``'s problems, ``stats``' ``unreadable``, the
contact sheet's notes), and the rest of the directory is still read.
"""

from __future__ import annotations

import base64
import html
import json
import tarfile
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa

from .. import fileio
from ..errors import UserError
from ..shardset import HashingStream, iter_tar_samples, read_manifest, shard_name
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
    problem: str | None = None     # why the counts are unknown (an unreadable status parquet)


def list_shard_rows(out: str) -> list[ShardRow]:
    result = []
    for shard_id in _require_dir(out):
        status_name = f"{shard_name(shard_id)}.parquet"
        meta = read_shard_meta(fileio.join(out, status_name))
        problem = None if meta else f"{status_name}: no readable shard record (a damaged or foreign parquet)"
        meta = meta or {}
        rows, samples = int(meta.get("rows", 0)), int(meta.get("samples", 0))
        result.append(ShardRow(f"{shard_name(shard_id)}.tar", rows, samples, int(meta.get("bytes", 0)),
                               samples / rows if rows else 0.0, problem))
    return result


def read_status_checked(out: str, shard_id: int, columns: list[str] | None = None
                        ) -> tuple[pa.Table | None, str | None]:
    """A shard's status table, or ``None`` and the line that says why it does not read."""
    status_name = f"{shard_name(shard_id)}.parquet"
    try:
        return read_status(fileio.join(out, status_name), columns=columns), None
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return None, f"{status_name}: not a readable status parquet ({reason})"


def status_table(out: str, columns: list[str] | None = None) -> tuple[dict[str, list], list[str]]:
    """Every readable shard's status rows concatenated, as ``{column: values}``, and a line for each status
    parquet that does not read."""
    merged: dict[str, list] = {name: [] for name in columns or ()}
    unreadable = []
    for shard_id in _require_dir(out):
        table, problem = read_status_checked(out, shard_id, columns)
        if table is None:
            unreadable.append(problem)
            continue
        for name in table.column_names:
            merged.setdefault(name, []).extend(table[name].to_pylist())
    return merged, unreadable


def _bucket(side: int | None) -> str:
    if side is None:
        return "unknown"
    lower = max(b for b in SIZE_BUCKETS if b <= side)
    higher = [b for b in SIZE_BUCKETS if b > side]
    return f"{lower}-{higher[0] - 1}" if higher else f">={lower}"


def shard_stats(out: str, top: int = 10) -> dict:
    """Totals, failure reasons, a histogram of original shorter sides, top and bottom queries by samples;
    ``unreadable``: a line for each status parquet left out because it does not read."""
    table, unreadable = status_table(out, ["status", "original_width", "original_height", "queries"])
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
        "unreadable": unreadable,
    }


def verify(out: str) -> list[str]:
    """Every problem found, one line each naming the shard (and key); empty when all is consistent."""
    shards = _require_dir(out)
    manifest, unreadable = read_manifest_checked(out)
    listed = _listed_shards(manifest) if manifest is not None else None
    problems = [unreadable] if unreadable else _manifest_problems(manifest, listed or {})
    tars = set(list_shards(out, "tar"))
    problems += [f"{shard_name(extra)}.tar: no status parquet beside it" for extra in sorted(tars - set(shards))]
    for shard_id in shards:
        problems += _shard_problems(out, shard_id, shard_id in tars, listed)
    written = {f"{shard_name(s)}.tar" for s in shards}
    problems += [f"{path}: listed in manifest.json but has no status parquet"
                 for path in sorted(set(listed or {}) - written)]
    return problems


def read_manifest_checked(out: str) -> tuple[dict | None, str | None]:
    """``manifest.json``, or ``None`` and the line that says why it does not read (``None, None``: no manifest)."""
    try:
        return read_manifest(out), None
    except UserError as exc:
        return None, str(exc)


def _listed_shards(manifest: dict) -> dict[str, dict]:
    """The manifest's shard entries by path (entries that are not objects with a path are left out)."""
    entries = manifest.get("shards")
    return {e["path"]: e for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)} \
        if isinstance(entries, list) else {}


def _manifest_problems(manifest: dict | None, listed: dict[str, dict]) -> list[str]:
    if manifest is None:
        return ["manifest.json: missing"]
    counts = [e.get("samples", 0) for e in listed.values()]
    if not all(isinstance(n, int) for n in counts) or manifest.get("total_samples") != sum(counts):
        return ["manifest.json: total_samples is not the sum of its shards' samples"]
    return []


def _shard_problems(out: str, shard_id: int, has_tar: bool, listed: dict[str, dict] | None) -> list[str]:
    """One shard's tar against its status parquet (``listed``: the manifest's rows, None without a manifest)."""
    name = shard_name(shard_id)
    tar_name = f"{name}.tar"
    table, problem = read_status_checked(out, shard_id, ["key", "status"])
    if table is None:
        return [problem]
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
    """The tar's keys in order, a line for each sample that lacks a member or whose ``.json`` is not a JSON
    object, and the stream that hashed it."""
    found, incomplete = [], []
    with fileio.open_read(path, decompress=False) as handle:
        stream = HashingStream(handle)
        for key, members in iter_tar_samples(stream):
            found.append(key)
            missing = set(SAMPLE_MEMBERS) - set(members)
            if missing:
                incomplete.append(f"{name}: key {key} lacks .{', .'.join(sorted(missing))}")
            if "json" in members and sample_meta(members["json"]) is None:
                incomplete.append(f"{name}: key {key}: its .json is not a JSON object")
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
    manifest, _ = read_manifest_checked(out)      # a damaged one: count from the status parquets instead
    total = manifest.get("total_samples") if manifest else None
    samples = total if isinstance(total, int) else sum(r.samples for r in list_shard_rows(out))
    base = out.rstrip("/")
    names = [shard_name(s) for s in shards]
    if len(names) == 1:
        return f"{base}/{names[0]}.tar", samples
    if shards == list(range(shards[0], shards[-1] + 1)):
        return f"{base}/{{{names[0]}..{names[-1]}}}.tar", samples
    return "::".join(f"{base}/{n}.tar" for n in names), samples


def sample_meta(raw: bytes | None) -> dict | None:
    """A sample's ``.json`` member as a dict; ``{}`` when it has none, ``None`` when it is not a JSON object."""
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:      # not JSON, or not UTF-8
        return None
    return meta if isinstance(meta, dict) else None


def _card(key: str, members: dict[str, bytes], meta: dict) -> str:
    caption = members.get("txt", b"").decode("utf-8", "replace")
    queries = meta.get("queries") if isinstance(meta.get("queries"), list) else []
    image = base64.b64encode(members.get("jpg", b"")).decode()
    return (f'<figure><img src="data:image/jpeg;base64,{image}" alt="{html.escape(caption)}">'
            f"<figcaption><b>{html.escape(key)}</b> {html.escape(caption)}"
            + (f'<br><span class="q">{html.escape(", ".join(map(str, queries)))}</span>' if queries else "")
            + f'<br><span class="m">{html.escape(str(meta.get("original_width")))}x'
            f'{html.escape(str(meta.get("original_height")))} &rarr; {html.escape(str(meta.get("width")))}x'
            f'{html.escape(str(meta.get("height")))} &middot; '
            f'<a href="{html.escape(str(meta.get("url", "")))}">source</a></span></figcaption></figure>')


def _cards(out: str, n: int) -> tuple[list[str], list[str]]:
    """Cards of the first ``n`` samples, and a line for each damaged shard or unreadable ``.json`` member."""
    cards, problems = [], []
    for shard_id in _require_dir(out):
        if len(cards) >= n:
            break
        tar_name = f"{shard_name(shard_id)}.tar"
        tar = fileio.join(out, tar_name)
        if not fileio.exists(tar):
            continue
        try:
            for key, members in iter_tar_samples(tar):
                meta = sample_meta(members.get("json"))
                if meta is None:
                    problems.append(f"{tar_name}: key {key}: its .json is not a JSON object")
                cards.append(_card(key, members, meta or {}))
                if len(cards) >= n:
                    break
        except (tarfile.TarError, OSError, EOFError) as exc:      # DamagedShard is a TarError
            problems.append(f"{tar_name}: damaged, read up to the damage ({type(exc).__name__}: {exc})"[:300])
    return cards, problems


def contact_sheet(out: str, n: int = 100) -> tuple[str, list[str]]:
    """An HTML page of the first ``n`` samples (thumbnail, caption, matched queries, sizes, url), and the
    damage met on the way (also listed on the page)."""
    cards, problems = _cards(out, n)
    stats = shard_stats(out)
    problems += stats["unreadable"]
    failures = ", ".join(f"{k} {v}" for k, v in stats["failures"].items()) or "none"
    notes = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>wit shards: " + html.escape(out)
            + "</title><style>body{font-family:sans-serif;margin:1em}"
            "figure{display:inline-block;width:200px;margin:6px;vertical-align:top;font-size:12px}"
            "img{width:200px;height:200px;object-fit:contain;background:#eee}.q{color:#06c}.m{color:#777}"
            "</style></head><body>"
            f"<h1>{html.escape(out)}</h1><p>{stats['samples']} samples from {stats['rows']} rows "
            f"({stats['success_rate']:.1%}); failures: {html.escape(failures)}. Showing {len(cards)}.</p>"
            + (f"<p>{len(problems)} problem(s):</p><ul>{notes}</ul>" if problems else "")
            + "".join(cards) + "</body></html>\n")
    return page, problems


def write_contact_sheet(out: str, path: str, n: int = 100) -> list[str]:
    """Write the contact sheet to ``path``; returns the damage it lists (empty when none)."""
    page, problems = contact_sheet(out, n)
    fileio.write_text_atomic(path, page)
    return problems

