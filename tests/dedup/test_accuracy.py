"""The statistics behind ``wit overlap accuracy``, against hand-computed values (no scipy needed)."""

from __future__ import annotations

import math

import pytest

from dedup.accuracy import analyse_set, beta_ppf, betainc, binom_sf, binom_sf_exact, bonferroni, clopper_pearson


def test_betainc_closed_forms():
    # I_x(1, 1) = x; I_x(a, 1) = x^a; I_x(1, b) = 1 - (1 - x)^b; I_0.5(a, a) = 0.5
    assert betainc(1, 1, 0.3) == pytest.approx(0.3, abs=1e-12)
    assert betainc(3, 1, 0.6) == pytest.approx(0.6 ** 3, abs=1e-12)
    assert betainc(1, 4, 0.2) == pytest.approx(1 - 0.8 ** 4, abs=1e-12)
    assert betainc(7.5, 7.5, 0.5) == pytest.approx(0.5, abs=1e-12)
    # I_x(2, 2) = 3x^2 - 2x^3
    assert betainc(2, 2, 0.25) == pytest.approx(3 * 0.25 ** 2 - 2 * 0.25 ** 3, abs=1e-12)
    assert betainc(2, 3, 0.0) == 0.0 and betainc(2, 3, 1.0) == 1.0


def test_binomial_tail_by_hand():
    # P(X >= 3 | n=5, p=1/2) = (10 + 5 + 1) / 32
    assert binom_sf(3, 5, 0.5) == pytest.approx(16 / 32, abs=1e-12)
    # P(X >= 1 | n=4, p=0.1) = 1 - 0.9^4
    assert binom_sf(1, 4, 0.1) == pytest.approx(1 - 0.9 ** 4, abs=1e-12)
    # P(X >= 2 | n=3, p=0.2) = 3 * 0.04 * 0.8 + 0.008
    assert binom_sf(2, 3, 0.2) == pytest.approx(0.104, abs=1e-12)
    assert binom_sf(0, 10, 0.3) == 1.0 and binom_sf(11, 10, 0.3) == 0.0
    assert binom_sf(4, 10, 0.0) == 0.0 and binom_sf(4, 10, 1.0) == 1.0


@pytest.mark.parametrize("k,n,p", [(7, 20, 0.31), (150, 400, 0.35), (900, 1000, 0.88), (1, 3000, 0.0002),
                                   (2500, 5000, 0.5)])
def test_binomial_tail_matches_exact_sums(k, n, p):
    assert binom_sf(k, n, p) == pytest.approx(binom_sf_exact(k, n, p), rel=1e-9, abs=1e-300)


def test_beta_quantile_inverts_betainc():
    for a, b, q in [(3, 9, 0.0025), (3, 9, 0.9975), (120, 40, 0.5), (0.5, 0.5, 0.1)]:
        assert betainc(a, b, beta_ppf(q, a, b)) == pytest.approx(q, abs=1e-12)


def test_clopper_pearson_closed_forms():
    alpha = 0.005
    # k = 0: [0, 1 - (alpha/2)^(1/n)]; k = n: [(alpha/2)^(1/n), 1]
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - (alpha / 2) ** (1 / 10), abs=1e-12)
    assert hi == pytest.approx(0.4507, abs=1e-4)
    lo, hi = clopper_pearson(25, 25)
    assert hi == 1.0 and lo == pytest.approx((alpha / 2) ** (1 / 25), abs=1e-12)
    # n = 1, k = 1 at 95%: [0.025, 1]
    assert clopper_pearson(1, 1, confidence=0.95)[0] == pytest.approx(0.025, abs=1e-12)


def test_clopper_pearson_bounds_are_the_binomial_tails():
    # lower bound p_L: P(X >= k | p_L) = alpha/2; upper bound p_U: P(X <= k | p_U) = alpha/2
    k, n = 37, 120
    lo, hi = clopper_pearson(k, n)
    assert binom_sf_exact(k, n, lo) == pytest.approx(0.0025, rel=1e-7)
    assert 1 - binom_sf_exact(k + 1, n, hi) == pytest.approx(0.0025, rel=1e-7)
    assert lo < k / n < hi


def test_against_scipy_when_available():
    stats = pytest.importorskip("scipy.stats")
    for k, n, p in [(12, 40, 0.22), (300, 1000, 0.28)]:
        assert binom_sf(k, n, p) == pytest.approx(stats.binom.sf(k - 1, n, p), rel=1e-9)
    lo, hi = clopper_pearson(12, 40)
    assert lo == pytest.approx(stats.beta.ppf(0.0025, 12, 29), abs=1e-10)
    assert hi == pytest.approx(stats.beta.ppf(0.9975, 13, 28), abs=1e-10)


def test_split_and_bonferroni():
    correct = {f"c{i}": int(i < 60) for i in range(100)}          # clean: 60 of 100
    correct.update({f"o{i}": int(i < 9) for i in range(10)})       # overlap: 9 of 10
    result = analyse_set("set", correct, {f"o{i}" for i in range(10)})
    assert (result.examples, result.overlap) == (110, 10)
    assert result.acc_clean == pytest.approx(60.0) and result.acc_overlap == pytest.approx(90.0)
    assert result.acc_all == pytest.approx(100 * 69 / 110)
    assert result.all_minus_clean == pytest.approx(100 * 69 / 110 - 60.0)
    expected = 10 * 0.6 ** 9 * 0.4 + 0.6 ** 10                      # P(X >= 9 | n=10, p=0.6)
    assert result.p_value == pytest.approx(expected, rel=1e-10)
    other = analyse_set("other", {"a": 1, "b": 0, "c": 1}, {"a"})
    empty = analyse_set("none", {"a": 1}, set())
    bonferroni([result, other, empty])
    assert result.p_bonferroni == pytest.approx(min(1.0, 2 * expected))   # two sets were tested
    assert empty.p_value is None and empty.p_bonferroni is None
    assert result.significant is False and math.isclose(other.p_bonferroni, min(1.0, 2 * other.p_value))
