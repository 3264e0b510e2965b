"""Gymnasium environments made for pixel rewards, with named tasks and ground truth.

Importing ``envs`` registers the environments (``PixelRewards/...`` ids) and the built-in tasks.
"""

from envs.registration import CARTPOLE_ID, HUMANOID_ID, MOUNTAIN_CAR_ID, NAMESPACE, register_envs
from envs.tasks import Task, get_task, register_task, task_names

register_envs()

from envs import catalog  # noqa: F401  (registers the built-in tasks; needs the ids above)

__all__ = [
    "CARTPOLE_ID",
    "HUMANOID_ID",
    "MOUNTAIN_CAR_ID",
    "NAMESPACE",
    "Task",
    "get_task",
    "register_task",
    "task_names",
]
