"""The task registry and the gymnasium namespace."""

import gymnasium as gym
import pytest

import envs


def test_unknown_task_lists_known_names() -> None:
    with pytest.raises(KeyError, match="cartpole-upright"):
        envs.get_task("cartpole-balance")


def test_duplicate_task_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="already registered"):
        envs.register_task(envs.get_task("cartpole-upright"))


def test_every_task_env_is_registered_under_the_namespace() -> None:
    for name in envs.task_names():
        task = envs.get_task(name)
        assert task.env_id.startswith(f"{envs.NAMESPACE}/")
        assert task.env_id in gym.registry
        assert task.goal_prompts and task.baseline_prompts


def test_envs_does_not_import_reward_packages() -> None:
    import subprocess
    import sys

    code = "import sys, envs; bad = [m for m in ('vlm_rewards', 'language_feedback') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
