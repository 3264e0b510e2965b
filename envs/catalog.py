"""The built-in tasks, registered on import of ``envs`` (prompts as in VLM-RM, Rocamonde et al. 2024)."""

from __future__ import annotations

import numpy as np

from envs import cartpole
from envs.registration import CARTPOLE_ID
from envs.tasks import Task, register_task

register_task(
    Task(
        name="cartpole-upright",
        env_id=CARTPOLE_ID,
        goal_prompts=("pole vertically upright on top of the cart",),
        baseline_prompts=("pole and cart",),
        success=cartpole.is_upright,
        reward=cartpole.upright_reward,
        caption=cartpole.describe_state,
        reference_state=lambda: np.zeros(4),
    )
)
