"""The built-in tasks, registered on import of ``envs`` (prompts as in VLM-RM, Rocamonde et al. 2024)."""

from __future__ import annotations

import functools

import numpy as np

from envs import cartpole, humanoid_tasks, mountain_car
from envs.registration import CARTPOLE_ID, HUMANOID_ID, MOUNTAIN_CAR_ID
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

register_task(
    Task(
        name="mountaincar-peak",
        env_id=MOUNTAIN_CAR_ID,
        goal_prompts=("a car at the peak of the mountain, next to the yellow flag",),
        baseline_prompts=("a car in the mountain",),
        success=mountain_car.at_peak,
        reward=mountain_car.peak_reward,
        caption=mountain_car.describe_state,
        reference_state=lambda: np.array([0.5, 0.0]),
    )
)

for key, name, goal in humanoid_tasks.HUMANOID_TASKS:
    register_task(
        Task(
            name=name,
            env_id=HUMANOID_ID,
            goal_prompts=(goal,),
            baseline_prompts=(humanoid_tasks.BASELINE_PROMPT,),
            success=humanoid_tasks.success_predicate(key),
            reward=humanoid_tasks.ground_truth_reward(key),
            caption=humanoid_tasks.describe_state,
            reference_state=functools.partial(humanoid_tasks.reference_state, key),
            # The CLIP reward model, not rendering, should be the bottleneck: render fast by default.
            env_kwargs={"fast_render": True},
        )
    )
