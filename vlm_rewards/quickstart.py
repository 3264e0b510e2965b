"""The robotics quickstart: language → CLIP reward → policy, offline on a CPU, checked against the ground truth.

No CLIP weights can be downloaded here, so the quickstart adapts a small CLIP to the scene first. Stages,
each written atomically into ``<output_dir>`` (a rerun skips finished stages and resumes interrupted
training from its checkpoints):

1. ``captions``: render frames of the task at states drawn uniformly over the whole state space, caption
   each frame with the task's state-based captioner;
2. ``clip``: fine-tune a small open_clip model (convolutional image tower) contrastively on the pairs;
3. ``reward_quality``: EPIC distance between the CLIP reward (goal/baseline prompts, alpha) and the task's
   ground-truth reward on fresh uniform states;
4. ``runs/<method>/seed_<s>``: PPO on the CLIP reward and, side by side, on the ground-truth reward (same
   settings, several seeds, in parallel worker processes; the ground-truth agents need no CLIP model, so
   they train while the main process fine-tunes CLIP); each seed ends with the video of a final-evaluation
   episode with both rewards drawn under the frames (``video/final.{mp4,gif}``, :mod:`vlm_rewards.video`);
5. the report: a table and the targets with PASS/FAIL, ``summary.json``, ``curves.csv``, ``returns.png``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlhf.artifacts import write_json_atomic, write_text_atomic
from rlhf.config import ConfigError, config_to_dict, runtime_field
from rlhf.curves import aggregate, first_step_reaching, plot_aggregates, write_aggregates_csv
from rlhf.experiment import Experiment, worker_pool
from rlhf.rl import RLConfig, load_run_outputs, state_reward_epic
from rlhf.targets import Target, ratio
from vlm_rewards.clip_models import load_open_clip
from vlm_rewards.configs import small_conv_clip_config
from vlm_rewards.finetune import FinetuneConfig, finetune_clip
from vlm_rewards.robotics import (
    PolicyTraining,
    RewardConfig,
    TrainPolicyConfig,
    build_reward_model,
    get_task,
    make_trainers,
    render_states,
    sample_states,
)

METHODS = ("vlm_reward", "ground_truth")


@dataclasses.dataclass
class CaptionDataConfig:
    pairs: int = 4000  # (frame, caption) pairs from uniformly sampled states
    render_size: int = 64
    seed: int = 0


@dataclasses.dataclass
class Targets:
    """The quickstart's bars; each is printed with PASS/FAIL."""

    final_return_ratio: float = 0.95  # VLM agent's final ground-truth return / ground-truth agent's, at least
    steps_ratio: float = 1.5  # steps to reach threshold_fraction * max return, VLM / ground truth, at most
    threshold_fraction: float = 0.95
    epic: float = 0.35  # EPIC distance to the ground-truth reward, at most
    minutes: float = 10.0  # wall time of the whole quickstart, at most
    #: Both agents must have learned: final ground-truth return minus that of the first evaluation, at least.
    #: Without it two agents that learned nothing would pass every relative target by being equal.
    min_improvement: float = 100.0


@dataclasses.dataclass
class QuickstartConfig:
    task: str = "cartpole-upright"
    output_dir: str = "runs/quickstart"
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0, 1, 2])
    data: CaptionDataConfig = dataclasses.field(default_factory=CaptionDataConfig)
    clip_model: dict[str, Any] = dataclasses.field(default_factory=small_conv_clip_config)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)
    rl: RLConfig = dataclasses.field(default_factory=RLConfig)
    epic_states: int = 2000
    #: False: stop after fine-tuning CLIP and measuring its EPIC distance (make a reward model for another task).
    train: bool = True
    workers: int = runtime_field(2)  # training processes in parallel, one torch thread each (0: in this process)
    torch_threads: int = runtime_field(2)  # for fine-tuning and reward-quality scoring in the main process
    targets: Targets = dataclasses.field(default_factory=Targets)

    def __post_init__(self) -> None:
        get_task(self.task)
        if self.workers < 0:
            raise ConfigError(f"must be >= 0 (0: train in this process), got {self.workers}", key="workers")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"need distinct seeds, got {self.seeds}", key="seeds")


