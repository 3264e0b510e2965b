"""The robotics eval scripts and the quickstart produce their files from real (tiny) runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _recipes import load_recipe

from rlhf.rl import RLConfig
from vlm_rewards import load_open_clip, reward_quality, save_open_clip, tiny_vit_clip_config
from vlm_rewards.robotics import RewardConfig, TrainPolicyConfig, get_task, make_trainers

torch.set_num_threads(1)
sample_efficiency = load_recipe("eval/sample_efficiency.py")
reward_quality_recipe = load_recipe("eval/reward_quality.py")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_methods(tmp_path_factory) -> Path:
    """Two methods x two seeds of real 128-step PPO runs on CartPole (ground truth, and a tiny CLIP reward)."""
    root = tmp_path_factory.mktemp("runs")
    rl = RLConfig(total_timesteps=128, n_envs=2, save_freq=64, eval_freq=32, n_eval_episodes=2,
                  final_eval_episodes=2, algo_kwargs={"n_steps": 16, "batch_size": 32, "n_epochs": 1}, progress_bar=False)
    for method, reward in [("gt", RewardConfig(source="ground_truth")),
                           ("vlm", RewardConfig(model_config=tiny_vit_clip_config(), render_size=32))]:
        cfg = TrainPolicyConfig(output_dir=str(root / method), seeds=[0, 1], reward=reward, rl=rl,
                                env_kwargs={"max_episode_steps": 16})
        for trainer in make_trainers(cfg):
            trainer.train()
    return root


def test_sample_efficiency_writes_csv_json_png(two_methods, tmp_path):
    out = tmp_path / "se"
    final = sample_efficiency.main(["--runs", f"{{gt: '{two_methods}/gt/seed_*', vlm: '{two_methods}/vlm/seed_*'}}",
                                    "--output_dir", str(out), "--n_boot", "200"])
    rows = list(csv.DictReader((out / "sample_efficiency.csv").open()))
    # 2 metrics x 2 methods x 5 evaluation points (steps 0, 32, 64, 96, 128), and the VLM runs' training reward
    # per step next to the true one, a point per rollout (steps 32, 64, 96, 128)
    evaluations = [r for r in rows if r["metric"] != "training_reward_per_step"]
    assert len(evaluations) == 20
    assert {(r["metric"], r["method"]) for r in evaluations} == {(m, k) for m in ("gt_return", "success_rate") for k in ("gt", "vlm")}
    training = [(r["method"], r["step"]) for r in rows if r["metric"] == "training_reward_per_step"]
    assert training == [(f"vlm, {side}", str(step)) for side in ("proxy", "true") for step in (32, 64, 96, 128)]
    gt_curves = [json.loads((two_methods / "gt" / f"seed_{s}" / "final" / "curve.json").read_text()) for s in (0, 1)]
    first = next(r for r in rows if r["metric"] == "gt_return" and r["method"] == "gt" and r["step"] == "64")
    values = [next(p["gt_return"] for p in c if p["step"] == 64) for c in gt_curves]
    assert float(first["mean"]) == pytest.approx(np.mean(values), rel=1e-5)
    assert float(first["min"]) <= float(first["iqm_low"]) <= float(first["iqm"]) <= float(first["iqm_high"]) <= float(first["max"])
    assert final["gt"]["seeds"] == 2 and len(final["vlm"]["gt_return"]["per_seed"]) == 2
    assert json.loads((out / "final.json").read_text())["gt"]["gt_return"]["iqm"] == final["gt"]["gt_return"]["iqm"]
    assert (out / "sample_efficiency.png").read_bytes()[:8] == PNG_MAGIC
    assert final["tasks"] == ["cartpole-upright"] and final["threshold"]["fraction_of_best_iqm"] == 0.95


def test_sample_efficiency_plot_names_the_task_threshold_and_band(two_methods, tmp_path, monkeypatch):
    """Two seeds: the band is the min–max and says so (not "95% bootstrap"); the threshold is drawn; the task is in
    the title; no offset notation on the y axis."""
    import rlhf.curves

    figures = []
    monkeypatch.setattr(rlhf.curves, "save_figure", lambda fig, path, dpi=110: figures.append(fig))
    sample_efficiency.main(["--runs", f"{{gt: '{two_methods}/gt/seed_*', vlm: '{two_methods}/vlm/seed_*'}}",
                            "--output_dir", str(tmp_path), "--n_boot", "100"])
    (fig,) = figures
    returns_ax = fig.axes[0]
    legend = [t.get_text() for t in returns_ax.get_legend().get_texts()]
    assert legend == [f"{m} (iqm; band: min–max over 2 seeds)" for m in ("gt", "vlm")]
    training_ax = fig.axes[2]  # the proxy (CLIP) reward the VLM agents trained on, next to the true reward
    assert "proxy" in training_ax.get_ylabel()
    assert [t.get_text().split(" (")[0] for t in training_ax.get_legend().get_texts()] == ["vlm, proxy", "vlm, true"]
    assert "cartpole-upright" in fig._suptitle.get_text()
    assert any("95% of the best IQM" in t.get_text() for t in returns_ax.texts)
    assert returns_ax.yaxis.get_major_formatter().get_useOffset() is False


def test_sample_efficiency_names_a_pattern_without_runs(two_methods, tmp_path):
    with pytest.raises(FileNotFoundError, match="runs.typo"):
        sample_efficiency.main(["--runs", f"{{typo: '{two_methods}/nothing_*'}}", "--output_dir", str(tmp_path)])


def test_reward_quality_sweeps_alpha_and_models_and_draws_the_pose_matrix(tmp_path):
    torch.manual_seed(0)
    clip = load_open_clip(tiny_vit_clip_config())
    save_open_clip(clip, tmp_path / "ckpt")
    out = tmp_path / "rq"
    summary = reward_quality_recipe.main([
        "--task", "cartpole-upright", "--output_dir", str(out), "--states", "48", "--render_size", "32",
        "--alphas", "[0.0, 1.0]", "--x_state_index", "2",
        "--models", (f"[{{name: saved, model: '{tmp_path / 'ckpt'}'}}, {{name: saved_again, model: '{tmp_path / 'ckpt'}'}}, "
                     f"{{name: config, model_config: {json.dumps(tiny_vit_clip_config())}}}]"),
        "--matrix_tasks", "[humanoid-kneeling, humanoid-standing]",
    ])
    rows = list(csv.DictReader((out / "epic.csv").open()))
    assert [(r["model"], float(r["alpha"])) for r in rows] == [(m, a) for m in ("saved", "saved_again", "config")
                                                               for a in (0.0, 1.0)]
    assert all(0.0 <= float(r["epic_distance"]) <= 1.0 for r in rows)
    # The saved checkpoint and the config-built model have different weights: different rewards.
    assert rows[0]["epic_distance"] != rows[4]["epic_distance"]
    # Successive models: how far each reward moved from the one before (the same checkpoint again: not at all).
    moved = {(r["from"], r["to"], r["alpha"]): r["epic_distance"] for r in summary["epic_between_successive_models"]}
    assert set(moved) == {(a, b, alpha) for a, b in (("saved", "saved_again"), ("saved_again", "config"))
                          for alpha in (0.0, 1.0)}
    assert all(moved["saved", "saved_again", alpha] == pytest.approx(0.0, abs=1e-6) for alpha in (0.0, 1.0))
    assert all(moved["saved_again", "config", alpha] > 0.05 for alpha in (0.0, 1.0))
    assert len(list(csv.DictReader((out / "epic_successive.csv").open()))) == 4
    for name in ("epic.png", "reward_vs_ground_truth.png", "goal_pose_matrix_saved.png", "goal_pose_matrix_config.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
    matrix = list(csv.reader((out / "goal_pose_matrix_saved.csv").open()))
    assert [row[0] for row in matrix[1:]] == ["humanoid-kneeling", "humanoid-standing"] and len(matrix[1]) == 3
    assert summary["goal_pose_matrix"]["saved"]["tasks"] == 2


def test_reward_quality_rejects_unknown_state_source(tmp_path):
    with pytest.raises(ValueError, match="state_source"):
        reward_quality_recipe.main(["--output_dir", str(tmp_path), "--state_source", "random", "--states", "8",
                             "--models", f"[{{name: m, model_config: {json.dumps(tiny_vit_clip_config())}}}]"])


def test_quickstart_end_to_end_tiny(tmp_path):
    out = tmp_path / "qs"
    summary = load_recipe("quickstart.py").main([
        "--output_dir", str(out), "--seeds", "[0]", "--workers", "0",
        "--data.pairs", "64", "--data.render_size", "32", "--clip_model", json.dumps(tiny_vit_clip_config()),
        "--finetune.num_train_epochs", "1", "--finetune.per_device_train_batch_size", "16", "--finetune.progress", "false",
        "--reward.render_size", "32", "--epic_states", "32",
        "--rl.total_timesteps", "128", "--rl.n_envs", "2", "--rl.save_freq", "64", "--rl.eval_freq", "64",
        "--rl.n_eval_episodes", "2", "--rl.final_eval_episodes", "2",
        "--rl.algo_kwargs", "{n_steps: 16, batch_size: 32, n_epochs: 1}",
    ])
    names = [t["name"].split(",")[0] for t in summary["targets"]]
    assert names[:5] == ["improvement over the first evaluation", "improvement over the first evaluation",
                         "final ground-truth return", "steps to 95% of max return", "EPIC distance"]
    # 128 steps teach neither agent anything: the relative targets cannot pass by both being equally bad.
    targets = {t["name"]: t for t in summary["targets"]}
    assert max(summary["improvement_over_first_evaluation"].values()) < 100
    for name, target in targets.items():
        if "/" in name:  # a ratio of the two agents
            assert target["value"] is None and target["pass"] is False, target
    assert 0.0 <= summary["epic_distance"] <= 1.0
    assert len(summary["final_gt_return"]["vlm_reward"]) == len(summary["final_gt_return"]["ground_truth"]) == 1
    assert (out / "returns.png").read_bytes()[:8] == PNG_MAGIC
    table = (out / "table.txt").read_text()
    assert "vlm_reward" in table and "ground_truth" in table
    assert "final ground-truth return, VLM / ground-truth agent: n/a (target >= 0.95; an agent improved" in table
    assert (out / "clip" / "model" / "open_clip_config.json").is_file()
    for method in ("vlm_reward", "ground_truth"):  # each seed ends with a video of a final-evaluation episode
        assert (out / "runs" / method / "seed_0" / "video" / "final.gif").read_bytes()[:6] == b"GIF89a"


def test_reward_quality_on_states_from_random_rollouts(tmp_path):
    cfg = reward_quality.RewardQualityConfig(task="cartpole-upright", states=20, state_source="rollouts", rollout_steps=8,
                                             models=[reward_quality.ModelSpec(name="m")])
    states = reward_quality.collect_states(cfg, get_task(cfg.task))
    assert states.shape == (20, 4)
    # Random actions from near-upright starts: the first states of each 8-step episode are near upright.
    assert abs(states[0, 2]) < 0.3 and abs(states[8, 2]) < 0.3
    assert len({tuple(s) for s in states}) == 20
