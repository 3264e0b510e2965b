"""Train a stable-baselines3 policy on a named task with a VLM (CLIP) reward or the ground-truth reward.

    python recipes/train_policy.py --config recipes/configs/robotics/cartpole_ppo_cpu.yaml
    python recipes/train_policy.py --config ... --rl.total_timesteps 20480 --seeds [0,1,2]
    # seeds split across processes (rank r trains seeds[r::world_size]):
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/train_policy.py --config ...
    # one learner (rank 0), every reward batch sharded over all processes:
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/train_policy.py --config ... --shard_reward true

Per seed, ``<output_dir>/seed_<s>/`` holds TensorBoard logs (training reward, ground-truth return,
success rate), a checkpoint that a rerun resumes from, and at the end ``final/eval.json`` (ground-truth
return and success rate over N episodes) and ``final/curve.json``. ``<output_dir>/summary.json``
collects every seed's final evaluation.
"""

from __future__ import annotations

import dataclasses
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
from rlhf.config import config_to_dict, load_config
from rlhf.reward import RewardModel
from rlhf.rl import (
    GT_REWARD_KEY,
    GroundTruthFromState,
    LeaderScoring,
    RLConfig,
    Trainer,
    load_run_outputs,
    serve_collective_scoring,
    validate_rl_config,
)
from vlm_rewards import CLIPReward
from vlm_rewards.distributed import score_distributed
from vlm_rewards.wrappers import ORIGINAL_REWARD_KEY, CLIPRewardVecEnvWrapper, RenderFrameInInfo

logger = logging.getLogger("train_policy")
REWARD_SOURCES = ("vlm", "ground_truth")
assert GT_REWARD_KEY == ORIGINAL_REWARD_KEY, "rlhf.rl must read the key the vlm_rewards wrappers write"


@dataclasses.dataclass
class RewardConfig:
    """Which reward the agent trains on."""

    source: str = "vlm"  # "vlm" (CLIP reward on rendered frames) or "ground_truth" (the task's reward)
    model: str = "ViT-B-32"  # open_clip architecture name or a checkpoint directory (e.g. from fine-tuning)
    pretrained: str | None = None  # open_clip pretrained tag or local weights file (None: the model's own)
    model_config: dict[str, Any] | None = None  # build a random-weight open_clip model from this config instead
    goal_prompts: list[str] = dataclasses.field(default_factory=list)  # empty: the task's goal prompts
    baseline_prompts: list[str] = dataclasses.field(default_factory=list)  # empty: the task's baseline prompts
    alpha: float = 0.0  # goal-baseline regularization strength (0: plain cosine similarity)
    batch_size: int = 64  # frames per image-tower forward pass
    render_size: int = 224  # frames are rendered at render_size x render_size (the model resizes if needed)
    device: str = "cpu"


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
    torch_threads: int = 1  # per process; torch with 2 threads on 2 shared cores ran slower than with 1


def get_task_or_raise(name: str) -> Task:
    """The registered task; an unknown name is a ValueError naming the config field and known tasks."""
    try:
        return envs.get_task(name)
    except KeyError:
        raise ValueError(f"config key 'task': unknown task {name!r}; known tasks: {', '.join(envs.task_names())}") from None


def validate(cfg: TrainPolicyConfig) -> Task:
    """Check everything that can be checked without building envs or models; return the task."""
    task = get_task_or_raise(cfg.task)
    if cfg.reward.source not in REWARD_SOURCES:
        raise ValueError(f"config key 'reward.source': unknown {cfg.reward.source!r}; choose one of {REWARD_SOURCES}")
    if not cfg.seeds:
        raise ValueError("config key 'seeds': give at least one seed")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ValueError(f"config key 'seeds': duplicates in {cfg.seeds}")
    validate_rl_config(cfg.rl)
    return task


