"""Continuous MountainCar made for pixel rewards: a readable scene, fixed-length episodes, absorbing goal.

The dynamics are gymnasium's ``Continuous_MountainCarEnv``. Changes: the episode never terminates
(its length is the ``TimeLimit``); reaching the goal is absorbing (the car stays parked at the flag
for the rest of the episode, so the frames keep showing the goal state); frames are drawn natively
at the requested size with a striped hillside, a yellow flag on the peak and a car with a cabin
and wheels, so a vision-language model can tell "at the peak" from "in the valley".

State layout (the observation): ``[position, velocity]``, position in [-1.2, 0.6], the goal at 0.45.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv

from envs.rendering import Canvas, SimState

MIN_POSITION, MAX_POSITION, GOAL_POSITION, MAX_SPEED = -1.2, 0.6, 0.45, 0.07
VALLEY_POSITION = -np.pi / 6  # the lowest point of sin(3x)
ACTION_COST = 0.1  # gymnasium's cost per squared action

SKY_TOP, SKY_BOTTOM = (110, 160, 225), (215, 232, 250)
HILL, HILL_STRIPE = (90, 150, 70), (70, 125, 55)
CAR_BODY, CAR_CABIN, WINDOW, WHEEL = (200, 30, 30), (170, 20, 20), (190, 225, 245), (25, 25, 25)
FLAG, FLAG_POLE = (250, 210, 20), (80, 60, 40)


def hill_height(position: float | np.ndarray) -> float | np.ndarray:
    """Height of the track at ``position`` (gymnasium's curve)."""
    return np.sin(3 * np.asarray(position)) * 0.45 + 0.55


def at_peak(state: np.ndarray) -> bool:
    """Success: the car at or beyond the flag (gymnasium's goal position, 0.45)."""
    return bool(state[0] >= GOAL_POSITION)


def peak_reward(state: np.ndarray) -> float:
    """Ground-truth reward for "car at the peak": 1 at the goal, else 0."""
    return float(at_peak(state))


def describe_state(state: np.ndarray) -> str:
    """A true sentence about where the car is on the mountain and which way it is moving."""
    position, velocity = float(state[0]), float(state[1])
    if position >= GOAL_POSITION:
        return "a car at the peak of the mountain, next to the yellow flag"
    if abs(position - VALLEY_POSITION) < 0.2:
        where = "a car at the bottom of the valley"
    elif position < VALLEY_POSITION - 0.45:
        where = "a car high up the left hill"
    elif position < VALLEY_POSITION:
        where = "a car on the lower left slope of the valley"
    elif position < 0.1:
        where = "a car on the lower slope of the right hill, far below the flag"
    else:
        where = "a car high up the right hill, just below the flag"
    if abs(velocity) < 0.005:
        motion = "standing still"
    else:
        motion = f"moving {'right' if velocity > 0 else 'left'}"
    return f"{where}, {motion}"


class PixelMountainCarEnv(SimState, Continuous_MountainCarEnv):
    """Continuous MountainCar with fixed-length episodes, an absorbing goal and native rendering.

    Reward per step: ``peak_reward(state)`` (1 while parked at the flag) minus gymnasium's
    ``0.1 * action**2`` action cost.

    Args:
        render_mode: ``"rgb_array"`` or None.
        width, height: frame size in pixels for ``render()``.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 30}
    STATE_FIELDS = ("position", "velocity")

    def __init__(self, render_mode: str | None = None, width: int = 224, height: int = 224) -> None:
        super().__init__()
        self._init_rendering(render_mode, width, height)
        self._background: np.ndarray | None = None

    def _constrain(self, state: np.ndarray) -> np.ndarray:
        """Position and velocity clipped to their ranges."""
        position = np.clip(state[0], MIN_POSITION, MAX_POSITION)
        return np.array([position, np.clip(state[1], -MAX_SPEED, MAX_SPEED)], dtype=np.float32)

    def sample_sim_state(self, rng: np.random.Generator) -> np.ndarray:
        """A state uniform over the state space (position in [-1.2, 0.6], velocity in [-0.07, 0.07])."""
        return rng.uniform([MIN_POSITION, -MAX_SPEED], [MAX_POSITION, MAX_SPEED])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset in the valley (gymnasium's uniform [-0.6, -0.4]); ``info["sim_state"]`` holds the state."""
        obs, info = super().reset(seed=seed, options=options)
        self.state = np.asarray(self.state, dtype=np.float32)
        return obs, {**info, "sim_state": self.get_sim_state()}

    def step(self, action):
        """One step; once the car has reached the flag it stays parked there (absorbing goal)."""
        action = np.asarray(action, dtype=np.float32)
        if at_peak(self.get_sim_state()):
            self.state = np.array([self.state[0], 0.0], dtype=np.float32)
        else:
            super().step(action)
            if at_peak(self.get_sim_state()):  # arrived: park at the flag
                self.state = np.array([self.state[0], 0.0], dtype=np.float32)
        state = self.get_sim_state()
        reward = peak_reward(state) - ACTION_COST * float(np.clip(action[0], -1.0, 1.0)) ** 2
        return np.array(self.state, dtype=np.float32), reward, False, False, {"sim_state": state}

    def render(self) -> np.ndarray | None:
        """An (height, width, 3) uint8 frame of the current state, drawn natively at that size."""
        if self.render_mode is None:
            return None
        if self._background is None:
            self._background = mountain_car_background(self.width, self.height)
        return render_mountain_car(self.get_sim_state(), self.width, self.height, self._background)

    def close(self) -> None:
        """Nothing to release: rendering holds no window or GL context."""


WORLD_BOX = (MIN_POSITION - 0.05, MAX_POSITION + 0.05, 0.0, 1.25)
CAR_LENGTH, CAR_BODY_HEIGHT, WHEEL_RADIUS = 0.2, 0.06, 0.03
FLAG_POLE_HEIGHT = 0.22


def mountain_car_background(width: int, height: int) -> np.ndarray:
    """The static part of a MountainCar frame (sky, striped hillside, flag) at the given size."""
    canvas = Canvas(width, height, WORLD_BOX)
    canvas.fill_vertical_gradient(SKY_TOP, SKY_BOTTOM)
    # Outside the track the hill is continued flat, as a wall at the left and a plateau at the right.
    track_x = np.clip(canvas.xs, MIN_POSITION, MAX_POSITION)
    canvas.fill_below_curve(hill_height(track_x), HILL, HILL_STRIPE)
    base = np.array([GOAL_POSITION, hill_height(GOAL_POSITION)])
    canvas.fill_rect(base[0] - 0.008, base[0] + 0.008, base[1], base[1] + FLAG_POLE_HEIGHT, FLAG_POLE)
    top = base[1] + FLAG_POLE_HEIGHT
    canvas.fill_polygon([(base[0], top), (base[0], top - 0.08), (base[0] + 0.14, top - 0.04)], FLAG)
    return canvas.frame


def render_mountain_car(state: np.ndarray, width: int, height: int, background: np.ndarray | None = None) -> np.ndarray:
    """Draw a MountainCar state at ``width`` x ``height`` (``background`` from ``mountain_car_background``)."""
    canvas = Canvas(width, height, WORLD_BOX)
    canvas.frame[:] = mountain_car_background(width, height) if background is None else background
    position = float(state[0])
    slope = 1.35 * np.cos(3 * position)  # d hill_height / d position
    angle = float(np.arctan(slope))
    along = np.array([np.cos(angle), np.sin(angle)])
    up = np.array([-along[1], along[0]])
    ground = np.array([position, hill_height(position)])

    def local(u: float, v: float) -> np.ndarray:
        """Car-frame point (u along the track, v up from the track) in world units."""
        return ground + u * along + v * up

    half = CAR_LENGTH / 2
    body_bottom, body_top = WHEEL_RADIUS, WHEEL_RADIUS + CAR_BODY_HEIGHT
    cabin_top = body_top + 0.05
    canvas.fill_polygon(
        [local(-half, body_bottom), local(half, body_bottom), local(half, body_top), local(-half, body_top)], CAR_BODY
    )
    canvas.fill_polygon(
        [local(-0.06, body_top), local(0.07, body_top), local(0.04, cabin_top), local(-0.045, cabin_top)], CAR_CABIN
    )
    canvas.fill_polygon(
        [
            local(0.005, body_top + 0.008),
            local(0.055, body_top + 0.008),
            local(0.035, cabin_top - 0.01),
            local(0.005, cabin_top - 0.01),
        ],
        WINDOW,
    )
    for u in (-0.6 * half, 0.6 * half):
        canvas.fill_circle(local(u, WHEEL_RADIUS), WHEEL_RADIUS, WHEEL)
    return canvas.frame
