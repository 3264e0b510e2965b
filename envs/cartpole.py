"""CartPole made for pixel rewards: no early termination, wrapped pole angle, native rendering.

The dynamics are gymnasium's ``CartPoleEnv``; this subclass changes what a learned pixel reward
needs changed: the episode never terminates (its length is the ``TimeLimit``), the pole may swing
all the way round (angle wrapped to [-pi, pi)), the cart stops at the ends of the track (position
clipped, velocity zeroed), and frames are drawn at the requested size with geometry in world units.

State layout (the observation): ``[cart position, cart velocity, pole angle, pole angular velocity]``;
angle 0 is upright, positive angles tilt the pole to the right (+x), +-pi is hanging straight down.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from envs.rendering import Canvas, SimState

TRACK_HALF_LENGTH = 2.4  # gymnasium's x_threshold: the cart position is clipped to +-this
POLE_LENGTH = 1.0  # gymnasium's `length` is half the pole
# Velocity ranges for uniform state sampling; the state space itself is unbounded in velocity.
SAMPLE_CART_SPEED = 3.0
SAMPLE_POLE_SPEED = 2 * np.pi
UPRIGHT_ANGLE = np.deg2rad(12.0)  # gymnasium's own failure threshold, used as the success band

SKY_TOP, SKY_BOTTOM = (120, 170, 230), (220, 235, 250)
GROUND, TRACK, CART = (95, 140, 80), (60, 60, 60), (30, 60, 140)
WHEEL, POLE, AXLE = (25, 25, 25), (210, 120, 40), (240, 220, 60)


def wrap_angle(angle: float | np.ndarray) -> float | np.ndarray:
    """Map an angle in radians to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def upright_reward(state: np.ndarray) -> float:
    """Ground-truth reward for "pole upright": (1 + cos angle) / 2, 1 upright, 0.5 level, 0 hanging."""
    return float((1.0 + np.cos(state[2])) / 2.0)


def is_upright(state: np.ndarray) -> bool:
    """Success: the pole within 12 degrees of vertical (gymnasium's failure threshold)."""
    return bool(abs(wrap_angle(state[2])) < UPRIGHT_ANGLE)


def describe_state(state: np.ndarray) -> str:
    """A true sentence about the pole and the cart, telling upright, tilted, level and hanging apart."""
    angle = float(wrap_angle(state[2]))
    degrees = abs(np.rad2deg(angle))
    side = "right" if angle > 0 else "left"
    if degrees < 12:
        pole = "an upright pole balanced on top of a cart"
    elif degrees < 45:
        pole = f"a pole tilted slightly to the {side} on top of a cart"
    elif degrees < 80:
        pole = f"a pole tilted far to the {side} of a cart"
    elif degrees < 100:
        pole = f"a pole lying level to the {side} of a cart"
    elif degrees < 150:
        pole = f"a pole pointing down to the {side} below a cart"
    else:
        pole = "a pole hanging straight down below a cart"
    x = float(state[0])
    if abs(x) < TRACK_HALF_LENGTH / 3:
        where = "in the middle of the track"
    elif abs(x) < TRACK_HALF_LENGTH - 0.05:
        where = f"on the {'right' if x > 0 else 'left'} side of the track"
    else:
        where = f"at the {'right' if x > 0 else 'left'} end of the track"
    return f"{pole} {where}"


