"""Proxy-vs-true reward monitor: flag stretches of training where the proxy reward rises while the true reward falls.

A policy trained on a learned (proxy) reward can game it: the proxy keeps rising while the reward we
actually care about, where one exists (the environment's own reward, kept by the vlm_rewards wrappers in
``info["original_reward"]``), falls. This module watches a stream of ``(step, proxy, true)`` points, e.g.
one per rollout, and reports the stretches where that happens.

How a stretch is found: over every window of ``window`` consecutive points, fit a least-squares line to
the proxy and to the true reward against the step (``scipy.stats.linregress``); the window is flagged when
the proxy's slope is positive and the true reward's slope negative, each significantly so (two-sided
p < ``alpha`` for slope = 0, a t-test with window − 2 degrees of freedom). Overlapping flagged windows merge
into one stretch, whose slopes are refit over the whole stretch.

Why these defaults (``window=10``, ``alpha=0.01``): with 10 points and alpha = 0.01 the slope's t statistic
must exceed 3.36 (8 degrees of freedom), which a straight trend does when it moves the reward by about 3.4
noise standard deviations across the window; a point is the mean of a whole rollout, whose noise is small, so
a sustained divergence clears that bar within about ten rollouts. A shorter window reacts to noise, a longer
one blurs a short stretch of gaming into the flat parts around it. Both slopes must be significant, in
opposite directions: in an honest run the true reward falls significantly in a window only by chance, with
probability alpha / 2 = 0.5% if the noise is independent, so over the ~10 non-overlapping windows of a
100-point run a false alarm stays near 5%; a converged run (both flat) needs two opposite chance trends at
once (about 0.5% squared per window).

:class:`RewardHackingCallback` feeds a monitor from stable-baselines3 training: the proxy is the reward the
learner is trained on, the true reward ``info[gt_key]`` when the environment provides it; both are averaged
per environment step over each rollout (or every ``every`` steps for off-policy algorithms, whose rollouts
can be a single step), and the report is printed when training ends.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from rlhf.reward import ORIGINAL_REWARD_KEY

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class GamingWindow:
    """A stretch of training where the proxy rose and the true reward fell, both significantly."""

    start_step: int
    end_step: int
    n_points: int
    proxy_slope: float  # reward per step
    true_slope: float
    proxy_p: float
    true_p: float

    def describe(self) -> str:
        return (f"steps {self.start_step}-{self.end_step} ({self.n_points} points): proxy reward rose "
                f"{self.proxy_slope:+.3g}/step (p = {self.proxy_p:.2g}) while the true reward fell "
                f"{self.true_slope:+.3g}/step (p = {self.true_p:.2g})")


def find_gaming_windows(steps, proxy, true, *, window: int = 10, alpha: float = 0.01) -> list[GamingWindow]:
    """Stretches where ``proxy`` rises and ``true`` falls against ``steps``, by the rule in the module docstring.

    ``steps``, ``proxy`` and ``true`` are equally long sequences (sorted by step here). Returns the merged
    stretches in step order; fewer than ``window`` points give none.
    """
    from scipy.stats import linregress

    if window < 3:
        raise ValueError(f"window: a slope test needs at least 3 points, got {window}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a significance level between 0 and 1, got {alpha}")
    steps, proxy, true = (np.asarray(x, dtype=float) for x in (steps, proxy, true))
    if not (len(steps) == len(proxy) == len(true)):
        raise ValueError(f"{len(steps)} steps, {len(proxy)} proxy and {len(true)} true rewards: lengths differ")
    if not (np.isfinite(steps).all() and np.isfinite(proxy).all() and np.isfinite(true).all()):
        raise ValueError("steps and rewards must be finite numbers")
    order = np.argsort(steps, kind="stable")
    steps, proxy, true = steps[order], proxy[order], true[order]

    def fit(lo: int, hi: int) -> tuple[float, float, float, float]:
        x = steps[lo:hi]
        if np.ptp(x) == 0:
            return 0.0, 1.0, 0.0, 1.0
        p, t = linregress(x, proxy[lo:hi]), linregress(x, true[lo:hi])
        return (float(p.slope), _p_value(p), float(t.slope), _p_value(t))

    flagged = []
    for lo in range(len(steps) - window + 1):
        p_slope, p_p, t_slope, t_p = fit(lo, lo + window)
        if p_slope > 0 and p_p < alpha and t_slope < 0 and t_p < alpha:
            flagged.append([lo, lo + window])
    spans: list[list[int]] = []
    for lo, hi in flagged:  # overlapping (or touching) windows form one stretch
        if spans and lo < spans[-1][1]:
            spans[-1][1] = hi
        else:
            spans.append([lo, hi])
    out = []
    for lo, hi in spans:
        p_slope, p_p, t_slope, t_p = fit(lo, hi)
        out.append(GamingWindow(int(steps[lo]), int(steps[hi - 1]), hi - lo, p_slope, t_slope, p_p, t_p))
    return out


def _p_value(result) -> float:
    return 1.0 if np.isnan(result.pvalue) else float(result.pvalue)  # a constant series has no trend (NaN)


class RewardHackingMonitor:
    """Collects ``(step, proxy, true)`` points and reports the stretches where the proxy rose as the truth fell.

    ``window`` and ``alpha`` are those of :func:`find_gaming_windows` (see the module docstring for why).
    """

    def __init__(self, window: int = 10, alpha: float = 0.01):
        find_gaming_windows([], [], [], window=window, alpha=alpha)  # validates the settings at once
        self.window, self.alpha = window, alpha
        self.points: list[tuple[int, float, float]] = []

    def add(self, step: int, proxy: float, true: float) -> None:
        """One point, e.g. the mean per-step rewards of one rollout ending at env step ``step``."""
        if not (np.isfinite(proxy) and np.isfinite(true)):
            raise ValueError(f"step {step}: rewards must be finite, got proxy={proxy}, true={true}")
        self.points.append((int(step), float(proxy), float(true)))

    def windows(self) -> list[GamingWindow]:
        if not self.points:
            return []
        steps, proxy, true = zip(*self.points)
        return find_gaming_windows(steps, proxy, true, window=self.window, alpha=self.alpha)

    def report(self) -> str:
        """A readable summary: how many points were watched and every flagged stretch."""
        if not self.points:
            return "reward-hacking monitor: no points with a true reward (nothing to compare the proxy with)"
        found = self.windows()
        head = (f"reward-hacking monitor: {len(self.points)} points, steps {self.points[0][0]}-{self.points[-1][0]}, "
                f"window {self.window}, alpha {self.alpha}: ")
        if not found:
            return head + "no stretch where the proxy reward rose while the true reward fell"
        return head + f"{len(found)} stretch(es) where the proxy reward rose while the true reward fell:\n" + "\n".join(
            "  " + w.describe() for w in found)

    def to_json(self) -> str:
        return json.dumps({"window": self.window, "alpha": self.alpha,
                           "points": [{"step": s, "proxy": p, "true": t} for s, p, t in self.points],
                           "windows": [asdict(w) for w in self.windows()]}, indent=2) + "\n"


class RewardHackingCallback(BaseCallback):
    """Feed a :class:`RewardHackingMonitor` during SB3 training and print its report when training ends.

    Each environment step adds the training reward (the proxy: what the learner is trained on) and, where
    the step's ``info`` has ``gt_key`` (default ``rlhf.reward.ORIGINAL_REWARD_KEY``, the key the vlm_rewards
    wrappers write), the true reward. A point is the mean per-step proxy and true reward
    since the last point, taken at the end of every rollout, or every ``every`` environment steps when given
    (off-policy algorithms end a rollout every ``train_freq`` steps). Steps without a true reward are left
    out of both means; a rollout without any adds no point. Each point is also logged as
    ``monitor/proxy_reward`` and ``monitor/true_reward``.
    """

    def __init__(self, monitor: RewardHackingMonitor | None = None, *, gt_key: str = ORIGINAL_REWARD_KEY,
                 every: int | None = None, verbose: int = 1):
        super().__init__(verbose)
        if every is not None and every < 1:
            raise ValueError(f"every: expected a number of environment steps >= 1, got {every}")
        self.monitor = monitor or RewardHackingMonitor()
        self.gt_key, self.every = gt_key, every
        self._reset()

    def _reset(self) -> None:
        self._proxy_sum, self._true_sum, self._count, self._since = 0.0, 0.0, 0, 0

    def _on_step(self) -> bool:
        rewards, infos = np.asarray(self.locals["rewards"], dtype=float).reshape(-1), self.locals["infos"]
        for reward, info in zip(rewards, infos):
            if self.gt_key in info:
                self._proxy_sum += float(reward)
                self._true_sum += float(info[self.gt_key])
                self._count += 1
        self._since += len(rewards)
        if self.every is not None and self._since >= self.every:
            self._add_point()
        return True

    def _on_rollout_end(self) -> None:
        if self.every is None:
            self._add_point()

    def _add_point(self) -> None:
        if self._count:
            proxy, true = self._proxy_sum / self._count, self._true_sum / self._count
            self.monitor.add(self.num_timesteps, proxy, true)
            self.logger.record("monitor/proxy_reward", proxy)
            self.logger.record("monitor/true_reward", true)
        self._reset()

    def _on_training_end(self) -> None:
        report = self.monitor.report()
        if self.monitor.windows():
            logger.warning(report)
        if self.verbose >= 1:
            print(report)
