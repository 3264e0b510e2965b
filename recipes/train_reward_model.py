"""Train a Bradley–Terry reward model on summary comparisons and report its held-out accuracy.

    python recipes/train_reward_model.py --config recipes/configs/reward_model_cpu.yaml
    accelerate launch --config_file recipes/accelerate/<config>.yaml recipes/train_reward_model.py \\
        --config recipes/configs/reward_model_gpu.yaml --data /path/to/slf5k

Training comparisons: the human comparisons of ``split`` in the SLF5K-format ``data`` plus every JSONL file
in ``comparisons`` (e.g. an ILF run's ``round1/selection/comparisons.jsonl``). Prints the held-out accuracy
before and after training and the model directory (``<output_dir>/model``). A rerun with the same config
reuses the trained model; a changed config is refused. All the work is in ``language_feedback.reward_model_training``.
"""

from __future__ import annotations

from language_feedback.reward_model_training import RewardModelTraining, RewardModelTrainingConfig
from rlhf.cli import run_recipe
from rlhf.config import load_config


def main(argv: list[str] | None = None) -> dict:
    experiment = RewardModelTraining(load_config(RewardModelTrainingConfig, argv))
    print(f"training on {len(experiment.train_rows)} comparisons, held-out {len(experiment.eval_rows)}")
    metrics = experiment.run()
    print(experiment.report(metrics))
    return metrics


if __name__ == "__main__":
    run_recipe(main)
