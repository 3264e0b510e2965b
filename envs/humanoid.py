"""Humanoid made for pixel rewards, on gymnasium's Humanoid-v5.

VLM-RM (Rocamonde et al. 2024) found CLIP rewards for the humanoid only worked once the scene was
readable: kneeling success rose from 36% (stock scene) to 91% (textures) to 100% (textures + camera).
This env keeps Humanoid-v5's dynamics, observation and reward, and changes:

- the scene: MuJoCo builtin textures only (a high-contrast checker floor, a gradient sky, a robot with
  a light body and dark hands and feet), edited on the model through ``mujoco.MjSpec``; no image files;
- no termination when the robot falls (the episode length is the ``TimeLimit``);
- a configurable camera (``CameraConfig``), tracking the torso by default;
- rendering through ``mujoco.Renderer`` at any width/height, with ``fast_render=True`` turning off
  shadows and reflections (MuJoCo scene flags) and multisampling (``model.vis.quality.offsamples``).

Simulator state (``get_sim_state``): ``concatenate([qpos, qvel])`` (24 + 23 values).
Pick the headless OpenGL backend with ``MUJOCO_GL=egl`` or ``MUJOCO_GL=osmesa`` before importing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.humanoid_v5 import HumanoidEnv

from envs.humanoid_kinematics import place_on_floor
from envs.rendering import check_render_size

NQ, NV = 24, 23  # Humanoid-v5: free root joint (7 qpos / 6 qvel) + 17 hinges


@dataclass(frozen=True)
class CameraConfig:
    """Where the render camera looks from.

    Attributes:
        distance: metres from the look-at point.
        elevation: degrees; negative looks down on the robot.
        azimuth: degrees around the vertical axis; 180 looks at the robot's front (it faces +x).
        lookat: the look-at point; an offset from the tracked body's ground point (its x, y at height 0)
            when ``track_body`` is set, else a fixed world point.
        track_body: body whose horizontal position the camera follows, or None for a fixed camera.
    """

    distance: float = 3.2
    elevation: float = -12.0
    azimuth: float = 150.0
    lookat: tuple[float, float, float] = (0.0, 0.0, 0.75)
    track_body: str | None = "torso"

    @classmethod
    def from_dict(cls, fields: dict[str, Any] | None) -> CameraConfig:
        """Build from a dict; an unknown field raises ValueError naming it and the known fields."""
        fields = dict(fields or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise ValueError(f"unknown camera field(s) {unknown}; known camera fields: {known}")
        if "lookat" in fields:
            lookat = tuple(float(v) for v in fields["lookat"])
            if len(lookat) != 3:
                raise ValueError(f"camera field 'lookat' needs 3 numbers, got {fields['lookat']!r}")
            fields["lookat"] = lookat
        for name in ("distance", "elevation", "azimuth"):
            if name in fields:
                fields[name] = float(fields[name])
        if "distance" in fields and fields["distance"] <= 0:
            raise ValueError(f"camera field 'distance' must be positive, got {fields['distance']}")
        return cls(**fields)


def decorate_scene(spec: mujoco.MjSpec) -> None:
    """Give the stock humanoid model a readable, textured scene using MuJoCo builtin textures only."""
    for texture in spec.textures:
        if texture.type == mujoco.mjtTexture.mjTEXTURE_SKYBOX:
            texture.builtin = mujoco.mjtBuiltin.mjBUILTIN_GRADIENT
            texture.rgb1, texture.rgb2 = [0.45, 0.65, 0.95], [0.95, 0.97, 1.0]
        elif texture.name == "texplane":
            texture.builtin = mujoco.mjtBuiltin.mjBUILTIN_CHECKER
            texture.rgb1, texture.rgb2 = [0.15, 0.2, 0.3], [0.8, 0.82, 0.85]
            texture.mark = mujoco.mjtMark.mjMARK_EDGE
            texture.markrgb = [0.3, 0.3, 0.35]
        elif texture.name == "texgeom":
            texture.builtin = mujoco.mjtBuiltin.mjBUILTIN_GRADIENT
            texture.rgb1, texture.rgb2 = [1.0, 1.0, 1.0], [0.75, 0.75, 0.8]
            texture.mark = mujoco.mjtMark.mjMARK_NONE
            texture.random = 0.0
    for material in spec.materials:
        if material.name == "MatPlane":
            material.texrepeat = [20, 20]  # 2 m tiles on the 40 m floor: a clear ground plane and horizon
            material.rgba = [1, 1, 1, 1]
        elif material.name == "geom":
            material.texuniform = False
            material.specular, material.shininess = 0.4, 0.4
    body_color, limb_end_color, head_color = [0.95, 0.6, 0.2, 1], [0.15, 0.15, 0.2, 1], [0.9, 0.9, 0.95, 1]
    for geom in spec.geoms:
        if geom.name == "floor":
            geom.rgba = [1, 1, 1, 1]
        elif geom.name in ("left_hand", "right_hand", "left_foot", "right_foot"):
            geom.rgba = limb_end_color
        elif geom.name == "head":
            geom.rgba = head_color
        else:
            geom.rgba = body_color


class PixelHumanoidEnv(HumanoidEnv):
    """Humanoid-v5 with a textured scene, no unhealthy termination, a configurable camera and fast rendering.

    Args:
        render_mode: ``"rgb_array"`` or None.
        width, height: frame size in pixels.
        camera: ``CameraConfig`` fields as a dict (unknown fields raise ValueError) or a ``CameraConfig``.
        fast_render: turn off shadows, reflections and multisampling (about 10x the frames/s on CPU).
        **kwargs: passed to gymnasium's ``HumanoidEnv`` (e.g. ``reset_noise_scale``, ``frame_skip``).
    """

    def __init__(
        self,
        render_mode: str | None = None,
        width: int = 224,
        height: int = 224,
        camera: dict[str, Any] | CameraConfig | None = None,
        fast_render: bool = False,
        **kwargs: Any,
    ) -> None:
        check_render_size(width, height)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.camera_config = camera if isinstance(camera, CameraConfig) else CameraConfig.from_dict(camera)
        self.fast_render = bool(fast_render)
        kwargs.setdefault("terminate_when_unhealthy", False)
        super().__init__(render_mode=render_mode, width=int(width), height=int(height), **kwargs)
        self.metadata = {**self.metadata, "render_modes": ["rgb_array"]}
        utils.EzPickle.__init__(self, render_mode, width, height, self.camera_config, fast_render, **kwargs)
        self._renderer: mujoco.Renderer | None = None
        self._camera = mujoco.MjvCamera()
        self._track_body_id = -1
        if self.camera_config.track_body is not None:
            self._track_body_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, self.camera_config.track_body)
            if self._track_body_id < 0:
                bodies = [self.model.body(i).name for i in range(1, self.model.nbody)]
                raise ValueError(
                    f"camera field 'track_body': no body {self.camera_config.track_body!r}; bodies: {bodies}"
                )

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        # Called by MujocoEnv.__init__: compile the stock XML with the textured scene instead of as is.
        spec = mujoco.MjSpec.from_file(self.fullpath)
        decorate_scene(spec)
        model = spec.compile()
        # mujoco.Renderer needs the offscreen framebuffer at least as large as the frame.
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        if self.fast_render:
            model.vis.quality.offsamples = 0  # no multisampling; read when the GL context is made
        return model, mujoco.MjData(model)

    # -- simulator state ------------------------------------------------------------------------
    def get_sim_state(self) -> np.ndarray:
        """``concatenate([qpos, qvel])`` (a copy)."""
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float64)

    def set_sim_state(self, state: np.ndarray) -> None:
        """Put the simulator into ``state`` = ``concatenate([qpos, qvel])`` and recompute positions."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (NQ + NV,):
            raise ValueError(f"Humanoid state must have shape ({NQ + NV},) = qpos (24) + qvel (23), got {state.shape}")
        self.set_state(state[:NQ], state[NQ:])

    def sample_sim_state(self, rng: np.random.Generator) -> np.ndarray:
        """A random posture: uniform joint angles within their limits, uniform root orientation,
        standing on the floor or up to 0.3 m above it, at rest."""
        qpos = self.init_qpos.copy()
        qpos[3:7] = _uniform_quaternion(rng)
        low, high = self.model.jnt_range[1:].T
        qpos[7:] = rng.uniform(low, high)
        qpos = place_on_floor(qpos) + np.array([0, 0, rng.uniform(0.0, 0.3)] + [0.0] * (NQ - 3))
        return np.concatenate([qpos, np.zeros(NV)])

    # -- gymnasium API --------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Humanoid-v5's reset; ``info["sim_state"]`` holds the simulator state."""
        obs, info = super().reset(seed=seed, options=options)
        return obs, {**info, "sim_state": self.get_sim_state()}

    def step(self, action):
        """Humanoid-v5's step and reward, never terminating; ``info["sim_state"]`` holds the state."""
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, {**info, "sim_state": self.get_sim_state()}

    def render(self) -> np.ndarray | None:
        """An (height, width, 3) uint8 frame from the configured camera."""
        if self.render_mode is None:
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, height=self.height, width=self.width)
            if self.fast_render:
                self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
                self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._point_camera()
        self._renderer.update_scene(self.data, camera=self._camera)
        return self._renderer.render()

    def _point_camera(self) -> None:
        config, cam = self.camera_config, self._camera
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.distance, cam.elevation, cam.azimuth = config.distance, config.elevation, config.azimuth
        lookat = np.array(config.lookat)
        if self._track_body_id >= 0:
            lookat[:2] += self.data.xpos[self._track_body_id, :2]
        cam.lookat[:] = lookat

    def close(self) -> None:
        """Release the OpenGL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        super().close()


def _uniform_quaternion(rng: np.random.Generator) -> np.ndarray:
    """A rotation uniform over SO(3), as a MuJoCo (w, x, y, z) quaternion."""
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)
