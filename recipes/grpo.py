"""GRPO (TRL ``GRPOTrainer``) on summarization prompts with a learned reward model as the reward.

    python recipes/grpo.py --config recipes/configs/grpo_cpu.yaml --reward_model runs/reward_model_cpu/model
    accelerate launch --config_file recipes/accelerate/<config>.yaml recipes/grpo.py --config <gpu config>

The reward model's mean and std are logged as ``rewards/<reward model name>/mean|std`` (TensorBoard with
``--grpo.report_to [tensorboard]``). Prints the mean reward of the first and last logging steps and saves
the policy to ``<output_dir>/final``; with ``grpo.save_steps`` a rerun resumes from the last checkpoint.
All the work is in ``language_feedback.grpo`` and ``rlhf.grpo``.
"""

from __future__ import annotations

from language_feedback.grpo import SummarizationGRPOConfig, run_summarization_grpo
from rlhf.cli import run_recipe
from rlhf.config import load_config


def main(argv: list[str] | None = None) -> dict:
    result = run_summarization_grpo(load_config(SummarizationGRPOConfig, argv))
    if result["rewards"]:
        (first_step, first), (last_step, last) = result["rewards"][0], result["rewards"][-1]
        print(f"{result['reward_key']}: step {first_step} {first:.4f} -> step {last_step} {last:.4f}")
    print(f"policy: {result['policy']}")
    return result


if __name__ == "__main__":
    run_recipe(main)
