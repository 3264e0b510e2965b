"""A learned reward model as TRL's GRPO reward: the adapter, and the GRPO recipe running a few steps on CPU."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from _recipes import load_recipe
from transformers import AutoModelForCausalLM

from rlhf.config import ConfigError
from rlhf.preference import PreferenceRewardModel, train_reward_model
from rlhf.reward import as_trl_reward_func
from rlhf.training import TrainingSettings

REPO = Path(__file__).resolve().parents[1]
grpo = load_recipe("grpo.py")

DEMO_DATA = REPO / "recipes" / "data" / "slf5k_demo"
CONFIG = str(REPO / "recipes" / "configs" / "grpo_cpu.yaml")


@pytest.fixture(scope="module")
def reward_model_dir(tiny_lm_path, tmp_path_factory):
    comparisons = [
        {"prompt": f"Post {i}\nTL;DR:", "chosen": " the dog is fine.", "rejected": " it is too long."} for i in range(8)
    ]
    out = tmp_path_factory.mktemp("grpo_rm") / "rm"
    train_reward_model(tiny_lm_path, comparisons, out,
                       settings=TrainingSettings(learning_rate=1e-3, num_train_epochs=1, per_device_train_batch_size=4, max_length=64))
    return out


def test_adapter_returns_the_reward_models_scores_under_its_name(reward_model_dir):
    rm = PreferenceRewardModel(reward_model_dir)
    reward_func = as_trl_reward_func(rm)
    assert reward_func.__name__ == rm.name == "rm_rm"
    prompts = ["Post 1\nTL;DR:", "Post 2\nTL;DR:", "Post 3\nTL;DR:"]
    completions = [" the dog is fine.", " it is too long.", " Yes"]
    rewards = reward_func(prompts=prompts, completions=completions, completion_ids=[[1], [2], [3]])
    assert rewards == pytest.approx(rm.score_texts(prompts, completions).tolist(), abs=1e-6)
    # Conversational completions (lists of chat messages) are scored on their text.
    chat = reward_func(prompts=prompts[:1], completions=[[{"role": "assistant", "content": completions[0]}]])
    assert chat == pytest.approx(rewards[:1], abs=1e-6)


def test_grpo_recipe_runs_and_logs_the_reward_under_the_models_name(tiny_lm_path, reward_model_dir, tmp_path):
    out = tmp_path / "grpo"
    result = grpo.main([
        "--config", CONFIG, "--model", tiny_lm_path, "--reward_model", str(reward_model_dir),
        "--data", str(DEMO_DATA), "--limit", "4", "--output_dir", str(out),
        "--grpo.max_steps", "2", "--grpo.per_device_train_batch_size", "2", "--grpo.num_generations", "2",
        "--grpo.max_completion_length", "8", "--grpo.report_to", "[]",
    ])
    assert result["reward_key"] == "rewards/rm_rm/mean"
    steps = [step for step, _ in result["rewards"]]
    assert steps == [1, 2]
    assert all(math.isfinite(r) for _, r in result["rewards"])
    assert (out / "log_history.json").exists()
    policy = AutoModelForCausalLM.from_pretrained(out / "final")
    assert policy.config.n_layer == 2


def test_grpo_recipe_without_a_reward_model_says_what_to_pass():
    with pytest.raises(ConfigError, match="config key 'reward_model' \\(command line\\): pass a reward model directory"):
        grpo.main(["--config", CONFIG, "--reward_model", ""])
