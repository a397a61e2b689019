"""Per-language caps: ``same`` and MetaCLIP 2's tail-share rule, on hand-checked counts."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest

from wit_pipeline.select.caps import cap_for_share, choose_caps, language_caps, tail_share

# English at cap 4: tail queries (fewer than 4 matches) made 1 + 2 + 3 = 6 of 20 matches -> share 0.3.
ENGLISH = [1, 2, 3, 4, 10]


def test_tail_share_counts_only_queries_matched_fewer_than_the_cap():
    assert tail_share(ENGLISH, 4) == pytest.approx(0.3)
    assert tail_share(ENGLISH, 5) == pytest.approx(0.5)      # 4 joins the tail
    assert tail_share(ENGLISH, 11) == 1.0                    # every query is tail
    assert tail_share(ENGLISH, 1) == 0.0
    assert tail_share([], 4) == 0.0 and tail_share([0, 0], 4) == 0.0


def test_cap_for_share_picks_the_count_whose_running_share_is_closest():
    # German ascending 1, 1, 3, 5 of 10: running shares 0.1, 0.2, 0.5, 1.0; 0.2 is closest to 0.3
    assert cap_for_share([5, 1, 1, 3, 0], 0.3) == 1
    assert cap_for_share([5, 1, 1, 3], 0.45) == 3             # 0.5 is closer than 0.2
    assert cap_for_share([5, 1, 1, 3], 1.0) == 5              # the whole language is tail: its largest count
    assert cap_for_share([5, 1, 1, 3], 0.0) == 1              # all head: the smallest count


def test_cap_for_share_takes_the_first_count_on_a_tie():
    # running shares 0.25, 1.0: 0.625 is as far from either, numpy's argmin takes the first
    assert cap_for_share([3, 1], 0.625) == 1


def test_cap_for_share_never_chooses_a_zero_count():
    # with the zeros kept, MetaCLIP 2's p_to_t would pick running share 0 (nearest 0.01): a cap of 0
    assert cap_for_share([0, 0, 5, 95], 0.01) == 5


def test_cap_for_share_of_a_language_without_matches_is_none():
    assert cap_for_share([], 0.3) is None
    assert cap_for_share([0, 0, 0], 0.3) is None


def test_cap_for_share_agrees_with_metaclip2_p_to_t_on_random_counts():
    def p_to_t(entry_counts, p):             # MetaCLIP 2's formula, in numpy, floats
        counts = np.sort(entry_counts)
        portion = np.cumsum(counts) / counts.sum()
        return int(counts[(np.abs(portion - p)).argmin()])

    rng = random.Random(3)
    for _ in range(200):
        counts = [max(1, int(rng.paretovariate(1.2))) for _ in range(rng.randint(1, 60))]
        share = rng.random()
        assert cap_for_share(counts, share) == p_to_t(np.array(counts), share)


def test_same_rule_gives_every_language_the_cap():
    matched = {"en": ENGLISH, "de": [100, 1], "zh": []}
    assert language_caps(matched, 7, "same") == {"en": 7, "de": 7, "zh": 7}


def test_metaclip2_keeps_english_cap_and_matches_other_languages_to_its_tail_share():
    matched = {"en": ENGLISH, "de": [5, 1, 1, 3, 0], "zh": [2, 2, 2, 2, 2], "ja": [1, 1, 8]}
    choice = choose_caps(matched, 4, "metaclip2")
    # ja ascending 1, 1, 8 of 10: running 0.1, 0.2, 1.0 -> 0.2 is closest to 0.3 -> cap 1
    assert choice.caps == {"en": 4, "de": 1, "zh": 2, "ja": 1}
    assert choice.reference_share == pytest.approx(0.3)
    assert choice.note == ""


def test_metaclip2_gives_a_language_of_small_counts_its_max_when_english_is_all_tail():
    # every English query below the cap: share 1.0, so German is not capped at all
    assert language_caps({"en": [1, 2, 3], "de": [40, 2, 7]}, 100, "metaclip2") == {"en": 100, "de": 40}


def test_metaclip2_gives_a_language_without_matches_the_cap():
    assert language_caps({"en": ENGLISH, "th": [0, 0]}, 4, "metaclip2") == {"en": 4, "th": 4}


@pytest.mark.parametrize("matched, why", [({"de": [5, 1], "zh": [3]}, "absent from the data"),
                                          ({"en": [0, 0], "de": [5, 1]}, "without a single match")])
def test_metaclip2_without_english_matches_falls_back_to_the_cap_and_says_why(matched, why, caplog):
    with caplog.at_level(logging.WARNING, logger="wit_pipeline.select.caps"):
        choice = choose_caps(matched, 9, "metaclip2")
    assert choice.caps == {lang: 9 for lang in matched}
    assert why in choice.note and "--cap 9" in choice.note
    assert choice.note in caplog.text


def test_numpy_counts_give_plain_int_caps_that_stats_json_can_hold():
    caps = language_caps({"en": np.array(ENGLISH), "de": np.array([5, 1, 1, 3, 0])}, np.int64(4), "metaclip2")
    assert json.dumps(caps) == '{"en": 4, "de": 1}'


def test_metaclip2_uses_the_reference_language_it_is_given():
    assert language_caps({"de": ENGLISH, "fr": [5, 1, 1, 3]}, 4, "metaclip2", reference="de") == {"de": 4, "fr": 1}


def test_a_language_neutral_list_under_metaclip2_gets_the_cap():
    # queries without a language (a text file) are keyed None; with no English there is nothing to carry over
    assert language_caps({None: [50, 1]}, 10, "metaclip2") == {None: 10}


@pytest.mark.parametrize("cap, rule", [(0, "same"), (-3, "metaclip2"), (2.5, "same"), (True, "same"),
                                       (10, "metaclip"), (10, "")])
def test_bad_cap_or_rule_is_refused(cap, rule):
    with pytest.raises(ValueError):
        language_caps({"en": [1]}, cap, rule)
