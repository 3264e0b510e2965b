"""CartPole for pixels: env checker, fixed episode length, wrapped angle, clipped cart, native frames, task."""

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.cartpole import PixelCartPoleEnv, render_cartpole


def test_fixed_episode_length_without_termination() -> None:
    env = gym.make(envs.CARTPOLE_ID, max_episode_steps=300)
    env.reset(seed=0)
    for step in range(1, 301):
        # Always pushing right topples the pole and drives the cart into the end stop: stock CartPole
        # would terminate within ~10 steps.
        _, _, terminated, truncated, info = env.step(1)
        assert not terminated
        assert truncated == (step == 300)
    state = info["sim_state"]
    assert state[0] == pytest.approx(2.4)  # clipped at the end stop
    assert -np.pi <= state[2] < np.pi


def test_angle_wraps_all_the_way_round() -> None:
    env = PixelCartPoleEnv()
    env.reset(seed=0)
    env.set_sim_state(np.array([0.0, 0.0, np.pi - 0.01, 3.0]))  # swinging through the bottom
    env.step(0)
    assert env.get_sim_state()[2] < 0  # crossed +pi and came out near -pi
    env.set_sim_state(np.array([5.0, 2.0, 7.0, 0.0]))
    x, x_dot, theta, _ = env.get_sim_state()
    assert (x, x_dot) == (2.4, 0.0) and theta == pytest.approx(7.0 - 2 * np.pi)


@pytest.mark.parametrize(("width", "height"), [(224, 224), (96, 48), (64, 128)])
def test_frames_have_requested_shape_and_show_the_pole(width: int, height: int) -> None:
    env = gym.make(envs.CARTPOLE_ID, render_mode="rgb_array", width=width, height=height)
    env.reset(seed=0)
    upright = env.render()
    assert upright.shape == (height, width, 3) and upright.dtype == np.uint8
    assert upright.std() > 0
    env.unwrapped.set_sim_state(np.array([0.0, 0.0, np.pi, 0.0]))
    hanging = env.render()
    # The pole is drawn in world units (not fixed pixel sizes), so it shows even in a tiny frame.
    assert np.any(hanging != upright, axis=-1).sum() >= 10


def test_bad_render_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="width"):
        PixelCartPoleEnv(width=0)
    with pytest.raises(ValueError, match="height"):
        render_cartpole(np.zeros(4), 10, -3)


def test_sampled_states_cover_the_whole_circle() -> None:
    env = PixelCartPoleEnv()
    rng = np.random.default_rng(0)
    states = np.stack([env.sample_sim_state(rng) for _ in range(500)])
    assert states[:, 2].min() < -3.0 and states[:, 2].max() > 3.0
    assert np.all(np.abs(states[:, 0]) <= 2.4)
    assert (np.abs(states[:, 2]) > 2.5).mean() > 0.1  # hanging poles are well represented


def test_task_ground_truth_on_real_states() -> None:
    task = envs.get_task("cartpole-upright")
    env = task.make_env()
    _, info = env.reset(seed=0)
    start = info["sim_state"]
    assert task.success(start) and task.reward(start) > 0.99
    for _ in range(60):  # pushing one way for 60 steps drops the pole
        _, reward, _, _, info = env.step(1)
    fallen = info["sim_state"]
    assert not task.success(fallen)
    assert reward == pytest.approx(task.reward(fallen)) and reward < 0.9
    rewards = task.rewards(np.stack([start, fallen]))
    assert rewards.shape == (2,) and rewards[0] > rewards[1]
    assert task.success(task.reference_state())


def test_captions_tell_upright_from_hanging() -> None:
    caption = envs.get_task("cartpole-upright").caption
    upright = caption(np.array([0.0, 0.0, 0.02, 0.0]))
    hanging = caption(np.array([0.0, 0.0, np.pi - 0.05, 0.0]))
    left = caption(np.array([0.0, 0.0, -1.0, 0.0]))
    right = caption(np.array([0.0, 0.0, 1.0, 0.0]))
    assert "upright" in upright and "hanging" in hanging
    assert "left" in left and "right" in right
    assert len({upright, hanging, left, right}) == 4
    assert caption(np.array([2.4, 0.0, 0.0, 0.0])) != caption(np.array([-2.4, 0.0, 0.0, 0.0]))
