"""Generic stable-baselines3 training for reward-learning experiments.

Any gymnasium task, any reward (a VLM reward wrapper or the environment's own reward): the
caller passes factories for the training and evaluation vector envs. This module adds what every
experiment here needs on top of SB3:

- config validation before anything runs (algorithm name, its keyword arguments, step counts
  that must divide evenly, action space vs algorithm);
- ground truth next to the learned reward: the training envs are wrapped in SB3's ``Monitor`` inside any
  reward wrapper, so SB3's own ``rollout/ep_rew_mean`` and ``rollout/success_rate`` are the ground truth;
  :class:`TrainingRewardLogger` adds the return under the reward the learner sees;
- a learning curve: evaluations on the ground-truth env every ``eval_freq`` steps;
- checkpoints every ``save_freq`` steps (model, replay buffer, step counter, curve),
  written atomically, resumed automatically after a kill;
- a final evaluation (ground-truth return and success rate over N episodes) written as JSON.

Nothing here imports ``envs`` or ``vlm_rewards``: the dependency arrow points into ``rlhf``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

from rlhf.artifacts import RunDir, atomic_path, progress, write_json_atomic
from rlhf.config import ConfigError, runtime_field
from rlhf.metrics import epic_distance

logger = logging.getLogger(__name__)

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC, "dqn": DQN}

#: Reads task success from a step's ``info`` dict. SB3 reads ``info["is_success"]`` at episode ends
#: (and logs ``rollout/success_rate``); task wrappers such as :class:`GroundTruthFromState` set it.
SuccessFn = Callable[[dict], bool]


def success_from_info_key(key: str = "is_success") -> SuccessFn:
    """The default success reader: ``info[key]`` (False when absent)."""
    return lambda info: bool(info.get(key, False))


class RLConfigError(ConfigError):
    """An RL config that cannot run (unknown algorithm or argument, step counts that do not divide)."""


@dataclasses.dataclass
class RLConfig:
    """What to train and for how long; one per run (a seed is passed separately).

    Names follow stable-baselines3 (``policy``, ``total_timesteps``, ``n_envs``, ``eval_freq``,
    ``n_eval_episodes``, ``deterministic``, ``save_freq``, ``progress_bar``). Unlike SB3's callbacks,
    ``eval_freq`` and ``save_freq`` count environment steps summed over the ``n_envs`` environments, the
    unit of ``total_timesteps``.
    """

    algorithm: str = "ppo"
    policy: str = "MlpPolicy"
    total_timesteps: int = 163_840  # the defaults are multiples of PPO's rollout, n_envs × n_steps = 8 × 2048
    n_envs: int = 8
    #: Env steps between checkpoints and between learning-curve evaluations.
    save_freq: int = 32_768
    eval_freq: int = 16_384
    n_eval_episodes: int = 8
    #: Final evaluation episodes (ground-truth return and success rate, written as JSON).
    final_eval_episodes: int = 20
    #: Act greedily in evaluations. False evaluates the policy as it acts in training, which avoids
    #: crediting a randomly initialised network whose argmax happens to balance (seen on CartPole).
    deterministic: bool = True
    #: Keyword arguments for the SB3 algorithm (learning_rate, n_steps, buffer_size, policy_kwargs, ...).
    algo_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    device: str = "cpu"
    tensorboard: bool = True
    progress_bar: bool = runtime_field(True)

    def __post_init__(self) -> None:
        validate_rl_config(self)


class GroundTruthFromState(gym.Wrapper):
    """Make the reward a ground-truth function of the simulator state, and report success in ``info``.

    For environments whose own reward is not the task's (e.g. Humanoid-v5's locomotion reward under a
    "kneeling" task): the reward becomes ``reward_fn(info[state_key])`` and ``info["is_success"]`` (the key
    SB3 reads) is ``success_fn(info[state_key])``.
    """

    def __init__(
        self,
        env: gym.Env,
        reward_fn: Callable[[np.ndarray], float],
        success_fn: Callable[[np.ndarray], bool],
        state_key: str = "sim_state",
    ):
        super().__init__(env)
        self.reward_fn, self.success_fn, self.state_key = reward_fn, success_fn, state_key

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, _, terminated, truncated, info = self.env.step(action)
        if self.state_key not in info:
            raise KeyError(f"{self.env}: step info has no {self.state_key!r} (keys: {sorted(info)})")
        state = info[self.state_key]
        info = {**info, "is_success": bool(self.success_fn(state))}
        return obs, float(self.reward_fn(state)), terminated, truncated, info


def step_unit(cfg: RLConfig) -> int:
    """Env steps between two points where the learner can stop cleanly (checkpoint / evaluate).

    PPO collects ``n_steps`` per env before each update; off-policy algorithms collect
    ``train_freq`` steps per env between updates.
    """
    algo = ALGORITHMS[cfg.algorithm]
    defaults = {k: p.default for k, p in inspect.signature(algo.__init__).parameters.items()}
    if cfg.algorithm == "ppo":
        per_env = cfg.algo_kwargs.get("n_steps", defaults["n_steps"])
    else:
        freq = cfg.algo_kwargs.get("train_freq", defaults["train_freq"])
        if isinstance(freq, (list, tuple)):
            if len(freq) != 2 or freq[1] != "step":
                raise RLConfigError(f"{freq!r}: only step-based train_freq is supported here", key="algo_kwargs.train_freq")
            freq = freq[0]
        per_env = freq
    if not isinstance(per_env, int) or per_env < 1:
        raise RLConfigError(f"rollout length must be a positive integer, got {per_env!r}", key="algo_kwargs")
    return per_env * cfg.n_envs


def validate_rl_config(cfg: RLConfig) -> None:
    """Raise :class:`RLConfigError` naming the field for anything that would fail mid-training."""
    if cfg.algorithm not in ALGORITHMS:
        raise RLConfigError(f"unknown {cfg.algorithm!r}; choose one of {sorted(ALGORITHMS)}", key="algorithm")
    algo = ALGORITHMS[cfg.algorithm]
    params = inspect.signature(algo.__init__).parameters
    reserved = {"policy", "env", "seed", "device", "tensorboard_log", "verbose"}
    for key in cfg.algo_kwargs:
        if key in reserved:
            raise RLConfigError("set by the recipe (use the top-level config field instead)", key=f"algo_kwargs.{key}")
        if key not in params:
            known = ", ".join(sorted(set(params) - reserved - {"self"}))
            raise RLConfigError(f"not an argument of {algo.__name__} (known: {known})", key=f"algo_kwargs.{key}")
    for name in ("total_timesteps", "n_envs", "save_freq", "eval_freq", "n_eval_episodes", "final_eval_episodes"):
        if getattr(cfg, name) < 1:
            raise RLConfigError(f"must be >= 1, got {getattr(cfg, name)}", key=name)
    unit = step_unit(cfg)
    what = "n_envs * n_steps" if cfg.algorithm == "ppo" else "n_envs * train_freq"
    for name in ("total_timesteps", "save_freq", "eval_freq"):
        value = getattr(cfg, name)
        if value % unit:
            raise RLConfigError(
                f"{value} is not a multiple of {what} = {unit}: the learner can only stop at rollout "
                f"boundaries (try {max(unit, round(value / unit) * unit)})", key=name,
            )
    if cfg.algorithm == "ppo":
        batch = cfg.algo_kwargs.get("batch_size", params["batch_size"].default)
        if unit % batch:
            raise RLConfigError(f"{batch} does not divide n_envs * n_steps = {unit}", key="algo_kwargs.batch_size")


def check_action_space(cfg: RLConfig, env: VecEnv, task: str = "") -> None:
    """DQN needs discrete actions, SAC continuous ones: say so before training starts."""
    space = env.action_space
    where = f"task {task!r}" if task else "the environment"
    if cfg.algorithm == "dqn" and not isinstance(space, gym.spaces.Discrete):
        raise RLConfigError(f"algorithm 'dqn' needs a Discrete action space; {where} has {space}")
    if cfg.algorithm == "sac" and not isinstance(space, gym.spaces.Box):
        raise RLConfigError(f"algorithm 'sac' needs a continuous (Box) action space; {where} has {space}")


def evaluate(
    model: Any, env: VecEnv, n_episodes: int, success_fn: SuccessFn | None = None, deterministic: bool = True
) -> dict[str, Any]:
    """Episodes on ``env`` (whose reward is the ground truth): returns, and success at each episode's last step."""
    success_fn = success_fn or success_from_info_key()
    successes: list[bool] = []

    def read_success(local_vars: dict, _globals: dict) -> None:
        if local_vars["done"]:
            successes.append(success_fn(local_vars["info"]))

    returns, lengths = evaluate_policy(
        model, env, n_eval_episodes=n_episodes, deterministic=deterministic, return_episode_rewards=True,
        callback=read_success, warn=False,
    )
    return {
        "episodes": len(returns),
        "gt_return_mean": float(np.mean(returns)),
        "gt_return_std": float(np.std(returns)),
        "success_rate": float(np.mean(successes)) if successes else 0.0,
        "episode_length_mean": float(np.mean(lengths)),
        "returns": [float(r) for r in returns],
    }


