import math
from itertools import combinations

import numpy as np
import pytest

from rlhf.metrics import (
    canonicalize,
    epic_distance,
    iqm,
    iqm_bootstrap_ci,
    mean_pass_at_k,
    outcomes_from_scores,
    paired_difference_ci,
    pass_at_k,
    pearson_distance,
    win_rate,
)


def brute_pass_at_k(n, c, k):
    """Probability that a random k-subset of n samples (c correct) holds a correct one, by enumeration."""
    subsets = list(combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n,c,k", [(5, 0, 1), (5, 1, 1), (5, 2, 3), (6, 3, 2), (7, 6, 4), (4, 4, 2), (8, 1, 8)])
def test_pass_at_k_matches_enumeration(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_hand_values_and_large_n():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 6, 5) == 1.0  # fewer than k wrong samples: every k-subset has a correct one
    # Closed form with exact binomials for a large n, where the naive ratio would overflow floats.
    n, c, k = 1000, 10, 100
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), rel=1e-9)
    assert mean_pass_at_k([10, 10], [3, 0], 1) == pytest.approx(0.15)


def test_pass_at_k_rejects_bad_counts():
    with pytest.raises(ValueError, match="c <= n"):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(5, 1, 6)


def test_win_rate_and_interval():
    est = win_rate([1, 1, 1, 0, 0.5, 0, 1, 1])
    assert est.value == pytest.approx(5.5 / 8)
    assert est.low < est.value < est.high
    assert 0.0 <= est.low and est.high <= 1.0
    # Wilson intervals: 0 of 8 is not "certainly 0" (a percentile bootstrap says [0, 0]).
    none = win_rate([0.0] * 8)
    assert none.value == 0.0 and none.low == 0.0 and none.high == pytest.approx(0.3244, abs=1e-3)
    assert win_rate([1, 1, 1]).low == pytest.approx(0.4385, abs=1e-3) and win_rate([1, 1, 1]).high == 1.0
    np.testing.assert_array_equal(outcomes_from_scores([3, 1, 2], [1, 1, 5]), [1, 0.5, 0])
    with pytest.raises(ValueError, match="outcomes"):
        win_rate([2, 0])


def test_rate_and_proportion_ci_match_the_wilson_formula():
    from rlhf.metrics import proportion_ci, rate

    est = proportion_ci(7, 20)  # Wilson 95%: [0.1812, 0.5671]
    assert est.value == 0.35 and est.low == pytest.approx(0.1812, abs=1e-3) and est.high == pytest.approx(0.5671, abs=1e-3)
    assert rate([1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0]) == est
    with pytest.raises(ValueError, match="0 or 1"):
        rate([0.5])
    for n in range(1, 60):  # the interval holds the rate itself even where rounding could push a bound past it
        for est in (proportion_ci(0, n), proportion_ci(n, n)):
            assert est.low <= est.value <= est.high, (n, est)


def test_win_rate_interval_shrinks_with_more_data():
    rng = np.random.default_rng(0)
    small = win_rate(rng.integers(0, 2, 20).astype(float))
    large = win_rate(rng.integers(0, 2, 2000).astype(float))
    assert (large.high - large.low) < (small.high - small.low) / 4


def test_paired_difference_is_the_pooled_difference_and_counts_the_runs_spread():
    rng = np.random.default_rng(0)
    b = [rng.integers(0, 2, 70).astype(float) for _ in range(3)]
    # The same item-level noise in both cases; the runs agree (a = b + 0.2 everywhere) or disagree (+0.5, 0, -0.1).
    agree = [x + 0.2 for x in b]
    disagree = [x + shift for x, shift in zip(b, (0.5, 0.2, -0.1))]
    e_agree = paired_difference_ci(agree, b)
    e_disagree = paired_difference_ci(disagree, b)
    assert e_agree.value == pytest.approx(0.2) and e_disagree.value == pytest.approx(0.2)
    assert e_agree.low == pytest.approx(0.2) and e_agree.high == pytest.approx(0.2)  # constant differences
    assert e_disagree.low < 0.0 and e_disagree.high > 0.4  # three runs that differ this much prove nothing
    # An interval over the 210 pooled items as if independent (normal approximation) is far narrower.
    pooled = np.concatenate(disagree) - np.concatenate(b)
    assert e_disagree.high - e_disagree.low > 2 * (2 * 1.96 * pooled.std() / np.sqrt(pooled.size))
    # Unequal runs weigh by items: the value is the difference of the pooled means.
    a2, b2 = [np.ones(10), np.zeros(30)], [np.zeros(10), np.zeros(30)]
    assert paired_difference_ci(a2, b2).value == pytest.approx(10 / 40)


