"""Gymnasium ids of the environments, all under one namespace."""

from __future__ import annotations

import gymnasium as gym

NAMESPACE = "PixelRewards"
CARTPOLE_ID = f"{NAMESPACE}/CartPole-v0"

DEFAULT_EPISODE_STEPS = {CARTPOLE_ID: 500}


def register_envs() -> None:
    """Register every environment with gymnasium (skipping ids that are already registered)."""
    entry_points = {CARTPOLE_ID: "envs.cartpole:PixelCartPoleEnv"}
    for env_id, entry_point in entry_points.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=DEFAULT_EPISODE_STEPS[env_id])
