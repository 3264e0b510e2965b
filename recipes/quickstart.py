"""Quickstart: language -> CLIP reward -> policy on CartPole, offline on a CPU, checked against ground truth.

    python recipes/quickstart.py                 # = --config recipes/configs/robotics/quickstart.yaml
    python recipes/quickstart.py --output_dir runs/qs2 --seeds [0,1,2,3,4]

Fine-tunes a small CLIP on captioned frames, measures its EPIC distance to the ground-truth reward, trains
PPO on its reward and on the ground truth, and prints a table with every target's PASS/FAIL. Every stage
is written into ``<output_dir>`` atomically; a rerun skips finished stages and resumes interrupted
training. All the work is in ``vlm_rewards.quickstart``.
"""

from __future__ import annotations

from pathlib import Path

from rlhf.cli import run_recipe
from rlhf.config import load_config
from vlm_rewards.quickstart import QuickstartConfig, RoboticsQuickstart

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "robotics" / "quickstart.yaml"


def main(argv: list[str] | None = None) -> dict:
    config = load_config(QuickstartConfig, argv, default_config=DEFAULT_CONFIG)
    result = RoboticsQuickstart(config).run()
    if not config.train:
        print(f"CLIP for {config.task} in {Path(config.output_dir) / 'clip' / 'model'}: EPIC distance to the "
              f"ground truth {result['epic_distance']:.3f} (target <= {config.targets.epic})")
    return result


if __name__ == "__main__":
    run_recipe(main)
