"""CLIPReward: formula, prompt handling, caching, preprocessing, batching and bad input (tiny random CLIP)."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vlm_rewards.clip_models import FramePreprocessor, load_open_clip, save_open_clip
from vlm_rewards.clip_reward import CLIPReward
from vlm_rewards.configs import small_conv_clip_config, tiny_vit_clip_config

GOAL = ["a pole standing upright", "a balanced pole"]
BASELINE = ["a pole"]


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return load_open_clip(tiny_vit_clip_config())


@pytest.fixture
def frames():
    return np.random.default_rng(0).integers(0, 256, size=(7, 40, 48, 3), dtype=np.uint8)


def unit_text(clip, prompts):
    with torch.no_grad():
        return F.normalize(clip.model.encode_text(clip.tokenizer(prompts)), dim=-1)


def direct_reward(s, g, b, alpha):
    """The formula written out with the explicit D×D projection matrix."""
    s = F.normalize(s.double(), dim=-1)
    g, b = g.double(), b.double()
    d = (g - b)[:, None]
    P = alpha * (d @ d.T) / (d.T @ d) + (1 - alpha) * torch.eye(d.shape[0], dtype=torch.float64)
    return 1 - 0.5 * ((s - g) @ P).pow(2).sum(-1)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_formula_matches_direct_computation(clip, alpha):
    rm = CLIPReward(clip.model, clip.tokenizer, GOAL, BASELINE, alpha=alpha)
    s = torch.randn(20, 32, generator=torch.Generator().manual_seed(1))
    g, b = unit_text(clip, GOAL).mean(0), unit_text(clip, BASELINE).mean(0)
    expected = direct_reward(s, g, b, alpha)
    torch.testing.assert_close(rm.reward_from_embeddings(s).double(), expected, atol=1e-5, rtol=0)
    if alpha == 0.0:  # plain cosine similarity, shifted, for one goal prompt
        rm.set_prompts(GOAL[:1])
        cos = F.normalize(s, dim=-1) @ unit_text(clip, GOAL[:1])[0]
        torch.testing.assert_close(rm.reward_from_embeddings(s), cos, atol=1e-5, rtol=0)


def test_end_to_end_rewards_match_direct_computation(clip, frames):
    rm = CLIPReward(clip.model, clip.tokenizer, GOAL, BASELINE, alpha=0.5)
    pre = FramePreprocessor(open_clip.get_model_preprocess_cfg(clip.model), "cpu")
    with torch.no_grad():
        s = clip.model.encode_image(pre(torch.from_numpy(frames).permute(0, 3, 1, 2)))
    expected = direct_reward(s, unit_text(clip, GOAL).mean(0), unit_text(clip, BASELINE).mean(0), 0.5)
    rewards = rm(frames)
    assert rewards.dtype == torch.float32 and rewards.device.type == "cpu" and rewards.shape == (7,)
    torch.testing.assert_close(rewards.double(), expected, atol=1e-5, rtol=0)


def test_alpha_one_depends_only_on_projection_onto_goal_baseline_line(clip):
    rm = CLIPReward(clip.model, clip.tokenizer, GOAL, BASELINE, alpha=1.0)
    d = rm.direction
    gen = torch.Generator().manual_seed(2)
    # Two unit vectors with the same component along d but different orthogonal parts.
    e1, e2 = torch.randn(2, 32, generator=gen)
    e1, e2 = (F.normalize(e - (e @ d) * d, dim=-1) for e in (e1, e2))
    a = 0.3
    s = torch.stack([a * d + (1 - a**2) ** 0.5 * e1, a * d + (1 - a**2) ** 0.5 * e2])
    r = rm.reward_from_embeddings(s)
    assert abs(r[0] - r[1]) < 1e-6
    rm.alpha = 0.5  # with α < 1 the orthogonal part matters again
    r_half = rm.reward_from_embeddings(s)
    assert abs(r_half[0] - r_half[1]) > 1e-3
    # and moving along d changes the α = 1 reward
    rm.alpha = 1.0
    s_moved = torch.stack([0.9 * d + (1 - 0.81) ** 0.5 * e1])
    assert abs(rm.reward_from_embeddings(s_moved)[0] - r[0]) > 1e-3


def test_prompt_lists_are_averaged(clip, frames):
    both = CLIPReward(clip.model, clip.tokenizer, GOAL, BASELINE, alpha=0.0)
    expected_g = unit_text(clip, GOAL).mean(0)
    torch.testing.assert_close(both.goal_embedding, expected_g, atol=1e-6, rtol=0)
    reordered = CLIPReward(clip.model, clip.tokenizer, GOAL[::-1], BASELINE, alpha=0.0)
    torch.testing.assert_close(both(frames), reordered(frames), atol=1e-6, rtol=0)
    single = CLIPReward(clip.model, clip.tokenizer, GOAL[:1], BASELINE, alpha=0.0)
    assert not torch.allclose(both(frames), single(frames), atol=1e-4)


def test_batch_size_does_not_change_rewards(clip, frames):
    ref = CLIPReward(clip.model, clip.tokenizer, GOAL, BASELINE, alpha=0.5, batch_size=64)(frames)
    for bs in (1, 3):
        rm = CLIPReward(clip.model, clip.tokenizer, GOAL, BASELINE, alpha=0.5, batch_size=bs)
        torch.testing.assert_close(rm(frames), ref, atol=1e-5, rtol=0)
    # and each frame's reward is its own, in input order
    torch.testing.assert_close(rm(frames[::-1].copy()), ref.flip(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(rm(frames[2:3]), ref[2:3], atol=1e-5, rtol=0)


def test_text_is_encoded_once_and_cached(frames):
    clip = load_open_clip(tiny_vit_clip_config())
    calls = []
    encode_text = clip.model.encode_text
    clip.model.encode_text = lambda *a, **k: calls.append(1) or encode_text(*a, **k)
    rm = CLIPReward(clip.model, clip.tokenizer, GOAL, BASELINE, alpha=0.5)
    assert len(calls) == 2  # goal list in one call, baseline list in another
    calls.clear()
    first = rm(frames)
    for _ in range(99):
        rm(frames)
    assert calls == []
    rm.alpha = 1.0
    rm.set_prompts(GOAL[::-1], BASELINE, 0.3)
    assert calls == []  # α and known prompts reuse the cache
    rm.set_prompts(["a fallen pole"], BASELINE, 0.5)
    assert len(calls) == 1
    rm.set_prompts(GOAL, BASELINE, 0.5)
    torch.testing.assert_close(rm(frames), first, atol=1e-6, rtol=0)


def test_frame_layouts_and_types_agree(clip, frames):
    rm = CLIPReward(clip.model, clip.tokenizer, GOAL)
    ref = rm(frames)
    t = torch.from_numpy(frames)
    torch.testing.assert_close(rm(t), ref)
    torch.testing.assert_close(rm(t.permute(0, 3, 1, 2).contiguous()), ref)
    torch.testing.assert_close(rm(list(frames)), ref)


def test_preprocessing_matches_open_clip_transform_at_model_size(clip):
    """At the model's size (no resize), tensor preprocessing equals open_clip's PIL pipeline exactly."""
    cfg = open_clip.get_model_preprocess_cfg(clip.model)
    frame = np.random.default_rng(3).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    reference = open_clip.image_transform(32, is_train=False, mean=cfg["mean"], std=cfg["std"])(Image.fromarray(frame))
    ours = FramePreprocessor(cfg, "cpu")(torch.from_numpy(frame).permute(2, 0, 1)[None])[0]
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("resize_mode", ["shortest", "squash", "longest"])
@pytest.mark.parametrize("shape", [(50, 90), (90, 50), (80, 80), (20, 24)])
def test_resized_preprocessing_matches_open_clip_transform(resize_mode, shape):
    """Any frame size and resize mode agrees with open_clip's own (PIL) eval transform."""
    cfg = {"size": 32, "mean": (0.5, 0.4, 0.3), "std": (0.25, 0.2, 0.3), "resize_mode": resize_mode, "fill_color": 7}
    frame = np.random.default_rng(4).integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    transform = open_clip.image_transform(
        32, is_train=False, mean=cfg["mean"], std=cfg["std"], resize_mode=resize_mode, fill_color=7
    )
    reference = transform(Image.fromarray(frame))
    ours = FramePreprocessor(cfg, "cpu")(torch.from_numpy(frame).permute(2, 0, 1)[None])[0]
    assert ours.shape == reference.shape == (3, 32, 32)
    levels = (ours - reference).abs() * torch.tensor(cfg["std"]).view(3, 1, 1) * 255  # in 0..255 pixel levels
    # Within one level (rounding) almost everywhere; squashing a portrait frame leaves 0.3% of pixels up to
    # 5 levels apart (PIL and torch round their separable resize passes differently).
    assert (levels <= 1 + 1e-3).float().mean() >= 0.995
    assert levels.mean() <= 0.25 and levels.max() <= 6


