"""Contrastive fine-tuning from captions: held-out retrieval accuracy rises; LoRA; checkpoints reload."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlhf.training import LoraSettings
from vlm_rewards import CLIPReward, load_open_clip, small_conv_clip_config, tiny_vit_clip_config
from vlm_rewards.finetune import (
    METRICS_FILE,
    FinetuneConfig,
    caption_contrastive_loss,
    finetune_clip,
    retrieval_accuracy,
)

COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 30)}


def colored_squares(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Noisy gray frames, each with one square of a random color, size and place; captioned by color."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(60, 120, size=(n, size, size, 3), dtype=np.uint8)
    names, captions = list(COLORS), []
    for i in range(n):
        color = names[rng.integers(len(names))]
        side = rng.integers(8, 16)
        y, x = rng.integers(0, size - side, 2)
        frames[i, y : y + side, x : x + side] = COLORS[color]
        captions.append(f"a {color} square")
    return frames, captions


def test_loss_equals_open_clip_loss_for_distinct_captions():
    gen = torch.Generator().manual_seed(0)
    img, txt = (F.normalize(torch.randn(6, 8, generator=gen), dim=-1) for _ in range(2))
    scale = torch.tensor(10.0)
    ours = caption_contrastive_loss(img, txt, torch.arange(6), scale)
    torch.testing.assert_close(ours, open_clip.ClipLoss()(img, txt, scale))


def test_loss_treats_repeated_captions_as_shared_positives():
    # Two images with the same caption, both equally aligned with it: nothing pushes them apart, so the
    # image→text part is near zero and text→image is the entropy of an even split over two images.
    img = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = caption_contrastive_loss(img, txt, torch.tensor([0, 0, 1]), torch.tensor(100.0))
    expected = (0.0 + (np.log(2) + 0.0) / 2) / 2
    assert abs(float(loss) - expected) < 1e-3


def test_finetuning_conv_tower_raises_heldout_retrieval_accuracy(tmp_path):
    torch.manual_seed(0)
    frames, captions = colored_squares(120)
    clip = load_open_clip(
        small_conv_clip_config(image_size=32, embed_dim=32, vision_width=8, text_width=32, text_layers=1)
    )
    config = FinetuneConfig(
        num_train_epochs=8, per_device_train_batch_size=32, learning_rate=3e-3, eval_fraction=0.2, progress=False, tensorboard_dir=str(tmp_path / "tb")
    )
    result = finetune_clip(clip, frames, captions, config, output_dir=tmp_path / "ckpt")
    assert result.train_size == 96 and result.eval_size == 24 and result.eval_captions == 4
    assert result.eval_accuracy_after >= 0.8
    assert result.eval_accuracy_after >= result.eval_accuracy_before + 0.3
    assert result.train_losses[-1] < result.train_losses[0]

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    accuracy = [e.value for e in events.Scalars("finetune/eval_retrieval_accuracy")]
    assert accuracy == pytest.approx([result.eval_accuracy_before, result.eval_accuracy_after])
    assert len(events.Scalars("finetune/train_loss")) == 8 * 3  # 96 training pairs in batches of 32

    metrics = json.loads((tmp_path / "ckpt" / METRICS_FILE).read_text())
    assert metrics["eval_accuracy_after"] == result.eval_accuracy_after
    # The checkpoint rebuilds the same model, and as a reward model it prefers frames matching its goal.
    reloaded = load_open_clip(tmp_path / "ckpt")
    assert retrieval_accuracy(reloaded, frames, captions) == retrieval_accuracy(result.clip, frames, captions)
    rm = CLIPReward.from_pretrained(tmp_path / "ckpt", goal_prompts="a red square")
    test_frames, test_captions = colored_squares(40, seed=1)
    rewards = rm(test_frames)
    is_red = torch.tensor([c == "a red square" for c in test_captions])
    assert rewards[is_red].mean() > rewards[~is_red].mean()


def test_lora_trains_adapters_only_and_merges(tmp_path):
    torch.manual_seed(0)
    frames, captions = colored_squares(40)
    clip = load_open_clip(tiny_vit_clip_config())
    before = {k: v.clone() for k, v in clip.model.state_dict().items()}
    config = FinetuneConfig(num_train_epochs=2, per_device_train_batch_size=16, learning_rate=1e-2,
                            lora=LoraSettings(r=8, lora_alpha=16, lora_dropout=0.0), progress=False)
    result = finetune_clip(clip, frames, captions, config, output_dir=tmp_path / "lora")
    after = result.clip.model.state_dict()
    assert set(after) == set(before)  # adapters merged away: a plain open_clip model again
    assert not any("lora" in name for name, _ in result.clip.model.named_modules())
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # only LoRA targets change: MLP linears and the ViT patch-embedding convolution (visual.conv1)
    assert changed and all(k.endswith(("mlp.c_fc.weight", "mlp.c_proj.weight", "conv1.weight")) for k in changed), (
        changed
    )
    reloaded = load_open_clip(tmp_path / "lora")
    x = torch.from_numpy(frames[:4])
    a = CLIPReward(result.clip.model, result.clip.tokenizer, "a red square")(x)
    b = CLIPReward(reloaded.model, reloaded.tokenizer, "a red square")(x)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_bad_finetune_input():
    frames, captions = colored_squares(10)
    clip = load_open_clip(tiny_vit_clip_config())
    with pytest.raises(ValueError, match="10 frames but 9 captions"):
        finetune_clip(clip, frames, captions[:9])
    with pytest.raises(ValueError, match=r"captions\[3\]"):
        finetune_clip(clip, frames, captions[:3] + [""] + captions[4:])
    with pytest.raises(ValueError, match="eval_fraction"):
        finetune_clip(clip, frames, captions, FinetuneConfig(eval_fraction=1.0))
    with pytest.raises(TypeError, match="uint8"):
        finetune_clip(clip, frames.astype(np.float32), captions)
