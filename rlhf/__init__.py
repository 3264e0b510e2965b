"""Shared reward-learning core: reward-model interface, metrics, config, model loading."""

from rlhf.reward import (
    FunctionReward,
    PromptCompletion,
    RewardModel,
    RunningNormalization,
    WeightedSum,
    as_trl_reward_func,
    check_rewards,
)

__all__ = [
    "FunctionReward",
    "PromptCompletion",
    "RewardModel",
    "RunningNormalization",
    "WeightedSum",
    "as_trl_reward_func",
    "check_rewards",
]
