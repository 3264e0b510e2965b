"""Sample efficiency of RL runs: ground-truth return and success against environment steps, over seeds.

Reads finished training runs (``<run>/final/curve.json`` and ``eval.json``, as :class:`rlhf.rl.Trainer` writes
them), one glob pattern of run directories per method, and writes ``sample_efficiency.csv`` (per method and
step: mean, std, min, max, IQM and its bootstrap interval, for each metric), ``final.json`` (IQM and interval
of each method's final evaluation, the steps each method needs to reach a share of the best) and
``sample_efficiency.png`` (titled with the task, the threshold drawn; bands are the IQM's 95% bootstrap
interval from 5 seeds on, else the min–max over seeds, and say which; runs trained on a learned reward add a
panel with the per-step training (proxy) reward and the true reward from ``final/monitor.json``, so a proxy
that rises while the truth falls shows). ``recipes/eval/sample_efficiency.py``
runs it.
"""

from __future__ import annotations

import dataclasses
import glob
import json
from pathlib import Path

import numpy as np

from rlhf.artifacts import write_json_atomic
from rlhf.config import ConfigError
from rlhf.curves import aggregate, first_step_reaching, plot_aggregates, write_aggregates_csv
from rlhf.metrics import iqm_bootstrap_ci
from rlhf.rl import load_run_outputs

METRICS = {"gt_return": "ground-truth return", "success_rate": "success rate"}


@dataclasses.dataclass
class SampleEfficiencyConfig:
    runs: dict[str, str] = dataclasses.field(default_factory=dict)  # method -> glob of run directories (one per seed)
    output_dir: str = "runs/eval/sample_efficiency"
    metrics: list[str] = dataclasses.field(default_factory=lambda: list(METRICS))
    n_boot: int = 2000
    confidence: float = 0.95
    threshold_fraction: float = 0.95  # report the first step each method's IQM reaches this share of the best IQM
    title: str = ""

    def __post_init__(self) -> None:
        if not self.runs:
            raise ConfigError("give at least one method: {method: glob of run directories}", key="runs")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ConfigError(f"unknown {unknown}; choose from {list(METRICS)}", key="metrics")


def find_runs(cfg: SampleEfficiencyConfig) -> dict[str, list[str]]:
    """method -> its run directories; a pattern that matches nothing is an error naming the method."""
    found = {}
    for method, pattern in cfg.runs.items():
        dirs = sorted(p for p in glob.glob(pattern) if Path(p).is_dir())
        if not dirs:
            raise FileNotFoundError(f"config key 'runs.{method}': no run directories match {pattern!r}")
        found[method] = dirs
    return found


def evaluate_sample_efficiency(cfg: SampleEfficiencyConfig) -> dict:
    """Aggregate every method's runs; write the CSV, the JSON and the plot; return the final statistics."""
    dirs = find_runs(cfg)
    runs = {method: [load_run_outputs(d) for d in ds] for method, ds in dirs.items()}
    tasks = sorted({json.loads((Path(d) / "run_config.json").read_text()).get("task", "?") for ds in dirs.values()
                    for d in ds if (Path(d) / "run_config.json").is_file()})
    out = Path(cfg.output_dir)
    aggregates = {
        metric: {m: aggregate([r["curve"] for r in rs], metric, cfg.n_boot, cfg.confidence) for m, rs in runs.items()}
        for metric in cfg.metrics
    }
    # Runs trained on a learned reward kept it next to the true one (final/monitor.json): both on one panel.
    monitors = {m: [json.loads(p.read_text())["points"] for d in ds if (p := Path(d) / "final" / "monitor.json").is_file()]
                for m, ds in dirs.items()}
    training_reward = {}
    for method, points in monitors.items():
        if points and len(points) == len(dirs[method]):
            for side in ("proxy", "true"):
                training_reward[f"{method}, {side}"] = aggregate(points, side, cfg.n_boot, cfg.confidence)
    write_aggregates_csv(out / "sample_efficiency.csv",
                         {**aggregates, **({"training_reward_per_step": training_reward} if training_reward else {})})
    final: dict = {}
    key = {"gt_return": "gt_return_mean", "success_rate": "success_rate"}
    for method, rs in runs.items():
        final[method] = {"seeds": len(rs)}
        for metric in cfg.metrics:
            values = np.array([r["eval"][key[metric]] for r in rs])
            est = iqm_bootstrap_ci(values, n_boot=cfg.n_boot, confidence=cfg.confidence)
            final[method][metric] = {"iqm": est.value, "low": est.low, "high": est.high, "per_seed": values.tolist()}
    reference_lines = {}
    returns = aggregates.get("gt_return")
    if returns:
        best = max(float(a["iqm"].max()) for a in returns.values())
        threshold = cfg.threshold_fraction * best
        for method, agg in returns.items():
            final[method]["steps_to_threshold"] = first_step_reaching(agg["step"], agg["iqm"], threshold)
        final["threshold"] = {"fraction_of_best_iqm": cfg.threshold_fraction, "value": threshold}
        reference_lines[METRICS["gt_return"]] = {f"{cfg.threshold_fraction:.0%} of the best IQM": threshold}
    final["tasks"] = tasks
    write_json_atomic(out / "final.json", final)
    panels = {METRICS[m]: aggregates[m] for m in cfg.metrics}
    if training_reward:
        panels["training reward per step (proxy = the reward trained on)"] = training_reward
    plot_aggregates(out / "sample_efficiency.png", panels,
                    title=cfg.title or f"{', '.join(tasks)}: IQM over seeds", reference_lines=reference_lines)
    return final
