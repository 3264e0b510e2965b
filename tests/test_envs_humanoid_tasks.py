"""Humanoid tasks: reference poses vs predicates, ground truth on real states, captions, rendering."""

import numpy as np
import pytest

import envs
from envs.humanoid_tasks import HUMANOID_TASKS, criteria_scores

NAMES = [name for _, name, _ in HUMANOID_TASKS]


def test_the_eight_paper_tasks_are_registered() -> None:
    assert len(NAMES) == 8
    for name in NAMES:
        task = envs.get_task(name)
        assert task.env_id == envs.HUMANOID_ID
        assert task.goal_prompts[0].startswith("a humanoid robot") and task.baseline_prompts == ("a humanoid robot",)


@pytest.mark.parametrize("pose_of", NAMES)
def test_reference_pose_satisfies_only_its_own_predicate(pose_of: str) -> None:
    state = envs.get_task(pose_of).reference_state()
    verdicts = {name: envs.get_task(name).success(state) for name in NAMES}
    assert verdicts == {name: name == pose_of for name in NAMES}
    rewards = {name: envs.get_task(name).reward(state) for name in NAMES}
    assert rewards[pose_of] == 1.0
    assert all(r < 1.0 for name, r in rewards.items() if name != pose_of)


def test_reference_pose_survives_the_simulator_and_renders() -> None:
    task = envs.get_task("humanoid-kneeling")
    env = task.make_env(render_mode="rgb_array", width=64, height=64)
    env.reset(seed=0)
    standing_frame = env.render()
    env.unwrapped.set_sim_state(task.reference_state())
    assert task.success(env.unwrapped.get_sim_state())
    kneeling_frame = env.render()
    assert kneeling_frame.std() > 10
    assert np.abs(kneeling_frame.astype(int) - standing_frame.astype(int)).mean() > 1.0
    env.close()


def test_ground_truth_on_real_rollout_states() -> None:
    task = envs.get_task("humanoid-standing")
    env = task.make_env(max_episode_steps=60)
    _, info = env.reset(seed=0)
    states = [info["sim_state"]]
    rng = np.random.default_rng(0)
    for _ in range(60):
        _, _, _, _, info = env.step(rng.uniform(-0.4, 0.4, size=17).astype(np.float32))
        states.append(info["sim_state"])
    env.close()
    for name in NAMES:
        rewards = envs.get_task(name).rewards(np.stack(states))
        assert rewards.shape == (61,) and np.all((rewards >= 0) & (rewards <= 1))
    # Random torques topple the robot: the standing reward drops and the robot is not standing at the end.
    standing = task.rewards(np.stack(states))
    assert standing[-1] < standing[0]
    assert not task.success(states[-1])
    scores = criteria_scores("standing", states[-1])
    assert scores["head at standing height"] < 1.0


def test_captions_change_with_the_state() -> None:
    caption = envs.get_task("humanoid-kneeling").caption
    reference_captions = {caption(envs.get_task(name).reference_state()) for name in NAMES}
    assert len(reference_captions) == len(NAMES)
    assert caption(envs.get_task("humanoid-kneeling").reference_state()).startswith("a humanoid robot kneeling")
    lying = envs.get_task("humanoid-standing").reference_state()
    lying[3:7] = [np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0]  # pitched 90 degrees: lying on the floor
    lying[2] = 0.2
    assert "lying" in caption(lying)
