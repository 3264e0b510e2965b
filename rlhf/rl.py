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
- checkpoints every ``save_freq`` steps (model, replay buffer, step counter, curve, and the random
  generators and environment states), written atomically, resumed automatically after a kill: a resumed run
  gives the same curve as an uninterrupted one, and TensorBoard drops what the killed run logged after its
  last checkpoint; a finished run keeps its last checkpoint, so raising ``total_timesteps`` extends it;
- a final evaluation (ground-truth return and success rate over N episodes) written as JSON.

Nothing here imports ``envs`` or ``vlm_rewards``: the dependency arrow points into ``rlhf``.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import logging
import pickle
import random
import shutil
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper
from tqdm.auto import tqdm

from rlhf.artifacts import RunDir, atomic_path, progress, write_json_atomic, write_text_atomic
from rlhf.config import ConfigError, runtime_field
from rlhf.metrics import epic_distance
from rlhf.monitor import RewardHackingCallback, RewardHackingMonitor

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


def _plain(value: Any) -> bool:
    """Values that describe state and survive pickling unchanged: numbers, strings, arrays and containers of them."""
    if value is None or isinstance(value, (bool, int, float, str, np.ndarray, np.generic)):
        return True
    if isinstance(value, (list, tuple, deque)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _plain(v) for k, v in value.items())
    return False


def _attributes(obj: Any) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in vars(obj).items() if _plain(v)}


def env_state(env: gym.Env) -> list[dict[str, Any]] | None:
    """The restorable state of a wrapped env, outermost layer first, or None when it cannot be captured.

    Wrappers keep counters and buffers in plain attributes (``TimeLimit`` its step count, ``Monitor`` the
    running episode); the base env keeps its random generator and its simulator, read with
    ``get_sim_state()`` (the ``envs`` environments have it).
    """
    layers, layer = [], env
    while isinstance(layer, gym.Wrapper):
        layers.append(_attributes(layer))
        layer = layer.env
    if not hasattr(layer, "get_sim_state"):
        return None
    layers.append({**_attributes(layer), "__sim_state__": np.array(layer.get_sim_state()),
                   "__np_random__": copy.deepcopy(layer.np_random.bit_generator.state)})
    return layers


def _restore_env(env: gym.Env, layers: list[dict[str, Any]]) -> None:
    layer = env
    for attrs in layers:
        base = not isinstance(layer, gym.Wrapper)
        for k, v in attrs.items():
            if not k.startswith("__"):
                setattr(layer, k, copy.deepcopy(v))
        if base:
            layer.set_sim_state(attrs["__sim_state__"])
            layer.np_random.bit_generator.state = copy.deepcopy(attrs["__np_random__"])
        else:
            layer = layer.env


def vec_env_state(venv: VecEnv) -> dict[str, Any] | None:
    """The restorable state of a vector env (its wrappers, a ``DummyVecEnv`` and every sub-env), or None."""
    wrappers, layer = [], venv
    while isinstance(layer, VecEnvWrapper):
        wrappers.append(_attributes(layer))
        layer = layer.venv
    if not isinstance(layer, DummyVecEnv):
        return None
    envs = [env_state(e) for e in layer.envs]
    if any(e is None for e in envs):
        return None
    return {"wrappers": wrappers, "dummy": _attributes(layer), "envs": envs}


def restore_vec_env_state(venv: VecEnv, state: dict[str, Any]) -> None:
    layer = venv
    for attrs in state["wrappers"]:
        for k, v in attrs.items():
            setattr(layer, k, copy.deepcopy(v))
        layer = layer.venv
    for k, v in state["dummy"].items():
        setattr(layer, k, copy.deepcopy(v))
    for env, layers in zip(layer.envs, state["envs"]):
        _restore_env(env, layers)