class TrainingRewardLogger(BaseCallback):
    """Log the return of training episodes under the reward the learner sees (``train/episode_return_training_reward``).

    SB3 already logs the rest from its ``Monitor``: the sub-environments are wrapped in ``Monitor`` inside
    any reward wrapper, so ``rollout/ep_rew_mean`` is the ground-truth return and ``rollout/success_rate``
    comes from ``info["is_success"]``. What SB3 cannot see is the return under a learned reward, which
    this callback sums from the rewards the learner receives.
    """

    def __init__(self, window: int = 100):
        super().__init__()
        self.train_returns: deque[float] = deque(maxlen=window)

    def _on_training_start(self) -> None:
        self._acc = np.zeros(self.training_env.num_envs)

    def _on_step(self) -> bool:
        self._acc += self.locals["rewards"]
        for i in np.flatnonzero(self.locals["dones"]):
            self.train_returns.append(float(self._acc[i]))
            self._acc[i] = 0.0
        return True

    def _on_rollout_end(self) -> None:
        if self.train_returns:
            self.logger.record("train/episode_return_training_reward", float(np.mean(self.train_returns)))


class _ProgressBar(BaseCallback):
    """tqdm over env steps; starts at the resumed step count."""

    def __init__(self, total: int, desc: str):
        super().__init__()
        self.total, self.desc = total, desc

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, initial=self.model.num_timesteps, desc=self.desc, unit="step", smoothing=0.1)

    def _on_step(self) -> bool:
        self.bar.update(self.model.num_timesteps - self.bar.n)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


