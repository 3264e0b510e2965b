"""Every robotics and accelerate config shipped in recipes/ loads and validates (no model is built)."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest

from rlhf.config import load_config
from vlm_rewards.quickstart import QuickstartConfig
from vlm_rewards.reward_quality import RewardQualityConfig
from vlm_rewards.robotics import TrainPolicyConfig

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

CONFIGS = RECIPES / "configs" / "robotics"
TRAIN_CONFIGS = sorted(p for p in CONFIGS.glob("*.yaml") if not p.name.startswith(("quickstart", "eval_")))


def test_there_is_a_config_for_every_task():
    import envs

    tasks = {load_config(TrainPolicyConfig, ["--config", str(p)]).task for p in TRAIN_CONFIGS}
    assert set(envs.task_names()) <= tasks


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_training_config_is_valid(path):
    cfg = load_config(TrainPolicyConfig, ["--config", str(path)])  # validates task, seeds, RL settings
    if cfg.reward.source == "vlm" and cfg.reward.pretrained:
        assert cfg.reward.model in open_clip.list_models()
        assert cfg.reward.pretrained in open_clip.list_pretrained_tags_by_model(cfg.reward.model)


def test_quickstart_mountaincar_config_makes_the_model_the_sac_config_uses():
    cfg = load_config(QuickstartConfig, ["--config", str(CONFIGS / "quickstart_mountaincar_clip.yaml")])
    train = load_config(TrainPolicyConfig, ["--config", str(CONFIGS / "mountaincar_sac_cpu.yaml")])
    assert not cfg.train and cfg.task == train.task == "mountaincar-peak"
    assert train.reward.model == f"{cfg.output_dir}/clip/model"


def test_quickstart_config_is_the_default_and_valid():
    from _recipes import load_recipe

    default = load_recipe("quickstart.py").DEFAULT_CONFIG
    assert default == CONFIGS / "quickstart.yaml"
    cfg = load_config(QuickstartConfig, [], default_config=default)
    assert isinstance(cfg, QuickstartConfig) and cfg.task == "cartpole-upright" and len(cfg.seeds) == 3
    assert cfg.rl.total_timesteps % (cfg.rl.n_envs * cfg.rl.algo_kwargs["n_steps"]) == 0


@pytest.mark.parametrize("path", sorted((RECIPES / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_config_loads(path):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(path))
    assert cfg.num_processes >= 1


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("eval_*.yaml")), ids=lambda p: p.name)
def test_eval_config_loads(path):
    from _recipes import load_recipe

    SampleEfficiencyConfig = load_recipe("eval/sample_efficiency.py").SampleEfficiencyConfig
    cls = RewardQualityConfig if "reward_quality" in path.name else SampleEfficiencyConfig
    cfg = load_config(cls, ["--config", str(path)])
    assert cfg.output_dir.startswith("runs/")
