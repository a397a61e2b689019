"""Reading a shard directory back: listing, statistics, verification, contact sheet, brace URLs.

Library functions behind ``wit shards ls|stats|verify|show|urls``. A shard is ``NNNNN.tar`` with, when the
tool that wrote it keeps them, a status parquet ``NNNNN.parquet`` and a ``NNNNN_stats.json``; each function
reads whatever a shard has, best source first (``shard_counts``):

- ``wit download``'s output: the status parquets (their ``wit_shard`` record), ``manifest.json``,
  ``sizes.json`` and the per-shard stats;
- img2dataset's output: status parquets without our record or a ``queries`` column, per-shard stats, no
  manifest: rows and samples come from the parquet's ``status`` column;
- tars alone (other tools): samples counted from the tars (rows = samples), or taken from a per-shard
  stats file when there is one.

They exist to inspect damage, so damage is reported, not raised: a status parquet
that does not read, a ``manifest.json``, ``sizes.json`` or ``NNNNN_stats.json`` that is not what its name
says, a tar that is cut short or not a tar, a ``.json`` member that is not a JSON object each become a
line naming the file (``verify``'s problems, ``stats``' ``unreadable``, the
contact sheet's notes), and the rest of the directory is still read.
"""

from __future__ import annotations

import base64
import html
import json
import os
import tarfile
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from .. import fileio
from ..errors import UserError
from ..schemas import REFUSAL_REASONS
from ..shardset import (
    HashingStream,
    iter_tar_keys,
    iter_tar_samples,
    read_manifest,
    read_shard_stats,
    read_sizes,
    shard_name,
    shard_stats_name,
)
from .writer import list_shards, read_shard_meta, read_status

SIZE_BUCKETS = (0, 128, 200, 256, 384, 512, 768, 1024, 2048)
IMAGE_MEMBERS = ("jpg", "jpeg", "png", "webp")     # the image of a sample, for the contact sheet


def shard_ids(out: str) -> list[int]:
    """Every shard of ``out``: ids with a status parquet or a tar (``NNNNN.parquet``, ``NNNNN.tar``)."""
    if not fileio.is_remote(out) and not fileio.exists(out):
        raise UserError(f"{out!r} does not exist")
    ids = sorted(set(list_shards(out)) | set(list_shards(out, "tar")))
    if not ids:
        raise UserError(f"{out!r} holds no shards (NNNNN.tar or NNNNN.parquet files)")
    return ids


@dataclass
class ShardRow:
    shard: str
    rows: int
    samples: int
    bytes: int
    success_rate: float
    problem: str | None = None     # why the counts are unknown (an unreadable status parquet, a damaged tar)


def _file_size(path: str) -> int:
    if not fileio.is_remote(path):
        return os.path.getsize(path) if os.path.isfile(path) else 0
    from apache_beam.io.filesystems import FileSystems

    found = FileSystems.match([path])[0].metadata_list
    return found[0].size_in_bytes if found else 0


def _row(tar_name: str, rows: int, samples: int, size: int, problem: str | None = None) -> ShardRow:
    return ShardRow(tar_name, rows, samples, size, samples / rows if rows else 0.0, problem)


def _stats_file(out: str, tar_name: str) -> tuple[dict | None, str | None]:
    """A tar's per-shard stats file, or ``None`` and the line that says why it does not read."""
    try:
        return read_shard_stats(out, tar_name), None
    except UserError as exc:
        return None, str(exc)


def count_tar_samples(path: str) -> int:
    """Samples in a tar (distinct keys), read as a stream; a damaged tar raises ``DamagedShard``."""
    return len({key for key, _ in iter_tar_keys(path)})


def shard_counts(out: str, shard_id: int, has_parquet: bool) -> ShardRow:
    """One shard's rows, samples and bytes from the best source it has: our status parquet's record, a
    foreign status parquet's ``status`` column, its ``NNNNN_stats.json``, or its tar."""
    name = shard_name(shard_id)
    tar_name = f"{name}.tar"
    if has_parquet:
        meta = read_shard_meta(fileio.join(out, f"{name}.parquet"))
        if meta:
            return _row(tar_name, int(meta.get("rows", 0)), int(meta.get("samples", 0)), int(meta.get("bytes", 0)))
        table, problem = read_status_checked(out, shard_id, ["status"])
        if table is None:
            return _row(tar_name, 0, 0, 0, problem)
        statuses = table["status"].to_pylist() if "status" in table.column_names else []
        return _row(tar_name, len(statuses), statuses.count("success"), _file_size(fileio.join(out, tar_name)))
    tar = fileio.join(out, tar_name)
    stats, _ = _stats_file(out, tar_name)
    if stats is not None:
        return _row(tar_name, stats["count"], stats["successes"], _file_size(tar))
    try:
        samples = count_tar_samples(tar)
    except (tarfile.TarError, OSError, EOFError) as exc:      # DamagedShard is a TarError
        return _row(tar_name, 0, 0, 0, f"{tar_name}: damaged ({type(exc).__name__}: {exc})"[:300])
    return _row(tar_name, samples, samples, _file_size(tar))      # an unreadable stats file: the tar counts


