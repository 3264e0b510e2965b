"""The text quickstart end to end on the tiny GPT-2 with tiny sizes: every method trains, scores and resumes."""

from __future__ import annotations

import json

import pytest
from _recipes import load_recipe

from language_feedback import text_quickstart
from language_feedback.feedback_world import generate_world
from language_feedback.selectors import SelectionItem
from language_feedback.text_quickstart import METHODS, GroundTruthSelector
from rlhf.artifacts import read_jsonl
from rlhf.config import ConfigError

recipe = load_recipe("quickstart_text.py")


def tiny_args(model: str, out) -> list[str]:
    return [
        "--output_dir", str(out), "--seeds", "[0, 1]", "--feedback_samples", "3", "--workers", "0",
        "--torch_threads", "1", "--world.n_posts", "30", "--world.test_posts", "20", "--best_of", "2",
        "--ilf.model", model, "--ilf.num_refinements", "2", "--ilf.max_new_tokens", "8", "--ilf.temperature", "1.0",
        "--ilf.generation_batch_size", "4", "--ilf.selector", "random", "--ilf.require_improvement", "false", "--ilf.min_improvement", "0",
        "--ilf.sft", ("{learning_rate: 1.0e-3, num_train_epochs: 1, per_device_train_batch_size: 4, max_length: 256, "
        "logging_steps: 1}"),
        "--reward", ("{learning_rate: 1.0e-3, num_train_epochs: 1, per_device_train_batch_size: 4, max_length: 256, "
        "logging_steps: 1}"),
        "--sdpo", ("{learning_rate: 1.0e-4, max_steps: 2, per_device_train_batch_size: 2, num_generations: 2, "
                   "max_completion_length: 8, logging_steps: 1}"),
        "--methods", "[" + ", ".join(METHODS) + "]",
        "--ilf.drift", "{task_prompts: 10, probes: 10, max_new_tokens: 8}",
    ]


