"""Environment wrappers that reward rendered frames with a reward model (e.g. :class:`CLIPReward`).

Each step the wrapped environment is rendered (``render_mode="rgb_array"``), the frames of all
sub-environments are scored in one reward-model call, and the reward is replaced by
``weight * model_reward`` (``mode="replace"``) or becomes ``env_reward + weight * model_reward``
(``mode="add"``). The environment's own reward is kept in ``info[ORIGINAL_REWARD_KEY]`` and the
model's reward in ``info[MODEL_REWARD_KEY]``.

- :class:`CLIPRewardWrapper`: a gymnasium ``Wrapper`` for one environment.
- :class:`CLIPRewardVectorWrapper`: a gymnasium ``VectorWrapper`` (info values are arrays with
  ``"_<key>"`` masks, gymnasium's vector convention).
- :class:`CLIPRewardVecEnvWrapper`: a stable-baselines3 ``VecEnvWrapper``; :func:`make_clip_reward_vec_env`
  builds one the recommended way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper

from rlhf.reward import ORIGINAL_REWARD_KEY, RewardModel, check_rewards

MODEL_REWARD_KEY = "model_reward"
FRAME_KEY = "frame"  # set by RenderFrameInInfo; consumed (removed) by CLIPRewardVecEnvWrapper
MODES = ("replace", "add")


def _check_mode(mode: str, weight: float) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not np.isfinite(weight):
        raise ValueError(f"weight must be finite, got {weight}")


def _check_render_mode(render_mode: str | None, what: str) -> None:
    if render_mode != "rgb_array":
        raise ValueError(
            f"{what} has render_mode={render_mode!r}; frame rewards need render_mode='rgb_array' "
            "(e.g. gymnasium.make(env_id, render_mode='rgb_array'))"
        )


def _score(reward_model: Callable[[np.ndarray], Any], frames: np.ndarray) -> np.ndarray:
    """Rewards of a batch of frames from any reward callable, checked as ``RewardModel.__call__`` checks them
    (one finite float per frame), so a broken callable fails here instead of feeding NaN to the learner."""
    import torch

    rewards = reward_model(frames)
    if not isinstance(rewards, torch.Tensor):
        rewards = torch.as_tensor(np.asarray(rewards, dtype=np.float32))
    name = getattr(reward_model, "name", type(reward_model).__name__)
    return check_rewards(rewards, len(frames), name).cpu().numpy()


def _combine(env_reward: np.ndarray, model_reward: np.ndarray, mode: str, weight: float) -> np.ndarray:
    return weight * model_reward if mode == "replace" else env_reward + weight * model_reward


class CLIPRewardWrapper(gym.Wrapper):
    """Reward each step of one gymnasium env by scoring its rendered frame."""

    def __init__(self, env: gym.Env, reward_model: RewardModel, *, mode: str = "replace", weight: float = 1.0):
        super().__init__(env)
        _check_mode(mode, weight)
        _check_render_mode(env.render_mode, f"environment {env}")
        self.reward_model, self.mode, self.weight = reward_model, mode, float(weight)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        model_reward = float(_score(self.reward_model, self.env.render()[None])[0])
        info = {**info, ORIGINAL_REWARD_KEY: reward, MODEL_REWARD_KEY: model_reward}
        return obs, float(_combine(reward, model_reward, self.mode, self.weight)), terminated, truncated, info


class CLIPRewardVectorWrapper(VectorWrapper):
    """Reward a gymnasium vector env by scoring all sub-environments' frames in one batch per step.

    With the default next-step autoreset, a sub-environment whose episode ended on the previous step is
    reset (not stepped) by this step; its reward stays the environment's 0 and it is not scored
    (``info["_model_reward"]`` is False there). Same-step autoreset is refused: the frame rendered after
    the step would show the new episode, not the state the step reached.
    """

    def __init__(self, env: VectorEnv, reward_model: RewardModel, *, mode: str = "replace", weight: float = 1.0):
        super().__init__(env)
        _check_mode(mode, weight)
        _check_render_mode(env.render_mode, f"vector environment {env}")
        autoreset = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if autoreset == AutoresetMode.SAME_STEP:
            raise ValueError(
                "same-step autoreset renders the next episode's first frame at episode ends; "
                "use autoreset_mode=AutoresetMode.NEXT_STEP"
            )
        self.reward_model, self.mode, self.weight = reward_model, mode, float(weight)
        # Only next-step autoreset spends a step on resetting; with autoreset disabled every sub-env steps.
        self._next_step_autoreset = autoreset == AutoresetMode.NEXT_STEP
        self._reset_next = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: Any = None, options: dict | None = None) -> tuple[Any, dict[str, Any]]:
        mask = (options or {}).get("reset_mask")  # gymnasium's partial reset resets only these sub-envs
        self._reset_next[np.ones(self.num_envs, dtype=bool) if mask is None else np.asarray(mask)] = False
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        rewards = np.asarray(rewards)
        stepped = ~self._reset_next
        model_rewards = np.zeros(self.num_envs, dtype=np.float32)
        if stepped.any():
            frames = self.env.render()
            batch = np.stack([frames[i] for i in np.flatnonzero(stepped)])
            model_rewards[stepped] = _score(self.reward_model, batch)
        # float even if the env's rewards are integers (InvertedPendulum-v5 returns int(not terminated))
        new_rewards = rewards.astype(np.result_type(rewards.dtype, np.float32))
        new_rewards[stepped] = _combine(rewards[stepped], model_rewards[stepped], self.mode, self.weight)
        infos = {
            **infos,
            ORIGINAL_REWARD_KEY: rewards,
            f"_{ORIGINAL_REWARD_KEY}": np.ones(self.num_envs, dtype=bool),
            MODEL_REWARD_KEY: model_rewards,
            f"_{MODEL_REWARD_KEY}": stepped,
        }
        if self._next_step_autoreset:
            self._reset_next = np.logical_or(terminations, truncations)
        return obs, new_rewards, terminations, truncations, infos


class RenderFrameInInfo(gym.Wrapper):
    """Put the frame rendered right after each step into ``info[FRAME_KEY]``.

    SB3 vector envs reset a finished sub-environment inside ``step``, so rendering afterwards shows the
    next episode; wrapping each sub-environment in this keeps the frame of the state the step reached.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        _check_render_mode(env.render_mode, f"environment {env}")

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, FRAME_KEY: self.env.render()}


