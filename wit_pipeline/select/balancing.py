"""The per-query cap: at most ``cap`` pairs per query, chosen so the result never depends on order or workers.

Two rules, both deterministic for a seed:

``top`` (default) — for each query, of the pairs that match it, keep the
``cap`` with the smallest *seeded rank* (64 bits of keyed BLAKE2b over the
pair's uid); a pair is selected when any of its queries keeps it. A query with
at most ``cap`` matches keeps them all. The rank of a pair does not depend on
where or when it is seen, and "the ``cap`` smallest" is a commutative,
associative combine, so input order and worker count cannot change the answer.
The job computes it as one number per query (``top_thresholds``: the
``cap``-th smallest rank), from (query id, rank) arrays gathered by a lifted
combine (``GatherIncidences``), so no per-pair element crosses a shuffle.
Each query keeps exactly ``min(count, cap)`` pairs through its own cap; it
can end up *listed* by more selected pairs than ``cap`` when pairs kept
through other queries also match it. With languages, ``cap`` is the query's
language's (``caps.py``).

``probabilistic`` (MetaCLIP) — with ``count_q`` the matches of query ``q``,
``p_q = cap / max(count_q, cap)`` and a pair is kept with probability
``1 - Π_q (1 - p_q)`` over its queries; the coin is the pair's seeded rank as
a uniform number in [0, 1), so it too is deterministic. There is no hard limit:
a head query keeps ``cap`` pairs *in expectation* from its own coin share, plus
those kept through tail queries; pairs matching several queries are favoured.
It needs only the per-query counts (one pass to count, one to decide), no
per-query sorting.
"""

from __future__ import annotations

import hashlib
import math

import apache_beam as beam
import numpy as np

BALANCES = ("top", "probabilistic")


def pair_rank(uid: str, seed: int = 0) -> int:
    """The pair's seeded 64-bit rank: smaller ranks are kept first."""
    key = seed.to_bytes(8, "little", signed=True)
    return int.from_bytes(hashlib.blake2b(uid.encode(), digest_size=8, key=key).digest(), "big")


def pair_ranks(uids: list[str], seed: int = 0) -> list[int]:
    """``pair_rank`` of each uid: the keyed hash state made once and copied per uid (~40% cheaper)."""
    keyed = hashlib.blake2b(digest_size=8, key=seed.to_bytes(8, "little", signed=True))
    ranks = []
    for uid in uids:
        state = keyed.copy()
        state.update(uid.encode())
        ranks.append(int.from_bytes(state.digest(), "big"))
    return ranks


def rank_unit(uid: str, seed: int = 0) -> float:
    """The rank as a uniform number in [0, 1)."""
    return pair_rank(uid, seed) / 2.0**64


def keep_probability(query_counts: list[int], cap: int) -> float:
    """MetaCLIP: 1 - Π (1 - p_q) with p_q = cap / max(count_q, cap)."""
    return keep_probability_each(query_counts, [cap] * len(query_counts))


def keep_probability_each(query_counts: list[int], caps: list[int]) -> float:
    """``keep_probability`` with a cap per query (its language's): p_q = cap_q / max(count_q, cap_q)."""
    log_miss = 0.0
    for count, cap in zip(query_counts, caps, strict=True):
        p = cap / max(count, cap)
        if p >= 1.0:
            return 1.0
        log_miss += math.log1p(-p)
    return 1.0 - math.exp(log_miss)


def keep_probabilistic(uid: str, query_counts: list[int], cap: int, seed: int = 0) -> bool:
    return rank_unit(uid, seed) < keep_probability(query_counts, cap)


def select_top(matches: dict[str, list[str]], cap: int, seed: int = 0) -> dict[str, list[str]]:
    """Pure reference of the ``top`` rule: {uid: its queries} -> {uid: the queries that kept it}."""
    by_query: dict[str, list[tuple[int, str]]] = {}
    for uid, queries in matches.items():
        for query in queries:
            by_query.setdefault(query, []).append((pair_rank(uid, seed), uid))
    kept: dict[str, list[str]] = {}
    for query, ranked in by_query.items():
        for _rank, uid in sorted(ranked)[:cap]:
            kept.setdefault(uid, []).append(query)
    return {uid: sorted(queries) for uid, queries in kept.items()}


