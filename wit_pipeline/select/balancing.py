"""The per-query cap: at most ``cap`` pairs per query, chosen so the result never depends on order or workers.

Two rules, both deterministic for a seed:

``top`` (default) — for each query, of the pairs that match it, keep the
``cap`` with the smallest *seeded rank* (64 bits of keyed BLAKE2b over the
pair's uid); a pair is selected when any of its queries keeps it. A query with
at most ``cap`` matches keeps them all. The rank of a pair does not depend on
where or when it is seen, and "the ``cap`` smallest" is a commutative,
associative combine (``beam.combiners.Top``), so input order and worker count
cannot change the answer. Each query keeps exactly ``min(count, cap)`` pairs
through its own cap; it can end up *listed* by more selected pairs than
``cap`` when pairs kept through other queries also match it.

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

BALANCES = ("top", "probabilistic")


def pair_rank(uid: str, seed: int = 0) -> int:
    """The pair's seeded 64-bit rank: smaller ranks are kept first."""
    key = seed.to_bytes(8, "little", signed=True)
    return int.from_bytes(hashlib.blake2b(uid.encode(), digest_size=8, key=key).digest(), "big")


def rank_unit(uid: str, seed: int = 0) -> float:
    """The rank as a uniform number in [0, 1)."""
    return pair_rank(uid, seed) / 2.0**64


def keep_probability(query_counts: list[int], cap: int) -> float:
    """MetaCLIP: 1 - Π (1 - p_q) with p_q = cap / max(count_q, cap)."""
    log_miss = 0.0
    for count in query_counts:
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


# -- Beam ------------------------------------------------------------------------------------
class CapPerQuery(beam.PTransform):
    """``(uid, [queries])`` -> ``(uid, [queries that kept it])`` for selected pairs, and per-query counts.

    Returns a dict of PCollections: ``kept`` (uid, [query]), ``matched`` (query, n),
    ``kept_counts`` (query, n kept through its own cap).
    """

    def __init__(self, cap: int, seed: int = 0, balance: str = "top"):
        super().__init__()
        if balance not in BALANCES:
            raise ValueError(f"balance must be one of {BALANCES}")
        self.cap, self.seed, self.balance = cap, seed, balance

    def expand(self, pairs):
        cap, seed = self.cap, self.seed
        matched = (pairs
                   | "QueryOnes" >> beam.FlatMap(lambda item: [(q, 1) for q in item[1]])
                   | "CountMatched" >> beam.CombinePerKey(sum))
        if self.balance == "top":
            kept_lists = (pairs
                          | "RankPerQuery" >> beam.FlatMap(
                              lambda item: [(q, (pair_rank(item[0], seed), item[0])) for q in item[1]])
                          | "SmallestRanks" >> beam.combiners.Top.SmallestPerKey(cap))
            kept = (kept_lists
                    | "KeptByQuery" >> beam.FlatMap(lambda item: [(uid, item[0]) for _rank, uid in item[1]])
                    | "GroupKept" >> beam.GroupByKey()
                    | "SortKept" >> beam.MapTuple(lambda uid, queries: (uid, sorted(queries))))
            kept_counts = kept_lists | "CountKept" >> beam.MapTuple(lambda q, ranked: (q, len(ranked)))
        else:
            counts = beam.pvalue.AsDict(matched)

            def decide(item, counts):
                uid, queries = item
                if keep_probabilistic(uid, [counts[q] for q in queries], cap, seed):
                    yield uid, sorted(queries)

            kept = pairs | "Coin" >> beam.FlatMap(decide, counts)
            kept_counts = (kept
                           | "KeptOnes" >> beam.FlatMap(lambda item: [(q, 1) for q in item[1]])
                           | "CountKept" >> beam.CombinePerKey(sum))
        return {"kept": kept, "matched": matched, "kept_counts": kept_counts}
