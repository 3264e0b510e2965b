"""Win rate against reference summaries with a reward-model judge and an LM judge (recipes/eval/win_rate.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from _recipes import load_recipe
from transformers import AutoModelForCausalLM, AutoTokenizer

from language_feedback.prompts import summarize_prompt
from language_feedback.summarization_data import FIELDS
from rlhf.config import ConfigError
from rlhf.preference import PairwiseLMJudge, compare, train_reward_model
from rlhf.training import TrainingSettings

REPO = Path(__file__).resolve().parents[1]
win_rate_eval = load_recipe("eval/win_rate.py")

CONFIG = str(REPO / "recipes" / "configs" / "win_rate_cpu.yaml")
REFERENCE = "it is too long."
POSTS = [("Landlord", "my landlord will not return the deposit"), ("Code", "the function fails on an empty list"),
         ("Roommate", "my roommate eats my food"), ("Loan", "should I pay off my car loan early"),
         ("Dog", "my dog ate my homework again"), ("Job", "I got a job offer in another city")]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    """A tiny SLF5K-format test split whose references all read "it is too long."."""
    path = tmp_path_factory.mktemp("slf5k") / "test.jsonl"
    rows = []
    for i, (title, post) in enumerate(POSTS):
        row = dict.fromkeys(FIELDS, "")
        row.update(id=f"p{i}", title=title, post=post, tldr_human_reference_summary=REFERENCE)
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def judge_dir(tiny_lm_path, data_file, tmp_path_factory) -> Path:
    """A reward model that prefers summaries about the dog to "it is too long."."""
    comparisons = [{"prompt": summarize_prompt(t, p), "chosen": " the dog is fine.", "rejected": " " + REFERENCE}
                   for t, p in POSTS]
    out = tmp_path_factory.mktemp("judge") / "rm"
    train_reward_model(tiny_lm_path, comparisons * 2, out,
                       settings=TrainingSettings(learning_rate=1e-3, num_train_epochs=2, per_device_train_batch_size=4, max_length=128))
    return out


def write_summaries(path: Path, summaries: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"p{i}", "summary": s}) + "\n" for i, s in enumerate(summaries)))
    return path


def test_reward_model_judge_win_rates_files_and_plot(data_file, judge_dir, tmp_path):
    dog = write_summaries(tmp_path / "dog.jsonl", ["the dog is fine."] * 6)
    copy = write_summaries(tmp_path / "copy.jsonl", [REFERENCE] * 6)
    mixed = write_summaries(tmp_path / "mixed.jsonl", ["the dog is fine.", REFERENCE] * 3)  # 3 wins, 3 ties
    out = tmp_path / "out"
    rows = win_rate_eval.main([
        "--config", CONFIG, "--data", str(data_file), "--judge_model", str(judge_dir), "--output_dir", str(out),
        "--summaries", f"[{dog},same={copy},{mixed}]",
    ])
    by_method = {r["method"]: r for r in rows}
    assert set(by_method) == {"dog", "same", "mixed"}
    assert by_method["dog"]["win_rate"] == 1.0 and by_method["dog"]["wins"] == 6
    assert by_method["same"]["win_rate"] == 0.5 and by_method["same"]["ties"] == 6  # identical text: a tie
    mixed_row = by_method["mixed"]
    assert (mixed_row["wins"], mixed_row["ties"], mixed_row["losses"], mixed_row["win_rate"]) == (3, 3, 0, 0.75)
    assert mixed_row["low"] < 0.75 < mixed_row["high"]  # a bootstrap interval, not a point

    saved = json.loads((out / "results.json").read_text())["results"]
    assert saved == rows
    with (out / "results.csv").open() as f:
        assert [r["method"] for r in csv.DictReader(f)] == ["dog", "same", "mixed"]
    assert len((out / "outcomes.jsonl").read_text().splitlines()) == 18
    assert (out / "win_rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lm_judge_runs_through_the_script(data_file, tiny_lm_path, tmp_path):
    dog = write_summaries(tmp_path / "dog.jsonl", ["the dog is fine."] * 6)
    copy = write_summaries(tmp_path / "copy.jsonl", [REFERENCE] * 6)
    rows = win_rate_eval.main([
        "--config", CONFIG, "--data", str(data_file), "--judge", "lm", "--judge_model", tiny_lm_path,
        "--output_dir", str(tmp_path / "out"), "--summaries", f"[{dog},{copy}]",
    ])
    assert 0.0 <= rows[0]["win_rate"] <= 1.0 and rows[0]["n"] == 6
    assert rows[1]["ties"] == 6  # the same text in both positions is a tie for the debiased judge


def test_lm_judge_reads_logits_and_cancels_position_bias(tiny_lm_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    judge = PairwiseLMJudge(model, tokenizer, batch_size=2)
    prompts, a, b = ["Post: one", "Post: two", "Post: three"], ["the dog.", "short", "yes"], ["long text here", "no", "maybe"]
    p_first = judge.prob_first(prompts, a, b)
    assert p_first.shape == (3,) and ((p_first > 0) & (p_first < 1)).all()
    torch.testing.assert_close(PairwiseLMJudge(model, tokenizer, batch_size=3).prob_first(prompts, a, b), p_first)
    torch.testing.assert_close(judge.preference(prompts, a, b) + judge.preference(prompts, b, a), torch.ones(3))

    # Make the model answer "A" whatever it reads: the final layer norm outputs (a multiple of) the A token's
    # embedding, so the tied output layer gives "A" a logit of 50 at every position.
    w_a = model.transformer.wte.weight[judge.answer_ids[0]].detach()
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(w_a * 50 / w_a.dot(w_a))
    assert (judge.prob_first(prompts, a, b) > 0.99).all()
    assert compare(judge, prompts, a, b) == [0.5, 0.5, 0.5]  # pure position bias is no preference


def test_bad_summaries_name_file_and_line(data_file, judge_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "p0", "summary": "x"}) + "\n" + json.dumps({"id": "nope", "summary": "y"}) + "\n")
    with pytest.raises(ValueError, match=rf"{bad}, line 2: id 'nope' is not a post"):
        win_rate_eval.main(["--config", CONFIG, "--data", str(data_file), "--judge_model", str(judge_dir),
                            "--summaries", f"[{bad}]", "--output_dir", str(tmp_path / "out")])
    bad.write_text(json.dumps({"id": "p0"}) + "\n")
    with pytest.raises(ValueError, match=rf"{bad}, line 1: expected an object with 'id' and a string 'summary'"):
        win_rate_eval.main(["--config", CONFIG, "--data", str(data_file), "--judge_model", str(judge_dir),
                            "--summaries", f"[{bad}]", "--output_dir", str(tmp_path / "out")])
    with pytest.raises(ConfigError, match="config key 'judge' \\(command line\\): 'oracle': expected one of"):
        win_rate_eval.main(["--config", CONFIG, "--data", str(data_file), "--judge", "oracle", "--judge_model", "x",
                            "--summaries", f"[{bad}]"])
