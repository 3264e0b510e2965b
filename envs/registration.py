"""Gymnasium ids of the environments, all under one namespace."""

from __future__ import annotations

import gymnasium as gym

NAMESPACE = "PixelRewards"
CARTPOLE_ID = f"{NAMESPACE}/CartPole-v0"
MOUNTAIN_CAR_ID = f"{NAMESPACE}/MountainCarContinuous-v0"
HUMANOID_ID = f"{NAMESPACE}/Humanoid-v0"

# Fixed episode lengths (the envs never terminate); override with gym.make(..., max_episode_steps=N).
DEFAULT_EPISODE_STEPS = {CARTPOLE_ID: 500, MOUNTAIN_CAR_ID: 999, HUMANOID_ID: 1000}


def register_envs() -> None:
    """Register every environment with gymnasium (skipping ids that are already registered)."""
    entry_points = {
        CARTPOLE_ID: "envs.cartpole:PixelCartPoleEnv",
        MOUNTAIN_CAR_ID: "envs.mountain_car:PixelMountainCarEnv",
        HUMANOID_ID: "envs.humanoid:PixelHumanoidEnv",
    }
    for env_id, entry_point in entry_points.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=DEFAULT_EPISODE_STEPS[env_id])