def test_quickstart_end_to_end_tiny_and_resume(tiny_lm_path, tmp_path, monkeypatch, capsys):
    out = tmp_path / "qs"
    summary = recipe.main(tiny_args(tiny_lm_path, out))
    assert set(summary["methods"]) == {"base", *METHODS}
    assert summary["n_test"] == 20  # 10 test posts per seed, both seeds
    for method, stats in summary["methods"].items():
        assert set(stats) == set(text_quickstart.METRICS), method
        for metric, e in stats.items():
            assert e["low"] <= e["value"] <= e["high"], (method, metric)
    table = (out / "table.txt").read_text()
    assert "ilf_ground_truth" in table and "Targets:" in table
    # Per seed: the same posts as the pooled rates (equal shares), printed under the table.
    for method, seeds in summary["per_seed"].items():
        assert sorted(seeds) == ["0", "1"]
        for metric in ("good", "recall"):
            pooled = summary["methods"][method][metric]["value"]
            assert abs(sum(v[metric] for v in seeds.values()) / 2 - pooled) < 1e-9, (method, metric)
    assert "Per seed (each seed trains its own models" in table
    # The differences between methods are the differences of the pooled rates, with the seed-aware intervals.
    assert set(summary["differences"]) == {f"{a} - {b}" for a, b in text_quickstart.COMPARISONS}
    for name, diffs in summary["differences"].items():
        a, b = name.split(" - ")
        for metric, e in diffs.items():
            pooled = summary["methods"][a][metric]["value"] - summary["methods"][b][metric]["value"]
            assert abs(e["value"] - pooled) < 1e-9 and e["low"] <= e["value"] <= e["high"], (name, metric)
    assert "Differences between methods (A − B; 95% intervals resampling the seeds" in table
    # A tiny random model learns nothing: no target that needs learning may pass.
    for selector in ("embedding", "grounded"):
        ilf_vs_base = next(t for t in summary["targets"]
                           if t["name"].startswith(f"ILF ({selector} selector) good-summary rate above base"))
        assert ilf_vs_base["pass"] is False
    assert (out / "methods.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # ILF with the embedding selector is watched for drift: its probe answers before and after the round.
    drift = json.loads((out / "seed0" / "ilf_embedding" / "round1" / "drift" / "probes" / "report.json").read_text())
    assert drift["groups"] == ["base", "round_1"] and drift["sizes"] == {"base": 10, "round_1": 10}
    assert not (out / "seed0" / "ilf_ground_truth" / "round1" / "drift").exists()
    # ... and on the test summaries scored in the table, all seeds pooled, printed under the table.
    pooled = json.loads((out / "drift" / "report.json").read_text())
    assert pooled["groups"] == ["base", "ilf_embedding"] and pooled["sizes"] == {"base": 20, "ilf_embedding": 20}
    significant = sum(shift["significant"] for shift in pooled["comparisons"][0]["shifts"])
    assert f"all test posts, seeds pooled: {significant} significant" in table

    # The shared stages are the same files, not recomputed: ILF with the ground-truth selector reuses the
    # embedding run's refinements, and the other runs its initial summaries.
    seed0 = out / "seed0"
    refinements = "round1/refinements/refinements.jsonl"
    assert (seed0 / "ilf_ground_truth" / refinements).stat().st_ino == (seed0 / "ilf_embedding" / refinements).stat().st_ino
    assert read_jsonl(seed0 / "no_feedback" / refinements) != read_jsonl(seed0 / "ilf_embedding" / refinements)
    shuffled = read_jsonl(seed0 / "data" / "shuffled_feedback.jsonl")
    true = read_jsonl(seed0 / "data" / "feedback.jsonl")
    # the control: the same feedback texts, each given to another post
    assert [r["id"] for r in shuffled] == [r["id"] for r in true]
    assert sorted(r["feedback"] for r in shuffled) == sorted(r["feedback"] for r in true)
    assert [r["feedback"] for r in shuffled] != [r["feedback"] for r in true]
    # ILF's initial summaries are the base model's, taken from the base stage, not generated again.
    base = {r["id"]: r["summary"] for r in read_jsonl(out / "base" / "summaries.jsonl")}
    initial = read_jsonl(seed0 / "ilf_embedding" / "round1/initial/initial.jsonl")
    assert [r["id"] for r in initial] == [r["id"] for r in true]
    assert all(r["summary"] == base[r["id"]] for r in initial)
    # The time each stage took, the seeds summed, without the stages nested in it, slowest first.
    seconds = summary["stage_seconds"]
    assert {"base", "ilf_embedding/round1/refinements", "ilf_embedding/round1/model", "eval/best_of_n",
            "reward_model"} <= set(seconds)
    assert list(seconds.values()) == sorted(seconds.values(), reverse=True) and min(seconds.values()) >= 0
    slowest = next(iter(seconds))
    assert "Time per stage (process seconds, seeds summed" in table and f"{seconds[slowest]:7.0f} s" in table
    # The ground-truth selector picked, for each post, a candidate with the best ground-truth value.
    selected = read_jsonl(seed0 / "ilf_ground_truth" / "round1/selection/selected.jsonl")
    assert all(max(r["scores"]) == r["scores"][r["candidates"].index(r["selected"])] for r in selected)
    assert not (seed0 / "sft_initial" / "model").exists()  # weights dropped once scored (keep_models: false)
    # SDPO's teacher read each post's feedback as privileged context; it trained its 2 steps.
    sdpo_log = json.loads((seed0 / "sdpo.trainer" / "log_history.json").read_text())
    assert max(row["step"] for row in sdpo_log) == 2
    assert any(row.get("self_distillation/feedback_used_fraction", 0) > 0 for row in sdpo_log)

    # A rerun trains and generates nothing.
    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage was recomputed")

    monkeypatch.setattr(text_quickstart, "summarize_posts", must_not_run)
    again = recipe.main(tiny_args(tiny_lm_path, out))
    assert again["methods"] == summary["methods"]


def test_ground_truth_selector_ranks_by_the_scorer():
    post = generate_world(1, seed=3)[0]
    selector = GroundTruthSelector([post])
    item = SelectionItem(text_quickstart.summarize_prompt(post.title, post.text), "x", "fb",
                         ("It broke.", post.reference, post.text))
    scores = selector.score([item])[0]
    assert scores.index(max(scores)) == 1  # the reference summary, not the copied post
    with pytest.raises(ValueError, match="not posts of this world"):
        selector.score([SelectionItem("another prompt", "x", "fb", ("a",))])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "[ilf_embedding, rlhf]"], r"'methods' \(command line\): unknown method\(s\) \['rlhf'\]"),
        (["--methods", "[best_of_n]"], "best_of_n trains its reward model on the comparisons of the ilf_embedding"),
        (["--world.n_posts", "20"], r"'world.n_posts' \(command line\): 20 posts; need test_posts"),
        (["--feedback_samples", "1"], "'feedback_samples' .*must be >= 2"),
        (["--ilf.drift", "{task_prompts: 200}"], r"'ilf.drift.task_prompts'.*200 of a seed's test posts, but each seed"),
        (["--ilf.drift", "{probes: 5}"], r"'ilf.drift.probes'.*must be 0 or at least 10"),
        (["--ilf.drift", "{stop_if_unintended_share: 0.1, judge_model: ''}"], r"'ilf.drift.stop_if_unintended_share'.*needs judge_model"),
        (["--ilf.drift", "{judge_model: smollm2-135m-instruct}"], r"'ilf.drift.intended_change'.*the judge needs"),
    ],
)
def test_bad_config_fails_with_the_key_before_anything_runs(tmp_path, args, message):
    with pytest.raises(ConfigError, match=message):
        recipe.main(["--output_dir", str(tmp_path / "qs"), *args])
    assert not (tmp_path / "qs").exists()