def test_resize_crops_the_center():
    """A wide frame is center-cropped to a square (resize_mode 'shortest')."""
    cfg = {"size": 32, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "resize_mode": "shortest"}
    frame = np.zeros((64, 128, 3), dtype=np.uint8)
    frame[:, 32:96] = 255  # the central square is white, the sides black
    x = FramePreprocessor(cfg, "cpu")(torch.from_numpy(frame).permute(2, 0, 1)[None])
    assert x.shape == (1, 3, 32, 32)
    # inside white; the outermost columns take a little of the black sides through the resize filter
    torch.testing.assert_close(x[..., 1:-1], torch.ones_like(x[..., 1:-1]), atol=1e-5, rtol=0)
    assert x.min() > 0.9


def test_embeddings_on_request(clip, frames):
    rm = CLIPReward(clip.model, clip.tokenizer, GOAL, BASELINE, alpha=0.5)
    rewards, emb = rm.score_with_embeddings(frames)
    assert emb.shape == (7, 32) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(7), atol=1e-5, rtol=0)
    torch.testing.assert_close(rm.reward_from_embeddings(emb), rewards)
    torch.testing.assert_close(rm.embed(frames), emb)


def test_checkpoint_roundtrip_and_conv_tower(tmp_path, frames):
    torch.manual_seed(0)
    clip = load_open_clip(small_conv_clip_config(image_size=32, embed_dim=16, vision_width=8, text_width=32))
    before = CLIPReward(clip.model, clip.tokenizer, GOAL, BASELINE, alpha=0.5)(frames)
    save_open_clip(clip, tmp_path / "ckpt")
    after = CLIPReward.from_pretrained(tmp_path / "ckpt", goal_prompts=GOAL, baseline_prompts=BASELINE, alpha=0.5)
    torch.testing.assert_close(after(frames), before, atol=1e-6, rtol=0)
    # open_clip itself can load the directory too
    model = open_clip.create_model(f"local-dir:{tmp_path / 'ckpt'}")
    assert open_clip.get_model_preprocess_cfg(model)["size"] == 32


