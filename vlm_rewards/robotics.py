"""The robotics experiment: train stable-baselines3 policies on a named task with a CLIP reward or the ground truth.

    from vlm_rewards.robotics import PolicyTraining, TrainPolicyConfig
    summary = PolicyTraining(TrainPolicyConfig(task="cartpole-upright", seeds=[0, 1])).run()

A :class:`TrainPolicyConfig` names a task (``envs``), the reward the agent trains on (:class:`RewardConfig`:
a CLIP reward on rendered frames, or the task's ground-truth reward) and the RL settings
(:class:`rlhf.rl.RLConfig`). Each seed trains in ``<output_dir>/seed_<s>/`` with :class:`rlhf.rl.Trainer`
(checkpoints, TensorBoard, learning curve, final evaluation on the ground truth), then films one more evaluation
episode with both rewards drawn under the frames (``video``, :mod:`vlm_rewards.video`); ``summary.json`` collects
the seeds. Under ``accelerate launch`` the seeds are split over the processes, or (``shard_reward``) one
learner trains every seed while every reward batch is scored by all processes.

This module builds on ``envs`` (tasks) as well as on the CLIP reward; the rest of ``vlm_rewards`` does not
import ``envs``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

import envs
from envs import Task
from rlhf.artifacts import write_json_atomic
from rlhf.config import ConfigError, run_identity, runtime_field
from rlhf.reward import RewardModel
from rlhf.rl import GroundTruthFromState, RLConfig, Trainer, load_run_outputs
from vlm_rewards.clip_reward import CLIPReward
from vlm_rewards.wrappers import make_clip_reward_vec_env

logger = logging.getLogger(__name__)

REWARD_SOURCES = ("vlm", "ground_truth")


@dataclasses.dataclass
class RewardConfig:
    """Which reward the agent trains on."""

    source: str = "vlm"  # "vlm" (CLIP reward on rendered frames) or "ground_truth" (the task's reward)
    model: str = "ViT-B-32"  # open_clip architecture name or a checkpoint directory (e.g. from fine-tuning)
    pretrained: str | None = None  # open_clip pretrained tag or local weights file (None: the model's own)
    model_config: dict[str, Any] | None = None  # build a random-weight open_clip model from this config instead
    #: None: the prompts a fine-tuned checkpoint stores (the ones it was made for), else the task's.
    goal_prompts: list[str] | None = None
    baseline_prompts: list[str] | None = None
    #: Goal-baseline regularization strength (0: plain cosine similarity); None: the checkpoint's, else 0.
    alpha: float | None = None
    batch_size: int = 64  # frames per image-tower forward pass
    render_size: int = 224  # frames are rendered at render_size x render_size (the model resizes if needed)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.source not in REWARD_SOURCES:
            raise ConfigError(f"unknown {self.source!r}; choose one of {REWARD_SOURCES}", key="source")
        if self.alpha is not None and not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"must be in [0, 1], got {self.alpha}", key="alpha")
        for key in ("goal_prompts", "baseline_prompts"):
            if getattr(self, key) == []:
                raise ConfigError("an empty list; give at least one prompt, or leave the key out (null) to use the "
                                  "checkpoint's or the task's prompts", key=key)


@dataclasses.dataclass
class TrainPolicyConfig:
    task: str = "cartpole-upright"
    output_dir: str = "runs/robotics/cartpole"
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)
    rl: RLConfig = dataclasses.field(default_factory=RLConfig)
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)  # extra gym.make kwargs for the task env
    #: Under ``accelerate launch`` with N processes: False trains seeds[r::N] on rank r; True trains every
    #: seed on rank 0 and shards each reward batch over all N processes (one reward-model replica each).
    shard_reward: bool = False
    torch_threads: int = runtime_field(1)  # per process; torch with 2 threads on 2 shared cores ran slower than 1
    #: After each seed's final evaluation, film one more evaluation episode with both rewards drawn beside the
    #: frames: ``seed_<s>/video/final.{mp4,gif,csv}`` and TensorBoard's ``eval/video`` (vlm_rewards.video).
    video: bool = runtime_field(True)

    def __post_init__(self) -> None:
        get_task(self.task)
        if not self.seeds:
            raise ConfigError("give at least one seed", key="seeds")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"duplicates in {self.seeds}", key="seeds")
        if self.shard_reward and self.reward.source != "vlm":
            raise ConfigError(f"only a VLM reward can be sharded (reward.source is {self.reward.source!r})",
                              key="shard_reward")


def get_task(name: str) -> Task:
    """The registered task; an unknown name is a :class:`ConfigError` on the key 'task' naming the known tasks."""
    try:
        return envs.get_task(name)
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(envs.task_names())}", key="task") from None


def build_reward_model(reward: RewardConfig, task: Task) -> CLIPReward:
    """The CLIP reward for ``task``; unknown models fail here, before training.

    Prompts and alpha not set in ``reward`` come from a fine-tuned checkpoint that stores them, else the task's
    prompts and alpha 0.
    """
    source: Any = reward.model_config if reward.model_config is not None else reward.model
    stored = {}
    if reward.model_config is None and Path(str(reward.model)).is_dir():
        from vlm_rewards.clip_models import stored_reward_settings

        stored = stored_reward_settings(reward.model)
    return CLIPReward.from_pretrained(
        source,
        reward.pretrained if reward.model_config is None else None,
        goal_prompts=reward.goal_prompts or stored.get("goal_prompts") or list(task.goal_prompts),
        baseline_prompts=reward.baseline_prompts or stored.get("baseline_prompts") or list(task.baseline_prompts),
        alpha=reward.alpha if reward.alpha is not None else stored.get("alpha", 0.0),
        batch_size=reward.batch_size,
        device=reward.device,
    )


def sample_states(task: Task, n: int, seed: int) -> np.ndarray:
    """``n`` simulator states drawn by the task env's ``sample_sim_state`` (uniform over the state space)."""
    env = task.make_env()
    try:
        rng = np.random.default_rng(seed)
        return np.stack([env.unwrapped.sample_sim_state(rng) for _ in range(n)])
    finally:
        env.close()


