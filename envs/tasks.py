"""Named tasks: what to ask a reward model for, and the ground truth to judge it by.

A ``Task`` bundles an environment id and kwargs, goal and baseline prompts (for a CLIP reward with
goal-baseline regularization), and three functions of the simulator state (the vector returned by
``env.unwrapped.get_sim_state()`` and carried in ``info["sim_state"]``):

- ``success(state) -> bool``: the ground-truth success predicate,
- ``reward(state) -> float``: the ground-truth reward (for EPIC distance and for a baseline agent),
- ``caption(state) -> str``: a true sentence about the state (for fine-tuning a reward model on captions).

``reference_state()`` gives a state in which the task is achieved (for the humanoid: the task's
reference pose), so reward models can be sanity-checked on rendered goal states without training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class Task:
    """A named bundle of environment, prompts and ground truth (see the module docstring)."""

    name: str
    env_id: str
    goal_prompts: tuple[str, ...]
    baseline_prompts: tuple[str, ...]
    success: Callable[[np.ndarray], bool]
    reward: Callable[[np.ndarray], float]
    caption: Callable[[np.ndarray], str]
    reference_state: Callable[[], np.ndarray]
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def make_env(self, **overrides: Any) -> gym.Env:
        """``gym.make`` the task's environment; ``overrides`` replace or extend ``env_kwargs``."""
        return gym.make(self.env_id, **{**self.env_kwargs, **overrides})

    def rewards(self, states: np.ndarray) -> np.ndarray:
        """Ground-truth rewards for a batch of states (N, state_dim) -> (N,) float64."""
        return np.array([self.reward(s) for s in np.asarray(states)], dtype=np.float64)


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add a task to the registry; a second task with the same name is an error."""
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


def task_names() -> list[str]:
    """Names of all registered tasks, sorted."""
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """The registered task called ``name``; an unknown name raises KeyError listing the known ones."""
    try:
        return _TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}") from None