NO_LIMIT = np.uint64(2**64 - 1)   # the threshold of a query with at most its cap matches: all kept


def smallest_per_query(entries: np.ndarray, ranks: np.ndarray, caps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of the (entry, rank) pairs, the ``caps[entry]`` smallest ranks of each entry (in (entry, rank) order)."""
    if not len(entries):
        return entries, ranks
    order = np.lexsort((ranks, entries))
    entries, ranks = entries[order], ranks[order]
    starts = np.flatnonzero(np.r_[True, entries[1:] != entries[:-1]])
    lengths = np.diff(np.r_[starts, len(entries)])
    position = np.arange(len(entries)) - np.repeat(starts, lengths)
    keep = position < caps[entries]
    return entries[keep], ranks[keep]


def top_thresholds(entries: np.ndarray, ranks: np.ndarray, matched: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """The ``top`` rule as one rank per query: a pair is kept through query ``q`` iff its rank is at most
    ``thresholds[q]``, the ``caps[q]``-th smallest rank of q's pairs (``NO_LIMIT`` when q has at most
    ``caps[q]`` pairs). ``entries``/``ranks``: every (query, pair rank) incidence, or any superset of
    each query's ``caps[q]`` smallest; ``matched``: each query's number of pairs."""
    thresholds = np.full(len(matched), NO_LIMIT, dtype=np.uint64)
    entries, ranks = smallest_per_query(entries, ranks, caps)
    capped = matched[entries] > caps[entries]
    if capped.any():
        last = np.r_[entries[1:] != entries[:-1], True]   # the largest kept rank of each query
        pick = last & capped
        thresholds[entries[pick]] = ranks[pick]
    return thresholds


# -- Beam ------------------------------------------------------------------------------------
class SumArrays(beam.CombineFn):
    """Element-wise sum of equally shaped integer arrays (per-query counts of many batches)."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape

    def create_accumulator(self):
        return np.zeros(self.shape, dtype=np.int64)

    def add_input(self, total, counts):
        total += counts
        return total

    def merge_accumulators(self, totals):
        totals = iter(totals)
        merged = next(totals).copy()
        for total in totals:
            merged += total
        return merged

    def extract_output(self, total):
        return total


class GatherIncidences(beam.CombineFn):
    """(entry ids, ranks) arrays of many batches -> one pair of arrays, pruned to each entry's ``cap``
    smallest ranks whenever it has grown by ``PRUNE_AT`` (``cap`` None: no pruning, when the caps are
    only known later). The accumulator is a list of array pairs, so adding a batch copies nothing."""

    PRUNE_AT = 1 << 21

    def __init__(self, cap: int | None):
        self.cap = cap

    def create_accumulator(self):
        return []

    def add_input(self, acc, incidences):
        acc.append(incidences)
        if self.cap is not None:   # prune once the batches outgrow the last pruned whole: linear overall
            size = sum(len(entries) for entries, _ranks in acc)
            if size > max(self.PRUNE_AT, 2 * len(acc[0][0])):
                acc[:] = [self._joined(acc, prune=True)]
        return acc

    def merge_accumulators(self, accs):
        return [pair for acc in accs for pair in acc]

    def extract_output(self, acc):
        return self._joined(acc, prune=self.cap is not None)

    def _joined(self, acc, prune: bool):
        if not acc:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint64)
        entries = np.concatenate([e for e, _r in acc]).astype(np.int64, copy=False)
        ranks = np.concatenate([r for _e, r in acc]).astype(np.uint64, copy=False)
        return smallest_per_query(entries, ranks, _Fill(self.cap)) if prune else (entries, ranks)


class _Fill:
    """An array-like whose every element is ``value`` (a cap for all queries)."""

    def __init__(self, value: int):
        self.value = value

    def __getitem__(self, index):
        return np.full(np.shape(index), self.value, dtype=np.int64)