def render_states(task: Task, states: np.ndarray, size: int) -> np.ndarray:
    """Frames ``(N, size, size, 3)`` uint8 of the given simulator states, rendered by the task's env."""
    env = task.make_env(render_mode="rgb_array", width=size, height=size)
    try:
        env.reset(seed=0)
        frames = []
        for state in states:
            env.unwrapped.set_sim_state(state)
            frames.append(env.render())
        return np.stack(frames)
    finally:
        env.close()


def ground_truth_env_fn(task: Task, env_kwargs: dict[str, Any]) -> Callable[..., Any]:
    """A constructor of the task's env whose reward is the task's ground truth and whose info has "is_success"."""

    def make(**kwargs: Any) -> Any:
        return GroundTruthFromState(task.make_env(**{**env_kwargs, **kwargs}), task.reward, task.success)

    return make


def train_env_factory(
    task: Task, n_envs: int, env_kwargs: dict[str, Any], reward_model: RewardModel | None, render_size: int
) -> Callable[[int], VecEnv]:
    """``seed -> VecEnv``: ground-truth reward, or the reward model on frames (ground truth kept in info)."""

    def make(seed: int) -> VecEnv:
        if reward_model is None:
            return make_vec_env(ground_truth_env_fn(task, env_kwargs), n_envs=n_envs, seed=seed)
        return make_clip_reward_vec_env(ground_truth_env_fn(task, env_kwargs), reward_model, n_envs, seed=seed,
                                        env_kwargs={"width": render_size, "height": render_size})

    return make


def eval_env_factory(task: Task, n_envs: int, env_kwargs: dict[str, Any]) -> Callable[[int], VecEnv]:
    """``seed -> VecEnv`` with the ground-truth reward and no rendering (policies act on state observations)."""
    return lambda seed: make_vec_env(ground_truth_env_fn(task, env_kwargs), n_envs=n_envs, seed=seed)


def make_trainers(
    cfg: TrainPolicyConfig, seeds: list[int] | None = None, reward_model: RewardModel | None = None
) -> list[Trainer]:
    """One :class:`Trainer` per seed, all validated (task, model, run directories) before any trains."""
    task = get_task(cfg.task)
    if cfg.reward.source == "vlm" and reward_model is None:
        reward_model = build_reward_model(cfg.reward, task)
    if cfg.reward.source == "ground_truth":
        reward_model = None
    run_config = {k: v for k, v in run_identity(cfg).items() if k not in ("seeds", "output_dir")}
    # The Trainer checks total_timesteps itself: a finished run may be extended, not shortened.
    run_config["rl"] = {k: v for k, v in run_config["rl"].items() if k != "total_timesteps"}
    return [
        Trainer(
            cfg.rl,
            Path(cfg.output_dir) / f"seed_{seed}",
            {**run_config, "seed": seed},
            train_env_factory(task, cfg.rl.n_envs, cfg.env_kwargs, reward_model, cfg.reward.render_size),
            eval_env_factory(task, cfg.rl.n_envs, cfg.env_kwargs),
            seed,
            name=f"{cfg.task}/{cfg.reward.source}/seed_{seed}",
        )
        for seed in (cfg.seeds if seeds is None else seeds)
    ]


