"""Cost of scoring uint8 frames end to end with CLIPReward against a bare ``encode_image``.

Model: open_clip ViT-B-32 with random weights (no CLIP weights offline; speed does not depend on
them), batch 32, 2 torch threads. The baseline is ``model.encode_image`` under ``torch.inference_mode``
on float tensors that are already preprocessed (224×224, normalized). The measured path is
``CLIPReward(frames)`` on uint8 ``(32, 480, 480, 3)`` frames (MuJoCo's default render size): layout
handling, resize to 224 + center crop, normalization, image encoding, and the reward formula (α = 0.5,
text embeddings cached). All runs are timed alternately; the figure is the end-to-end median over the
faster of the two baseline medians (contiguous or channels-last input).

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
    # The baseline's already-preprocessed input, in both memory layouts: CLIPReward's own preprocessing
    # yields channels-last tensors (frames arrive as N,H,W,3), which the patch convolution may run at a
    # different speed; the figure compares against the faster layout.
    ready = preprocess(frames_to_tensor(frames))
    ready_layouts = {
        "nchw": ready.contiguous(),
        "channels_last": ready.contiguous(memory_format=torch.channels_last),
    }

    def bare(layout: str) -> None:
        with torch.inference_mode():
            clip.model.encode_image(ready_layouts[layout])

    def end_to_end() -> None:
        rm(frames)

    runs = {
        "bare_nchw": lambda: bare("nchw"),
        "bare_channels_last": lambda: bare("channels_last"),
        "end_to_end": end_to_end,
        "preprocessing": lambda: preprocess(frames_to_tensor(frames)),
    }
    for fn in runs.values():  # warm-up (allocator, kernels)
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    bare_s = min(med["bare_nchw"], med["bare_channels_last"])

    print(f"model ViT-B-32 (random weights), batch {args.batch}, frames uint8 {args.size}x{args.size}x3, "
          f"{args.threads} threads, {args.repeats} alternating repeats (median)")  # fmt: skip
    for name in ("bare_nchw", "bare_channels_last"):
        print(f"bare encode_image, preprocessed {name[5:]} tensors: {med[name] * 1000:.0f} ms")
    print(f"CLIPReward end to end on uint8 frames: {med['end_to_end'] * 1000:.0f} ms")
    print(f"preprocessing alone: {med['preprocessing'] * 1000:.1f} ms")
    print(f"clip_score_overhead: {med['end_to_end'] / bare_s:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
