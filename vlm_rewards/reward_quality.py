"""Reward quality: how close is a CLIP reward to the task's ground truth? (``recipes/eval/reward_quality.py``)

For each model and each alpha in a sweep: the EPIC distance (Gleave et al. 2021) between the CLIP reward
and the task's ground-truth reward, on states drawn uniformly over the state space
(``state_source: uniform``, CartPole/MountainCar) or visited by random-action rollouts
(``state_source: rollouts``, the humanoid). Writes ``epic.csv``, ``epic.png`` (EPIC against alpha, one
line per model), ``reward_vs_ground_truth.png`` (each model's reward against a state coordinate, e.g. the
pole angle, or against the ground-truth reward) and, with ``matrix_tasks``, ``goal_pose_matrix.png`` and
``.csv``: the reward of every task's goal prompt on every task's reference pose (the humanoid).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from envs import Task
from envs.contact_sheet import render_reference_frames
from rlhf.artifacts import write_csv_atomic, write_json_atomic, write_text_atomic
from rlhf.config import ConfigError
from rlhf.curves import save_figure
from rlhf.rl import state_reward_epic
from vlm_rewards.robotics import RewardConfig, build_reward_model, get_task, render_states, sample_states

logger = logging.getLogger(__name__)
STATE_SOURCES = ("uniform", "rollouts")


@dataclasses.dataclass
class ModelSpec:
    """One reward model to evaluate (see RewardConfig: an open_clip name + tag, a checkpoint dir, or a config)."""

    name: str
    model: str = "ViT-B-32"
    pretrained: str | None = None
    model_config: dict[str, Any] | None = None


@dataclasses.dataclass
class RewardQualityConfig:
    task: str = "cartpole-upright"
    output_dir: str = "runs/eval/reward_quality"
    models: list[ModelSpec] = dataclasses.field(default_factory=list)
    alphas: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    goal_prompts: list[str] | None = None  # None: the checkpoint's, else the task's
    baseline_prompts: list[str] | None = None
    states: int = 2000
    state_source: str = "uniform"  # "uniform" (sample_sim_state) or "rollouts" (random actions)
    rollout_steps: int = 100  # episode length of the random-action rollouts
    render_size: int = 224
    batch_size: int = 64
    device: str = "cpu"
    gamma: float = 0.99
    seed: int = 0
    x_state_index: int | None = None  # plot reward against this state coordinate (e.g. 2 = CartPole pole angle)
    x_label: str = ""
    matrix_tasks: list[str] = dataclasses.field(default_factory=list)  # tasks for the goal-prompt x reference-pose matrix

    def __post_init__(self) -> None:
        get_task(self.task)
        if not self.models:
            raise ConfigError("give at least one model ({name, model, pretrained} or {name, model_config})",
                              key="models")
        if not self.alphas or any(not 0.0 <= a <= 1.0 for a in self.alphas):
            raise ConfigError(f"need values in [0, 1], got {self.alphas}", key="alphas")
        if self.state_source not in STATE_SOURCES:
            raise ConfigError(f"unknown {self.state_source!r}; use one of {STATE_SOURCES}", key="state_source")
        for i, name in enumerate(self.matrix_tasks):
            try:
                get_task(name)
            except ConfigError as e:
                raise ConfigError(e.message, key=f"matrix_tasks[{i}]") from None


def collect_states(cfg: RewardQualityConfig, task: Task) -> np.ndarray:
    """Simulator states to evaluate on: uniform over the state space, or visited by random-action rollouts."""
    if cfg.state_source == "uniform":
        return sample_states(task, cfg.states, cfg.seed)
    env = task.make_env(max_episode_steps=cfg.rollout_steps)
    env.action_space.seed(cfg.seed)
    states, episode = [], 0
    try:
        _, info = env.reset(seed=cfg.seed)
        while len(states) < cfg.states:
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            states.append(info["sim_state"])
            if terminated or truncated:
                episode += 1
                _, info = env.reset(seed=cfg.seed + episode)
    finally:
        env.close()
    return np.stack(states)


def _plot(path: Path, draw) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    save_figure(draw(plt), path)


def goal_pose_matrix(cfg: RewardQualityConfig, spec: ModelSpec) -> tuple[list[str], np.ndarray]:
    """Reward of task i's goal prompt (task i's own baseline, first alpha) on task j's reference pose."""
    frames = render_reference_frames(cfg.matrix_tasks, cfg.render_size, cfg.render_size)
    stacked = np.stack([frames[name] for name in cfg.matrix_tasks])
    tasks = [get_task(name) for name in cfg.matrix_tasks]
    reward_model = build_reward_model(_reward_config(cfg, spec, cfg.alphas[0]), tasks[0])
    embeddings = reward_model.embed(stacked)
    matrix = np.zeros((len(tasks), len(tasks)))
    for i, task in enumerate(tasks):
        reward_model.set_prompts(list(task.goal_prompts), list(task.baseline_prompts), cfg.alphas[0])
        matrix[i] = reward_model.reward_from_embeddings(embeddings).numpy()
    return cfg.matrix_tasks, matrix


def _reward_config(cfg: RewardQualityConfig, spec: ModelSpec, alpha: float) -> RewardConfig:
    return RewardConfig(source="vlm", model=spec.model, pretrained=spec.pretrained, model_config=spec.model_config,
                        goal_prompts=cfg.goal_prompts, baseline_prompts=cfg.baseline_prompts, alpha=alpha,
                        batch_size=cfg.batch_size, render_size=cfg.render_size, device=cfg.device)


