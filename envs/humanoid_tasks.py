"""Humanoid tasks of VLM-RM: reference poses, success predicates, ground-truth rewards, a captioner.

Each task is judged on body landmarks computed from the state (``envs.humanoid_kinematics``) by a
few criteria. A criterion maps a measured value (a height, a distance) linearly to [0, 1] between
``zero_at`` and ``one_at`` and is met at 1. Success means every criterion of the task is met; the
ground-truth reward is the mean of the criteria, so it rises smoothly towards success and equals 1
exactly on success.

Reference poses are joint angles written here (found once by hand-guided search within the joint
limits, then rounded to whole degrees) and held kinematically: the root height is set so the lowest
body part touches the floor, velocities are zero, and no physics step is run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from envs.humanoid_kinematics import NQ, BodyPoints, body_points, pose_qpos

NV = 23
HIP_IN_TORSO_FRAME = {"right": np.array([0.0, -0.17, -0.40]), "left": np.array([0.0, 0.17, -0.40])}


@dataclass(frozen=True)
class Criterion:
    """One measured condition: ``measure(points)`` scored 0 at ``zero_at`` rising linearly to 1 at ``one_at``."""

    description: str
    measure: Callable[[BodyPoints], float]
    zero_at: float
    one_at: float

    def score(self, points: BodyPoints) -> float:
        """How far the condition is met, in [0, 1]."""
        t = (self.measure(points) - self.zero_at) / (self.one_at - self.zero_at)
        return float(np.clip(t, 0.0, 1.0))


def _hands(p: BodyPoints) -> np.ndarray:
    """Both hands in the torso frame (forward, left, up), rows right then left."""
    return np.stack([p.in_torso_frame(p.right_hand), p.in_torso_frame(p.left_hand)])


def _hand_to_hip(p: BodyPoints) -> float:
    hands = _hands(p)
    return float(
        max(
            np.linalg.norm(hands[0] - HIP_IN_TORSO_FRAME["right"]),
            np.linalg.norm(hands[1] - HIP_IN_TORSO_FRAME["left"]),
        )
    )


UPRIGHT = Criterion("torso upright", lambda p: p.up[2], zero_at=0.3, one_at=0.85)
TALL = Criterion("head at standing height", lambda p: p.head[2], zero_at=0.8, one_at=1.3)
FEET_DOWN = Criterion("both feet on the floor", lambda p: max(p.left_foot[2], p.right_foot[2]), 0.45, 0.15)
ARMS_DOWN = Criterion("both hands hanging low", lambda p: _hands(p)[:, 2].max(), zero_at=0.0, one_at=-0.48)

CRITERIA: dict[str, tuple[Criterion, ...]] = {
    "kneeling": (
        UPRIGHT,
        Criterion("both knees on the floor", lambda p: max(p.left_knee[2], p.right_knee[2]), 0.5, 0.15),
        Criterion("hips raised above the heels", lambda p: p.pelvis[2], zero_at=0.1, one_at=0.35),
    ),
    "lotus": (
        UPRIGHT,
        Criterion("seated on the floor", lambda p: p.pelvis[2], zero_at=0.8, one_at=0.3),
        Criterion("knees wide apart", lambda p: float(np.linalg.norm(p.left_knee - p.right_knee)), 0.15, 0.5),
        Criterion("feet together", lambda p: float(np.linalg.norm(p.left_foot - p.right_foot)), 1.0, 0.35),
    ),
    "standing": (UPRIGHT, TALL, FEET_DOWN, ARMS_DOWN),
    "arms_raised": (
        UPRIGHT,
        TALL,
        Criterion("both hands above the head", lambda p: _hands(p)[:, 2].min(), zero_at=-0.5, one_at=0.3),
    ),
    "splits": (
        Criterion("feet far apart", lambda p: float(np.linalg.norm(p.left_foot - p.right_foot)), 0.2, 1.2),
        Criterion("hips down on the floor", lambda p: p.pelvis[2], zero_at=0.9, one_at=0.3),
    ),
    "hands_on_hips": (
        UPRIGHT,
        TALL,
        Criterion("hands on the hips", _hand_to_hip, zero_at=0.5, one_at=0.08),
    ),
    "one_leg": (
        UPRIGHT,
        TALL,
        Criterion("one foot on the floor", lambda p: min(p.left_foot[2], p.right_foot[2]), 0.45, 0.15),
        Criterion("the other foot raised", lambda p: max(p.left_foot[2], p.right_foot[2]), 0.07, 0.3),
    ),
    "arms_crossed": (
        UPRIGHT,
        TALL,
        Criterion("hands in front of the chest", lambda p: _hands(p)[:, 0].min(), zero_at=-0.05, one_at=0.15),
        Criterion("hands at the middle of the body", lambda p: np.abs(_hands(p)[:, 1]).max(), 0.4, 0.1),
        Criterion("hands at chest height", lambda p: np.abs(_hands(p)[:, 2] + 0.1).max(), 0.6, 0.2),
    ),
}


def _mirror(right_side: dict[str, float]) -> dict[str, float]:
    """Add the left-side joints mirroring the given right-side ones.

    The model's left hips and knees use mirrored axes already (same angle, mirrored motion); the
    shoulders share axes across the body's plane, so their mirror is the negated angle.
    """
    joints = dict(right_side)
    for name, degrees in right_side.items():
        if name.startswith("right_"):
            joints["left_" + name.removeprefix("right_")] = -degrees if "shoulder" in name else degrees
    return joints


ARMS_AT_SIDES = {"right_shoulder1": 46, "right_shoulder2": -37, "right_elbow": -88}
# Hinge angles in degrees (unlisted joints 0); root upright, facing +x.
REFERENCE_JOINTS: dict[str, dict[str, float]] = {
    "kneeling": _mirror({**ARMS_AT_SIDES, "right_knee": -90}),
    "lotus": _mirror(
        {"right_hip_x": 5, "right_hip_z": -40, "right_hip_y": -92, "right_knee": -160}
        | {"right_shoulder1": 20, "right_shoulder2": -30, "right_elbow": -52}  # hands resting on the knees
    ),
    "standing": _mirror(ARMS_AT_SIDES),
    "arms_raised": _mirror({"right_shoulder1": -85, "right_shoulder2": -18, "right_elbow": -16}),
    "splits": _mirror(
        {"right_hip_x": -25, "right_hip_z": -60, "right_hip_y": -69, "right_knee": -2}
        | {"right_shoulder1": -49, "right_shoulder2": -71, "right_elbow": -17}  # arms out to the sides
    ),
    "hands_on_hips": _mirror({"right_shoulder1": 51, "right_shoulder2": -67, "right_elbow": -25}),
    "one_leg": {**_mirror(ARMS_AT_SIDES), "right_hip_y": -90, "right_knee": -90},
    "arms_crossed": _mirror({"right_shoulder1": 60, "right_shoulder2": -17, "right_elbow": 10}),
}

# (task key, task name, goal prompt as in VLM-RM)
HUMANOID_TASKS: tuple[tuple[str, str, str], ...] = (
    ("kneeling", "humanoid-kneeling", "a humanoid robot kneeling"),
    ("lotus", "humanoid-lotus", "a humanoid robot seated down, meditating in the lotus position"),
    ("standing", "humanoid-standing", "a humanoid robot standing up"),
    ("arms_raised", "humanoid-arms-raised", "a humanoid robot standing up, with both arms raised"),
    ("splits", "humanoid-splits", "a humanoid robot practicing gymnastics, doing the side splits"),
    ("hands_on_hips", "humanoid-hands-on-hips", "a humanoid robot standing up with hands on hips"),
    ("one_leg", "humanoid-one-leg", "a humanoid robot standing up on one leg"),
    ("arms_crossed", "humanoid-arms-crossed", "a humanoid robot standing up, with its arms crossed"),
)
BASELINE_PROMPT = "a humanoid robot"


def criteria_scores(key: str, state: np.ndarray) -> dict[str, float]:
    """Each criterion of task ``key`` scored on ``state``, by description."""
    points = body_points(state)
    return {c.description: c.score(points) for c in CRITERIA[key]}


def success_predicate(key: str) -> Callable[[np.ndarray], bool]:
    """The success predicate of task ``key``: every criterion fully met."""

    def success(state: np.ndarray) -> bool:
        return all(score >= 1.0 for score in criteria_scores(key, state).values())

    success.__name__ = f"{key}_success"
    return success


def ground_truth_reward(key: str) -> Callable[[np.ndarray], float]:
    """The ground-truth reward of task ``key``: the mean criterion score, in [0, 1]."""

    def reward(state: np.ndarray) -> float:
        return float(np.mean(list(criteria_scores(key, state).values())))

    reward.__name__ = f"{key}_reward"
    return reward


def reference_state(key: str) -> np.ndarray:
    """The reference pose of task ``key`` as a simulator state (qpos on the floor, zero qvel)."""
    return np.concatenate([pose_qpos(REFERENCE_JOINTS[key]), np.zeros(NV)])


def describe_state(state: np.ndarray) -> str:
    """A true sentence about the humanoid's posture and arms, e.g. "a humanoid robot kneeling, with its arms down"."""
    p = body_points(state[:NQ])
    feet_apart = float(np.linalg.norm(p.left_foot - p.right_foot))
    knees_apart = float(np.linalg.norm(p.left_knee - p.right_knee))
    low_foot, high_foot = sorted([p.left_foot[2], p.right_foot[2]])
    if p.up[2] < 0.5 or p.head[2] < 0.5:
        posture = "lying on the ground"
    elif feet_apart > 1.2 and p.pelvis[2] < 0.35:
        posture = "doing the side splits"
    elif p.pelvis[2] < 0.35:
        crossed = knees_apart > 0.5 and feet_apart < 0.35
        posture = "seated in the lotus position" if crossed else "sitting on the ground"
    elif max(p.left_knee[2], p.right_knee[2]) < 0.15:
        posture = "kneeling"
    elif low_foot > 0.25:
        posture = "in the air"
    elif p.head[2] < 1.2:
        posture = "crouching"
    elif high_foot > 0.3:
        posture = "standing on one leg"
    else:
        posture = "standing up"
    hands = _hands(p)
    if hands[:, 2].min() > 0.3:
        arms = ", with both arms raised"
    elif hands[:, 2].max() > 0.3:
        arms = ", with one arm raised"
    elif _hand_to_hip(p) < 0.08:
        arms = ", with its hands on its hips"
    elif hands[:, 0].min() > 0.15 and np.abs(hands[:, 1]).max() < 0.1:
        arms = ", with its arms crossed"
    elif hands[:, 2].max() < -0.48:
        arms = ", with its arms down"
    elif np.abs(hands[:, 1]).min() > 0.45:
        arms = ", with its arms spread out to the sides"
    else:
        arms = ""
    return f"a humanoid robot {posture}{arms}"
