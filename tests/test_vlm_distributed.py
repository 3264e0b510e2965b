"""Distributed scoring: 2 CPU processes (gloo, accelerate launch) give the single-process rewards, in order."""

from __future__ import annotations

import itertools
import json
import textwrap

import numpy as np
import torch
from _launch import accelerate_launch

from vlm_rewards import CLIPReward, load_open_clip, save_open_clip, tiny_vit_clip_config
from vlm_rewards.distributed import score_distributed, shard_bounds

GOAL, BASELINE = ["a pole standing upright"], ["a pole"]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    from accelerate import PartialState
    from vlm_rewards import CLIPReward
    from vlm_rewards.distributed import score_distributed

    torch.set_num_threads(1)
    ckpt, frames_file, out_prefix, prompts = sys.argv[1:5]
    goal, baseline = json.loads(prompts)
    state = PartialState(cpu=True)
    rm = CLIPReward.from_pretrained(ckpt, goal_prompts=goal, baseline_prompts=baseline, alpha=0.5, batch_size=2)
    frames = np.load(frames_file)
    results = {"num_processes": state.num_processes, "backend": str(state.backend)}
    for n in (7, 1):  # 7 frames: shards of 4 and 3; 1 frame: one process has nothing to score
        rewards, emb = score_distributed(rm, frames[:n], return_embeddings=True)
        results[n] = {"rewards": rewards.tolist(), "embeddings": emb.tolist()}
    json.dump(results, open(f"{out_prefix}.{state.process_index}.json", "w"))
    state.destroy_process_group()  # else gloo's threads can abort the process at exit
    """
)



def test_shard_bounds_cover_every_item_once():
    for n in range(12):
        for world in range(1, 5):
            bounds = [shard_bounds(n, world, r) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
            sizes = [e - s for s, e in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_two_processes_match_single_process(tmp_path):
    torch.manual_seed(0)
    clip = load_open_clip(tiny_vit_clip_config())
    save_open_clip(clip, tmp_path / "ckpt")
    frames = np.random.default_rng(0).integers(0, 256, size=(7, 40, 48, 3), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    rm = CLIPReward(clip.model, clip.tokenizer, GOAL, BASELINE, alpha=0.5, batch_size=7)
    expected_rewards, expected_emb = score_distributed(rm, frames, return_embeddings=True)  # one process
    torch.testing.assert_close(expected_rewards, rm(frames))

    script = tmp_path / "score.py"
    script.write_text(SCRIPT)
    proc = accelerate_launch([script, tmp_path / "ckpt", tmp_path / "frames.npy", tmp_path / "out",
                              json.dumps([GOAL, BASELINE])])
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"
    for rank in (0, 1):
        result = json.loads((tmp_path / f"out.{rank}.json").read_text())
        assert result["num_processes"] == 2 and result["backend"] == "gloo"
        for n in ("7", "1"):
            rewards = torch.tensor(result[n]["rewards"])
            emb = torch.tensor(result[n]["embeddings"])
            torch.testing.assert_close(rewards, expected_rewards[: int(n)], atol=1e-5, rtol=0)
            torch.testing.assert_close(emb, expected_emb[: int(n)], atol=1e-5, rtol=0)
