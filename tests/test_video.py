"""Policy videos: frames and size of the MP4/GIF, the strip's rewards against a direct computation, TensorBoard,
the reward-hacking hook, and bad input failing before any rollout. Tiny PPO runs on CartPole."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from _recipes import load_recipe
from stable_baselines3 import DQN, PPO

import envs
from rlhf.config import ConfigError
from rlhf.rl import RLConfig
from vlm_rewards import tiny_vit_clip_config
from vlm_rewards.clip_models import load_open_clip, save_open_clip
from vlm_rewards.robotics import (
    PolicyTraining,
    RewardConfig,
    TrainPolicyConfig,
    build_reward_model,
    ground_truth_env_fn,
    render_states,
)
from vlm_rewards.video import (
    MODEL_COLOR,
    SUCCESS_COLOR,
    TRUE_COLOR,
    PolicyVideoConfig,
    PolicyVideoError,
    RewardStrip,
    Rollout,
    composed_frames,
    load_training_config,
    record_flagged_window,
)

main = load_recipe("eval/rollout_video.py").main

EPISODE_STEPS = 32
FRAME_SHAPE = (352, 256, 3)  # 256x256 frame + a 96-pixel strip: a multiple of 16 high


def train(tmp: Path, source: str, clip_dir: Path, video: bool) -> TrainPolicyConfig:
    """A tiny PPO run on CartPole (256 steps, 32-step episodes), as tests/test_robotics_training.py trains."""
    rl = RLConfig(total_timesteps=256, n_envs=2, save_freq=128, eval_freq=128, n_eval_episodes=1,
                  final_eval_episodes=1, algo_kwargs={"n_steps": 32, "batch_size": 64, "n_epochs": 2},
                  progress_bar=False)
    cfg = TrainPolicyConfig(task="cartpole-upright", output_dir=str(tmp / source), seeds=[0], rl=rl,
                            reward=RewardConfig(source=source, model=str(clip_dir), render_size=32, alpha=0.5),
                            env_kwargs={"max_episode_steps": EPISODE_STEPS}, video=video)
    PolicyTraining(cfg).run()
    return cfg


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Seed run directories of a CLIP-reward run (with its final video) and a ground-truth run (video off).

    The CLIP is a tiny random-weight model saved as a checkpoint directory, so the training, the video and the
    test's own reward model all load the same weights.
    """
    tmp = tmp_path_factory.mktemp("video_runs")
    torch.manual_seed(0)
    clip_dir = save_open_clip(load_open_clip(tiny_vit_clip_config()), tmp / "tiny_clip")
    vlm = train(tmp, "vlm", clip_dir, video=True)
    gt = train(tmp, "ground_truth", clip_dir, video=False)
    return {"vlm": Path(vlm.output_dir) / "seed_0", "ground_truth": Path(gt.output_dir) / "seed_0"}


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def read_mp4(path: Path) -> tuple[np.ndarray, float]:
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        return np.stack(list(reader.iter_data())), reader.get_meta_data()["fps"]
    finally:
        reader.close()


def replay_states(run_dir: Path, episodes: int, seed: int) -> np.ndarray:
    """The simulator states of the episodes a video films, replayed here with the policy and a plain env."""
    cfg = load_training_config(run_dir)
    policy = PPO.load(run_dir / "final" / "model.zip", device="cpu")
    env = ground_truth_env_fn(envs.get_task(cfg.task), cfg.env_kwargs)()
    states = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed if episode == 0 else None)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy.predict(obs, deterministic=True)[0])
            states.append(info["sim_state"])
            done = terminated or truncated
    env.close()
    return np.stack(states)


def assert_rows_match_direct_computation(rows: list[dict], run_dir: Path, episodes: int, seed: int) -> None:
    """Each CSV row holds the task's reward and success and the run's reward model's score of its state."""
    cfg = load_training_config(run_dir)
    task = envs.get_task(cfg.task)
    states = replay_states(run_dir, episodes, seed)
    assert len(rows) == len(states) == episodes * EPISODE_STEPS
    assert [(int(r["episode"]), int(r["step"])) for r in rows] == [
        (e, t) for e in range(episodes) for t in range(1, EPISODE_STEPS + 1)]
    assert [float(r["ground_truth_reward"]) for r in rows] == pytest.approx(task.rewards(states).tolist(), abs=1e-12)
    assert [bool(int(r["success"])) for r in rows] == [task.success(s) for s in states]
    if cfg.reward.source == "ground_truth":
        assert {r["model_reward"] for r in rows} == {""}
        return
    frames = render_states(task, states, cfg.reward.render_size)  # rendered at the training's reward size
    expected = build_reward_model(cfg.reward, task)(frames).numpy()
    got = np.array([float(r["model_reward"]) for r in rows])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.ptp(got) > 0  # the reward varies over the episode, so equal values are not a coincidence


