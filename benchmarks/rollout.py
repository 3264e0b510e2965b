"""Rollout speed with a VLM reward vs the reward model alone, in the same process.

    python benchmarks/rollout.py [--task cartpole-upright] [--render-size 64] [--envs 8] [--steps 200] [--threads 1]

Measures environment steps per second of an SB3 vector env of ``--envs`` sub-environments whose reward
is a CLIP model scoring every rendered frame (render + score + step, random actions: the policy is not
part of this figure), and frames per second of the same reward model scoring pre-rendered frames in
batches of the same size. Rendering and stepping should add at most a third on top of the reward model.

The default is the quickstart's setting (CartPole frames at 64x64, the small convolutional CLIP): the
cheapest reward model here, so the setting where rendering and stepping weigh most. Rounds alternate
between the two measurements and the median of each is used, because the machine may be shared; the
ratio of CPU times (less sensitive to other processes) is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from stable_baselines3.common.env_util import make_vec_env

import envs
from vlm_rewards import CLIPReward, small_conv_clip_config
from vlm_rewards.robotics import ground_truth_env_fn, render_states, sample_states
from vlm_rewards.wrappers import CLIPRewardVecEnvWrapper, RenderFrameInInfo


def timed(fn, repeats: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="cartpole-upright")
    parser.add_argument("--render-size", type=int, default=64)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200, help="vector steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    task = envs.get_task(args.task)
    reward_model = CLIPReward.from_pretrained(
        small_conv_clip_config(image_size=args.render_size), goal_prompts=list(task.goal_prompts),
        baseline_prompts=list(task.baseline_prompts), alpha=0.5, batch_size=args.envs,
    )
    render = {"render_mode": "rgb_array", "width": args.render_size, "height": args.render_size}
    venv = CLIPRewardVecEnvWrapper(
        make_vec_env(ground_truth_env_fn(task, {}), n_envs=args.envs, seed=0, env_kwargs=render,
                     wrapper_class=RenderFrameInInfo),
        reward_model,
    )
    venv.reset()
    actions = [np.stack([venv.action_space.sample() for _ in range(args.envs)]) for _ in range(64)]
    frames = render_states(task, sample_states(task, args.envs, 0), args.render_size)
    step_count = [0]

    def rollout_step() -> None:
        venv.step(actions[step_count[0] % len(actions)])
        step_count[0] += 1

    def score_only() -> None:
        reward_model(frames)

    rollout_step(), score_only()  # warm-up
    rollout, scoring = [], []
    for _ in range(args.rounds):
        rollout.append(timed(rollout_step, args.steps))
        scoring.append(timed(score_only, args.steps))
    n = args.steps * args.envs
    steps_per_s = n / statistics.median(w for w, _ in rollout)
    frames_per_s = n / statistics.median(w for w, _ in scoring)
    cpu_ratio = statistics.median(c for _, c in scoring) / statistics.median(c for _, c in rollout)
    venv.close()
    print(f"task {args.task}, {args.envs} envs, frames {args.render_size}x{args.render_size}, small conv CLIP, "
          f"torch threads {args.threads}, {args.rounds} rounds x {args.steps} vector steps (medians)")
    print(f"env steps/s with VLM reward (render+score+step): {steps_per_s:.0f}")
    print(f"frames/s, reward model alone (batch {args.envs}): {frames_per_s:.0f}")
    print(f"rollout_vs_reward_only_cpu_time: {cpu_ratio:.2f} (target >= 0.75)")
    print(f"rollout_vs_reward_only: {steps_per_s / frames_per_s:.2f} (target >= 0.75)")


if __name__ == "__main__":
    main()
