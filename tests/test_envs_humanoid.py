"""Humanoid for pixels: env checker, no unhealthy termination, frames, fast rendering, camera config."""

import gymnasium as gym
import mujoco
import numpy as np
import pytest

import envs
from envs.humanoid import PixelHumanoidEnv


def test_falling_does_not_end_the_episode() -> None:
    env = gym.make(envs.HUMANOID_ID, max_episode_steps=60)
    env.reset(seed=0)
    limp = np.zeros(env.action_space.shape, dtype=np.float32)  # no torques: it collapses deterministically
    for step in range(1, 61):
        _, _, terminated, truncated, info = env.step(limp)
        assert not terminated
        assert truncated == (step == 60)
    # Stock Humanoid-v5 terminates once the torso is below 1 m; this one fell and kept going.
    assert info["sim_state"][2] < 1.0
    env.close()


@pytest.mark.parametrize("fast_render", [False, True])
def test_frames_have_requested_shape_and_content(fast_render: bool) -> None:
    env = gym.make(envs.HUMANOID_ID, render_mode="rgb_array", width=80, height=60, fast_render=fast_render)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (60, 80, 3) and frame.dtype == np.uint8
    assert frame.std() > 10
    env.close()


def test_fast_render_turns_off_shadows_reflections_and_multisampling() -> None:
    env = PixelHumanoidEnv(render_mode="rgb_array", width=64, height=64, fast_render=True)
    env.reset(seed=0)
    env.render()
    flags = env._renderer.scene.flags
    assert not flags[mujoco.mjtRndFlag.mjRND_SHADOW] and not flags[mujoco.mjtRndFlag.mjRND_REFLECTION]
    assert env.model.vis.quality.offsamples == 0
    default = PixelHumanoidEnv(render_mode="rgb_array", width=64, height=64)
    assert default.model.vis.quality.offsamples > 0
    env.close()
    default.close()


def test_camera_tracks_the_torso() -> None:
    tracked = PixelHumanoidEnv(render_mode="rgb_array", width=64, height=64, fast_render=True)
    fixed = PixelHumanoidEnv(
        render_mode="rgb_array", width=64, height=64, fast_render=True, camera={"track_body": None}
    )
    frames = {}
    for name, env in (("tracked", tracked), ("fixed", fixed)):
        env.reset(seed=0)
        state = env.get_sim_state()
        before = env.render().astype(float)
        state[0] += 2.0  # one checker period along x: a tracking camera sees the same picture
        env.set_sim_state(state)
        frames[name] = np.abs(env.render().astype(float) - before).mean()
        env.close()
    assert frames["tracked"] < 2.0 < frames["fixed"]


def test_bad_camera_and_render_size_are_rejected() -> None:
    with pytest.raises(ValueError, match="distanse"):
        PixelHumanoidEnv(camera={"distanse": 3.0})
    with pytest.raises(ValueError, match="lookat"):
        PixelHumanoidEnv(camera={"lookat": (0, 1)})
    with pytest.raises(ValueError, match="track_body"):
        PixelHumanoidEnv(camera={"track_body": "tail"})
    with pytest.raises(ValueError, match="width"):
        PixelHumanoidEnv(width=-5)


def test_sampled_states_are_valid_postures() -> None:
    env = PixelHumanoidEnv()
    rng = np.random.default_rng(0)
    low, high = env.model.jnt_range[1:].T
    for _ in range(5):
        state = env.sample_sim_state(rng)
        assert state.shape == (47,)
        assert np.all(state[7:24] >= low) and np.all(state[7:24] <= high)
        assert np.linalg.norm(state[3:7]) == pytest.approx(1.0)
        env.set_sim_state(state)
        assert np.allclose(env.get_sim_state(), state)
