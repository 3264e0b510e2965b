"""Forward kinematics of the Humanoid-v5 model, for success predicates, rewards and captions on states.

Ground truth is a function of the simulator state alone (``concatenate([qpos, qvel])``): this module
keeps its own compiled copy of gymnasium's humanoid model and runs ``mj_kinematics`` on it, so tasks
can judge a state without an environment, a renderer or a physics step.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import mujoco
import numpy as np
from gymnasium.envs.mujoco.mujoco_env import expand_model_path

NQ = 24
HINGE_NAMES = (
    "abdomen_z", "abdomen_y", "abdomen_x",
    "right_hip_x", "right_hip_z", "right_hip_y", "right_knee",
    "left_hip_x", "left_hip_z", "left_hip_y", "left_knee",
    "right_shoulder1", "right_shoulder2", "right_elbow",
    "left_shoulder1", "left_shoulder2", "left_elbow",
)  # fmt: skip


@functools.cache
def _model() -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(expand_model_path("humanoid.xml"))


@functools.cache
def _data() -> mujoco.MjData:
    return mujoco.MjData(_model())


@dataclass(frozen=True)
class BodyPoints:
    """World positions (metres) of the landmarks the tasks are judged on, plus the torso's axes.

    ``forward``, ``left`` and ``up`` are the torso's own axes in world coordinates (unit vectors);
    ``in_torso_frame(p)`` expresses a world point relative to the torso in those axes.
    """

    head: np.ndarray
    torso: np.ndarray
    pelvis: np.ndarray
    left_hand: np.ndarray
    right_hand: np.ndarray
    left_foot: np.ndarray
    right_foot: np.ndarray
    left_knee: np.ndarray
    right_knee: np.ndarray
    left_shoulder: np.ndarray
    right_shoulder: np.ndarray
    forward: np.ndarray
    left: np.ndarray
    up: np.ndarray
    lowest_z: float

    def in_torso_frame(self, point: np.ndarray) -> np.ndarray:
        """(forward, left, up) coordinates of ``point`` relative to the torso."""
        offset = point - self.torso
        return np.array([offset @ self.forward, offset @ self.left, offset @ self.up])


def _run_kinematics(qpos: np.ndarray) -> tuple[mujoco.MjModel, mujoco.MjData]:
    qpos = np.asarray(qpos, dtype=np.float64)
    if qpos.shape[0] < NQ:
        raise ValueError(f"Humanoid state must start with the 24 qpos values, got {qpos.shape[0]} values")
    model, data = _model(), _data()
    data.qpos[:] = qpos[:NQ]
    mujoco.mj_kinematics(model, data)
    return model, data


def _lowest_point(model: mujoco.MjModel, data: mujoco.MjData) -> float:
    """Lowest z over the robot's spheres and capsules (the floor plane excluded)."""
    lowest = np.inf
    for g in range(model.ngeom):
        if model.geom_bodyid[g] == 0:
            continue
        radius = model.geom_size[g, 0]
        centre_z = data.geom_xpos[g, 2]
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_CAPSULE:
            half_axis = data.geom_xmat[g].reshape(3, 3)[2, 2] * model.geom_size[g, 1]
            lowest = min(lowest, centre_z - abs(half_axis) - radius)
        else:
            lowest = min(lowest, centre_z - radius)
    return float(lowest)


def body_points(state: np.ndarray) -> BodyPoints:
    """The landmarks of the humanoid in ``state`` (qpos, optionally followed by qvel)."""
    model, data = _run_kinematics(state)

    def geom(name: str) -> np.ndarray:
        return data.geom_xpos[model.geom(name).id].copy()

    def body(name: str) -> np.ndarray:
        return data.xpos[model.body(name).id].copy()

    def joint_anchor(name: str) -> np.ndarray:
        return data.xanchor[model.joint(name).id].copy()

    axes = data.xmat[model.body("torso").id].reshape(3, 3)
    return BodyPoints(
        head=geom("head"),
        torso=body("torso"),
        pelvis=body("pelvis"),
        left_hand=geom("left_hand"),
        right_hand=geom("right_hand"),
        left_foot=geom("left_foot"),
        right_foot=geom("right_foot"),
        left_knee=joint_anchor("left_knee"),
        right_knee=joint_anchor("right_knee"),
        left_shoulder=body("left_upper_arm"),
        right_shoulder=body("right_upper_arm"),
        forward=axes[:, 0].copy(),
        left=axes[:, 1].copy(),
        up=axes[:, 2].copy(),
        lowest_z=_lowest_point(model, data),
    )


def place_on_floor(qpos: np.ndarray, clearance: float = 0.0) -> np.ndarray:
    """A copy of ``qpos`` with the root height set so the robot's lowest point touches the floor."""
    qpos = np.array(qpos[:NQ], dtype=np.float64)
    qpos[2] = 0.0
    model, data = _run_kinematics(qpos)
    qpos[2] = -_lowest_point(model, data) + clearance
    return qpos


def pose_qpos(joints_deg: dict[str, float], root_euler_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """qpos for a pose given as hinge angles in degrees (others 0) and a root orientation, on the floor.

    ``root_euler_deg`` is (roll about x, pitch about y, yaw about z), applied as yaw * pitch * roll.
    """
    unknown = sorted(set(joints_deg) - set(HINGE_NAMES))
    if unknown:
        raise ValueError(f"unknown humanoid joint(s) {unknown}; joints: {list(HINGE_NAMES)}")
    qpos = np.zeros(NQ)
    quat = np.array([1.0, 0.0, 0.0, 0.0])
    for axis, degrees in zip(np.eye(3), root_euler_deg):  # roll first, yaw last: q = yaw * pitch * roll
        turn, product = np.zeros(4), np.zeros(4)
        mujoco.mju_axisAngle2Quat(turn, axis, np.deg2rad(degrees))
        mujoco.mju_mulQuat(product, turn, quat)
        quat = product
    qpos[3:7] = quat
    for name, degrees in joints_deg.items():
        qpos[7 + HINGE_NAMES.index(name)] = np.deg2rad(degrees)
    return place_on_floor(qpos)
