"""Continuous MountainCar for pixels: env checker, fixed length, absorbing goal, frames, task."""

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.mountain_car import PixelMountainCarEnv


def test_goal_is_absorbing_and_episode_length_fixed() -> None:
    env = gym.make(envs.MOUNTAIN_CAR_ID, max_episode_steps=40)
    env.reset(seed=0)
    env.unwrapped.set_sim_state(np.array([0.40, 0.06]))  # about to crest the hill
    positions = []
    for step in range(1, 41):
        _, reward, terminated, truncated, info = env.step(np.array([-1.0], dtype=np.float32))
        assert not terminated
        assert truncated == (step == 40)
        positions.append(info["sim_state"][0])
    # Reached the flag on the first step and stayed parked there although the car was pushed back.
    assert positions[0] >= 0.45 and len(set(positions)) == 1
    assert reward == pytest.approx(1.0 - 0.1)


def test_car_left_in_the_valley_is_not_at_the_goal() -> None:
    task = envs.get_task("mountaincar-peak")
    env = task.make_env(max_episode_steps=50)
    _, info = env.reset(seed=0)
    assert not task.success(info["sim_state"]) and task.reward(info["sim_state"]) == 0.0
    for _ in range(50):
        _, reward, _, _, info = env.step(np.array([0.0], dtype=np.float32))
    assert not task.success(info["sim_state"]) and reward == 0.0
    assert task.success(task.reference_state()) and task.reward(task.reference_state()) == 1.0


@pytest.mark.parametrize(("width", "height"), [(224, 224), (96, 48)])
def test_frames_have_requested_shape_and_show_the_car(width: int, height: int) -> None:
    env = gym.make(envs.MOUNTAIN_CAR_ID, render_mode="rgb_array", width=width, height=height)
    env.reset(seed=0)
    valley = env.render()
    assert valley.shape == (height, width, 3) and valley.dtype == np.uint8 and valley.std() > 0
    env.unwrapped.set_sim_state(np.array([0.5, 0.0]))
    peak = env.render()
    assert np.any(peak != valley, axis=-1).sum() >= 10


def test_bad_render_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="height"):
        PixelMountainCarEnv(height=0)


def test_sampled_states_span_the_track() -> None:
    env = PixelMountainCarEnv()
    states = np.stack([env.sample_sim_state(np.random.default_rng(s)) for s in range(200)])
    assert states[:, 0].min() < -1.0 and states[:, 0].max() > 0.45


def test_captions_change_with_the_state() -> None:
    caption = envs.get_task("mountaincar-peak").caption
    peak = caption(np.array([0.5, 0.0]))
    valley = caption(np.array([-0.52, 0.0]))
    left_hill = caption(np.array([-1.1, 0.03]))
    assert "peak" in peak and "valley" in valley and "left" in left_hill
    assert caption(np.array([-0.5, 0.03])) != caption(np.array([-0.5, -0.03]))
