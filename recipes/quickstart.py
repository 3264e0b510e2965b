"""Quickstart: language -> CLIP reward -> policy on CartPole, offline on a CPU, checked against ground truth.

    python recipes/quickstart.py                 # = --config recipes/configs/robotics/quickstart.yaml
    python recipes/quickstart.py --output_dir runs/qs2 --seeds [0,1,2,3,4]

No CLIP weights can be downloaded here, so the quickstart adapts a small CLIP to the scene first:

1. render frames of the task at states drawn uniformly over the whole state space, caption each frame
   with the task's state-based captioner;
2. fine-tune a small open_clip model (convolutional image tower) contrastively on the pairs;
3. measure reward quality: EPIC distance between the CLIP reward (goal/baseline prompts, alpha) and
   the task's ground-truth reward on fresh uniform states;
4. train PPO on the CLIP reward and, side by side, on the ground-truth reward (same settings, several
   seeds, runs in parallel worker processes);
5. print a table and the targets with PASS/FAIL, write ``summary.json``, ``curves.csv`` and ``returns.png``.

The ground-truth agents need no CLIP model, so they train in worker processes while the main process
fine-tunes CLIP.

Every stage writes into ``<output_dir>`` atomically; a rerun skips finished stages and resumes
interrupted training runs from their checkpoints (the timings printed then cover only this invocation).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import resource
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling recipe modules, also under spawn

from train_policy import (
    RewardConfig,
    TrainPolicyConfig,
    build_reward_model,
    get_task_or_raise,
    make_trainers,
    render_states,
    sample_states,
)
from typing_extensions import Self

from rlhf.artifacts import RunDir, write_json_atomic, write_text_atomic
from rlhf.config import config_to_dict, load_config
from rlhf.curves import aggregate, first_step_reaching, plot_aggregates, write_aggregates_csv
from rlhf.rl import RLConfig, load_run_outputs, state_reward_epic, validate_rl_config
from vlm_rewards import load_open_clip, small_conv_clip_config
from vlm_rewards.finetune import FinetuneConfig, finetune_clip

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "robotics" / "quickstart.yaml"
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
    workers: int = 2  # training processes in parallel, one torch thread each (0: train in this process)
    torch_threads: int = 2  # for fine-tuning and reward-quality scoring in the main process
    targets: Targets = dataclasses.field(default_factory=Targets)


def parse_args(argv: list[str] | None = None) -> QuickstartConfig:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--config" or a.startswith("--config=") for a in argv):
        argv = ["--config", str(DEFAULT_CONFIG), *argv]
    cfg = load_config(QuickstartConfig, argv)
    get_task_or_raise(cfg.task)
    if cfg.train:
        validate_rl_config(cfg.rl)
    if cfg.workers < 0:
        raise ValueError(f"config key 'workers': must be >= 0 (0: train in this process), got {cfg.workers}")
    if len(cfg.seeds) < 1 or len(set(cfg.seeds)) != len(cfg.seeds):
        raise ValueError(f"config key 'seeds': need distinct seeds, got {cfg.seeds}")
    return cfg


def method_config(cfg: QuickstartConfig, method: str, clip_dir: Path) -> TrainPolicyConfig:
    """The train_policy config of one side of the comparison (identical RL settings for both)."""
    reward = dataclasses.replace(cfg.reward, source="vlm" if method == "vlm_reward" else "ground_truth",
                                 model=str(clip_dir), pretrained=None, model_config=None)
    rl = dataclasses.replace(cfg.rl, progress_bar=False)
    return TrainPolicyConfig(task=cfg.task, output_dir=str(Path(cfg.output_dir) / "runs" / method), seeds=cfg.seeds,
                             reward=reward, rl=rl, torch_threads=1)


def train_one(train_cfg: TrainPolicyConfig, seed: int) -> dict:
    """Worker: train one seed of one method (resuming if a checkpoint exists); returns its final evaluation."""
    torch.set_num_threads(train_cfg.torch_threads)
    (trainer,) = make_trainers(train_cfg, [seed])
    started = time.time()
    result = trainer.train()
    print(f"  {train_cfg.reward.source:>12s} seed {seed}: ground-truth return {result['gt_return_mean']:.1f} "
          f"({time.time() - started:.0f} s)", flush=True)
    return result


def build_caption_data(cfg: QuickstartConfig, out: Path) -> None:
    task = get_task_or_raise(cfg.task)
    states = sample_states(task, cfg.data.pairs, cfg.data.seed)
    frames = render_states(task, states, cfg.data.render_size)
    np.save(out / "frames.npy", frames)
    np.save(out / "states.npy", states)
    (out / "captions.json").write_text(json.dumps([task.caption(s) for s in states]))


def build_clip(cfg: QuickstartConfig, data_dir: Path, out: Path) -> None:
    frames = np.load(data_dir / "frames.npy")
    captions = json.loads((data_dir / "captions.json").read_text())
    torch.manual_seed(cfg.finetune.seed)
    clip = load_open_clip(cfg.clip_model)
    result = finetune_clip(clip, frames, captions, cfg.finetune, output_dir=out / "model")
    write_json_atomic(out / "metrics.json", result.metrics())


def build_reward_quality(cfg: QuickstartConfig, clip_dir: Path, out: Path) -> None:
    """EPIC distance between the CLIP reward and the ground truth on fresh uniform states.

    Both rewards depend only on the state reached (see ``rlhf.rl.state_reward_epic``).
    """
    task = get_task_or_raise(cfg.task)
    states = sample_states(task, cfg.epic_states, cfg.data.seed + 1)
    frames = render_states(task, states, cfg.reward.render_size)
    reward_model = build_reward_model(dataclasses.replace(cfg.reward, model=str(clip_dir), model_config=None), task)
    vlm = reward_model(frames).numpy().astype(float)
    gt = task.rewards(states)
    epic = state_reward_epic(vlm, gt, seed=cfg.data.seed + 2)
    write_json_atomic(out / "reward_quality.json", {"epic_distance": epic, "states": len(states), "alpha": cfg.reward.alpha,
                                                     "goal_prompts": reward_model.goal_prompts,
                                                     "baseline_prompts": reward_model.baseline_prompts})
    np.savez(out / "rewards.npz", states=states, vlm_reward=vlm, gt_reward=gt)


def ratio_of_steps(steps: float, baseline_steps: float) -> float:
    """``steps / baseline_steps``; 1 when both reach the threshold before training (step 0), inf/nan if never."""
    if not math.isfinite(baseline_steps):
        return math.nan
    if baseline_steps == 0:
        return 1.0 if steps == 0 else math.inf
    return steps / baseline_steps


def report(cfg: QuickstartConfig, run: RunDir, wall_seconds: float, cpu_seconds: float, fresh: bool) -> dict:
    """Compare both methods; print the table and the targets; write summary.json, curves.csv, returns.png."""
    t = cfg.targets
    outputs = {m: [load_run_outputs(Path(cfg.output_dir) / "runs" / m / f"seed_{s}") for s in cfg.seeds] for m in METHODS}
    returns = {m: np.array([o["eval"]["gt_return_mean"] for o in outputs[m]]) for m in METHODS}
    success = {m: np.array([o["eval"]["success_rate"] for o in outputs[m]]) for m in METHODS}
    train_seconds = {m: np.array([o["eval"]["train_seconds"] for o in outputs[m]]) for m in METHODS}
    aggregates = {m: aggregate([o["curve"] for o in outputs[m]], "gt_return") for m in METHODS}
    success_aggregates = {m: aggregate([o["curve"] for o in outputs[m]], "success_rate") for m in METHODS}
    max_return = max(float(a["mean"].max()) for a in aggregates.values())
    threshold = t.threshold_fraction * max_return
    steps_to = {m: first_step_reaching(aggregates[m]["step"], aggregates[m]["mean"], threshold) for m in METHODS}
    epic = json.loads((run.stage_path("reward_quality") / "reward_quality.json").read_text())["epic_distance"]
    finetune = json.loads((run.stage_path("clip") / "metrics.json").read_text())

    return_ratio = float(returns["vlm_reward"].mean() / returns["ground_truth"].mean())
    steps_ratio = ratio_of_steps(steps_to["vlm_reward"], steps_to["ground_truth"])
    checks = [
        ("final ground-truth return, VLM / ground-truth agent", return_ratio, ">=", t.final_return_ratio),
        (f"steps to {t.threshold_fraction:.0%} of max return, VLM / ground-truth agent", steps_ratio, "<=", t.steps_ratio),
        ("EPIC distance, VLM reward vs ground truth (uniform states)", epic, "<=", t.epic),
        ("wall time of this invocation (minutes)", wall_seconds / 60, "<=", t.minutes),
    ]
    lines = [
        (f"Quickstart: {cfg.task}, {cfg.rl.algorithm.upper()} {cfg.rl.total_timesteps} env steps x {len(cfg.seeds)} seeds "
        f"{cfg.seeds}"),
        (f"CLIP fine-tuned on {finetune['train_size']} captioned frames: held-out caption retrieval "
        f"{finetune['eval_accuracy_after']:.1%} (chance {finetune['chance_accuracy']:.1%})"),
        "",
        (f"{'agent trained on':<18}{'final GT return':>20}{'success rate':>15}{f'steps to {threshold:.0f}':>17}"
        f"{'train wall s/seed':>19}"),
    ]
    for m in METHODS:
        steps = "never" if not math.isfinite(steps_to[m]) else f"{steps_to[m]:.0f}"
        lines.append(f"{m:<18}{returns[m].mean():>12.1f} ± {returns[m].std():<5.1f}{success[m].mean():>15.2f}"
                     f"{steps:>17}{train_seconds[m].mean():>19.0f}")
    lines += ["", "Targets:"]
    for name, value, op, bar in checks:
        ok = value >= bar if op == ">=" else value <= bar
        if name.startswith("wall time") and not fresh:  # a rerun reused finished stages: its time says nothing
            lines.append(f"  n/a   {name}: {value:.3f} (target {op} {bar}; stages were reused from an earlier run, "
                         "use a new output_dir to time the whole quickstart)")
            continue
        lines.append(f"  {'PASS' if ok else 'FAIL'}  {name}: {value:.3f} (target {op} {bar})")
    lines.append(f"  wall {wall_seconds:.0f} s, CPU {cpu_seconds:.0f} s (all processes) in this invocation; "
                 f"{os.cpu_count()} CPUs")
    table = "\n".join(lines)

    out = Path(cfg.output_dir)
    write_aggregates_csv(out / "curves.csv", {"gt_return": aggregates, "success_rate": success_aggregates})
    plot_aggregates(
        out / "returns.png",
        {"ground-truth return": aggregates, "success rate (at episode end)": success_aggregates},
        center="mean", band=("min", "max"),
        title=f"{cfg.task}: PPO on the fine-tuned CLIP reward vs on the ground-truth reward (mean, min-max over seeds)",
        reference_lines={"ground-truth return": {f"{t.threshold_fraction:.0%} of max": threshold}},
    )
    summary = {
        "config": config_to_dict(cfg),
        "final_gt_return": {m: returns[m].tolist() for m in METHODS},
        "success_rate": {m: success[m].tolist() for m in METHODS},
        "steps_to_threshold": {m: steps_to[m] for m in METHODS},
        "threshold": threshold,
        "targets": [{"name": n, "value": v, "op": op, "target": b, "pass": bool(v >= b if op == ">=" else v <= b)}
                    for n, v, op, b in checks if fresh or not n.startswith("wall time")],
        "fresh_run": fresh,
        "epic_distance": epic,
        "finetune": finetune,
        "wall_seconds": wall_seconds,
        "cpu_seconds": cpu_seconds,
    }
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "table.txt", table + "\n")
    print("\n" + table)
    print(f"\nwrote {out / 'returns.png'}, {out / 'curves.csv'}, {out / 'summary.json'}")
    return summary


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class _InlinePool:
    """``workers: 0``: run each job in this process when it is submitted (no worker start-up cost)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Any, *args: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future