def list_shard_rows(out: str) -> list[ShardRow]:
    ids, parquets = shard_ids(out), set(list_shards(out))
    return [shard_counts(out, shard_id, shard_id in parquets) for shard_id in ids]


def read_status_checked(out: str, shard_id: int, columns: list[str] | None = None
                        ) -> tuple[pa.Table | None, str | None]:
    """A shard's status table (of the ``columns`` it has), or ``None`` and the line that says why it does
    not read."""
    status_name = f"{shard_name(shard_id)}.parquet"
    path = fileio.join(out, status_name)
    try:
        if columns is not None:
            with fileio.open_read(path, decompress=False) as handle:
                present = set(pq.read_schema(handle).names)
            columns = [c for c in columns if c in present]
        return read_status(path, columns=columns), None
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return None, f"{status_name}: not a readable status parquet ({reason})"


def status_table(out: str, columns: list[str]) -> tuple[dict[str, list], list[str]]:
    """Every shard's status rows concatenated, as ``{column: values}`` (a column a shard lacks is ``None``
    in its rows), and a line for each file that does not read. A shard without a status parquet gives
    ``success`` rows for its samples and, from its ``NNNNN_stats.json``, rows for its failures."""
    merged: dict[str, list] = {name: [] for name in columns}
    unreadable = []
    parquets = set(list_shards(out))
    for shard_id in shard_ids(out):
        if shard_id in parquets:
            table, problem = read_status_checked(out, shard_id, columns)
            if table is None:
                unreadable.append(problem)
                continue
            values = {name: table[name].to_pylist() if name in table.column_names else [None] * table.num_rows
                      for name in columns}
        else:
            values, problem = _rows_without_parquet(out, shard_id, columns)
            if problem:
                unreadable.append(problem)
        for name in columns:
            merged[name].extend(values[name])
    return merged, unreadable


def _rows_without_parquet(out: str, shard_id: int, columns: list[str]) -> tuple[dict[str, list], str | None]:
    counts = shard_counts(out, shard_id, has_parquet=False)
    stats, _ = _stats_file(out, counts.shard)
    failures = {k: v for k, v in (stats or {}).get("status_dict", {}).items()
                if k != "success" and isinstance(v, int)}
    statuses = ["success"] * counts.samples + [k for k, n in sorted(failures.items()) for _ in range(n)]
    return {name: statuses if name == "status" else [None] * len(statuses) for name in columns}, counts.problem


def _bucket(side: int | None) -> str:
    if side is None:
        return "unknown"
    lower = max(b for b in SIZE_BUCKETS if b <= side)
    higher = [b for b in SIZE_BUCKETS if b > side]
    return f"{lower}-{higher[0] - 1}" if higher else f">={lower}"


def shard_stats(out: str, top: int = 10) -> dict:
    """Totals, failure reasons, a histogram of original shorter sides, top and bottom queries by samples;
    ``opt_outs``: the rows each opt-out signal and the blocklist refused (every ``REFUSAL_REASONS`` name,
    zeros too, so an audit sees which were counted; they are among ``failures`` as well);
    ``unreadable``: a line for each file left out because it does not read."""
    table, unreadable = status_table(out, ["status", "original_width", "original_height", "queries"])
    statuses = Counter(table["status"])
    rows = len(table["status"])
    sizes: Counter = Counter()
    queries: Counter = Counter()
    seen_queries: set[str] = set()
    for status, w, h, qs in zip(table["status"], table["original_width"], table["original_height"],
                                table["queries"], strict=True):
        for q in qs if isinstance(qs, list) else ():
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
        "failures": dict(sorted(((str(k), v) for k, v in statuses.items() if k != "success"),
                                key=lambda kv: (-kv[1], kv[0]))),
        "opt_outs": {reason: statuses.get(reason, 0) for reason in REFUSAL_REASONS},
        "shorter_side_histogram": {b: sizes[b] for b in bucket_order if sizes.get(b)},
        "queries": len(seen_queries),
        "top_queries": [[q, n] for n, q in ordered[:top]],
        "bottom_queries": [[q, n] for n, q in sorted(ordered, key=lambda t: (t[0], t[1]))[:top]],
        "unreadable": unreadable,
    }