class PolicyTraining:
    """Train every seed of a :class:`TrainPolicyConfig` (resuming each from its checkpoint) and summarise.

    ``state`` is an accelerate ``PartialState`` under ``accelerate launch`` (None: one process).
    """

    def __init__(self, config: TrainPolicyConfig, state: Any = None):
        self.config, self.state = config, state

    @property
    def _world(self) -> tuple[int, int]:
        return (0, 1) if self.state is None else (self.state.process_index, self.state.num_processes)

    def run(self) -> dict | None:
        """Train, then on the main process write and return ``summary.json`` (None on the other processes)."""
        cfg = self.config
        if cfg.video:
            from vlm_rewards.video import check_video_encoder

            check_video_encoder()  # before training, not after it
        torch.set_num_threads(cfg.torch_threads)
        rank, world = self._world
        if cfg.shard_reward and world > 1:
            self._train_with_sharded_reward()
        else:
            self.train_seeds(cfg.seeds[rank::world])
        if self.state is not None:
            self.state.wait_for_everyone()
        if rank != 0:
            return None
        return self.summarize([load_run_outputs(Path(cfg.output_dir) / f"seed_{s}")["eval"] for s in cfg.seeds])

    def train_seeds(self, seeds: list[int]) -> list[dict]:
        """Train (or resume) these seeds in this process, one after the other; their final evaluations."""
        cfg = self.config
        reward_model = build_reward_model(cfg.reward, get_task(cfg.task)) if cfg.reward.source == "vlm" else None
        return [self._train(trainer, reward_model) for trainer in make_trainers(cfg, seeds, reward_model)]

    def _train_with_sharded_reward(self) -> None:
        from vlm_rewards.distributed import LeaderScoring, score_distributed, serve_collective_scoring

        replica = build_reward_model(self.config.reward, get_task(self.config.task))

        def collective(frames: torch.Tensor) -> torch.Tensor:
            return score_distributed(replica, frames, state=self.state)

        if self.state.is_main_process:
            leader = LeaderScoring(collective, name=replica.name)
            try:
                for trainer in make_trainers(self.config, reward_model=leader):
                    self._train(trainer, replica)  # the video is scored on this process alone
            finally:
                leader.stop()
        else:
            served = serve_collective_scoring(collective)
            logger.info("process %d scored its shard of %d reward batches", self.state.process_index, served)

    def _train(self, trainer: Trainer, reward_model: RewardModel | None) -> dict:
        result = trainer.train()
        logger.info("%s: ground-truth return %.1f, success rate %.2f", trainer.name, result["gt_return_mean"],
                    result["success_rate"])
        if self.config.video:
            from vlm_rewards.video import record_final_video  # vlm_rewards.video builds on this module

            video = record_final_video(trainer.run, trainer.seed, reward_model, self.config.rl.tensorboard)
            logger.info("%s: video of a final-evaluation episode in %s", trainer.name, video)
            self._film_flagged_windows(trainer, reward_model)
        return result

    def _film_flagged_windows(self, trainer: Trainer, reward_model: RewardModel | None) -> None:
        """A video of the final policy for every stretch the reward-hacking monitor flagged (stage ``flagged``)."""
        monitor = trainer.run.stage_path("final") / "monitor.json"
        windows = json.loads(monitor.read_text())["windows"] if monitor.is_file() else []
        if not windows:
            return
        from vlm_rewards.video import record_flagged_window

        def film(out: Path) -> None:
            for w in windows:
                record_flagged_window(trainer.run.stage_path("final") / "model.zip", self.config,
                                      (w["start_step"], w["end_step"]), out, reward_model=reward_model, details=w,
                                      seed=trainer.seed)

        logger.warning("%s: %d flagged stretch(es) filmed in %s", trainer.name, len(windows),
                       trainer.run.stage("flagged", film))

    def summarize(self, results: list[dict]) -> dict:
        """Every seed's final evaluation plus the mean over seeds, written to ``<output_dir>/summary.json``."""
        cfg = self.config
        summary = {
            "task": cfg.task,
            "reward": cfg.reward.source,
            "algorithm": cfg.rl.algorithm,
            "total_timesteps": cfg.rl.total_timesteps,
            "gt_return_mean_over_seeds": float(np.mean([r["gt_return_mean"] for r in results])),
            "success_rate_mean_over_seeds": float(np.mean([r["success_rate"] for r in results])),
            "seeds": {str(r["seed"]): {k: v for k, v in r.items() if k != "returns"} for r in results},
        }
        write_json_atomic(Path(cfg.output_dir) / "summary.json", summary)
        return summary