def evaluate_reward_quality(cfg: RewardQualityConfig) -> dict:
    """Run the sweep; write the CSVs, plots and ``summary.json`` into ``cfg.output_dir``; return the summary."""
    task = get_task(cfg.task)
    out = Path(cfg.output_dir)

    states = collect_states(cfg, task)
    frames = render_states(task, states, cfg.render_size)
    gt = task.rewards(states)
    rows, rewards_at_best, rewards = [], {}, {}
    for spec in cfg.models:
        reward_model = build_reward_model(_reward_config(cfg, spec, cfg.alphas[0]), task)
        embeddings = reward_model.embed(frames)  # image tower once; alpha only changes the projection
        best = None
        for alpha in cfg.alphas:
            reward_model.alpha = alpha
            vlm = reward_model.reward_from_embeddings(embeddings).numpy().astype(float)
            rewards[spec.name, alpha] = vlm
            epic = state_reward_epic(vlm, gt, cfg.gamma, cfg.seed)
            rows.append({"model": spec.name, "alpha": alpha, "epic_distance": epic})
            logger.info("%s alpha=%g: EPIC distance %.3f", spec.name, alpha, epic)
            if best is None or epic < best[0]:
                best = (epic, alpha, vlm)
        rewards_at_best[spec.name] = best

    write_csv_atomic(out / "epic.csv", rows)

    def draw_epic(plt):
        fig, ax = plt.subplots(figsize=(6, 4))
        for spec in cfg.models:
            pts = [(r["alpha"], r["epic_distance"]) for r in rows if r["model"] == spec.name]
            ax.plot(*zip(*pts), marker="o", label=spec.name)
        ax.set_xlabel("alpha (goal-baseline projection)")
        ax.set_ylabel("EPIC distance to ground truth (lower is better)")
        ax.set_title(f"{cfg.task}: {len(states)} {cfg.state_source} states")
        ax.grid(alpha=0.3)
        ax.legend()
        return fig

    _plot(out / "epic.png", draw_epic)

    x = states[:, cfg.x_state_index] if cfg.x_state_index is not None else gt
    x_label = cfg.x_label or (f"state[{cfg.x_state_index}]" if cfg.x_state_index is not None else "ground-truth reward")

    def draw_scatter(plt):
        fig, axes = plt.subplots(1, len(cfg.models) + 1, figsize=(4.5 * (len(cfg.models) + 1), 3.6), squeeze=False)
        axes[0][0].scatter(x, gt, s=3, alpha=0.4, color="black")
        axes[0][0].set_title("ground truth")
        for ax, spec in zip(axes[0][1:], cfg.models):
            epic, alpha, vlm = rewards_at_best[spec.name]
            ax.scatter(x, vlm, s=3, alpha=0.4)
            ax.set_title(f"{spec.name}, alpha={alpha:g} (EPIC {epic:.2f})")
        for ax in axes[0]:
            ax.set_xlabel(x_label)
            ax.set_ylabel("reward")
        return fig

    _plot(out / "reward_vs_ground_truth.png", draw_scatter)

    # Models listed in order (e.g. successive fine-tunings of one CLIP): how far each moved from the one before,
    # as a reward, at each alpha. Reward drift as a number, next to the distance to the ground truth.
    successive = [
        {"from": a.name, "to": b.name, "alpha": alpha,
         "epic_distance": state_reward_epic(rewards[a.name, alpha], rewards[b.name, alpha], cfg.gamma, cfg.seed)}
        for a, b in zip(cfg.models, cfg.models[1:]) for alpha in cfg.alphas
    ]
    for row in successive:
        logger.info("%s -> %s alpha=%g: EPIC distance %.3f", row["from"], row["to"], row["alpha"], row["epic_distance"])
    if successive:
        write_csv_atomic(out / "epic_successive.csv", successive)
    summary: dict[str, Any] = {"task": cfg.task, "states": len(states), "state_source": cfg.state_source, "epic": rows,
                               "epic_between_successive_models": successive}
    if cfg.matrix_tasks:
        for spec in cfg.models:
            names, matrix = goal_pose_matrix(cfg, spec)
            text = io.StringIO()
            w = csv.writer(text)
            w.writerow(["goal_prompt_of \\ reference_pose_of", *names])
            for name, row in zip(names, matrix):
                w.writerow([name, *(f"{v:.6g}" for v in row)])
            write_text_atomic(out / f"goal_pose_matrix_{spec.name}.csv", text.getvalue())
            # Each row's best pose should be its own task: the diagonal wins its row.
            hits = int(sum(int(np.argmax(row)) == i for i, row in enumerate(matrix)))
            summary.setdefault("goal_pose_matrix", {})[spec.name] = {"diagonal_row_argmax": hits, "tasks": len(names)}

            def draw_matrix(plt, names=names, matrix=matrix, spec=spec, hits=hits):
                fig, ax = plt.subplots(figsize=(1.0 * len(names) + 3, 0.8 * len(names) + 2))
                im = ax.imshow(matrix, cmap="viridis")
                ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
                ax.set_yticks(range(len(names)), names, fontsize=8)
                ax.set_xlabel("reference pose of task")
                ax.set_ylabel("goal prompt of task")
                ax.set_title(f"{spec.name}: reward (own pose best in {hits}/{len(names)} rows)")
                fig.colorbar(im, ax=ax)
                return fig

            _plot(out / f"goal_pose_matrix_{spec.name}.png", draw_matrix)
    write_json_atomic(out / "summary.json", summary)
    return summary