def verify(out: str) -> list[str]:
    """Every problem found, one line each naming the shard (and key); empty when all is consistent.

    Each tar is checked whole and against what describes it: its status parquet, its manifest row and
    ``members``, ``sizes.json`` and its ``NNNNN_stats.json``, each when the directory has it. A missing
    manifest is a problem only in ``wit download``'s output (a status parquet with our record)."""
    ids = shard_ids(out)
    parquets, tars = set(list_shards(out)), set(list_shards(out, "tar"))
    manifest, unreadable = read_manifest_checked(out)
    ours = manifest is not None or any(read_shard_meta(fileio.join(out, f"{shard_name(s)}.parquet"))
                                       for s in parquets)
    listed = _listed_shards(manifest) if manifest is not None else None
    problems = [unreadable] if unreadable else (_manifest_problems(manifest, listed or {}) if ours else [])
    members = manifest.get("members") if manifest is not None else None
    members = tuple(members) if isinstance(members, list) else ()
    if parquets:
        problems += [f"{shard_name(extra)}.tar: no status parquet beside it" for extra in sorted(tars - parquets)]
    samples: dict[str, int] = {}
    for shard_id in ids:
        if shard_id in parquets or not parquets:
            problems += _shard_problems(out, shard_id, shard_id in tars, shard_id in parquets, listed, members,
                                        samples)
    written = {f"{shard_name(s)}.tar" for s in ids}
    problems += [f"{path}: listed in manifest.json but has no status parquet"
                 for path in sorted(set(listed or {}) - written)]
    return problems + _sizes_problems(out, samples) + _stats_problems(out, samples)


def _sizes_problems(out: str, samples: dict[str, int]) -> list[str]:
    """``sizes.json`` against the tars' sample counts (``samples``: the tars that read whole)."""
    try:
        sizes = read_sizes(out)
    except UserError as exc:
        return [str(exc)]
    if sizes is None:
        return []
    problems = [f"sizes.json: {name} has {n} samples, sizes.json says {sizes.get(name)}"
                for name, n in sorted(samples.items()) if name in sizes and sizes[name] != n]
    problems += [f"sizes.json: lists {name}, which is not a tar here"
                 for name in sorted(set(sizes) - set(list_tar_names(out)))]
    problems += [f"sizes.json: does not list {name}" for name in sorted(set(samples) - set(sizes))]
    return problems


def _stats_problems(out: str, samples: dict[str, int]) -> list[str]:
    problems = []
    for name, n in sorted(samples.items()):
        stats, problem = _stats_file(out, name)
        if problem:
            problems.append(problem)
        elif stats is not None and stats["successes"] != n:
            problems.append(f"{shard_stats_name(name)}: says {stats['successes']} successes, {name} has {n} samples")
    return problems


def list_tar_names(out: str) -> list[str]:
    return [f"{shard_name(s)}.tar" for s in list_shards(out, "tar")]


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


def _shard_problems(out: str, shard_id: int, has_tar: bool, has_parquet: bool, listed: dict[str, dict] | None,
                    members: tuple[str, ...], samples: dict[str, int]) -> list[str]:
    """One shard's tar against its status parquet (when it has one) and manifest row (``listed``: the
    manifest's rows, None without a manifest); ``members``: what every sample must hold (the manifest's).
    The samples of a tar that reads whole go in ``samples``."""
    name = shard_name(shard_id)
    tar_name = f"{name}.tar"
    expected = None
    if has_parquet:
        table, problem = read_status_checked(out, shard_id, ["key", "status"])
        if table is None:
            return [problem]
        if not {"key", "status"} <= set(table.column_names):
            return [f"{name}.parquet: a status parquet without key and status columns"]
        expected = [k for k, s in zip(table["key"].to_pylist(), table["status"].to_pylist(), strict=True)
                    if s == "success"]
    if not has_tar:
        return [f"{tar_name}: missing"]
    try:
        found, incomplete, stream = _tar_contents(fileio.join(out, tar_name), tar_name, members)
    except (tarfile.TarError, OSError, EOFError) as exc:
        return [f"{tar_name}: does not open as a tar ({exc})"]
    samples[tar_name] = len(set(found))
    problems = incomplete + _key_problems(tar_name, f"{name}.parquet", expected, found)
    if listed is not None:
        problems += _entry_problems(tar_name, listed.get(tar_name), len(found), stream)
    return problems


def _tar_contents(path: str, name: str, members: tuple[str, ...]) -> tuple[list[str], list[str], HashingStream]:
    """The tar's keys in order, a line for each sample that lacks one of ``members`` or whose ``.json`` is
    not a JSON object, and the stream that hashed it."""
    found, incomplete = [], []
    with fileio.open_read(path, decompress=False) as handle:
        stream = HashingStream(handle)
        for key, sample in iter_tar_samples(stream):
            found.append(key)
            missing = set(members) - set(sample)
            if missing:
                incomplete.append(f"{name}: key {key} lacks .{', .'.join(sorted(missing))}")
            if "json" in sample and sample_meta(sample["json"]) is None:
                incomplete.append(f"{name}: key {key}: its .json is not a JSON object")
        stream.drain()
    return found, incomplete, stream


def _key_problems(tar_name: str, status_name: str, expected: list[str] | None, found: list[str]) -> list[str]:
    """The tar's keys against the successes of its status parquet (``expected``; None: it has none)."""
    problems = []
    if expected is not None:
        problems += [f"{tar_name}: key {key} is a success in {status_name} but not in the tar"
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
    shards = shard_ids(out)
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
    image = base64.b64encode(next((members[e] for e in IMAGE_MEMBERS if e in members), b"")).decode()
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
    for shard_id in shard_ids(out):
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

