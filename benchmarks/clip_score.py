"""Cost of scoring uint8 frames end to end with CLIPReward against a bare ``encode_image``.

Model: open_clip ViT-B-32 with random weights (no CLIP weights offline; speed does not depend on
them), batch 32, 2 torch threads. The baseline is ``model.encode_image`` under ``torch.inference_mode``
on float tensors that are already preprocessed (224×224, normalized). The measured path is
``CLIPReward(frames)`` on uint8 ``(32, 480, 480, 3)`` frames (MuJoCo's default render size): layout
handling, center crop, resize to 224, normalization, image encoding, and the reward formula (α = 0.5,
text embeddings cached). The two are timed alternately and the medians compared.

    python benchmarks/clip_score.py [--repeats 5] [--threads 2] [--size 480]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import open_clip
import torch

from vlm_rewards.clip_models import FramePreprocessor, frames_to_tensor, load_open_clip
from vlm_rewards.clip_reward import CLIPReward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=480, help="side of the square uint8 input frames")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    clip = load_open_clip("ViT-B-32")
    rm = CLIPReward(
        clip.model,
        clip.tokenizer,
        ["a humanoid robot kneeling"],
        ["a humanoid robot"],
        alpha=0.5,
        batch_size=args.batch,
    )
    frames = np.random.default_rng(0).integers(0, 256, size=(args.batch, args.size, args.size, 3), dtype=np.uint8)
    preprocess = FramePreprocessor(open_clip.get_model_preprocess_cfg(clip.model), "cpu")
    ready = preprocess(frames_to_tensor(frames)).contiguous()  # the baseline's already-preprocessed input

    def bare() -> None:
        with torch.inference_mode():
            clip.model.encode_image(ready)

    def end_to_end() -> None:
        rm(frames)

    for fn in (bare, end_to_end):  # warm-up (allocator, kernels)
        fn()
    times: dict[str, list[float]] = {"bare": [], "end_to_end": []}
    pre_times = []
    for _ in range(args.repeats):
        for name, fn in (("bare", bare), ("end_to_end", end_to_end)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        preprocess(frames_to_tensor(frames))
        pre_times.append(time.perf_counter() - start)

    bare_s, e2e_s = statistics.median(times["bare"]), statistics.median(times["end_to_end"])
    print(f"model ViT-B-32 (random weights), batch {args.batch}, frames uint8 {args.size}x{args.size}x3, "
          f"{args.threads} threads, {args.repeats} alternating repeats (median)")  # fmt: skip
    print(f"bare encode_image on preprocessed tensors: {bare_s * 1000:.0f} ms ({args.batch / bare_s:.1f} images/s)")
    print(f"CLIPReward end to end on uint8 frames:     {e2e_s * 1000:.0f} ms ({args.batch / e2e_s:.1f} images/s)")
    print(f"preprocessing alone: {statistics.median(pre_times) * 1000:.1f} ms")
    print(f"clip_score_overhead: {e2e_s / bare_s:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
