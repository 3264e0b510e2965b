"""Safe defaults and helpful errors: random weights are announced, checkpoints carry their prompts, paths say what
is there, reward callables are checked, long prompts are flagged."""

from __future__ import annotations

import logging

import gymnasium as gym
import numpy as np
import pytest

import envs
from rlhf.config import ConfigError
from rlhf.models import ModelNotAvailableError, resolve_model_path
from vlm_rewards import CLIPReward, load_open_clip, save_open_clip, tiny_vit_clip_config
from vlm_rewards.finetune import FinetuneConfig, finetune_clip
from vlm_rewards.robotics import RewardConfig, build_reward_model
from vlm_rewards.wrappers import CLIPRewardWrapper


def test_a_random_weight_reward_model_is_announced_once_by_name(caplog):
    with caplog.at_level(logging.WARNING, logger="vlm_rewards"):
        for _ in range(2):
            CLIPReward.from_pretrained(tiny_vit_clip_config(), goal_prompts=["a"], name="random_rm_test")
    assert caplog.text.count("reward model 'random_rm_test' has RANDOM weights") == 1


def test_a_fine_tuned_checkpoint_stores_its_prompts_and_alpha(tmp_path, caplog):
    frames = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    captions = ["a red square", "a blue square"] * 4
    settings = {"goal_prompts": ["a red square"], "baseline_prompts": ["a blue square"], "alpha": 0.7}
    finetune_clip(load_open_clip(tiny_vit_clip_config()), frames, captions,
                  FinetuneConfig(num_train_epochs=1, per_device_train_batch_size=4, progress=False),
                  output_dir=tmp_path / "ckpt", reward_settings=settings)
    task = envs.get_task("cartpole-upright")
    with caplog.at_level(logging.WARNING, logger="vlm_rewards"):
        rm = build_reward_model(RewardConfig(model=str(tmp_path / "ckpt")), task)
    assert "RANDOM" not in caplog.text  # fine-tuned weights
    assert rm.goal_prompts == ["a red square"] and rm.baseline_prompts == ["a blue square"] and rm.alpha == 0.7
    own = build_reward_model(RewardConfig(model=str(tmp_path / "ckpt"), goal_prompts=["x"], alpha=0.0), task)
    assert own.goal_prompts == ["x"] and own.alpha == 0.0  # explicit settings win
    plain = build_reward_model(RewardConfig(model_config=tiny_vit_clip_config()), task)
    assert plain.goal_prompts == list(task.goal_prompts) and plain.alpha == 0.0  # no checkpoint: the task's
    with pytest.raises(ConfigError, match="config key 'goal_prompts': an empty list"):
        RewardConfig(goal_prompts=[])


def test_paths_say_what_is_there(tmp_path):
    save_open_clip(load_open_clip(tiny_vit_clip_config()), tmp_path / "run" / "clip" / "model")
    with pytest.raises(FileNotFoundError, match=r"the checkpoint inside it is .*run/clip/model"):
        load_open_clip(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="no such path"):
        load_open_clip(str(tmp_path / "nothing" / "here"))
    with pytest.raises(ValueError, match="unknown open_clip model 'ViT-Nonexistent'"):
        load_open_clip("ViT-Nonexistent")
    assert resolve_model_path("gpt2") == "gpt2"  # a hub id without an organisation is a hub id
    with pytest.raises(ModelNotAvailableError, match="no reward model is embedded"):
        resolve_model_path("some name with spaces", "reward_model")


def test_reward_model_directory_errors_point_inside_and_never_at_causal_lms(tmp_path):
    from rlhf.preference import PreferenceRewardModel

    (tmp_path / "rm_run" / "model").mkdir(parents=True)
    (tmp_path / "rm_run" / "model" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"the reward model inside it is .*rm_run/model") as error:
        PreferenceRewardModel(tmp_path / "rm_run")
    assert "smollm2" not in str(error.value)


def cartpole() -> gym.Env:
    return envs.get_task("cartpole-upright").make_env(render_mode="rgb_array", width=32, height=32)


def test_wrappers_check_any_reward_callable():
    wrapped = CLIPRewardWrapper(cartpole(), lambda frames: np.full(len(frames), np.nan))
    wrapped.reset(seed=0)
    with pytest.raises(ValueError, match="non-finite rewards"):
        wrapped.step(0)
    wrong_shape = CLIPRewardWrapper(cartpole(), lambda frames: np.zeros(3))
    wrong_shape.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3,\) for a batch of 1"):
        wrong_shape.step(0)


def test_prompts_longer_than_the_text_context_are_flagged(caplog):
    long = "a pole " * 30
    with caplog.at_level(logging.WARNING, logger="vlm_rewards"):
        CLIPReward.from_pretrained(tiny_vit_clip_config(), goal_prompts=[long, "short"])
    assert "more than the text tower's context of 16" in caplog.text and "short" not in caplog.text
