"""Scaling of distributed CLIP scoring: ``score_distributed`` on 2 CPU processes against 1 process, same frames.

Model: open_clip ViT-B-32 with random weights (speed does not depend on them), built from the same seed in every
process; frames: the same uint8 (N, 224, 224, 3) batch in every process (N = 64 by default). Every process runs
1 torch thread (OMP_NUM_THREADS=1), so 2 processes use the 2 cores and 1 process one core. The 2-process runs are
launched like the recipes' CPU runs (``accelerate launch --multi_gpu --num_processes 2`` with
ACCELERATE_USE_CPU=1, gloo); the 1-process run is the same worker on its own. The two are run alternately
(``--rounds``), each timing ``--repeats`` calls after a warm-up call; figures use the median call.

- ``distributed_scoring_speedup``: throughput (frames/s) on 2 processes over 1 process.
- ``gather_and_communication_fraction``: on the 2-process runs, the share of a ``score_distributed`` call not
  spent scoring the process's own shard (timed separately on the same shard): the gather of rewards and
  embeddings, and waiting for the other process. The larger of the two processes' shares is reported.

    python benchmarks/distributed_scoring.py [--frames 64] [--repeats 5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    """One process of a run: score the frames ``repeats`` times with score_distributed; write timings as JSON."""
    import numpy as np
    import torch
    from accelerate import PartialState

    from vlm_rewards.clip_models import load_open_clip
    from vlm_rewards.clip_reward import CLIPReward
    from vlm_rewards.distributed import score_distributed, shard_bounds

    torch.set_num_threads(1)
    state = PartialState(cpu=True)
    torch.manual_seed(0)
    clip = load_open_clip("ViT-B-32")
    rm = CLIPReward(clip.model, clip.tokenizer, ["a humanoid robot kneeling"], ["a humanoid robot"], alpha=0.5,
                    batch_size=args.frames)
    frames = np.random.default_rng(0).integers(0, 256, size=(args.frames, args.size, args.size, 3), dtype=np.uint8)
    start, end = shard_bounds(args.frames, state.num_processes, state.process_index)
    rewards = score_distributed(rm, frames, state=state)  # warm-up (allocator, kernels)
    totals, shard_only = [], []
    for _ in range(args.repeats):
        state.wait_for_everyone()
        began = time.perf_counter()
        score_distributed(rm, frames, state=state)
        totals.append(time.perf_counter() - began)
        state.wait_for_everyone()
        began = time.perf_counter()
        rm.score_with_embeddings(frames[start:end])
        shard_only.append(time.perf_counter() - began)
    Path(f"{args.out}.{state.process_index}.json").write_text(json.dumps(
        {"processes": state.num_processes, "totals": totals, "shard_only": shard_only, "rewards": rewards.tolist()}))
    if state.num_processes > 1:
        state.destroy_process_group()


def run(processes: int, args: argparse.Namespace, out: Path) -> list[dict]:
    """Launch the worker on ``processes`` CPU processes (1 thread each); return every process's timings."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    worker_args = [__file__, "--worker", "--out", str(out), "--frames", str(args.frames), "--size", str(args.size),
                   "--repeats", str(args.repeats)]
    if processes == 1:
        cmd = [sys.executable, *worker_args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(args.port), *worker_args]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return [json.loads(Path(f"{out}.{rank}.json").read_text()) for rank in range(processes)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=224, help="side of the square uint8 frames")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="alternating 1-process and 2-process runs")
    parser.add_argument("--port", type=int, default=29731)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    totals: dict[int, list[float]] = {1: [], 2: []}
    fractions: list[float] = []
    rewards: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for processes in (1, 2):
                ranks = run(processes, args, Path(tmp) / f"r{round_}_p{processes}")
                rewards[processes] = ranks[0]["rewards"]
                # a call ends when its slowest process ends
                totals[processes] += [max(calls) for calls in zip(*(r["totals"] for r in ranks))]
                if processes == 2:
                    fractions.append(max(1 - statistics.median(r["shard_only"]) / statistics.median(r["totals"])
                                         for r in ranks))
    throughput = {p: args.frames / statistics.median(t) for p, t in totals.items()}
    same = max(abs(a - b) for a, b in zip(rewards[1], rewards[2]))
    print(f"ViT-B-32 (random weights), {args.frames} uint8 frames {args.size}x{args.size}, 1 torch thread per "
          f"process, {args.rounds} alternating rounds x {args.repeats} calls (median)")
    for p in (1, 2):
        print(f"{p} process(es): {statistics.median(totals[p]):.2f} s per call, {throughput[p]:.1f} frames/s")
    print(f"largest reward difference, 2 processes vs 1: {same:.2e}")
    print(f"distributed_scoring_speedup: {throughput[2] / throughput[1]:.3f} (target >= 1.7)")
    print(f"gather_and_communication_fraction: {statistics.median(fractions):.3f} (target <= 0.15)")


if __name__ == "__main__":
    main()
