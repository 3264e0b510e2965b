"""The task registry and the gymnasium namespace."""

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import envs

NAMESPACE_IDS = sorted(env_id for env_id in gym.registry if env_id.startswith(f"{envs.NAMESPACE}/"))


def test_the_three_envs_are_registered() -> None:
    assert NAMESPACE_IDS == sorted([envs.CARTPOLE_ID, envs.MOUNTAIN_CAR_ID, envs.HUMANOID_ID])


@pytest.mark.parametrize("env_id", NAMESPACE_IDS)
def test_every_registered_env_passes_the_env_checker(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array", width=48, height=32)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


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
