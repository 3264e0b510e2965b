"""rlhf: the shared reward-learning core every other package builds on.

Modules: ``reward`` (the reward-model interface and TRL adapter), ``preference`` (Bradley–Terry reward models,
LM judges), ``best_of_n``, ``metrics``, ``targets`` (PASS/FAIL that never flatter), ``config`` (typed configs
from YAML), ``cli`` (the recipes' command line), ``artifacts`` (atomic files, the stage runner ``RunDir``),
``training`` (TRL trainer and LoRA settings), ``grpo`` (online RL), ``rl`` (stable-baselines3 training),
``curves`` and ``sample_efficiency`` (learning curves over seeds), ``models`` (offline model loading).
"""

from rlhf.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "FunctionReward": "rlhf.reward",
    "PromptCompletion": "rlhf.reward",
    "RewardModel": "rlhf.reward",
    "RunningNormalization": "rlhf.reward",
    "WeightedSum": "rlhf.reward",
    "as_trl_reward_func": "rlhf.reward",
    "check_rewards": "rlhf.reward",
    "RunDir": "rlhf.artifacts",
    "load_config": "rlhf.config",
    "run_recipe": "rlhf.cli",
    "LoraSettings": "rlhf.training",
    "TrainingSettings": "rlhf.training",
    "GRPOSettings": "rlhf.training",
})
