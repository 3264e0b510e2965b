"""Policy video encoding time for a 500-step CartPole episode at 256x256, against the rollout it films.

    python benchmarks/video.py [--render-size 64] [--size 256] [--rounds 3] [--threads 1]

The rollout (``vlm_rewards.video.rollout_policy``): a PPO policy (untrained: its actions do not change the cost)
acts for one 500-step episode; each step renders the frame at the reward's size (64x64, the quickstart's
setting) and scores it with the quickstart's small convolutional CLIP, and renders the same state again at
256x256 for the video. The encoding (``write_rollout_video``): the reward strip under every frame, the H.264
MP4 of all 500 frames, the GIF of every 2nd frame at 160 wide, and the CSV. Rounds alternate between the two
and the medians are used, because the machine may be shared. torch runs ``--threads`` threads; ffmpeg's
libx264 picks its own thread count (both cores here), as it does in real use.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from stable_baselines3 import PPO

import envs
from vlm_rewards import small_conv_clip_config
from vlm_rewards.robotics import RewardConfig, TrainPolicyConfig, build_reward_model
from vlm_rewards.video import composed_frames, rollout_policy, write_rollout_video

STEPS = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    cfg = TrainPolicyConfig(task="cartpole-upright", env_kwargs={"max_episode_steps": STEPS}, reward=RewardConfig(
        model_config=small_conv_clip_config(image_size=args.render_size), render_size=args.render_size, alpha=0.5))
    task = envs.get_task(cfg.task)
    reward_model = build_reward_model(cfg.reward, task)
    policy = PPO("MlpPolicy", task.make_env(), seed=0, device="cpu")

    def rollout():
        return rollout_policy(policy, cfg, reward_model, episodes=1, seed=0, size=args.size)

    recorded = rollout()  # warm-up (and the episode every encoding round writes)
    assert len(recorded) == STEPS, len(recorded)
    rollout_s, encode_s, strip_s = [], [], []
    with tempfile.TemporaryDirectory() as out:
        write_rollout_video(recorded, out, "warmup")
        for _ in range(args.rounds):
            start = time.perf_counter()
            rollout()
            rollout_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            video = write_rollout_video(recorded, out, "bench")
            encode_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            for _ in composed_frames(recorded, args.size, range(STEPS)):
                pass
            strip_s.append(time.perf_counter() - start)
        mp4_mb, gif_mb = (path.stat().st_size / 1e6 for path in (video.mp4, video.gif))
    rollout_t, encode_t, strip_t = (statistics.median(v) for v in (rollout_s, encode_s, strip_s))
    height, width = video.frame_shape
    print(f"cartpole-upright, {STEPS} steps, video frames {width}x{height} ({args.size}x{args.size} + strip), reward "
          f"frames {args.render_size}x{args.render_size}, small conv CLIP, torch threads {args.threads}, "
          f"{args.rounds} rounds (medians)")
    print(f"rollout (act, step, render twice, score): {rollout_t:.2f} s")
    print(f"encoding (strip, MP4, GIF of {video.gif_frames} frames, CSV): {encode_t:.2f} s, of which composing the "
          f"MP4's frames with their strips {strip_t:.2f} s; MP4 {mp4_mb:.2f} MB, GIF {gif_mb:.2f} MB")
    print(f"video_encode_seconds_500_steps: {encode_t:.2f} (target <= 10)")
    print(f"video_overhead_vs_rollout: {encode_t / rollout_t:.2f} (no target: encoding time over rollout time)")


if __name__ == "__main__":
    main()