def _train_one(train_cfg: TrainPolicyConfig, seed: int) -> dict:
    """Worker: train one seed of one method (resuming if a checkpoint exists); returns its final evaluation."""
    torch.set_num_threads(train_cfg.torch_threads)
    started = time.time()
    (result,) = PolicyTraining(train_cfg).train_seeds([seed])  # with the video of a final-evaluation episode
    print(f"  {train_cfg.reward.source:>12s} seed {seed}: ground-truth return {result['gt_return_mean']:.1f} "
          f"({time.time() - started:.0f} s)", flush=True)
    return result


def cpu_seconds() -> float:
    """CPU time of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class RoboticsQuickstart(Experiment):
    """The quickstart experiment (see the module docstring); :meth:`run` returns the summary."""

    config: QuickstartConfig

    def __init__(self, config: QuickstartConfig):
        super().__init__(config)
        self.clip_dir = self.run_dir.stage_path("clip") / "model"

    def method_config(self, method: str) -> TrainPolicyConfig:
        """The policy-training config of one side of the comparison (identical RL settings for both)."""
        cfg = self.config
        reward = dataclasses.replace(cfg.reward, source="vlm" if method == "vlm_reward" else "ground_truth",
                                     model=str(self.clip_dir), pretrained=None, model_config=None)
        rl = dataclasses.replace(cfg.rl, progress_bar=False)
        return TrainPolicyConfig(task=cfg.task, output_dir=str(Path(cfg.output_dir) / "runs" / method),
                                 seeds=cfg.seeds, reward=reward, rl=rl, torch_threads=1)

    # -- stages -----------------------------------------------------------------------------------

    def captions(self, out: Path) -> None:
        cfg = self.config
        task = get_task(cfg.task)
        states = sample_states(task, cfg.data.pairs, cfg.data.seed)
        frames = render_states(task, states, cfg.data.render_size)
        np.save(out / "frames.npy", frames)
        np.save(out / "states.npy", states)
        (out / "captions.json").write_text(json.dumps([task.caption(s) for s in states]))

    def clip(self, out: Path) -> None:
        cfg = self.config
        data_dir = self.run_dir.stage_path("captions")
        frames = np.load(data_dir / "frames.npy")
        captions = json.loads((data_dir / "captions.json").read_text())
        torch.manual_seed(cfg.finetune.seed)
        task = get_task(cfg.task)
        # The checkpoint remembers the prompts and alpha it is made for: whoever loads it gets them as defaults.
        reward = {"goal_prompts": cfg.reward.goal_prompts or list(task.goal_prompts),
                  "baseline_prompts": cfg.reward.baseline_prompts or list(task.baseline_prompts),
                  "alpha": cfg.reward.alpha if cfg.reward.alpha is not None else 0.0}
        result = finetune_clip(load_open_clip(cfg.clip_model), frames, captions, cfg.finetune, output_dir=out / "model",
                               reward_settings=reward)
        write_json_atomic(out / "metrics.json", result.metrics())

    def reward_quality(self, out: Path) -> None:
        """EPIC distance between the CLIP reward and the ground truth on fresh uniform states.

        Both rewards depend only on the state reached (see ``rlhf.rl.state_reward_epic``).
        """
        cfg = self.config
        task = get_task(cfg.task)
        states = sample_states(task, cfg.epic_states, cfg.data.seed + 1)
        frames = render_states(task, states, cfg.reward.render_size)
        reward_model = build_reward_model(
            dataclasses.replace(cfg.reward, model=str(self.clip_dir), model_config=None), task)
        vlm = reward_model(frames).numpy().astype(float)
        gt = task.rewards(states)
        epic = state_reward_epic(vlm, gt, seed=cfg.data.seed + 2)
        write_json_atomic(out / "reward_quality.json", {
            "epic_distance": epic, "states": len(states), "alpha": cfg.reward.alpha,
            "goal_prompts": reward_model.goal_prompts, "baseline_prompts": reward_model.baseline_prompts})
        np.savez(out / "rewards.npz", states=states, vlm_reward=vlm, gt_reward=gt)

    # -- driver -----------------------------------------------------------------------------------

    def run(self) -> dict:
        """Run (or resume) every stage; with ``train: false`` stop after the reward-quality stage."""
        cfg = self.config
        torch.set_num_threads(cfg.torch_threads)
        if not cfg.train:
            for name in ("captions", "clip", "reward_quality"):
                self.run_dir.stage(name, getattr(self, name))
            return json.loads((self.run_dir.stage_path("reward_quality") / "reward_quality.json").read_text())
        method_cfgs = {m: self.method_config(m) for m in METHODS}
        make_trainers(method_cfgs["ground_truth"])  # foreign run directories fail here, before anything trains
        # The ground-truth agents need no CLIP model: they train in the worker processes while this
        # process captions frames and fine-tunes CLIP; the VLM-reward agents follow once CLIP is ready.
        with worker_pool(cfg.workers) as pool:
            print(f"training {len(cfg.seeds)} ground-truth-reward agents in the background ({cfg.workers} workers)",
                  flush=True)
            futures = [pool.submit(_train_one, method_cfgs["ground_truth"], s) for s in cfg.seeds]
            print(f"[1/3] rendering and captioning {cfg.data.pairs} frames of {cfg.task}", flush=True)
            self.run_dir.stage("captions", self.captions)
            print("[2/3] fine-tuning CLIP on the captions", flush=True)
            self.run_dir.stage("clip", self.clip)
            print("[3/3] reward quality (EPIC distance to the ground truth); VLM-reward agents start", flush=True)
            make_trainers(method_cfgs["vlm_reward"])
            futures += [pool.submit(_train_one, method_cfgs["vlm_reward"], s) for s in cfg.seeds]
            self.run_dir.stage("reward_quality", self.reward_quality)
            for future in futures:
                future.result()
        return self.report(time.time() - self.started, cpu_seconds())

    def report(self, wall_seconds: float, cpu_s: float) -> dict:
        """Compare both methods; print the table and the targets; write summary.json, curves.csv, returns.png."""
        cfg, t = self.config, self.config.targets
        outputs = {m: [load_run_outputs(Path(cfg.output_dir) / "runs" / m / f"seed_{s}") for s in cfg.seeds]
                   for m in METHODS}
        returns = {m: np.array([o["eval"]["gt_return_mean"] for o in outputs[m]]) for m in METHODS}
        success = {m: np.array([o["eval"]["success_rate"] for o in outputs[m]]) for m in METHODS}
        train_seconds = {m: np.array([o["eval"]["train_seconds"] for o in outputs[m]]) for m in METHODS}
        aggregates = {m: aggregate([o["curve"] for o in outputs[m]], "gt_return") for m in METHODS}
        success_aggregates = {m: aggregate([o["curve"] for o in outputs[m]], "success_rate") for m in METHODS}
        max_return = max(float(a["mean"].max()) for a in aggregates.values())
        threshold = t.threshold_fraction * max_return
        steps_to = {m: first_step_reaching(aggregates[m]["step"], aggregates[m]["mean"], threshold) for m in METHODS}
        improvement = {m: float(aggregates[m]["mean"][-1] - aggregates[m]["mean"][0]) for m in METHODS}
        epic = json.loads((self.run_dir.stage_path("reward_quality") / "reward_quality.json").read_text())["epic_distance"]
        finetune = json.loads((self.run_dir.stage_path("clip") / "metrics.json").read_text())

        learned = all(improvement[m] >= t.min_improvement for m in METHODS)
        no_learning = f"an agent improved on its first evaluation by less than {t.min_improvement:g}"
        steps_ratio = ratio(steps_to["vlm_reward"], steps_to["ground_truth"])
        steps_why = ("the ground-truth agent reached the threshold at its first evaluation"
                     if steps_to["ground_truth"] == 0 else "an agent never reached the threshold")
        targets = [
            Target("improvement over the first evaluation, VLM agent (ground-truth return)",
                   improvement["vlm_reward"], ">=", t.min_improvement),
            Target("improvement over the first evaluation, ground-truth agent", improvement["ground_truth"], ">=",
                   t.min_improvement),
            Target("final ground-truth return, VLM / ground-truth agent",
                   ratio(returns["vlm_reward"].mean(), returns["ground_truth"].mean()) if learned else None,
                   ">=", t.final_return_ratio, why=no_learning),
            Target(f"steps to {t.threshold_fraction:.0%} of max return, VLM / ground-truth agent",
                   steps_ratio if learned else None, "<=", t.steps_ratio,
                   why=steps_why if learned else no_learning),
            Target("EPIC distance, VLM reward vs ground truth (uniform states)", epic, "<=", t.epic),
        ]
        if self.fresh:  # a rerun reused finished stages: its wall time says nothing about the quickstart's
            targets.append(Target("wall time of this invocation (minutes)", wall_seconds / 60, "<=", t.minutes))
        lines = [
            (f"Quickstart: {cfg.task}, {cfg.rl.algorithm.upper()} {cfg.rl.total_timesteps} env steps x "
             f"{len(cfg.seeds)} seeds {cfg.seeds}"),
            (f"CLIP fine-tuned on {finetune['train_size']} captioned frames: held-out caption retrieval "
             f"{finetune['eval_accuracy_after']:.1%} (chance {finetune['chance_accuracy']:.1%})"),
            "",
            (f"{'agent trained on':<18}{'final GT return':>20}{'success rate':>15}{f'steps to {threshold:.0f}':>17}"
             f"{'train wall s/seed':>19}"),
        ]
        for m in METHODS:
            steps = "never" if not np.isfinite(steps_to[m]) else f"{steps_to[m]:.0f}"
            lines.append(f"{m:<18}{returns[m].mean():>12.1f} ± {returns[m].std():<5.1f}{success[m].mean():>15.2f}"
                         f"{steps:>17}{train_seconds[m].mean():>19.0f}")
        lines += ["", "Targets:", *(target.line() for target in targets)]
        if not self.fresh:
            lines.append("  n/a   wall time: stages were reused from an earlier run (use a new output_dir to time the "
                         "whole quickstart)")
        lines.append(f"  wall {wall_seconds:.0f} s, CPU {cpu_s:.0f} s (all processes) in this invocation; "
                     f"{os.cpu_count()} CPUs")
        table = "\n".join(lines)

        out = Path(cfg.output_dir)
        write_aggregates_csv(out / "curves.csv", {"gt_return": aggregates, "success_rate": success_aggregates})
        plot_aggregates(
            out / "returns.png",
            {"ground-truth return": aggregates, "success rate (at episode end)": success_aggregates},
            center="mean",
            title=f"{cfg.task}: PPO on the fine-tuned CLIP reward vs on the ground-truth reward (mean, min-max over seeds)",
            reference_lines={"ground-truth return": {f"{t.threshold_fraction:.0%} of max": threshold}},
        )
        summary = {
            "config": config_to_dict(cfg),
            "final_gt_return": {m: returns[m].tolist() for m in METHODS},
            "success_rate": {m: success[m].tolist() for m in METHODS},
            "steps_to_threshold": steps_to,
            "improvement_over_first_evaluation": improvement,
            "threshold": threshold,
            "targets": [target.to_json() for target in targets],
            "fresh_run": self.fresh,
            "epic_distance": epic,
            "finetune": finetune,
            "wall_seconds": wall_seconds,
            "cpu_seconds": cpu_s,
        }
        write_json_atomic(out / "summary.json", summary)
        write_text_atomic(out / "table.txt", table + "\n")
        print("\n" + table)
        print(f"\nwrote {out / 'returns.png'}, {out / 'curves.csv'}, {out / 'summary.json'}")
        return summary