def test_ground_truth_agreement_of_selectors():
    """The world's selector diagnostics: the ground-truth selector always picks a best refinement, a random one
    about as often as chance, and the shuffled control uses other posts' feedback."""
    import random as pyrandom

    from language_feedback.evaluation import ground_truth_agreement
    from language_feedback.feedback_world import flawed_summary, score
    from language_feedback.selectors import RandomSelector

    posts = generate_world(40, seed=5)
    rng = pyrandom.Random(0)
    items, values = [], []
    for p in posts:
        candidates = (flawed_summary(p, rng), p.reference, "It was fine.")
        items.append(SelectionItem(text_quickstart.summarize_prompt(p.title, p.text), "x", f"feedback on {p.id}",
                                   candidates))
        values.append([score(p, c).value for c in candidates])
    best = ground_truth_agreement(GroundTruthSelector(posts), items, values)
    assert best["true_rate"] == 1.0 and best["shuffled_rate"] == 1.0 and best["n"] == 40
    assert best["chance_rate"] == pytest.approx(1 / 3, abs=0.05)
    random_pick = ground_truth_agreement(RandomSelector(seed=1), items, values)
    assert random_pick["true_low"] <= random_pick["chance_rate"] <= random_pick["true_high"]


def test_sample_efficiency_sweep_tiny(tiny_lm_path, tmp_path):
    """Nested counts, every method at each count, IQM curves starting from the base model at 0 samples."""
    sweep = load_recipe("eval/text_sample_efficiency.py")
    args = tiny_args(tiny_lm_path, tmp_path / "se")
    args[args.index("--methods") + 1] = "[ilf_embedding, sft_initial]"
    summary = sweep.main([*args, "--sample_counts", "[2, 3]"])
    assert set(summary["iqm"]) == {"ilf_embedding", "sft_initial"}
    assert list(summary["iqm"]["ilf_embedding"]["recall"]) == [0, 2, 3]
    two = read_jsonl(tmp_path / "se" / "n2" / "seed0" / "data" / "feedback.jsonl")
    three = read_jsonl(tmp_path / "se" / "n3" / "seed0" / "data" / "feedback.jsonl")
    assert [r["id"] for r in two] == [r["id"] for r in three][:2]  # nested
    assert (tmp_path / "se" / "sample_efficiency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="'sample_counts' .*need distinct counts"):
        sweep.main([*args, "--sample_counts", "[2, 2]"])


def test_a_drift_line_shows_an_example_from_the_side_where_the_cluster_is_larger():
    from rlhf.behaviour import Cluster, Shift

    cluster = Cluster(id=0, size=9, counts={"base": 9, "ilf_embedding": 0}, shares={"base": 0.3, "ilf_embedding": 0.0},
                      keywords=["thanks"], examples={"base": ["Thanks for reading."], "ilf_embedding": []},
                      example_texts={"base": ["Thanks for reading."], "ilf_embedding": []})
    vanished = Shift("base", "ilf_embedding", 0, 9, 0, 0.3, 0.0, -0.3, -4.0, 1e-4, 1e-3, True)
    assert text_quickstart.shift_line(vanished, cluster) == "      30% ->   0%  'thanks': \"Thanks for reading.\""
    grew = Shift("ilf_embedding", "base", 0, 0, 9, 0.0, 0.3, 0.3, 4.0, 1e-4, 1e-3, True, "unintended", 0.2)
    assert text_quickstart.shift_line(grew, cluster).endswith("\"Thanks for reading.\", judged unintended (p=0.20)")
