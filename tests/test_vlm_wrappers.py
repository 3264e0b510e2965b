"""Frame-reward wrappers on real rendered environments (MuJoCo InvertedPendulum, offscreen) and SB3 VecEnvs."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

from vlm_rewards import CLIPReward, load_open_clip, tiny_vit_clip_config
from vlm_rewards.wrappers import (
    MODEL_REWARD_KEY,
    ORIGINAL_REWARD_KEY,
    CLIPRewardVecEnvWrapper,
    CLIPRewardVectorWrapper,
    CLIPRewardWrapper,
    make_clip_reward_vec_env,
)

ENV_ID = "InvertedPendulum-v5"
ENV_KWARGS = {"width": 64, "height": 64}



class CountingReward(CLIPReward):
    """A real CLIPReward that records the size of every batch it scores."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_sizes: list[int] = []

    def score(self, batch):
        self.batch_sizes.append(len(batch))
        return super().score(batch)


@pytest.fixture(scope="module")
def reward_model():
    torch.manual_seed(0)
    clip = load_open_clip(tiny_vit_clip_config())
    return CountingReward(clip.model, clip.tokenizer, ["a pole standing upright"], ["a pole"], alpha=0.5)


def make_env():
    return gym.make(ENV_ID, render_mode="rgb_array", **ENV_KWARGS)


def test_single_env_wrapper_scores_the_frame_after_each_step(reward_model):
    env = CLIPRewardWrapper(make_env(), reward_model)
    added = CLIPRewardWrapper(make_env(), reward_model, mode="add", weight=0.5)
    reference = make_env()
    for e in (env, added, reference):
        e.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(4):
        action = rng.uniform(-1, 1, size=1).astype(np.float32)
        _, reward, terminated, _, info = env.step(action)
        _, added_reward, _, _, added_info = added.step(action)
        _, ref_reward, _, _, _ = reference.step(action)
        expected = float(reward_model(reference.render()[None])[0])
        assert reward == pytest.approx(expected, abs=1e-6)
        assert info[MODEL_REWARD_KEY] == pytest.approx(expected, abs=1e-6)
        assert info[ORIGINAL_REWARD_KEY] == ref_reward
        assert added_reward == pytest.approx(ref_reward + 0.5 * expected, abs=1e-6)
        assert added_info[ORIGINAL_REWARD_KEY] == ref_reward
        if terminated:
            break