def test_training_films_a_final_evaluation_episode_and_logs_it_to_tensorboard(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    video_dir = runs["vlm"] / "video"
    frames, fps = read_mp4(video_dir / "final.mp4")
    assert frames.shape == (EPISODE_STEPS, *FRAME_SHAPE) and fps == 50  # CartPole's render_fps
    gif = iio.imread(video_dir / "final.gif")
    assert gif.shape[:3] == (EPISODE_STEPS // 2, 224, 160)  # every 2nd step at 160 wide (+ its strip)
    assert_rows_match_direct_computation(read_csv(video_dir / "final.csv"), runs["vlm"], 1, 30_000)
    assert not (runs["ground_truth"] / "video").exists()  # video: false

    (log_dir,) = runs["vlm"].glob("tensorboard/*/")  # the video sits in SB3's log directory, beside the curves
    acc = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    acc.Reload()
    (image,) = acc.Images("eval/video")
    assert image.step == 256 and (image.width, image.height) == (160, 224)
    assert image.encoded_image_string == (video_dir / "final.gif").read_bytes()
    assert "eval/ground_truth_return" in acc.Tags()["scalars"]


def test_recipe_films_episodes_whose_strip_values_are_the_models_and_the_tasks(runs, tmp_path, capsys):
    video = main(["--run_dir", str(runs["vlm"]), "--episodes", "2", "--seed", "3", "--output_dir", str(tmp_path)])
    assert video.mp4 == tmp_path / "final_seed3.mp4" and video.policy_step == 256
    frames, _ = read_mp4(video.mp4)
    assert frames.shape == (2 * EPISODE_STEPS, *FRAME_SHAPE)
    assert iio.imread(video.gif).shape[0] == video.gif_frames == EPISODE_STEPS
    rows = read_csv(video.csv)
    assert_rows_match_direct_computation(rows, runs["vlm"], 2, 3)
    returns = [sum(float(r["model_reward"]) for r in rows if r["episode"] == e) for e in ("0", "1")]
    assert [e["model_return"] for e in video.episodes] == pytest.approx(returns)
    assert "episode 2: 32 steps" in capsys.readouterr().out

    # The success badge is drawn exactly on the steps the CSV marks successful.
    assert [has_success_badge(frame[256:]) for frame in frames] == [r["success"] == "1" for r in rows]


def test_sampled_actions_are_reproducible_for_a_seed(runs, tmp_path):
    def film(name: str, deterministic: str) -> list[dict]:
        args = ["--run_dir", str(runs["vlm"]), "--seed", "1", "--deterministic", deterministic, "--name", name]
        return read_csv(main([*args, "--output_dir", str(tmp_path)]).csv)

    sampled = film("a", "false")
    torch.rand(100)  # the caller's generator moves on; the video's actions must not
    assert film("b", "false") == sampled
    assert film("c", "true") != sampled  # the actions were sampled, not the greedy ones


def test_ground_truth_run_has_no_model_reward(runs, tmp_path):
    video = main(["--run_dir", str(runs["ground_truth"]), "--output_dir", str(tmp_path), "--name", "gt"])
    assert video.episodes[0]["model_return"] is None
    assert_rows_match_direct_computation(read_csv(tmp_path / "gt.csv"), runs["ground_truth"], 1, 0)
    frames, _ = read_mp4(video.mp4)
    strip = frames[-1, 256:].astype(int)
    assert (np.abs(strip - MODEL_COLOR).sum(-1) < 30).sum() == 0  # no model curve nor value
    assert (np.abs(strip - TRUE_COLOR).sum(-1) < 30).sum() > 100


def synthetic_rollout(steps: int, model: np.ndarray | None, truth: np.ndarray) -> Rollout:
    return Rollout(frames=np.zeros((steps, 64, 64, 3), np.uint8), episode=np.zeros(steps, int),
                   step=np.arange(1, steps + 1), ground_truth_reward=truth, model_reward=model,
                   success=np.arange(steps) >= 30, states=np.zeros((steps, 4)), fps=50.0)


def has_success_badge(strip: np.ndarray) -> bool:
    badge = strip[:12, -40:].reshape(-1, 3).astype(int)
    return bool((np.abs(badge - SUCCESS_COLOR).sum(-1) < 60).mean() > 0.3)


def curve_rows(strip: np.ndarray, color: tuple[int, int, int], column: int) -> np.ndarray:
    return np.flatnonzero(np.abs(strip[:, column].astype(int) - color).sum(-1) < 40)


def test_strip_plots_each_reward_up_to_the_current_step_on_its_own_scale():
    steps = 50
    truth = np.linspace(0.0, 1.0, steps)  # rises
    model = np.linspace(0.30, 0.29, steps)  # falls, on a far smaller scale: the picture of reward hacking, reversed
    strip_maker = RewardStrip(synthetic_rollout(steps, model, truth), width=256, frame_height=256)
    assert (256 + strip_maker.height) % 16 == 0
    middle = strip_maker.draw(24)
    mid_x = strip_maker.plot_origin[0] + round(strip_maker.x[24])
    end_x = strip_maker.plot_origin[0] + round(strip_maker.x[-1])
    assert len(curve_rows(middle, TRUE_COLOR, end_x)) == 0  # nothing drawn beyond the current step
    assert not has_success_badge(middle)
    last = strip_maker.draw(steps - 1)
    assert has_success_badge(last)
    top, bottom = strip_maker.plot_origin[1], strip_maker.plot_origin[1] + strip_maker.plot_size[1]
    for color, low_end_is_top in ((TRUE_COLOR, False), (MODEL_COLOR, True)):
        at_end = curve_rows(last, color, end_x - 1)
        assert len(at_end), color
        near_top = at_end.mean() < top + 0.25 * (bottom - top)
        assert near_top != low_end_is_top  # truth ends at the top of its scale, the model at the bottom of its own
        at_middle = curve_rows(last, color, mid_x)
        assert top + 0.3 * (bottom - top) < at_middle.mean() < top + 0.7 * (bottom - top)
    frames = list(composed_frames(synthetic_rollout(steps, model, truth), 128, range(0, steps, 5)))
    assert len(frames) == 10 and frames[0].shape[1] == 128 and frames[0].shape[0] % 16 == 0


def test_flagged_window_hook_films_the_policy_and_records_the_window(runs, tmp_path):
    cfg = load_training_config(runs["vlm"])
    policy = PPO.load(runs["vlm"] / "final" / "model.zip", device="cpu")  # as the monitor's callback holds it
    torch.rand(1), np.random.rand(), random.random()  # move on from the states PPO.load just seeded
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    video = record_flagged_window(policy, cfg, (128, 192), tmp_path / "flagged", details={"proxy_slope": 0.1},
                                  seed=5)
    out = tmp_path / "flagged" / "window_128-192"
    assert video.mp4 == out / "window.mp4" and read_mp4(video.mp4)[0].shape[0] == EPISODE_STEPS
    record = json.loads((out / "window.json").read_text())
    assert record["window"] == [128, 192] and record["policy_step"] == 256
    assert record["details"] == {"proxy_slope": 0.1} and record["episodes"] == video.episodes
    by_path = record_flagged_window(runs["vlm"] / "final" / "model.zip", cfg, (128, 192), tmp_path / "again", seed=5)
    assert read_csv(by_path.csv) == read_csv(video.csv)
    # The training's random streams are left alone (loading a policy file reseeds all three inside SB3).
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]
    with pytest.raises(ValueError, match=r"0 <= first <= last, got \(192, 128\)"):
        record_flagged_window(policy, cfg, (192, 128), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_flagged_stretch_of_a_finished_run_is_filmed_on_rerun(runs, tmp_path):
    """PolicyTraining films every window in final/monitor.json (stage ``flagged``). No CartPole reward games
    within a test's budget, so the window is written into the real run's monitor.json here; the monitor's own
    flagging is tested on a real gamed PPO run in tests/test_monitor.py."""
    run = tmp_path / "vlm" / "seed_0"
    shutil.copytree(runs["vlm"].parent, tmp_path / "vlm")
    cfg = load_training_config(run)
    assert cfg.rl.total_timesteps == 256  # where the run finished, not the default (it is not in run_config.json)
    monitor_file = run / "final" / "monitor.json"
    monitor = json.loads(monitor_file.read_text())
    window = {"start_step": 64, "end_step": 192, "n_points": 5, "proxy_slope": 1e-3, "true_slope": -1e-3,
              "proxy_p": 0.001, "true_p": 0.002}
    monitor_file.write_text(json.dumps({**monitor, "windows": [window]}))
    PolicyTraining(cfg).run()  # training and the final video are done: only the flagged stretch is new
    out = run / "flagged" / "window_64-192"
    assert read_mp4(out / "window.mp4")[0].shape[0] == EPISODE_STEPS
    record = json.loads((out / "window.json").read_text())
    assert record["window"] == [64, 192] and record["details"] == window and record["policy_step"] == 256
    assert len(read_csv(out / "window.csv")) == EPISODE_STEPS


def test_bad_input_is_named_before_any_rollout(runs, tmp_path):
    out = tmp_path / "out"
    run = str(runs["vlm"])

    def fails(error: type[Exception], match: str, *args: str) -> None:
        with pytest.raises(error, match=match):
            main(["--output_dir", str(out), *args])
        assert not out.exists()  # nothing written: the error came before the rollout

    fails(FileNotFoundError, r"no_run/run_config.json not found: .* is not a seed run directory",
          "--run_dir", str(tmp_path / "no_run"))
    no_checkpoint = tmp_path / "no_checkpoint"
    shutil.copytree(run, no_checkpoint, ignore=shutil.ignore_patterns("checkpoint"))
    fails(FileNotFoundError, r"checkpoint/model.zip not found: a run has a checkpoint once it has trained",
          "--run_dir", str(no_checkpoint), "--checkpoint", "checkpoint")
    fails(FileNotFoundError, r"policy file .*missing.zip not found", "--run_dir", run, "--policy_file",
          str(tmp_path / "missing.zip"))
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a policy")
    fails(PolicyVideoError, r"junk.zip: not a PPO policy file \(the run trained rl.algorithm 'ppo'\)",
          "--run_dir", run, "--policy_file", str(junk))
    cartpole = envs.get_task("cartpole-upright").make_env()
    DQN("MlpPolicy", cartpole, learning_starts=0).save(tmp_path / "dqn.zip")
    fails(PolicyVideoError, r"dqn.zip: not a PPO policy file", "--run_dir", run, "--policy_file",
          str(tmp_path / "dqn.zip"))
    mountain_car = envs.get_task("mountaincar-peak").make_env()
    PPO("MlpPolicy", mountain_car, n_steps=64, batch_size=64).save(tmp_path / "mountain_car.zip")
    fails(PolicyVideoError, r"mountain_car.zip was not trained on task 'cartpole-upright': its observation space "
          r"is Box\(.*\(2,\).*the task's is Box\(.*\(4,\)", "--run_dir", run, "--policy_file",
          str(tmp_path / "mountain_car.zip"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(PolicyVideoError, match=r"output directory .*a_file/videos is not writable"):
        main(["--run_dir", run, "--output_dir", str(blocker / "videos")])
    broken = tmp_path / "broken_run"
    broken.mkdir()
    (broken / "run_config.json").write_text(json.dumps({"seed": 0, "task": "cartpole-upright", "rl": {"n_envz": 2}}))
    fails(ConfigError, r"broken_run/run_config.json: config key 'rl.n_envz' is unknown for RLConfig",
          "--run_dir", str(broken))


@pytest.mark.parametrize(("args", "key"), [
    (["--checkpoint", "best"], "checkpoint"), (["--size", "200"], "size"), (["--episodes", "0"], "episodes"),
    (["--name", "a/b"], "name"), ([], "run_dir"),
])
def test_config_errors_name_the_key(args, key):
    base = ["--run_dir", "runs/x/seed_0"] if key != "run_dir" else []
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        main(base + args)
    with pytest.raises(ConfigError):
        PolicyVideoConfig(**{"run_dir": "x", key: {"checkpoint": "best", "size": 200, "episodes": 0,
                                                   "name": "a/b", "run_dir": ""}[key]})


def test_training_without_the_video_encoder_fails_before_it_trains(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "imageio_ffmpeg" else
                        find_spec(name, *a))  # as on a machine without imageio-ffmpeg
    cfg = TrainPolicyConfig(output_dir=str(tmp_path / "run"), reward=RewardConfig(source="ground_truth"))
    with pytest.raises(ImportError, match=r"pip install 'imageio\[ffmpeg\]' \(training: or set video: false\)"):
        PolicyTraining(cfg).run()
    assert not (tmp_path / "run").exists()