def build_reward_model(reward: RewardConfig, task: Task) -> CLIPReward:
    """The CLIP reward for ``task`` (prompts default to the task's); unknown models fail here, before training."""
    source: Any = reward.model_config if reward.model_config is not None else reward.model
    return CLIPReward.from_pretrained(
        source,
        reward.pretrained if reward.model_config is None else None,
        goal_prompts=reward.goal_prompts or list(task.goal_prompts),
        baseline_prompts=reward.baseline_prompts or list(task.baseline_prompts),
        alpha=reward.alpha,
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
    """A constructor of the task's env whose reward is the task's ground truth and whose info has "success"."""

    def make(**kwargs: Any) -> Any:
        return GroundTruthFromState(task.make_env(**{**env_kwargs, **kwargs}), task.reward, task.success)

    return make


def train_env_factory(
    task: Task, n_envs: int, env_kwargs: dict[str, Any], reward_model: RewardModel | None, render_size: int
) -> Callable[[int], VecEnv]:
    """``seed -> VecEnv``: ground-truth reward, or the VLM reward on frames (ground truth kept in info)."""

    def make(seed: int) -> VecEnv:
        if reward_model is None:
            return make_vec_env(ground_truth_env_fn(task, env_kwargs), n_envs=n_envs, seed=seed)
        render = {"render_mode": "rgb_array", "width": render_size, "height": render_size}
        venv = make_vec_env(
            ground_truth_env_fn(task, env_kwargs), n_envs=n_envs, seed=seed, env_kwargs=render,
            wrapper_class=RenderFrameInInfo,
        )
        return CLIPRewardVecEnvWrapper(venv, reward_model)

    return make


def eval_env_factory(task: Task, n_envs: int, env_kwargs: dict[str, Any]) -> Callable[[int], VecEnv]:
    """``seed -> VecEnv`` with the ground-truth reward and no rendering (policies act on state observations)."""
    return lambda seed: make_vec_env(ground_truth_env_fn(task, env_kwargs), n_envs=n_envs, seed=seed)


def make_trainers(
    cfg: TrainPolicyConfig, seeds: list[int] | None = None, reward_model: RewardModel | None = None
) -> list[Trainer]:
    """One :class:`Trainer` per seed, all validated (task, algorithm, model, run directories) before any trains."""
    task = validate(cfg)
    if cfg.reward.source == "vlm" and reward_model is None:
        reward_model = build_reward_model(cfg.reward, task)
    if cfg.reward.source == "ground_truth":
        reward_model = None
    run_config = config_to_dict(cfg)
    for key in ("seeds", "output_dir"):
        run_config.pop(key)
    run_config["rl"].pop("progress_bar")
    trainers = []
    for seed in cfg.seeds if seeds is None else seeds:
        trainers.append(
            Trainer(
                cfg.rl,
                Path(cfg.output_dir) / f"seed_{seed}",
                {**run_config, "seed": seed},
                train_env_factory(task, cfg.rl.n_envs, cfg.env_kwargs, reward_model, cfg.reward.render_size),
                eval_env_factory(task, cfg.rl.n_envs, cfg.env_kwargs),
                seed,
                name=f"{cfg.task}/{cfg.reward.source}/seed_{seed}",
            )
        )
    return trainers


def summarize(cfg: TrainPolicyConfig, results: list[dict]) -> dict:
    """Every seed's final evaluation plus the mean over seeds, written to ``<output_dir>/summary.json``."""
    returns = [r["gt_return_mean"] for r in results]
    summary = {
        "task": cfg.task,
        "reward": cfg.reward.source,
        "algorithm": cfg.rl.algorithm,
        "total_timesteps": cfg.rl.total_timesteps,
        "gt_return_mean_over_seeds": float(np.mean(returns)),
        "success_rate_mean_over_seeds": float(np.mean([r["success_rate"] for r in results])),
        "seeds": {str(r["seed"]): {k: v for k, v in r.items() if k != "returns"} for r in results},
    }
    write_json_atomic(Path(cfg.output_dir) / "summary.json", summary)
    return summary


def train_seeds(trainers: list[Trainer]) -> None:
    for trainer in trainers:
        result = trainer.train()
        logger.info("%s: ground-truth return %.1f, success rate %.2f", trainer.name, result["gt_return_mean"],
                    result["success_rate"])


def main(argv: list[str] | None = None) -> dict | None:
    from accelerate import PartialState

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = load_config(TrainPolicyConfig, argv)
    torch.set_num_threads(cfg.torch_threads)
    # cpu=True makes processes started by accelerate's torchrun launcher join one gloo process group.
    state = PartialState(cpu=cfg.reward.device == "cpu" and cfg.rl.device == "cpu")
    if cfg.shard_reward and state.num_processes > 1:
        if cfg.reward.source != "vlm":
            raise ValueError("config key 'shard_reward': only a VLM reward can be sharded (reward.source is "
                             f"{cfg.reward.source!r})")
        task = validate(cfg)
        replica = build_reward_model(cfg.reward, task)

        def collective(frames: torch.Tensor) -> torch.Tensor:
            return score_distributed(replica, frames, state=state)

        if state.is_main_process:
            leader = LeaderScoring(collective, name=replica.name)
            try:
                train_seeds(make_trainers(cfg, cfg.seeds, reward_model=leader))
            finally:
                leader.stop()
        else:
            served = serve_collective_scoring(collective)
            logger.info("process %d scored its shard of %d reward batches", state.process_index, served)
    else:
        train_seeds(make_trainers(cfg, cfg.seeds[state.process_index :: state.num_processes]))
    state.wait_for_everyone()
    state.destroy_process_group()  # else gloo's threads can abort the process at exit
    if not state.is_main_process:
        return None
    results = [load_run_outputs(Path(cfg.output_dir) / f"seed_{s}")["eval"] for s in cfg.seeds]
    summary = summarize(cfg, results)
    print(f"{cfg.task} [{cfg.reward.source}, {cfg.rl.algorithm}, {cfg.rl.total_timesteps} steps]: "
          f"ground-truth return {summary['gt_return_mean_over_seeds']:.1f}, "
          f"success rate {summary['success_rate_mean_over_seeds']:.2f} over seeds {cfg.seeds}")
    return summary


if __name__ == "__main__":
    main()
