"""Train a stable-baselines3 policy on a named task with a VLM (CLIP) reward or the ground-truth reward.

    python recipes/train_policy.py --config recipes/configs/robotics/cartpole_vlm_ppo_cpu.yaml
    python recipes/train_policy.py --config ... --rl.total_timesteps 20480 --seeds [0,1,2]
    # seeds split across processes (rank r trains seeds[r::world_size]):
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/train_policy.py --config ...
    # one learner (rank 0), every reward batch sharded over all processes:
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/train_policy.py --config ... --shard_reward true

Per seed, ``<output_dir>/seed_<s>/`` holds TensorBoard logs (training reward, ground-truth return,
success rate), a checkpoint that a rerun resumes from, and at the end ``final/eval.json`` (ground-truth
return and success rate over N episodes) and ``final/curve.json``. ``<output_dir>/summary.json``
collects every seed's final evaluation. All the work is in ``vlm_rewards.robotics``.
"""

from __future__ import annotations

from accelerate import PartialState

from rlhf.cli import run_recipe
from rlhf.config import load_config
from vlm_rewards.robotics import PolicyTraining, TrainPolicyConfig


def main(argv: list[str] | None = None) -> dict | None:
    config = load_config(TrainPolicyConfig, argv)
    # cpu=True makes processes started by accelerate's torchrun launcher join one gloo process group.
    state = PartialState(cpu=config.reward.device == "cpu" and config.rl.device == "cpu")
    try:
        summary = PolicyTraining(config, state).run()
    finally:
        state.destroy_process_group()  # else gloo's threads can abort the process at exit
    if summary is not None:
        print(f"{config.task} [{config.reward.source}, {config.rl.algorithm}, {config.rl.total_timesteps} steps]: "
              f"ground-truth return {summary['gt_return_mean_over_seeds']:.1f}, "
              f"success rate {summary['success_rate_mean_over_seeds']:.2f} over seeds {config.seeds}")
    return summary


if __name__ == "__main__":
    run_recipe(main)