def rng_state() -> dict[str, Any]:
    """Python's, numpy's and torch's global random generators (and CUDA's when present)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state_all(state["cuda"])


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
    (model.zip, replay_buffer.pkl for off-policy, state.json with the curve, generators.pkl with the random
    generators and env states; the last one stays after training so a run can be extended), ``tensorboard/``,
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
        # Training (proxy) reward next to the true one (info["original_reward"]) per rollout: stretches where the
        # proxy rose while the truth fell are printed at the end and kept in final/monitor.json.
        self.monitor = RewardHackingMonitor()
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
        state_file = self.checkpoint_dir / "state.json"
        if state_file.exists():
            state = json.loads(state_file.read_text())
            # force_reset=False keeps the observation the learner had; the envs get their state back below.
            model = algo.load(self.checkpoint_dir / "model.zip", env=env, device=cfg.device, force_reset=False)
            if isinstance(model, OffPolicyAlgorithm) and (self.checkpoint_dir / "replay_buffer.pkl").exists():
                model.load_replay_buffer(self.checkpoint_dir / "replay_buffer.pkl")
            if model.num_timesteps != state["num_timesteps"]:
                raise RuntimeError(f"{self.checkpoint_dir}: model and state.json disagree on the step count")
            self._restore_generators(model)
            self.curve = state["curve"]
            self.monitor.points = [tuple(point) for point in state.get("monitor", [])]
            self.train_seconds = state.get("train_seconds", 0.0)
            self.next_eval = state["next_eval"]
            self.next_checkpoint = model.num_timesteps + cfg.save_freq
            logger.info("%s: resumed from checkpoint at step %d", self.name, model.num_timesteps)
            progress.resume_step = model.num_timesteps
        else:
            model = algo(cfg.policy, env, seed=self.seed, device=cfg.device, verbose=0, **cfg.algo_kwargs)
            self.next_checkpoint = cfg.save_freq
        if cfg.tensorboard:
            model.set_logger(self._tensorboard_logger(model.num_timesteps))
        return model

    def _tensorboard_logger(self, step: int) -> Logger:
        """SB3's TensorBoard output in ``tensorboard/run_1``; after a resume from a checkpoint at ``step``,
        TensorBoard drops (purges) what the killed run logged after it, so no step is recorded twice. What was
        logged at ``step`` itself came before the checkpoint (evaluations are logged at their step) and stays."""
        folder = self.run.path / "tensorboard" / "run_1"
        output = TensorBoardOutputFormat(str(folder))
        if step > 0:
            from torch.utils.tensorboard import SummaryWriter

            output.writer.close()
            output.writer = SummaryWriter(str(folder), purge_step=step + 1)
        return Logger(str(folder), [output])

    def _restore_generators(self, model: BaseAlgorithm) -> None:
        """Random generators and env states as they were at the checkpoint (loading a model reseeds the
        generators), so a resumed run continues exactly as an uninterrupted one would."""
        path = self.checkpoint_dir / "generators.pkl"
        if not path.is_file():
            logger.warning("%s: the checkpoint has no generator state; the resumed run will not repeat an "
                           "uninterrupted one exactly", self.name)
            return
        with path.open("rb") as f:
            saved = pickle.load(f)
        restore_rng_state(saved["rng"])
        if saved["train_env"] is not None:
            restore_vec_env_state(model.get_env(), saved["train_env"])
        if saved["eval_env"] is not None:
            self._eval_env = self.make_eval_env(self.seed + 10_000)
            restore_vec_env_state(self._eval_env, saved["eval_env"])

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
        model.logger.dump(model.num_timesteps)  # at the step evaluated, not at the end of the next rollout

    def save_checkpoint(self, model: BaseAlgorithm) -> None:
        """Model, replay buffer (off-policy), step counter, curve, random generators and env states, replaced
        as one directory."""
        train_env = vec_env_state(model.get_env())
        eval_env = vec_env_state(self._eval_env) if self._eval_env is not None else None
        if train_env is None and not getattr(self, "_warned_state", False):
            logger.warning("%s: the training envs' state cannot be captured (it needs a DummyVecEnv of envs with "
                           "get_sim_state); a resumed run continues from fresh episodes", self.name)
            self._warned_state = True
        with atomic_path(self.checkpoint_dir) as tmp:
            tmp.mkdir()
            model.save(tmp / "model.zip")
            if isinstance(model, OffPolicyAlgorithm):
                model.save_replay_buffer(tmp / "replay_buffer.pkl")
            with (tmp / "generators.pkl").open("wb") as f:
                pickle.dump({"rng": rng_state(), "train_env": train_env, "eval_env": eval_env}, f)
            state = {"num_timesteps": model.num_timesteps, "next_eval": self.next_eval, "curve": self.curve,
                     "monitor": self.monitor.points, "train_seconds": self.train_seconds + self._elapsed()}
            (tmp / "state.json").write_text(json.dumps(state))
        progress.resume_step = model.num_timesteps

    def _elapsed(self) -> float:
        return time.time() - self._t0 if hasattr(self, "_t0") else 0.0

    def _finished(self) -> dict[str, Any] | None:
        """The final evaluation of a run finished at ``total_timesteps``; None when it must (still) train.

        A run finished at fewer steps is extended from its last checkpoint; one finished at more is refused.
        """
        if not self.run.is_done("final"):
            return None
        result = json.loads((self.run.stage_path("final") / "eval.json").read_text())
        if result["num_timesteps"] == self.cfg.total_timesteps:
            return result
        if result["num_timesteps"] > self.cfg.total_timesteps:
            raise RLConfigError(f"{self.run.path} finished at {result['num_timesteps']} steps, more than "
                                f"{self.cfg.total_timesteps}; use a new output_dir", key="total_timesteps")
        if not (self.checkpoint_dir / "state.json").is_file():
            raise RuntimeError(f"{self.run.path} has no checkpoint to extend from; use a new output_dir")
        logger.info("%s: extending the finished run from %d to %d steps", self.name, result["num_timesteps"],
                    self.cfg.total_timesteps)
        shutil.rmtree(self.run.stage_path("final"))  # the checkpoint holds the same state; a kill now resumes
        return None

    def train(self) -> dict[str, Any]:
        """Train to ``total_timesteps`` (resuming if possible), evaluate, write ``final/``; return eval.json."""
        finished = self._finished()
        if finished is not None:
            return finished
        cfg = self.cfg
        model = self._build_or_resume()
        self._t0 = time.time()
        remaining = cfg.total_timesteps - model.num_timesteps
        # Off-policy learners end a rollout every train_freq steps: a point per tenth of the evaluation interval.
        every = max(1, cfg.eval_freq // 10) if isinstance(model, OffPolicyAlgorithm) else None
        callbacks: list[BaseCallback] = [TrainingRewardLogger(), RewardHackingCallback(self.monitor, every=every, verbose=0),
                                         _CurveAndCheckpoint(self)]
        if cfg.progress_bar:
            callbacks.append(_ProgressBar(cfg.total_timesteps, self.name))
        if remaining > 0:
            model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=False, tb_log_name="run")
        # The last update has no following rollout start: evaluate the final policy and checkpoint it here, as
        # a longer run would at this step. The checkpoint stays: raising total_timesteps later continues from it.
        step = model.num_timesteps
        if not self.curve or self.curve[-1]["step"] != step:
            self._evaluate_point(model)
            self.next_eval = step + cfg.eval_freq
        state_file = self.checkpoint_dir / "state.json"
        if not state_file.is_file() or json.loads(state_file.read_text())["num_timesteps"] != step:
            self.save_checkpoint(model)
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
            if self.monitor.points:
                write_text_atomic(tmp / "monitor.json", self.monitor.to_json())

        self.run.stage("final", write_final)
        if self.monitor.points:
            logger.info("%s: %s", self.name, self.monitor.report())
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
