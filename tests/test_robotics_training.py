"""The robotics training recipe on CPU: each algorithm for a few hundred steps, resume after a kill, bad input."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _launch import accelerate_launch
from _recipes import RECIPES, load_recipe

from rlhf.artifacts import RunDirectoryMismatch
from rlhf.config import ConfigError
from rlhf.rl import RLConfig, RLConfigError, Trainer
from vlm_rewards import tiny_vit_clip_config
from vlm_rewards.robotics import RewardConfig, TrainPolicyConfig, make_trainers

main = load_recipe("train_policy.py").main

torch.set_num_threads(1)

SHORT_EPISODES = {"max_episode_steps": 32}
TINY_REWARD = RewardConfig(source="vlm", model_config=tiny_vit_clip_config(), render_size=32, alpha=0.5)


def small_cfg(tmp_path: Path, algorithm: str = "ppo", task: str = "cartpole-upright", **rl: object) -> TrainPolicyConfig:
    algo_kwargs = {
        "ppo": {"n_steps": 32, "batch_size": 64, "n_epochs": 2},
        "dqn": {"learning_starts": 64, "buffer_size": 1000, "batch_size": 32, "train_freq": 4, "target_update_interval": 64},
        "sac": {"learning_starts": 64, "buffer_size": 1000, "batch_size": 32, "train_freq": 4, "gradient_steps": 1,
                "policy_kwargs": {"net_arch": [32, 32]}},
    }[algorithm]
    settings = {"algorithm": algorithm, "total_timesteps": 256, "n_envs": 2, "save_freq": 128, "eval_freq": 64,
                "n_eval_episodes": 2, "final_eval_episodes": 2, "algo_kwargs": algo_kwargs, "progress_bar": False, **rl}
    return TrainPolicyConfig(task=task, output_dir=str(tmp_path / "run"), seeds=[0], reward=TINY_REWARD,
                             rl=RLConfig(**settings), env_kwargs=SHORT_EPISODES)


def scalar_tags(run_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in run_dir.glob("tensorboard/*/events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


@pytest.mark.parametrize(
    ("algorithm", "task", "reward"),
    [("ppo", "cartpole-upright", "vlm"), ("dqn", "cartpole-upright", "ground_truth"), ("sac", "mountaincar-peak", "vlm")],
)
def test_each_algorithm_trains_logs_and_evaluates(tmp_path, algorithm, task, reward):
    cfg = small_cfg(tmp_path, algorithm, task)
    cfg.reward = RewardConfig(**{**TINY_REWARD.__dict__, "source": reward})
    summary = main(["--config", str(write_yaml(tmp_path, cfg))])

    run = Path(cfg.output_dir) / "seed_0"
    result = json.loads((run / "final" / "eval.json").read_text())
    assert result["num_timesteps"] == 256 and result["episodes"] == 2 and result["algorithm"] == algorithm
    assert len(result["returns"]) == 2 and 0.0 <= result["success_rate"] <= 1.0
    curve = json.loads((run / "final" / "curve.json").read_text())
    assert [p["step"] for p in curve] == [0, 64, 128, 192, 256]
    assert (run / "final" / "model.zip").is_file()
    assert json.loads((run / "checkpoint" / "state.json").read_text())["num_timesteps"] == 256  # kept to extend
    assert summary["seeds"]["0"]["gt_return_mean"] == result["gt_return_mean"]
    tags = scalar_tags(run)
    # Ground-truth return and success come from SB3's own logging (Monitor inside the reward wrapper).
    assert {"eval/ground_truth_return", "eval/success_rate", "rollout/ep_rew_mean", "rollout/success_rate",
            "train/episode_return_training_reward"} <= tags
    if reward == "vlm":  # the reward-hacking monitor sees the proxy (CLIP) reward next to the true one
        assert {"monitor/proxy_reward", "monitor/true_reward"} <= tags
        monitor = json.loads((run / "final" / "monitor.json").read_text())
        points = monitor["points"]
        # a point per rollout (PPO: 32 steps x 2 envs) or per tenth of the evaluation interval (SAC: 64 // 10)
        spacing = 64 if algorithm == "ppo" else 6
        assert [p["step"] for p in points] == list(range(spacing, 257, spacing))
        assert all(p["proxy"] != p["true"] for p in points) and "windows" in monitor
    else:  # trained on the true reward: nothing to compare
        assert not (run / "final" / "monitor.json").exists()


def write_yaml(tmp_path: Path, cfg: TrainPolicyConfig) -> Path:
    import yaml

    from rlhf.config import config_to_dict

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(cfg)))
    return path


def test_vlm_reward_is_what_the_agent_sees_and_ground_truth_is_logged(tmp_path):
    cfg = small_cfg(tmp_path)
    (trainer,) = make_trainers(cfg)
    env = trainer.make_train_env(0)
    env.reset()
    _, rewards, _, infos = env.step([0, 1])
    gt = [info["original_reward"] for info in infos]
    # The ground-truth reward of CartPole is (1 + cos angle) / 2, near 1 just after reset.
    assert all(0.99 < g <= 1.0 for g in gt)
    assert [float(r) for r in rewards] == pytest.approx([info["model_reward"] for info in infos])
    assert rewards.tolist() != pytest.approx(gt)
    env.close()


def test_resume_after_a_crash_continues_from_the_checkpoint(tmp_path, monkeypatch):
    cfg = small_cfg(tmp_path, "dqn", total_timesteps=512, save_freq=128)
    cfg.reward = RewardConfig(source="ground_truth")
    (trainer,) = make_trainers(cfg)
    saved = []
    original_save = Trainer.save_checkpoint

    def save_then_crash(self, model):
        original_save(self, model)
        saved.append((model.num_timesteps, model.replay_buffer.size()))
        if len(saved) == 2:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    monkeypatch.setattr(Trainer, "save_checkpoint", original_save)
    step_at_kill, buffer_at_kill = saved[-1]
    assert step_at_kill == 256
    state = json.loads((Path(cfg.output_dir) / "seed_0" / "checkpoint" / "state.json").read_text())
    assert state["num_timesteps"] == 256

    (resumed,) = make_trainers(cfg)
    model = resumed._build_or_resume()
    assert model.num_timesteps == 256 and model.replay_buffer.size() == buffer_at_kill
    model.get_env().close()
    result = resumed.train()
    assert result["num_timesteps"] == 512
    steps = [p["step"] for p in resumed.curve]
    assert steps == sorted(set(steps)) and steps[0] == 0 and steps[-1] == 512  # nothing lost, nothing twice


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of a scalar as TensorBoard shows it (purged events dropped)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard" / "run_1"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_a_killed_and_resumed_run_repeats_the_uninterrupted_run_exactly(tmp_path, monkeypatch):
    """RNG and env states go into checkpoints: the same curve, final evaluation and weights as without the kill,
    and TensorBoard holds no step twice."""
    def config(name: str) -> TrainPolicyConfig:
        cfg = small_cfg(tmp_path / name, "ppo", total_timesteps=512, save_freq=128, eval_freq=64)
        cfg.rl.deterministic = False  # stochastic evaluations consume the generators too
        torch.manual_seed(0)  # the tiny CLIP reward has random weights: the same ones in every trainer
        return cfg

    (uninterrupted,) = make_trainers(config("a"))
    expected = uninterrupted.train()

    (first,) = make_trainers(config("b"))
    original_at_boundary = Trainer.at_boundary

    def killed_after_a_checkpoint(self, model):
        original_at_boundary(self, model)
        if model.num_timesteps == 320:  # past the checkpoint at 256: TensorBoard got steps 256-320 already
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(Trainer, "at_boundary", killed_after_a_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        first.train()
    monkeypatch.setattr(Trainer, "at_boundary", original_at_boundary)
    (resumed,) = make_trainers(config("b"))
    result = resumed.train()

    runs = {name: Path(config(name).output_dir) / "seed_0" for name in ("a", "b")}
    curves = {name: json.loads((run / "final" / "curve.json").read_text()) for name, run in runs.items()}
    assert curves["b"] == curves["a"] and len(curves["a"]) == 9
    monitors = {name: json.loads((run / "final" / "monitor.json").read_text()) for name, run in runs.items()}
    assert monitors["b"] == monitors["a"] and len(monitors["a"]["points"]) == 8  # the monitor resumes too
    assert result["returns"] == expected["returns"]
    from stable_baselines3 import PPO

    params = {name: PPO.load(run / "final" / "model.zip").policy.state_dict() for name, run in runs.items()}
    assert all(torch.equal(params["a"][k], params["b"][k]) for k in params["a"])
    for tag in ("eval/ground_truth_return", "rollout/ep_rew_mean"):
        logged = scalars(runs["b"], tag)
        assert [step for step, _ in logged] == sorted({step for step, _ in logged}), tag  # no step twice
        assert logged == scalars(runs["a"], tag), tag


def test_raising_total_timesteps_extends_a_finished_run_from_its_last_checkpoint(tmp_path, caplog):
    cfg = small_cfg(tmp_path, "ppo", total_timesteps=256, save_freq=128, eval_freq=128)
    cfg.reward = RewardConfig(source="ground_truth")
    (trainer,) = make_trainers(cfg)
    trainer.train()
    cfg.rl.total_timesteps = 384
    (longer,) = make_trainers(cfg)  # not refused as another run
    with caplog.at_level(logging.INFO, logger="rlhf.rl"):
        result = longer.train()
    assert "extending the finished run from 256 to 384 steps" in caplog.text
    assert "resumed from checkpoint at step 256" in caplog.text
    assert result["num_timesteps"] == 384
    assert [p["step"] for p in longer.curve] == [0, 128, 256, 384]
    cfg.rl.total_timesteps = 128
    (shorter,) = make_trainers(cfg)
    with pytest.raises(RLConfigError, match="finished at 384 steps, more than 128"):
        shorter.train()


def test_recipe_resumes_after_sigkill(tmp_path, caplog):
    cfg = small_cfg(tmp_path, "ppo", total_timesteps=2048, save_freq=128, eval_freq=128)
    cfg.reward = RewardConfig(source="ground_truth")
    config = write_yaml(tmp_path, cfg)
    cmd = [sys.executable, str(RECIPES / "train_policy.py"), "--config", str(config)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    state_file = Path(cfg.output_dir) / "seed_0" / "checkpoint" / "state.json"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not state_file.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert state_file.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no checkpoint"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = json.loads(state_file.read_text())["num_timesteps"]
    assert 0 < killed_at < 2048, "the run finished before it could be killed; make it longer"

    with caplog.at_level(logging.INFO, logger="rlhf.rl"):
        main(["--config", str(config)])  # the rerun, here in-process
    assert f"resumed from checkpoint at step {killed_at}" in caplog.text
    result = json.loads((Path(cfg.output_dir) / "seed_0" / "final" / "eval.json").read_text())
    assert result["num_timesteps"] == 2048


def test_bad_input_fails_before_training(tmp_path):
    def expect(error, match, **changes):
        cfg = small_cfg(tmp_path)
        rl = {k[3:]: v for k, v in changes.items() if k.startswith("rl_")}
        top = {k: v for k, v in changes.items() if not k.startswith("rl_")}
        with pytest.raises(error, match=match):
            TrainPolicyConfig(**{**cfg.__dict__, "rl": RLConfig(**{**cfg.rl.__dict__, **rl}), **top})
        assert not Path(cfg.output_dir).exists()

    expect(RLConfigError, "config key 'algorithm': unknown 'a2c'", rl_algorithm="a2c")
    expect(ConfigError, "config key 'task': unknown task 'cartpole-sideways'", task="cartpole-sideways")
    expect(RLConfigError, "config key 'algo_kwargs.n_step': not an argument of PPO", rl_algo_kwargs={"n_step": 32})
    expect(RLConfigError, r"'total_timesteps': 250 is not a multiple of n_envs \* n_steps = 64", rl_total_timesteps=250)
    expect(RLConfigError, r"'save_freq': 100 is not a multiple", rl_save_freq=100)
    expect(ConfigError, "config key 'seeds': duplicates", seeds=[1, 1])
    # From a file, the error names the file, the line and the key; nothing is created.
    path = write_yaml(tmp_path, small_cfg(tmp_path))
    text = path.read_text().replace("total_timesteps: 256", "total_timesteps: 250")
    path.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "total_timesteps" in row)
    with pytest.raises(RLConfigError, match=rf"config.yaml line {line}: config key 'rl.total_timesteps': 250 is not"):
        main(["--config", str(path)])
    assert not (tmp_path / "run").exists()

    bad_model = small_cfg(tmp_path)
    bad_model.reward = RewardConfig(model="ViT-Nonexistent-99")
    with pytest.raises(ValueError, match="unknown open_clip model 'ViT-Nonexistent-99'"):
        make_trainers(bad_model)
    sac_on_cartpole = small_cfg(tmp_path, "sac")
    sac_on_cartpole.reward = RewardConfig(source="ground_truth")
    (trainer,) = make_trainers(sac_on_cartpole)
    with pytest.raises(RLConfigError, match="'sac' needs a continuous"):
        trainer.train()


def test_run_directory_of_another_run_is_refused(tmp_path):
    cfg = small_cfg(tmp_path)
    make_trainers(cfg)
    other = small_cfg(tmp_path, "dqn")
    with pytest.raises(RunDirectoryMismatch, match=r"config differs in:\n  rl.algo_kwargs.batch_size: 64 → 32"):
        make_trainers(other)


def test_reward_scoring_sharded_over_two_processes(tmp_path):
    """accelerate launch, 2 CPU processes: rank 0 trains, every reward batch is scored half by each process."""
    cfg = small_cfg(tmp_path, total_timesteps=64, save_freq=64, eval_freq=64)
    cfg.shard_reward = True
    config = write_yaml(tmp_path, cfg)
    out = accelerate_launch([RECIPES / "train_policy.py", "--config", config],
                            launcher_args=("--config_file", str(RECIPES / "accelerate" / "cpu_2proc.yaml")))
    assert out.returncode == 0, out.stderr[-3000:]
    # 64 env steps over 2 envs = 32 batches, each sharded between the learner and process 1.
    assert "process 1 scored its shard of 32 reward batches" in out.stderr
    assert out.stdout.count("ground-truth return") == 1  # one learner, not one per process
    result = json.loads((Path(cfg.output_dir) / "seed_0" / "final" / "eval.json").read_text())
    assert result["num_timesteps"] == 64