def test_paired_difference_rejects_unpaired_runs():
    with pytest.raises(ValueError, match="number of runs"):
        paired_difference_ci([[1.0]], [])
    with pytest.raises(ValueError, match="run 1"):
        paired_difference_ci([[1.0], [1.0, 0.0]], [[0.0], [1.0]])


def test_iqm():
    assert iqm([1, 2, 3, 4]) == pytest.approx(2.5)  # drops 1 and 4
    assert iqm([0, 1, 2, 3, 4, 5, 6, 1000]) == pytest.approx(np.mean([2, 3, 4, 5]))  # robust to the outlier
    est = iqm_bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], seed=0)
    assert est.low <= est.value <= est.high


def _transitions(rng, n, state_dim=3):
    s, s2 = rng.normal(size=(n, state_dim)), rng.normal(size=(n, state_dim))
    a = rng.normal(size=(n, 1))
    return s, a, s2


def test_epic_zero_for_scaled_potential_shaped_reward():
    rng = np.random.default_rng(0)
    w = rng.normal(size=3)
    gamma = 0.9

    def reward(s, a, s2):
        return s @ w + np.sin(a[:, 0]) + (s2**2).sum(1)

    def potential(s):
        return np.tanh(s[:, 0]) * 5 + s[:, 1] ** 3

    def shaped(s, a, s2):
        return 3.0 * reward(s, a, s2) + gamma * potential(s2) - potential(s)

    s, a, s2 = _transitions(rng, 200)
    cov_s, cov_a = rng.normal(size=(100, 3)), rng.normal(size=(100, 1))
    # Without canonicalization the shaping term makes them look different ...
    assert pearson_distance(reward(s, a, s2), shaped(s, a, s2)) > 0.05
    # ... EPIC removes it exactly.
    assert epic_distance(reward, shaped, s, a, s2, cov_s, cov_a, gamma) < 1e-6


def test_epic_near_0707_for_independent_rewards():
    rng = np.random.default_rng(1)
    table_a, table_b = rng.normal(size=1000), rng.normal(size=1000)

    def lookup(table):
        return lambda s, a, s2: table[s2[:, 0].astype(int)]

    idx = rng.integers(0, 1000, size=(3000, 1)).astype(float)
    s, s2, a = idx, rng.permutation(idx), np.zeros((3000, 1))
    cov_s = rng.integers(0, 1000, size=(50, 1)).astype(float)
    d = epic_distance(lookup(table_a), lookup(table_b), s, a, s2, cov_s, np.zeros((50, 1)), 0.99)
    assert d == pytest.approx(math.sqrt(0.5), abs=0.03)


def test_epic_state_only_reward_reduces_to_pearson_distance():
    rng = np.random.default_rng(2)
    s, a, s2 = _transitions(rng, 100)
    cov_s, cov_a = rng.normal(size=(40, 3)), rng.normal(size=(40, 1))
    fa = lambda s, a, s2: s2[:, 0] + 0.3 * s2[:, 1]
    fb = lambda s, a, s2: s2[:, 0] ** 3
    assert epic_distance(fa, fb, s, a, s2, cov_s, cov_a) == pytest.approx(
        pearson_distance(fa(s, a, s2), fb(s, a, s2)), abs=1e-9
    )
    canon = canonicalize(fa, s, a, s2, cov_s, cov_a, 0.99)
    assert np.std(canon - fa(s, a, s2)) < 1e-9  # canonicalization only shifts by a constant


def test_pearson_distance_errors():
    with pytest.raises(ValueError, match="zero variance"):
        pearson_distance([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="equal"):
        pearson_distance([1, 2], [1, 2, 3])
