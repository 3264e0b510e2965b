"""Reward quality: how close is a CLIP reward to the task's ground truth?

    python recipes/eval/reward_quality.py --config recipes/configs/robotics/eval_reward_quality_cartpole.yaml
    python recipes/eval/reward_quality.py --config recipes/configs/robotics/eval_reward_quality_humanoid_gpu.yaml

For each model and each alpha: the EPIC distance between the CLIP reward and the task's ground truth, on
uniform or rollout states. Writes ``epic.csv``, ``epic.png``, ``reward_vs_ground_truth.png`` and, with
``matrix_tasks``, the goal-prompt x reference-pose matrix. All the work is in ``vlm_rewards.reward_quality``.
"""

from __future__ import annotations

from rlhf.cli import run_recipe
from rlhf.config import load_config
from vlm_rewards.reward_quality import RewardQualityConfig, evaluate_reward_quality


def main(argv: list[str] | None = None) -> dict:
    config = load_config(RewardQualityConfig, argv)
    summary = evaluate_reward_quality(config)
    for row in summary["epic"]:
        print(f"{row['model']} alpha={row['alpha']:g}: EPIC distance {row['epic_distance']:.3f}")
    for name, hits in summary.get("goal_pose_matrix", {}).items():
        print(f"{name}: own goal prompt scores its own pose best in {hits['diagonal_row_argmax']}/{hits['tasks']} rows")
    print(f"wrote {config.output_dir}/epic.csv, epic.png, reward_vs_ground_truth.png, summary.json")
    return summary


if __name__ == "__main__":
    run_recipe(main)