class _CurveAndCheckpoint(BaseCallback):
    """At rollout boundaries (after the update on the previous rollout): evaluate, then checkpoint.

    Both happen in ``_on_rollout_start`` so the saved policy, the step counter and the curve all
    describe the same moment; a resumed run continues from exactly there.
    """

    def __init__(self, trainer: Trainer):
        super().__init__()
        self.trainer = trainer

    def _on_rollout_start(self) -> None:
        self.trainer.at_boundary(self.model)

    def _on_step(self) -> bool:
        progress.step = self.model.num_timesteps
        return True


class Trainer:
    """Train one seed in a run directory; resumes from the latest checkpoint there.

    Layout of ``run_dir``: ``run_config.json`` (guards against mixing runs), ``checkpoint/``
    (model.zip, replay_buffer.pkl for off-policy, state.json with the curve), ``tensorboard/``,
    and once finished ``final/`` (model.zip, curve.json, eval.json).
    """

    def __init__(
        self,
        cfg: RLConfig,
        run_dir: str | Path,
        run_config: dict,
        make_train_env: Callable[[int], VecEnv],
        make_eval_env: Callable[[int], VecEnv],
        seed: int,
        *,
        success_fn: SuccessFn | None = None,
        name: str = "",
    ):
        validate_rl_config(cfg)
        self.cfg, self.seed, self.name = cfg, seed, name or Path(run_dir).name
        self.run = RunDir(run_dir, run_config)
        self.make_train_env, self.make_eval_env = make_train_env, make_eval_env
        self.success_fn = success_fn or success_from_info_key()
        self.curve: list[dict] = []
        self.next_eval = self.next_checkpoint = 0
        self._eval_env: VecEnv | None = None
        self.train_seconds = 0.0

    @property
    def checkpoint_dir(self) -> Path:
        return self.run.path / "checkpoint"

    def _build_or_resume(self) -> BaseAlgorithm:
        cfg = self.cfg
        env = self.make_train_env(self.seed)
        if env.num_envs != cfg.n_envs:
            raise RLConfigError(f"n_envs={cfg.n_envs} but the training env factory built {env.num_envs} envs")
        check_action_space(cfg, env, self.name)
        algo = ALGORITHMS[cfg.algorithm]
        tb = str(self.run.path / "tensorboard") if cfg.tensorboard else None
        state_file = self.checkpoint_dir / "state.json"
        if state_file.exists():
            state = json.loads(state_file.read_text())
            model = algo.load(self.checkpoint_dir / "model.zip", env=env, device=cfg.device, tensorboard_log=tb)
            if isinstance(model, OffPolicyAlgorithm) and (self.checkpoint_dir / "replay_buffer.pkl").exists():
                model.load_replay_buffer(self.checkpoint_dir / "replay_buffer.pkl")
            if model.num_timesteps != state["num_timesteps"]:
                raise RuntimeError(f"{self.checkpoint_dir}: model and state.json disagree on the step count")
            self.curve = state["curve"]
            self.train_seconds = state.get("train_seconds", 0.0)
            self.next_eval = state["next_eval"]
            self.next_checkpoint = model.num_timesteps + cfg.save_freq
            logger.info("%s: resumed from checkpoint at step %d", self.name, model.num_timesteps)
            progress.resume_step = model.num_timesteps
        else:
            model = algo(cfg.policy, env, seed=self.seed, device=cfg.device, tensorboard_log=tb, verbose=0, **cfg.algo_kwargs)
            self.next_checkpoint = cfg.save_freq
        return model

    def at_boundary(self, model: BaseAlgorithm) -> None:
        """Evaluate and checkpoint when their intervals have passed (called between updates)."""
        step = model.num_timesteps
        if step >= self.next_eval:
            self._evaluate_point(model)
            self.next_eval = step + self.cfg.eval_freq
        if step >= self.next_checkpoint:
            self.save_checkpoint(model)
            self.next_checkpoint = step + self.cfg.save_freq

    def _evaluate_point(self, model: BaseAlgorithm) -> None:
        if self._eval_env is None:
            self._eval_env = self.make_eval_env(self.seed + 10_000)
        result = evaluate(model, self._eval_env, self.cfg.n_eval_episodes, self.success_fn, self.cfg.deterministic)
        point = {"step": model.num_timesteps, "gt_return": result["gt_return_mean"], "success_rate": result["success_rate"]}
        self.curve.append(point)
        model.logger.record("eval/ground_truth_return", point["gt_return"])
        model.logger.record("eval/success_rate", point["success_rate"])

    def save_checkpoint(self, model: BaseAlgorithm) -> None:
        """Model, replay buffer (off-policy), step counter and curve, replaced as one directory."""
        with atomic_path(self.checkpoint_dir) as tmp:
            tmp.mkdir()
            model.save(tmp / "model.zip")
            if isinstance(model, OffPolicyAlgorithm):
                model.save_replay_buffer(tmp / "replay_buffer.pkl")
            state = {"num_timesteps": model.num_timesteps, "next_eval": self.next_eval, "curve": self.curve,
                     "train_seconds": self.train_seconds + self._elapsed()}
            (tmp / "state.json").write_text(json.dumps(state))
        progress.resume_step = model.num_timesteps

    def _elapsed(self) -> float:
        return time.time() - self._t0 if hasattr(self, "_t0") else 0.0

    def train(self) -> dict[str, Any]:
        """Train to ``total_timesteps`` (resuming if possible), evaluate, write ``final/``; return eval.json."""
        if self.run.is_done("final"):
            return json.loads((self.run.stage_path("final") / "eval.json").read_text())
        cfg = self.cfg
        model = self._build_or_resume()
        self._t0 = time.time()
        remaining = cfg.total_timesteps - model.num_timesteps
        callbacks: list[BaseCallback] = [TrainingRewardLogger(), _CurveAndCheckpoint(self)]
        if cfg.progress_bar:
            callbacks.append(_ProgressBar(cfg.total_timesteps, self.name))
        if remaining > 0:
            model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=False, tb_log_name="run")
        # The last update has no following rollout start: evaluate the final policy here.
        if not self.curve or self.curve[-1]["step"] != model.num_timesteps:
            self._evaluate_point(model)
            model.logger.dump(model.num_timesteps)
        self.train_seconds += self._elapsed()
        final_env = self.make_eval_env(self.seed + 20_000)
        result = evaluate(model, final_env, cfg.final_eval_episodes, self.success_fn, cfg.deterministic)
        result.update(
            name=self.name, seed=self.seed, algorithm=cfg.algorithm, num_timesteps=model.num_timesteps,
            train_seconds=round(self.train_seconds, 2),
        )

        def write_final(tmp: Path) -> None:
            model.save(tmp / "model.zip")
            write_json_atomic(tmp / "curve.json", self.curve)
            write_json_atomic(tmp / "eval.json", result)

        self.run.stage("final", write_final)
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)  # the replay buffer can be large
        for env in (model.get_env(), self._eval_env, final_env):
            if env is not None:
                env.close()
        return result


