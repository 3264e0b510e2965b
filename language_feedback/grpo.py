"""GRPO on summarization prompts with a learned (Bradley–Terry) reward model as the reward.

The prompts are the summarization prompts of an SLF5K-format split; the reward model is a directory
written by ``recipes/train_reward_model.py``. The training itself is :func:`rlhf.grpo.train_grpo`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from language_feedback.prompts import summarize_prompt
from language_feedback.summarization_data import load_slf5k
from rlhf.config import ConfigError
from rlhf.grpo import logged, train_grpo
from rlhf.preference import PreferenceRewardModel
from rlhf.training import GRPOSettings, LoraSettings


@dataclass
class SummarizationGRPOConfig:
    model: str = "smollm2-135m-instruct"  # the policy
    reward_model: str = ""  # <output_dir>/model of recipes/train_reward_model.py
    reward_batch_size: int = 8
    reward_max_length: int = 1024
    data: str = ""  # SLF5K-format JSONL file, directory of <split>.jsonl, or JeremyAlain/SLF5K
    split: str = "train"
    limit: int = 0  # 0 = every post of the split
    output_dir: str = "runs/grpo"
    lora: LoraSettings | None = None
    grpo: GRPOSettings = field(default_factory=GRPOSettings)

    def __post_init__(self) -> None:
        if not self.reward_model:
            raise ConfigError("pass a reward model directory (<output_dir>/model of recipes/train_reward_model.py)",
                              key="reward_model")
        if not self.data:
            raise ConfigError("pass SLF5K-format data (a JSONL file or a directory of <split>.jsonl)", key="data")


def run_summarization_grpo(config: SummarizationGRPOConfig) -> dict[str, Any]:
    """Train; return the reward's log key, its logged ``(step, mean)`` values and the full log history."""
    samples = load_slf5k(config.data, config.split)
    samples = samples[: config.limit] if config.limit else samples
    rm = PreferenceRewardModel(config.reward_model, batch_size=config.reward_batch_size,
                               max_length=config.reward_max_length)
    history = train_grpo(config.model, [summarize_prompt(s.title, s.post) for s in samples], [rm],
                         config.output_dir, settings=config.grpo, lora=config.lora)
    key = f"rewards/{rm.name}/mean"
    return {"reward_key": key, "rewards": logged(history, key), "log_history": history,
            "policy": str(Path(config.output_dir) / "final")}
