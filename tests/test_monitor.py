"""Proxy-vs-true reward monitor: synthetic series, and a real SB3 PPO run on a reward that pays for the wrong thing."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from rlhf.monitor import RewardHackingCallback, RewardHackingMonitor, find_gaming_windows


def series(true_trend, seed: int, n: int = 100, noise: float = 0.02):
    """Points every 1000 steps: a proxy that rises throughout, a true reward following ``true_trend(i)``."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    steps = 1000 * (i + 1)
    proxy = 0.01 * i + rng.normal(0, noise, n)
    true = np.array([true_trend(k) for k in i]) + rng.normal(0, noise, n)
    return steps, proxy, true


def test_a_gamed_run_is_flagged_where_the_truth_falls():
    # Both rise together for 50 points, then the true reward falls while the proxy keeps rising.
    steps, proxy, true = series(lambda k: 0.01 * k if k < 50 else 0.5 - 0.01 * (k - 50), seed=0)
    windows = find_gaming_windows(steps, proxy, true)
    assert windows, "the gamed stretch was not flagged"
    assert all(w.start_step >= 40_000 for w in windows)  # nothing flagged while both rose
    longest = max(windows, key=lambda w: w.n_points)
    assert longest.n_points >= 30 and longest.proxy_slope > 0 and longest.true_slope < 0
    assert longest.true_slope == pytest.approx(-1e-5, rel=0.3)  # -0.01 per point of 1000 steps
    assert longest.proxy_p < 0.01 and longest.true_p < 0.01
    monitor = RewardHackingMonitor()
    for point in zip(steps, proxy, true):
        monitor.add(*point)
    assert monitor.windows() == windows
    report = monitor.report()
    assert "proxy reward rose" in report and f"steps {longest.start_step}-{longest.end_step}" in report
    assert '"windows"' in monitor.to_json() and len(monitor.points) == 100

    # Noisier points: a 10-point window sees the fall as noise at alpha = 0.01; a 20-point window finds it.
    noisy = series(lambda k: 0.01 * k if k < 50 else 0.5 - 0.01 * (k - 50), seed=0, noise=0.05)
    assert sum(w.n_points for w in find_gaming_windows(*noisy)) < 20
    assert max(w.n_points for w in find_gaming_windows(*noisy, window=20)) >= 30


@pytest.mark.parametrize("seed", range(10))
def test_honest_runs_are_not_flagged(seed):
    rising = series(lambda k: 0.008 * k, seed)  # the truth rises with the proxy
    assert find_gaming_windows(*rising) == []
    flat = series(lambda k: 0.5, seed + 100, noise=0.05)  # the truth does not move while the proxy rises: no gaming either
    assert find_gaming_windows(*flat) == []
    monitor = RewardHackingMonitor()
    for point in zip(*rising):
        monitor.add(*point)
    assert "no stretch where the proxy reward rose" in monitor.report()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="window: a slope test needs at least 3 points"):
        RewardHackingMonitor(window=2)
    with pytest.raises(ValueError, match="alpha"):
        find_gaming_windows([1, 2, 3], [1, 2, 3], [1, 2, 3], alpha=1.5)
    with pytest.raises(ValueError, match="3 steps, 2 proxy and 3 true rewards"):
        find_gaming_windows([1, 2, 3], [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="step 7: rewards must be finite"):
        RewardHackingMonitor().add(7, float("nan"), 1.0)
    assert find_gaming_windows([1, 2], [1, 2], [2, 1]) == []  # fewer points than a window
    assert "no points" in RewardHackingMonitor().report()


class Levers(gym.Env):
    """Two levers; the environment's own (true) reward is 1 for lever 0. Episodes of 8 steps."""

    observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), float(action == 0), False, self.t >= 8, {}


class WrongProxy(gym.Wrapper):
    """A learned reward gone wrong: it pays (noisily) for lever 1, and keeps the true reward in info."""

    def step(self, action):
        obs, true, terminated, truncated, info = self.env.step(action)
        proxy = float(action == 1) + float(self.np_random.normal(0, 0.1))
        return obs, proxy, terminated, truncated, {**info, "original_reward": true}


class HonestProxy(gym.Wrapper):
    """A learned reward that agrees with the truth (plus noise)."""

    def step(self, action):
        obs, true, terminated, truncated, info = self.env.step(action)
        proxy = true + float(self.np_random.normal(0, 0.1))
        return obs, proxy, terminated, truncated, {**info, "original_reward": true}


def train(wrapper, capsys) -> RewardHackingCallback:
    env = make_vec_env(lambda: wrapper(Levers()), n_envs=2, seed=0)
    agent = PPO("MlpPolicy", env, n_steps=32, batch_size=64, n_epochs=4, learning_rate=3e-3, seed=0, device="cpu")
    callback = RewardHackingCallback()
    agent.learn(total_timesteps=64 * 30, callback=callback)
    assert len(callback.monitor.points) == 30  # one point per rollout of 2 envs x 32 steps
    assert callback.monitor.report() in capsys.readouterr().out  # printed at the end of the run
    return callback


def test_ppo_on_a_reward_that_pays_for_the_wrong_lever_is_flagged(capsys):
    callback = train(WrongProxy, capsys)
    _, proxy, true = zip(*callback.monitor.points)
    assert proxy[-1] > proxy[0] + 0.3 and true[-1] < true[0] - 0.3  # PPO really learned to game the proxy
    windows = callback.monitor.windows()
    assert windows and windows[0].proxy_slope > 0 and windows[0].true_slope < 0


def test_ppo_on_an_honest_reward_is_not_flagged(capsys):
    callback = train(HonestProxy, capsys)
    true = [t for _, _, t in callback.monitor.points]
    assert true[-1] > true[0] + 0.3  # it learned the right lever
    assert callback.monitor.windows() == []


def test_off_policy_points_every_n_steps_and_no_ground_truth():
    from stable_baselines3 import DQN

    env = make_vec_env(lambda: WrongProxy(Levers()), n_envs=2, seed=0)
    agent = DQN("MlpPolicy", env, learning_starts=64, train_freq=4, seed=0, device="cpu")
    callback = RewardHackingCallback(every=64, verbose=0)
    agent.learn(total_timesteps=640, callback=callback)  # DQN ends a "rollout" every 4 steps; points every 64
    steps = [s for s, _, _ in callback.monitor.points]
    assert steps == list(range(64, 641, 64))
    assert all(0 <= t <= 1 for _, _, t in callback.monitor.points)  # means of the true 0/1 lever reward

    plain = make_vec_env(Levers, n_envs=2, seed=0)  # no reward wrapper: no info["original_reward"]
    callback = RewardHackingCallback(verbose=0)
    PPO("MlpPolicy", plain, n_steps=32, batch_size=64, seed=0, device="cpu").learn(128, callback=callback)
    assert callback.monitor.points == [] and "no points with a true reward" in callback.monitor.report()
    with pytest.raises(ValueError, match="every: expected a number of environment steps >= 1"):
        RewardHackingCallback(every=0)