def load_run_outputs(run_dir: str | Path) -> dict[str, Any]:
    """Read a finished run's ``final/eval.json`` and ``final/curve.json``; name the missing file."""
    final = Path(run_dir) / "final"
    out = {}
    for name in ("eval", "curve"):
        path = final / f"{name}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: is {run_dir} a finished training run?")
        out[name] = json.loads(path.read_text())
    return out



def state_reward_epic(values_a: np.ndarray, values_b: np.ndarray, gamma: float = 0.99, seed: int = 0) -> float:
    """EPIC distance between two rewards of the reached state only, given their values on the same N states.

    E.g. a VLM reward of the rendered frame and a ground-truth reward of the simulator state. The states
    serve as next states (in a random pairing with origins) and as the coverage distribution; each
    transition's reward is a lookup of its next state's value, so no reward is evaluated twice.
    """
    values_a, values_b = np.asarray(values_a, float), np.asarray(values_b, float)
    if values_a.shape != values_b.shape or values_a.ndim != 1:
        raise ValueError(f"state_reward_epic: need two equal 1-D value arrays, got {values_a.shape}, {values_b.shape}")
    n = len(values_a)
    idx = np.arange(n)
    next_idx = np.random.default_rng(seed).permutation(n)
    actions = np.zeros(n)

    def lookup(values: np.ndarray) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        return lambda s, a, s2: values[s2.astype(int)]

    return epic_distance(lookup(values_a), lookup(values_b), idx, actions, next_idx, idx, actions, gamma=gamma)
