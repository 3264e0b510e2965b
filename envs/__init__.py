"""envs: gymnasium environments made for pixel rewards, with named tasks and ground truth.

Modules: ``cartpole``, ``mountain_car``, ``humanoid`` (environments), ``rendering``, ``tasks`` (the task
registry), ``catalog`` and ``humanoid_tasks`` (the built-in tasks), ``contact_sheet``, ``registration``.
Importing ``envs`` registers the environments (``PixelRewards/...`` ids) and the built-in tasks: gymnasium
must know the ids before ``gym.make``, so registration is the one thing done at import.
"""

from envs.registration import register_envs
from rlhf.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "CARTPOLE_ID": "envs.registration",
    "HUMANOID_ID": "envs.registration",
    "MOUNTAIN_CAR_ID": "envs.registration",
    "NAMESPACE": "envs.registration",
    "Task": "envs.tasks",
    "get_task": "envs.tasks",
    "register_task": "envs.tasks",
    "task_names": "envs.tasks",
})

register_envs()
from envs import catalog  # noqa: F401  (registers the built-in tasks; needs the ids above)
