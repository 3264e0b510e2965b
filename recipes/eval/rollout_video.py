"""Film a trained policy: MP4 and GIF of its episodes with the model (CLIP) and the ground-truth reward drawn
under every frame, and the per-step rewards as CSV.

    python recipes/eval/rollout_video.py --run_dir runs/robotics/cartpole/seed_0
    python recipes/eval/rollout_video.py --run_dir runs/robotics/cartpole/seed_0 --checkpoint checkpoint --episodes 3
    python recipes/eval/rollout_video.py --run_dir runs/robotics/cartpole/seed_0 --policy_file other/model.zip \\
        --seed 7 --output_dir videos/

``run_dir`` is a seed run directory of ``recipes/train_policy.py`` (``<output_dir>/seed_<s>``): its
``run_config.json`` gives the task, the env settings and the reward; the policy is ``final/model.zip``
(``--checkpoint checkpoint``: the latest checkpoint of a run still training) or ``--policy_file``. Writes
``<output_dir>/<name>.mp4``, ``.gif`` and ``.csv`` (default ``<run_dir>/rollouts/final_seed0.*``) and prints
each episode's returns under both rewards. All the work is in ``vlm_rewards.video``.
"""

from __future__ import annotations

from rlhf.cli import run_recipe
from rlhf.config import load_config
from vlm_rewards.video import PolicyVideo, PolicyVideoConfig, record_policy_video


def main(argv: list[str] | None = None) -> PolicyVideo:
    config = load_config(PolicyVideoConfig, argv)
    video = record_policy_video(config)
    for e in video.episodes:
        model = "n/a (trained on the ground truth)" if e["model_return"] is None else f"{e['model_return']:.2f}"
        print(f"episode {e['episode'] + 1}: {e['steps']} steps, ground-truth return {e['ground_truth_return']:.2f}, "
              f"model-reward return {model}, success at the end: {e['success_at_end']}")
    height, width = video.frame_shape
    print(f"policy at step {video.policy_step}: {video.frames} frames {width}x{height} at {video.fps:g} fps")
    print(f"wrote {video.mp4}, {video.gif} ({video.gif_frames} frames) and {video.csv}")
    return video


if __name__ == "__main__":
    run_recipe(main)
