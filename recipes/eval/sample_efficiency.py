"""Sample efficiency: ground-truth return and success against environment steps, IQM over seeds with bootstrap bands.

    python recipes/eval/sample_efficiency.py --config recipes/configs/robotics/eval_sample_efficiency_quickstart.yaml
    python recipes/eval/sample_efficiency.py --runs '{vlm: "runs/a/seed_*", gt: "runs/b/seed_*"}' --output_dir out/

Reads finished training runs (``<run>/final/curve.json`` and ``eval.json``, as written by
``recipes/train_policy.py`` and the quickstart), one glob pattern of run directories per method, and
writes ``sample_efficiency.csv`` (per method and step: mean, std, min, max, IQM and its bootstrap
interval, for each metric), ``final.json`` (IQM and interval of each method's final evaluation) and
``sample_efficiency.png``.
"""

from __future__ import annotations

import dataclasses
import glob
import sys
from pathlib import Path

import numpy as np

from rlhf.artifacts import write_json_atomic
from rlhf.config import load_config
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


def find_runs(cfg: SampleEfficiencyConfig) -> dict[str, list[dict]]:
    """method -> outputs of its runs; a pattern that matches nothing is an error naming the method."""
    if not cfg.runs:
        raise ValueError("config key 'runs': give at least one method: {method: glob of run directories}")
    unknown = [m for m in cfg.metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"config key 'metrics': unknown {unknown}; choose from {list(METRICS)}")
    found = {}
    for method, pattern in cfg.runs.items():
        dirs = sorted(p for p in glob.glob(pattern) if Path(p).is_dir())
        if not dirs:
            raise FileNotFoundError(f"config key 'runs.{method}': no run directories match {pattern!r}")
        found[method] = [load_run_outputs(d) for d in dirs]
    return found


def main(argv: list[str] | None = None) -> dict:
    cfg = load_config(SampleEfficiencyConfig, argv)
    runs = find_runs(cfg)
    out = Path(cfg.output_dir)
    aggregates = {
        metric: {m: aggregate([r["curve"] for r in rs], metric, cfg.n_boot, cfg.confidence) for m, rs in runs.items()}
        for metric in cfg.metrics
    }
    write_aggregates_csv(out / "sample_efficiency.csv", aggregates)
    final = {}
    key = {"gt_return": "gt_return_mean", "success_rate": "success_rate"}
    for method, rs in runs.items():
        final[method] = {"seeds": len(rs)}
        for metric in cfg.metrics:
            values = np.array([r["eval"][key[metric]] for r in rs])
            est = iqm_bootstrap_ci(values, n_boot=cfg.n_boot, confidence=cfg.confidence)
            final[method][metric] = {"iqm": est.value, "low": est.low, "high": est.high, "per_seed": values.tolist()}
    returns = aggregates.get("gt_return")
    if returns:
        best = max(float(a["iqm"].max()) for a in returns.values())
        threshold = cfg.threshold_fraction * best
        for method, agg in returns.items():
            final[method]["steps_to_threshold"] = first_step_reaching(agg["step"], agg["iqm"], threshold)
        final["threshold"] = {"fraction_of_best_iqm": cfg.threshold_fraction, "value": threshold}
    write_json_atomic(out / "final.json", final)
    plot_aggregates(out / "sample_efficiency.png", {METRICS[m]: aggregates[m] for m in cfg.metrics},
                    title=cfg.title or f"IQM over seeds, {cfg.confidence:.0%} bootstrap band")
    for method in runs:
        parts = [f"{m} IQM {final[method][m]['iqm']:.3g} [{final[method][m]['low']:.3g}, {final[method][m]['high']:.3g}]"
                 for m in cfg.metrics]
        print(f"{method} ({final[method]['seeds']} seeds): " + ", ".join(parts))
    print(f"wrote {out / 'sample_efficiency.csv'}, {out / 'final.json'}, {out / 'sample_efficiency.png'}")
    return final


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
