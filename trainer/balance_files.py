"""The files of balancing in the loader: the query counts it reads, caches and the epoch records it writes.

Counts (``QueryCounts``) come from one of two places:

- ``--balance-counts FILE``: ``wit select``'s ``query_counts.parquet`` (``schemas.QUERY_COUNTS_SCHEMA``), its
  ``matched`` column: the query's matches in the whole candidate pool, which is the ``count_q`` of MetaCLIP's
  rule (``kept`` and ``selected`` already carry select's own cap, so they would cap twice). Per-sample query
  sets are then unknown: the run's length is estimated from the shard set's size and the share of matches
  the cap keeps (``balance.kept_fraction_of_matches``).
- otherwise one pass over the shards' ``.json`` members (``queries``), cached in
  ``OUT/balance/query_counts.json`` under the digest of the shard list (each shard's path with its manifest
  row's size and sha256, or a local file's size and modification time), so a changed shard set is counted
  again. The pass also keeps how many samples share each query set, which gives the exact expected number
  of kept samples per epoch.

``OUT/balance/epoch-NNNN.json``: ``balance.EpochTally.record``, written atomically by rank 0.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass

from wit_pipeline import fileio
from wit_pipeline.errors import UserError

from .balance import expected_kept, kept_fraction_of_matches, sample_metadata, sample_queries
from .data import ShardSet, read_json_members

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True)
class QueryCounts:
    counts: dict[str, int]                          # {query: matches}
    source: str                                     # the counts file, or "shards"
    digest: str                                     # sha256 of the counts (part of the resume signature)
    combos: dict[tuple[str, ...], int] | None = None   # {sorted queries: samples}, from a pass over the shards
    samples: int | None = None                      # samples the pass read

    def expected_kept(self, cap: int, epoch_samples: int | None) -> float | None:
        """Samples one epoch keeps, expected (exactly from ``combos``, else an estimate); None when unknown."""
        if self.combos is not None:
            return expected_kept(self.combos, self.counts, cap)
        if epoch_samples is None:
            return None
        return epoch_samples * kept_fraction_of_matches(self.counts, cap)


def balance_dir(out: str) -> str:
    return os.path.join(out, "balance")


def epoch_record_path(out: str, epoch: int) -> str:
    return os.path.join(balance_dir(out), f"epoch-{epoch:04d}.json")


def write_epoch_record(out: str, record: dict) -> str:
    path = epoch_record_path(out, record["epoch"])
    os.makedirs(balance_dir(out), exist_ok=True)
    fileio.write_json_atomic(path, record)
    return path


def _counts_digest(counts: dict[str, int]) -> str:
    return hashlib.sha256(json.dumps(counts, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def read_counts_file(path: str) -> QueryCounts:
    """``{query: matched}`` from ``wit select``'s ``query_counts.parquet`` (a query string listed for several
    languages counts their matches together: samples list their queries by string); a ``UserError`` for a file that is
    missing, lacks the columns, or has a count that is not a whole number >= 0."""
    from wit_pipeline.tables import iter_table_rows

    if not fileio.exists(path):
        raise UserError(f"--balance-counts {path!r} does not exist")
    counts: dict[str, int] = {}
    try:
        rows = iter_table_rows(path, columns=["query", "matched"], required=["query", "matched"], strict=True)
        for number, row in enumerate(rows, 1):
            matched = row["matched"]
            if not isinstance(row["query"], str) or isinstance(matched, bool) or not isinstance(matched, int) \
                    or matched < 0:
                raise UserError(f"--balance-counts {path}: row {number}: 'query' must be a string and 'matched' a "
                                f"whole number >= 0 (got {row['query']!r}, {matched!r})")
            counts[row["query"]] = counts.get(row["query"], 0) + matched
    except UserError as exc:
        message = str(exc)
        raise UserError(message if message.startswith("--balance-counts") else f"--balance-counts: {message}") \
            from None
    return QueryCounts(counts, path, _counts_digest(counts))


def shard_list_digest(shards: ShardSet) -> str:
    """sha256 of the shard list: each path with its manifest row's size and sha256, else a local file's size
    and modification time (a remote shard without a row: its path alone)."""
    lines = []
    for url in shards.urls:
        digest = shards.digests.get(url)
        if digest is not None:
            lines.append(f"{url}\t{digest.bytes}\t{digest.sha256}")
        elif "://" not in url and not url.startswith("pipe:") and os.path.isfile(url):
            stat = os.stat(url)
            lines.append(f"{url}\t{stat.st_size}\t{stat.st_mtime_ns}")
        else:
            lines.append(url)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def count_shard_queries(urls: list[str], allow_private_networks: bool = False) -> QueryCounts:
    """One pass over the shards' ``.json`` members: per-query matches and samples per query set. A sample whose
    json is not an object or whose ``queries`` is not a list of strings is counted without queries (training
    skips it as ``bad_json``)."""
    combos: Counter = Counter()
    for sample in read_json_members(urls, allow_private_networks):
        metadata = sample_metadata(sample)
        try:
            queries = sample_queries(metadata) if metadata is not None else None
        except ValueError:
            queries = None
        combos[tuple(queries or ())] += 1
    counts: Counter = Counter()
    for queries, samples in combos.items():
        for query in queries:
            counts[query] += samples
    counts_dict = dict(sorted(counts.items()))
    return QueryCounts(counts_dict, "shards", _counts_digest(counts_dict), dict(combos), sum(combos.values()))


def _cache_path(out: str) -> str:
    return os.path.join(balance_dir(out), "query_counts.json")


def _read_cache(out: str, shards_sha256: str) -> QueryCounts | None:
    path = _cache_path(out)
    try:
        with open(path, encoding="utf-8") as handle:
            cached = json.load(handle)
        if cached.get("version") != CACHE_VERSION or cached.get("shards_sha256") != shards_sha256:
            return None
        counts = {str(q): int(n) for q, n in cached["counts"].items()}
        combos = {tuple(queries): int(n) for queries, n in cached["combos"]}
        return QueryCounts(counts, "shards", _counts_digest(counts), combos, int(cached["samples"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:   # a damaged cache is counted again
        log.warning("ignoring %s (%s: %s); counting the queries again", path, type(exc).__name__, exc)
        return None


def shard_query_counts(out: str, shards: ShardSet, rank: int, allow_private_networks: bool = False) -> QueryCounts:
    """The shards' query counts: from the cache in ``OUT`` when it is for this shard list, else counted (and
    cached by rank 0). Every rank reads or counts for itself: no collective."""
    shards_sha256 = shard_list_digest(shards)
    cached = _read_cache(out, shards_sha256)
    if cached is not None:
        return cached
    counted = count_shard_queries(shards.urls, allow_private_networks)
    if rank == 0:
        os.makedirs(balance_dir(out), exist_ok=True)
        fileio.write_json_atomic(_cache_path(out), {
            "version": CACHE_VERSION, "shards_sha256": shards_sha256, "samples": counted.samples,
            "counts": counted.counts, "combos": sorted([list(q), n] for q, n in (counted.combos or {}).items())})
        log.info("counted the queries of %d samples in %d shards: %d queries", counted.samples, len(shards.urls),
                 len(counted.counts))
    return counted


def epoch_steps(epochs: int, per_epoch: float, global_batch: int) -> int:
    """The schedule's length for ``epochs`` epochs of ``per_epoch`` samples (expected) each."""
    return max(1, math.ceil(epochs * per_epoch / global_batch))