class CLIPRewardVecEnvWrapper(VecEnvWrapper):
    """Reward a stable-baselines3 VecEnv by scoring all sub-environments' frames in one batch per step.

    Frames come from ``info[FRAME_KEY]`` when the sub-environments are wrapped in
    :class:`RenderFrameInInfo` (exact, also at episode ends; the frame is removed from ``info`` after
    scoring); otherwise from ``venv.get_images()``, where a finished sub-environment has already been
    reset, so its last step is scored on the next episode's first frame (a warning says so once).
    """

    def __init__(self, venv: VecEnv, reward_model: RewardModel, *, mode: str = "replace", weight: float = 1.0):
        super().__init__(venv)
        _check_mode(mode, weight)
        _check_render_mode(venv.render_mode, f"SB3 vector environment {venv}")
        self.reward_model, self.mode, self.weight = reward_model, mode, float(weight)
        self._warned = False

    def reset(self) -> Any:
        return self.venv.reset()

    def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, list[dict]]:
        obs, rewards, dones, infos = self.venv.step_wait()
        if all(FRAME_KEY in info for info in infos):
            frames = [info.pop(FRAME_KEY) for info in infos]
        else:
            if dones.any() and not self._warned:
                warnings.warn(
                    "sub-environments are not wrapped in RenderFrameInInfo: at episode ends the reward scores "
                    "the next episode's first frame (use make_clip_reward_vec_env or wrapper_class=RenderFrameInInfo)",
                    stacklevel=2,
                )
                self._warned = True
            frames = self.venv.get_images()
        model_rewards = _score(self.reward_model, np.stack(frames))
        # SB3 buffers rewards as float32; SubprocVecEnv passes an env's integer rewards through as int64.
        new_rewards = _combine(rewards.astype(np.float32), model_rewards, self.mode, self.weight).astype(np.float32)
        for info, r, m in zip(infos, rewards, model_rewards):
            info[ORIGINAL_REWARD_KEY] = float(r)
            info[MODEL_REWARD_KEY] = float(m)
        return obs, new_rewards, dones, infos


def make_clip_reward_vec_env(
    env_id: str | Callable[..., gym.Env],
    reward_model: RewardModel,
    n_envs: int = 1,
    *,
    mode: str = "replace",
    weight: float = 1.0,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    vec_env_cls: type[VecEnv] = DummyVecEnv,
    vec_env_kwargs: dict[str, Any] | None = None,
) -> CLIPRewardVecEnvWrapper:
    """An SB3 vector env (``make_vec_env``) whose reward comes from ``reward_model`` on rendered frames.

    Each sub-environment is made with ``render_mode="rgb_array"`` and wrapped in SB3's ``Monitor`` and
    then :class:`RenderFrameInInfo`. The Monitor sits inside, so ``info["episode"]`` reports the
    environment's own return and length while the agent is trained on the model's reward.
    ``vec_env_cls``/``vec_env_kwargs`` choose the VecEnv (e.g. ``SubprocVecEnv``, ``{"start_method": "spawn"}``).
    """
    env_kwargs = {"render_mode": "rgb_array", **(env_kwargs or {})}
    venv = make_vec_env(
        env_id,
        n_envs=n_envs,
        seed=seed,
        env_kwargs=env_kwargs,
        wrapper_class=RenderFrameInInfo,
        vec_env_cls=vec_env_cls,
        vec_env_kwargs=vec_env_kwargs,
    )
    return CLIPRewardVecEnvWrapper(venv, reward_model, mode=mode, weight=weight)
