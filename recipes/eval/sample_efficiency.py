"""Sample efficiency: ground-truth return and success against environment steps, IQM over seeds with bootstrap bands.

    python recipes/eval/sample_efficiency.py --config recipes/configs/robotics/eval_sample_efficiency_quickstart.yaml
    python recipes/eval/sample_efficiency.py --runs '{vlm: "runs/a/seed_*", gt: "runs/b/seed_*"}' --output_dir out/

Reads finished training runs (``<run>/final/curve.json`` and ``eval.json``, as written by
``recipes/train_policy.py`` and the quickstart), one glob pattern of run directories per method, and
writes ``sample_efficiency.csv`` (per method and step: mean, std, min, max, IQM and its bootstrap
interval, for each metric), ``final.json`` (IQM and interval of each method's final evaluation) and
``sample_efficiency.png``. All the work is in ``rlhf.sample_efficiency``.
"""

from __future__ import annotations

from rlhf.cli import run_recipe
from rlhf.config import load_config
from rlhf.sample_efficiency import METRICS, SampleEfficiencyConfig, evaluate_sample_efficiency


def main(argv: list[str] | None = None) -> dict:
    config = load_config(SampleEfficiencyConfig, argv)
    final = evaluate_sample_efficiency(config)
    for method in config.runs:
        parts = [f"{m} IQM {final[method][m]['iqm']:.3g} [{final[method][m]['low']:.3g}, {final[method][m]['high']:.3g}]"
                 for m in config.metrics if m in METRICS]
        print(f"{method} ({final[method]['seeds']} seeds): " + ", ".join(parts))
    print(f"wrote sample_efficiency.csv, final.json and sample_efficiency.png to {config.output_dir}")
    return final


if __name__ == "__main__":
    run_recipe(main)