def test_bad_input_errors(clip, frames):
    with pytest.raises(ValueError, match="goal_prompts: empty"):
        CLIPReward(clip.model, clip.tokenizer, [])
    with pytest.raises(ValueError, match=r"goal_prompts\[1\]"):
        CLIPReward(clip.model, clip.tokenizer, ["ok", ""])
    with pytest.raises(ValueError, match="alpha must be in"):
        CLIPReward(clip.model, clip.tokenizer, GOAL, BASELINE, alpha=1.5)
    with pytest.raises(ValueError, match="baseline_prompts: empty"):
        CLIPReward(clip.model, clip.tokenizer, GOAL, [], alpha=0.5)
    with pytest.raises(ValueError, match="same embedding"):
        CLIPReward(clip.model, clip.tokenizer, GOAL, GOAL, alpha=0.5)
    rm = CLIPReward(clip.model, clip.tokenizer, GOAL, BASELINE, alpha=0.5)
    with pytest.raises(ValueError, match="alpha must be in"):
        rm.alpha = -0.1
    assert rm.alpha == 0.5
    with pytest.raises(TypeError, match="dtype must be uint8"):
        rm(frames.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"rank 4.*frames\[None\]"):
        rm(frames[0])
    with pytest.raises(ValueError, match="3 RGB channels"):
        rm(frames[..., :2])
    with pytest.raises(ValueError, match="empty batch"):
        rm(frames[:0])
    with pytest.raises(ValueError, match="share one shape"):
        rm([frames[0], frames[0, :10]])
    with pytest.raises(ValueError, match=r"expected shape \(N, 32\)"):
        rm.reward_from_embeddings(torch.randn(32))  # one embedding without a batch axis: no broadcasting
    with pytest.raises(ValueError, match=r"expected shape \(N, 32\)"):
        rm.reward_from_embeddings(torch.randn(4, 16))
    with pytest.raises(ValueError, match="unknown open_clip model"):
        load_open_clip("no-such-model")
    bad_cfg = tiny_vit_clip_config()
    bad_cfg["vision_cfg"]["colour"] = "red"
    with pytest.raises(ValueError, match="open_clip model config dict.*colour"):
        load_open_clip(bad_cfg)


def test_nan_embeddings_raise(frames):
    clip = load_open_clip(tiny_vit_clip_config())
    rm = CLIPReward(clip.model, clip.tokenizer, GOAL)
    with torch.no_grad():
        clip.model.visual.proj.fill_(float("nan"))
    with pytest.raises(ValueError, match="image embeddings contain NaN"):
        rm(frames)
    with torch.no_grad():
        clip.model.text_projection.fill_(float("nan"))
    with pytest.raises(ValueError, match="text embedding of prompt"):
        CLIPReward(clip.model, clip.tokenizer, ["a new prompt"])
