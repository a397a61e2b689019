"""The per-query cap: exact for ``top``, MetaCLIP's probabilities for ``probabilistic``; both seeded."""

import random

import numpy as np
import pytest

from wit_pipeline.select.balancing import keep_probabilistic, keep_probability, pair_rank, select_top


def _matches(n_head=300, n_tail=5):
    rng = random.Random(1)
    matches = {f"{i:016x}": ["head"] + (["tail"] if i < n_tail else []) for i in range(n_head)}
    for i in range(n_head, n_head + 40):
        matches[f"{i:016x}"] = [rng.choice(["mid", "other"])]
    return matches


def test_top_keeps_exactly_cap_per_head_query_and_all_of_a_small_one():
    kept = select_top(_matches(), cap=50)
    via = [q for queries in kept.values() for q in queries]
    assert via.count("head") == 50
    assert via.count("tail") == 5                                   # <= cap: all kept
    assert via.count("mid") + via.count("other") == 40


def test_top_is_independent_of_input_order_and_changes_with_the_seed():
    matches = _matches()
    shuffled = dict(random.Random(9).sample(list(matches.items()), len(matches)))
    assert select_top(matches, 50, seed=3) == select_top(shuffled, 50, seed=3)
    assert set(select_top(matches, 50, seed=3)) != set(select_top(matches, 50, seed=4))


def test_rank_is_stable_across_processes():
    # A keyed BLAKE2b value, not Python's salted hash(): fixed for ever for a seed.
    assert pair_rank("0123456789abcdef", 0) == pair_rank("0123456789abcdef", 0)
    assert pair_rank("0123456789abcdef", 0) != pair_rank("0123456789abcdef", 1)
    assert pair_rank("0123456789abcdef", 7) == 0xe9c6d74bc606e950   # pinned: a change reshuffles every selection


def test_probabilistic_rule_follows_metaclip():
    assert keep_probability([10], cap=100) == 1.0                  # tail: always kept
    assert keep_probability([1000], cap=100) == pytest.approx(0.1)
    assert keep_probability([1000, 400], cap=100) == pytest.approx(1 - 0.9 * 0.75)
    rng_uids = [f"{i:016x}" for i in range(20_000)]
    kept = sum(keep_probabilistic(u, [2000], cap=100, seed=5) for u in rng_uids)
    assert abs(kept - 1000) < 4 * (20_000 * 0.05 * 0.95) ** 0.5        # p = 100/2000: ~1000 ± 4σ
    assert [keep_probabilistic(u, [2000], 100, 5) for u in rng_uids[:50]] == \
           [keep_probabilistic(u, [2000], 100, 5) for u in rng_uids[:50]]


def test_rank_thresholds_give_the_pure_top_rule():
    from wit_pipeline.select.balancing import GatherIncidences, top_thresholds

    matches = _matches()
    names = ["head", "mid", "other", "tail"]
    entries = [(names.index(q), pair_rank(uid, 3)) for uid, queries in matches.items() for q in queries]
    gather = GatherIncidences(50)
    gather.PRUNE_AT = 100                                            # prune on the way, as a large job does
    acc = gather.create_accumulator()
    for k in range(0, len(entries), 37):
        chunk = entries[k:k + 37]
        acc = gather.add_input(acc, (np.array([e for e, _r in chunk]), np.array([r for _e, r in chunk], np.uint64)))
    ids, ranks = gather.extract_output(acc)
    matched = np.bincount([e for e, _r in entries], minlength=4)
    limits = top_thresholds(ids, ranks, matched, np.full(4, 50)).tolist()
    kept = {uid: sorted(q for q in queries if pair_rank(uid, 3) <= limits[names.index(q)])
            for uid, queries in matches.items()}
    assert {uid: qs for uid, qs in kept.items() if qs} == select_top(matches, 50, seed=3)


def test_per_query_caps_reduce_to_metaclips_single_cap():
    from wit_pipeline.select.balancing import keep_probability_each

    assert keep_probability_each([1000, 400], [100, 100]) == keep_probability([1000, 400], 100)
    assert keep_probability_each([1000, 400], [100, 400]) == 1.0   # one query within its own cap


def test_ranks_of_a_batch_are_each_pairs_rank():
    from wit_pipeline.select.balancing import pair_rank, pair_ranks

    uids = [f"{i:032x}" for i in range(0, 10**6, 9973)]
    for seed in (0, 7, -3):
        assert pair_ranks(uids, seed) == [pair_rank(uid, seed) for uid in uids]
