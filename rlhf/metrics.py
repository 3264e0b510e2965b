"""Evaluation metrics: unbiased pass@k, rates with Wilson intervals, IQM with bootstrap intervals, EPIC distance.

Per-item binary outcomes (a win, a fact present) get Wilson score intervals (:func:`proportion_ci`): a
percentile bootstrap of 0 wins out of 8 is [0, 0], which claims a certainty 8 items cannot give. The
bootstrap stays for statistics of a few runs, such as the IQM over seeds. Comparing two training methods on
items that each run scores separately (:func:`paired_difference_ci`) resamples the runs as well as the items: the
spread between runs is part of what a comparison of methods must beat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 − C(n−c, k)/C(n, k) for n samples with c correct.

    Computed as 1 − Π_{i=n−c+1}^{n} (1 − k/i), which never forms the huge binomials.
    """
    if not (0 <= c <= n):
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got n={n}, c={c}")
    if not (1 <= k <= n):
        raise ValueError(f"pass_at_k: need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(num_samples: Sequence[int], num_correct: Sequence[int], k: int) -> float:
    """pass@k averaged over tasks."""
    if len(num_samples) != len(num_correct) or len(num_samples) == 0:
        raise ValueError("mean_pass_at_k: need equally long, non-empty sample and correct counts")
    return float(np.mean([pass_at_k(n, c, k) for n, c in zip(num_samples, num_correct)]))


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval."""

    value: float
    low: float
    high: float


def _bootstrap(data: np.ndarray, statistic: Callable, n_boot: int, confidence: float, seed: int) -> tuple[float, float]:
    # Percentile intervals: BCa is undefined for the tiny, often degenerate samples (3 seeds,
    # all-win outcomes) that evaluations here produce.
    if np.all(data == data[0]):
        return float(statistic(data)), float(statistic(data))
    res = stats.bootstrap(
        (data,), statistic, n_resamples=n_boot, confidence_level=confidence,
        method="percentile", rng=np.random.default_rng(seed), vectorized=True, axis=-1,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def outcomes_from_scores(scores_a: Sequence[float], scores_b: Sequence[float]) -> np.ndarray:
    """Per-item outcome of A against B: 1 (A scores higher), 0.5 (tie), 0 (B higher)."""
    a, b = np.asarray(scores_a, float), np.asarray(scores_b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"outcomes_from_scores: shapes {a.shape} and {b.shape} must be equal and 1-D")
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))


def proportion_ci(successes: float, n: int, confidence: float = 0.95) -> Estimate:
    """A rate ``successes / n`` with its Wilson score interval (Wilson 1927).

    ``successes`` may be fractional (a tie counts ½). Unlike the normal approximation or a percentile
    bootstrap, the interval stays inside [0, 1] and is not empty at 0 or n successes.
    """
    if n < 1:
        raise ValueError(f"proportion_ci: need n >= 1, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"proportion_ci: need 0 <= successes <= n, got {successes} of {n}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # min/max: at 0 or n successes rounding can put a bound a hair past the rate itself.
    return Estimate(float(p), float(max(0.0, min(p, center - half))), float(min(1.0, max(p, center + half))))


def rate(flags: Sequence[float], confidence: float = 0.95) -> Estimate:
    """The share of true items in a non-empty sequence of 0/1 flags, with its Wilson interval."""
    x = np.asarray(flags, float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("rate: flags must be a non-empty 1-D sequence")
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError("rate: flags must be 0 or 1")
    return proportion_ci(float(x.sum()), x.size, confidence)


def win_rate(outcomes: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Win rate with its Wilson interval; outcomes are 1 (win), 0.5 (tie, counted as half a win), 0 (loss)."""
    x = np.asarray(outcomes, float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("win_rate: outcomes must be a non-empty 1-D sequence")
    if not np.isin(x, (0.0, 0.5, 1.0)).all():
        raise ValueError("win_rate: outcomes must be 1 (win), 0.5 (tie) or 0 (loss)")
    return proportion_ci(float(x.sum()), x.size, confidence)


def mean_ci(values: Sequence[float], n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> Estimate:
    """The mean of per-item values (e.g. summary lengths) with a percentile bootstrap interval."""
    x = np.asarray(values, float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("mean_ci: values must be a non-empty 1-D sequence")
    low, high = _bootstrap(x, np.mean, n_boot, confidence, seed)
    return Estimate(float(x.mean()), low, high)


def paired_difference_ci(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], n_boot: int = 2000,
                         confidence: float = 0.95, seed: int = 0) -> Estimate:
    """The mean of A − B over items paired within runs (``a[r][i]`` and ``b[r][i]``: the same item of run ``r``,
    e.g. one test post summarized by two methods trained with seed ``r``), with a two-stage percentile bootstrap:
    runs drawn with replacement, then items within each drawn run, pairs kept together.

    An interval over the pooled items alone treats every item as independent and misses how much training runs
    differ; this one includes both (it errs wide, the usual price of resampling at both levels). The value is
    the pooled mean difference, so it equals the difference of the two pooled rates.
    """
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"paired_difference_ci: need the same, non-zero number of runs, got {len(a)} and {len(b)}")
    diffs = []
    for r, (run_a, run_b) in enumerate(zip(a, b)):
        x, y = np.asarray(run_a, float), np.asarray(run_b, float)
        if x.shape != y.shape or x.ndim != 1 or x.size == 0:
            raise ValueError(f"paired_difference_ci: run {r} has {x.shape} and {y.shape} items; "
                             "need the same non-empty 1-D items in both")
        diffs.append(x - y)
    value = float(np.concatenate(diffs).mean())
    rng = np.random.default_rng(seed)
    runs = rng.integers(len(diffs), size=(n_boot, len(diffs)))
    totals, counts = np.zeros(n_boot), np.zeros(n_boot)
    for r, d in enumerate(diffs):
        # Every (draw, slot) that picked run r resamples r's items; its sums go to its draw.
        draws = np.nonzero(runs == r)[0]
        picks = d[rng.integers(d.size, size=(draws.size, d.size))]
        np.add.at(totals, draws, picks.sum(axis=1))
        np.add.at(counts, draws, d.size)
    means = totals / counts
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(value, float(min(low, value)), float(max(high, value)))


def iqm(x: Sequence[float] | np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% (Agarwal et al. 2021)."""
    return stats.trim_mean(np.asarray(x, float), 0.25, axis=axis)


def iqm_bootstrap_ci(scores: Sequence[float], n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> Estimate:
    """IQM across runs (seeds) with a percentile bootstrap interval over runs."""
    x = np.asarray(scores, float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("iqm_bootstrap_ci: scores must be a non-empty 1-D sequence (one value per run)")
    low, high = _bootstrap(x, iqm, n_boot, confidence, seed)
    return Estimate(float(iqm(x)), low, high)


def pearson_distance(x: Sequence[float], y: Sequence[float]) -> float:
    """√((1 − ρ)/2) for the Pearson correlation ρ of two equally long samples: 0 to 1."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"pearson_distance: need two equal 1-D samples of size >= 2, got {x.shape}, {y.shape}")
    if np.std(x) == 0 or np.std(y) == 0:
        raise ValueError("pearson_distance: a constant reward has no correlation (zero variance)")
    rho = float(np.corrcoef(x, y)[0, 1])
    return float(np.sqrt(max(0.0, (1.0 - rho) / 2.0)))


RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def canonicalize(
    reward: RewardFn,
    states: np.ndarray,
    actions: np.ndarray,
    next_states: np.ndarray,
    coverage_states: np.ndarray,
    coverage_actions: np.ndarray,
    gamma: float,
) -> np.ndarray:
    """EPIC canonical reward (Gleave et al. 2021) at the given transitions.

    C(R)(s,a,s') = R(s,a,s') + E[γR(s',A,S') − R(s,A,S') − γR(S,A,S')], with S, S' drawn from
    ``coverage_states`` and A from ``coverage_actions`` (sample-based estimate). ``reward``
    is vectorised over the leading axis. Costs N·M reward evaluations for N transitions and M
    coverage samples.
    """
    n, m = len(states), len(coverage_states)
    if not (len(actions) == len(next_states) == n) or len(coverage_actions) != m or n == 0 or m == 0:
        raise ValueError("canonicalize: transitions and coverage samples must be non-empty and aligned")

    def mean_from(origins: np.ndarray) -> np.ndarray:
        # E_{A,S'} R(o, A, S') for each origin o: pair every origin with every coverage sample.
        o = np.repeat(origins, m, axis=0)
        a = np.tile(coverage_actions, (len(origins),) + (1,) * (coverage_actions.ndim - 1))
        s2 = np.tile(coverage_states, (len(origins),) + (1,) * (coverage_states.ndim - 1))
        return np.asarray(reward(o, a, s2), float).reshape(len(origins), m).mean(axis=1)

    r = np.asarray(reward(states, actions, next_states), float)
    return r + gamma * mean_from(next_states) - mean_from(states) - gamma * mean_from(coverage_states).mean()


def epic_distance(
    reward_a: RewardFn,
    reward_b: RewardFn,
    states: np.ndarray,
    actions: np.ndarray,
    next_states: np.ndarray,
    coverage_states: np.ndarray,
    coverage_actions: np.ndarray,
    gamma: float = 0.99,
) -> float:
    """EPIC pseudometric: Pearson distance between both rewards' canonicalized values.

    0 for rewards equal up to positive scaling and potential shaping; about 0.707 for
    independent rewards. For rewards of the next state only (R(s,a,s') = f(s'), e.g. a VLM
    reward of the rendered frame) canonicalization only subtracts a constant, so EPIC equals
    ``pearson_distance(f_a(s'), f_b(s'))`` and needs no N·M evaluations.
    """
    args = (states, actions, next_states, coverage_states, coverage_actions, gamma)
    return pearson_distance(canonicalize(reward_a, *args), canonicalize(reward_b, *args))