class PixelCartPoleEnv(SimState, CartPoleEnv):
    """Gymnasium CartPole with fixed-length episodes, a wrapped angle, a clipped cart and native rendering.

    Args:
        render_mode: ``"rgb_array"`` or None.
        width, height: frame size in pixels for ``render()``; frames are drawn at that size directly.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 50}
    STATE_FIELDS = ("x", "x_dot", "theta", "theta_dot")

    def __init__(self, render_mode: str | None = None, width: int = 224, height: int = 224) -> None:
        super().__init__()
        self._init_rendering(render_mode, width, height)
        high = np.array([TRACK_HALF_LENGTH, np.inf, np.pi, np.inf], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self._canvas: Canvas | None = None
        self._background: np.ndarray | None = None

    # -- simulator state ------------------------------------------------------------------------
    def set_sim_state(self, state: np.ndarray) -> None:
        """Put the simulator into ``state`` (angle wrapped, position clipped like a step would)."""
        super().set_sim_state(state)
        self.steps_beyond_terminated = None

    def sample_sim_state(self, rng: np.random.Generator) -> np.ndarray:
        """A state uniform over the state space: any cart position, any pole angle (hanging included).

        Velocities are uniform in [-3, 3] m/s and [-2 pi, 2 pi] rad/s (the true space is unbounded).
        """
        low = np.array([-TRACK_HALF_LENGTH, -SAMPLE_CART_SPEED, -np.pi, -SAMPLE_POLE_SPEED])
        return rng.uniform(low, -low)

    def _constrain(self, state: np.ndarray) -> np.ndarray:
        x, x_dot, theta, theta_dot = state
        if abs(x) > TRACK_HALF_LENGTH:  # the cart hits the end stop and stops there
            x, x_dot = float(np.clip(x, -TRACK_HALF_LENGTH, TRACK_HALF_LENGTH)), 0.0
        return np.array([x, x_dot, wrap_angle(theta), theta_dot], dtype=np.float64)

    # -- gymnasium API --------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset near upright (gymnasium's +-0.05 uniform noise); ``info["sim_state"]`` holds the state."""
        obs, info = super().reset(seed=seed, options=options)
        return obs, {**info, "sim_state": self.get_sim_state()}

    def step(self, action):
        """One physics step; reward is ``upright_reward``; never terminates (the TimeLimit truncates)."""
        super().step(action)
        self.state = self._constrain(np.asarray(self.state, dtype=np.float64))
        # The parent counts steps past its failure threshold to warn about stepping a finished
        # episode; here there is no finished episode.
        self.steps_beyond_terminated = None
        obs = np.array(self.state, dtype=np.float32)
        return obs, upright_reward(self.state), False, False, {"sim_state": self.get_sim_state()}

    def render(self) -> np.ndarray | None:
        """An (height, width, 3) uint8 frame of the current state, drawn natively at that size."""
        if self.render_mode is None:
            return None
        return render_cartpole(self.get_sim_state(), self.width, self.height, self._cached_background())

    def _cached_background(self) -> np.ndarray:
        if self._background is None:
            self._background = cartpole_background(self.width, self.height)
        return self._background

    def close(self) -> None:
        """Nothing to release: rendering holds no window or GL context."""


# Wide enough that a level pole at either end of the track stays in the frame.
WORLD_BOX = (-TRACK_HALF_LENGTH - 1.1, TRACK_HALF_LENGTH + 1.1, -1.25, 1.25)
CART_WIDTH, CART_HEIGHT = 0.5, 0.3
POLE_THICKNESS = 0.1
WHEEL_RADIUS = 0.07
GROUND_Y = -1.15  # below the hanging pole's tip


def cartpole_background(width: int, height: int) -> np.ndarray:
    """The static part of a CartPole frame (sky, ground, track) at the given size."""
    canvas = Canvas(width, height, WORLD_BOX)
    canvas.fill_vertical_gradient(SKY_TOP, SKY_BOTTOM)
    # The track is a raised rail with the ground far below, so a hanging pole shows against the sky.
    track_y = -CART_HEIGHT / 2 - WHEEL_RADIUS
    canvas.fill_rect(canvas.left, canvas.right, canvas.bottom, GROUND_Y, GROUND)
    rail_end = TRACK_HALF_LENGTH + CART_WIDTH / 2
    canvas.fill_rect(-rail_end, rail_end, track_y - 0.05, track_y, TRACK)
    for post_x in (-rail_end, rail_end):
        canvas.fill_rect(post_x - 0.05, post_x + 0.05, GROUND_Y - 0.01, track_y, TRACK)
    return canvas.frame


def render_cartpole(state: np.ndarray, width: int, height: int, background: np.ndarray | None = None) -> np.ndarray:
    """Draw a CartPole state at ``width`` x ``height``; the cart centre is the world origin's height.

    ``background`` (from ``cartpole_background`` at the same size) saves redrawing the static scene.
    """
    canvas = Canvas(width, height, WORLD_BOX)
    if background is None:
        background = cartpole_background(width, height)
    canvas.frame[:] = background
    x, _, theta, _ = state
    for dx in (-CART_WIDTH / 3, CART_WIDTH / 3):
        canvas.fill_circle((x + dx, -CART_HEIGHT / 2), WHEEL_RADIUS, WHEEL)
    canvas.fill_rect(x - CART_WIDTH / 2, x + CART_WIDTH / 2, -CART_HEIGHT / 2, CART_HEIGHT / 2, CART)
    pivot = np.array([x, CART_HEIGHT / 4])
    # theta is measured from vertical, positive towards +x: direction (sin, cos).
    tip_direction = np.array([np.sin(theta), np.cos(theta)])
    canvas.fill_rotated_rect(
        pivot + tip_direction * POLE_LENGTH / 2,
        POLE_LENGTH,
        POLE_THICKNESS,
        float(np.arctan2(tip_direction[1], tip_direction[0])),
        POLE,
    )
    canvas.fill_circle(pivot, POLE_THICKNESS * 0.6, AXLE)
    return canvas.frame