def test_wrappers_refuse_envs_that_do_not_render_rgb_arrays(reward_model):
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        CLIPRewardWrapper(gym.make(ENV_ID), reward_model)
    with pytest.raises(ValueError, match="mode must be one of"):
        CLIPRewardWrapper(make_env(), reward_model, mode="multiply")
    venv = gym.vector.SyncVectorEnv([make_env], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    with pytest.raises(ValueError, match="same-step autoreset"):
        CLIPRewardVectorWrapper(venv, reward_model)


def test_vector_wrapper_scores_all_sub_envs_in_one_batch(reward_model):
    n = 3
    venv = CLIPRewardVectorWrapper(gym.vector.SyncVectorEnv([make_env] * n), reward_model)
    venv.reset(seed=0)
    rng = np.random.default_rng(1)
    reset_next = np.zeros(n, dtype=bool)
    saw_autoreset = False
    for _ in range(60):
        reward_model.batch_sizes.clear()
        _, rewards, terminated, truncated, info = venv.step(rng.uniform(-3, 3, size=(n, 1)).astype(np.float32))
        stepped = ~reset_next
        assert reward_model.batch_sizes == [int(stepped.sum())]  # one batched call for the stepped sub-envs
        frames = np.stack(venv.render())
        expected = reward_model(frames).numpy()
        np.testing.assert_allclose(rewards[stepped], expected[stepped], atol=1e-6)
        np.testing.assert_array_equal(info[f"_{MODEL_REWARD_KEY}"], stepped)
        # InvertedPendulum-v5's own reward: 1 per step while the pole is up, 0 on the step it falls
        np.testing.assert_array_equal(info[ORIGINAL_REWARD_KEY][stepped], (~terminated[stepped]).astype(float))
        if (~stepped).any():  # sub-envs reset by this step keep the env's reward (0) and are not scored
            saw_autoreset = True
            np.testing.assert_array_equal(rewards[~stepped], 0.0)
        reset_next = terminated | truncated
    assert saw_autoreset, "no episode ended; the autoreset path was not exercised"


def test_vector_wrapper_with_autoreset_disabled_scores_every_sub_env(reward_model):
    n = 2
    base = gym.vector.SyncVectorEnv([make_env] * n, autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    venv = CLIPRewardVectorWrapper(base, reward_model)
    venv.reset(seed=0)
    ended = False
    for _ in range(60):
        reward_model.batch_sizes.clear()
        _, rewards, terminated, truncated, info = venv.step(np.full((n, 1), 3.0, dtype=np.float32))
        assert reward_model.batch_sizes == [n]
        assert info[f"_{MODEL_REWARD_KEY}"].all()
        np.testing.assert_allclose(rewards, info[MODEL_REWARD_KEY], atol=1e-6)  # mode="replace", weight 1
        done = terminated | truncated
        if done.any():
            ended = True
            venv.reset(options={"reset_mask": done})  # the user resets finished sub-envs themselves
    assert ended


def test_sb3_wrapper_one_batch_per_step_and_exact_terminal_frames(reward_model):
    n, seed = 2, 5
    venv = make_clip_reward_vec_env(ENV_ID, reward_model, n_envs=n, seed=seed, env_kwargs=ENV_KWARGS, mode="add")
    references = [make_env() for _ in range(n)]
    venv.reset()
    for i, ref in enumerate(references):
        ref.reset(seed=seed + i)
    rng = np.random.default_rng(2)
    episodes_done = 0
    for _ in range(60):
        actions = rng.uniform(-3, 3, size=(n, 1)).astype(np.float32)
        reward_model.batch_sizes.clear()
        _, rewards, dones, infos = venv.step(actions)
        assert reward_model.batch_sizes == [n]
        # Lockstep reference envs, rendered right after the same action (before any reset).
        ref_frames, ref_rewards = [], []
        for i, ref in enumerate(references):
            _, r, term, trunc, _ = ref.step(actions[i])
            ref_frames.append(ref.render())
            ref_rewards.append(r)
            if term or trunc:
                ref.reset()
        expected_model = reward_model(np.stack(ref_frames)).numpy()
        for i, info in enumerate(infos):
            assert "frame" not in info  # consumed, not left in the info dicts
            assert info[ORIGINAL_REWARD_KEY] == ref_rewards[i]
            assert info[MODEL_REWARD_KEY] == pytest.approx(expected_model[i], abs=1e-6)
            assert rewards[i] == pytest.approx(ref_rewards[i] + expected_model[i], abs=1e-5)
            if dones[i]:
                episodes_done += 1
                assert info["episode"]["r"] > 0  # Monitor inside: the env's own return is reported
    assert episodes_done > 0, "no episode ended; terminal frames were not exercised"
    venv.close()


def test_sb3_wrapper_on_subproc_vec_env_with_integer_env_rewards(reward_model):
    """SubprocVecEnv passes InvertedPendulum's int rewards through; model rewards must not be truncated."""
    # SB3's default start method (forkserver): plain fork from this process, which holds EGL contexts
    # from rendering, can deadlock the children.
    venv = make_clip_reward_vec_env(
        ENV_ID, reward_model, n_envs=2, seed=0, env_kwargs=ENV_KWARGS, vec_env_cls=SubprocVecEnv
    )
    try:
        venv.reset()
        _, rewards, _, infos = venv.step(np.zeros((2, 1), dtype=np.float32))
        assert rewards.dtype == np.float32
        np.testing.assert_allclose(rewards, [info[MODEL_REWARD_KEY] for info in infos], atol=1e-6)
        assert np.all(rewards != 0)
    finally:
        venv.close()


def test_sb3_wrapper_on_plain_dummy_vec_env_warns_at_episode_end(reward_model):
    venv = make_vec_env(ENV_ID, n_envs=2, seed=0, env_kwargs={"render_mode": "rgb_array", **ENV_KWARGS})
    wrapped = CLIPRewardVecEnvWrapper(venv, reward_model)
    wrapped.reset()
    for _ in range(60):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, rewards, dones, _ = wrapped.step(np.full((2, 1), 3.0, dtype=np.float32))
        if dones.any():
            break
        assert not caught  # no warning while no episode ends
    assert dones.any()
    assert any("RenderFrameInInfo" in str(w.message) for w in caught)
    np.testing.assert_allclose(rewards, reward_model(np.stack(venv.get_images())).numpy(), atol=1e-6)


def test_ppo_trains_on_the_wrapped_vec_env(reward_model):
    venv = make_clip_reward_vec_env(ENV_ID, reward_model, n_envs=2, seed=0, env_kwargs=ENV_KWARGS)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=32)
    assert model.num_timesteps == 32
    venv.close()