def make_pool(workers: int) -> ProcessPoolExecutor | _InlinePool:
    """Worker processes (spawned: each starts clean, one torch thread) or, for 0 workers, this process."""
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers else _InlinePool()


def main(argv: list[str] | None = None) -> dict:
    started = time.time()
    cfg = parse_args(argv)
    torch.set_num_threads(cfg.torch_threads)
    fresh = not Path(cfg.output_dir).exists()
    run = RunDir(cfg.output_dir, config_to_dict(cfg))
    clip_dir = run.stage_path("clip") / "model"
    method_cfgs = {m: method_config(cfg, m, clip_dir) for m in METHODS}
    if not cfg.train:
        data_dir = run.run_stage("captions", lambda tmp: build_caption_data(cfg, tmp))
        run.run_stage("clip", lambda tmp: build_clip(cfg, data_dir, tmp))
        quality = run.run_stage("reward_quality", lambda tmp: build_reward_quality(cfg, clip_dir, tmp))
        result = json.loads((quality / "reward_quality.json").read_text())
        print(f"CLIP for {cfg.task} in {clip_dir}: EPIC distance to the ground truth {result['epic_distance']:.3f} "
              f"(target <= {cfg.targets.epic}: {'PASS' if result['epic_distance'] <= cfg.targets.epic else 'FAIL'})")
        return result
    # Bad configs and foreign run directories fail here, before anything trains.
    make_trainers(method_cfgs["ground_truth"], cfg.seeds)

    # The ground-truth agents need no CLIP model: they train in the worker processes while this
    # process captions frames and fine-tunes CLIP; the VLM-reward agents follow once CLIP is ready.
    with make_pool(cfg.workers) as pool:
        print(f"training {len(cfg.seeds)} ground-truth-reward agents in the background ({cfg.workers} workers)",
              flush=True)
        futures = [pool.submit(train_one, method_cfgs["ground_truth"], s) for s in cfg.seeds]
        print(f"[1/3] rendering and captioning {cfg.data.pairs} frames of {cfg.task}", flush=True)
        data_dir = run.run_stage("captions", lambda tmp: build_caption_data(cfg, tmp))
        print("[2/3] fine-tuning CLIP on the captions", flush=True)
        run.run_stage("clip", lambda tmp: build_clip(cfg, data_dir, tmp))
        print("[3/3] reward quality (EPIC distance to the ground truth); VLM-reward agents start", flush=True)
        make_trainers(method_cfgs["vlm_reward"], cfg.seeds)
        futures += [pool.submit(train_one, method_cfgs["vlm_reward"], s) for s in cfg.seeds]
        run.run_stage("reward_quality", lambda tmp: build_reward_quality(cfg, clip_dir, tmp))
        for future in futures:
            future.result()
    return report(cfg, run, time.time() - started, cpu_seconds(), fresh)


if __name__ == "__main__":
    main()
