"""The summarization ILF loop end to end on a tiny GPT-2, and resuming after a kill."""

from __future__ import annotations

import dataclasses
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
from safetensors.torch import load_file
from test_summarization_data import fixture_rows, write_fixture

from language_feedback.selectors import Selector
from language_feedback.summarization_data import load_slf5k
from language_feedback.summarization_ilf import SummarizationILF, SummarizationILFSettings
from rlhf.artifacts import read_jsonl
from rlhf.config import ConfigError
from rlhf.training import TrainingSettings


def tiny_config(model: str, **overrides) -> SummarizationILFSettings:
    cfg = SummarizationILFSettings(
        model=model, rounds=2, samples_per_round=2, num_refinements=3, selector="random", max_new_tokens=12,
        temperature=1.0, generation_batch_size=4,
        sft=TrainingSettings(learning_rate=1e-3, num_train_epochs=1.0, per_device_train_batch_size=2, max_length=512, logging_steps=1, report_to=[]),
    )
    return dataclasses.replace(cfg, **overrides)


def data_file(tmp_path: Path) -> Path:
    rows = fixture_rows()
    rows[0]["post"] = "I waited for my partner all evening. " * 150  # far over the tiny model's 512 positions
    return write_fixture(tmp_path / "slf.jsonl", rows)


def run_ilf(settings: SummarizationILFSettings, samples, output_dir):
    return SummarizationILF(settings, samples, output_dir).run()


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def test_ilf_two_rounds_end_to_end(tiny_lm_path, tmp_path, caplog):
    samples = load_slf5k(data_file(tmp_path))
    with caplog.at_level(logging.WARNING):
        result = run_ilf(tiny_config(tiny_lm_path), samples, tmp_path / "run")
    assert "1 of 6 samples have empty feedback" in caplog.text
    assert "truncated 1 of 4 posts to fit the prompt into 500 tokens" in caplog.text

    run = tmp_path / "run"
    fitted = read_jsonl(run / "data" / "samples.jsonl")
    assert len(fitted) == 4 and fitted[0]["post"].endswith(" ...") and len(fitted[0]["post"]) < len(samples[0].post)

    for r, ids in ((1, ["t0", "t1"]), (2, ["t2", "t3"])):
        initial = read_jsonl(run / f"round{r}" / "initial" / "initial.jsonl")
        refinements = read_jsonl(run / f"round{r}" / "refinements" / "refinements.jsonl")
        selected = read_jsonl(run / f"round{r}" / "selection" / "selected.jsonl")
        assert [row["id"] for row in initial] == ids and [row["id"] for row in refinements] == ids
        assert all(len(row["refinements"]) == 3 for row in refinements)
        assert "Feedback on summary:" in refinements[0]["prompt"]
        for row, ref in zip(selected, refinements):
            # The random selector's choice is the argmax of its scores and is one of the generated refinements.
            assert row["selected"] == row["candidates"][max(range(len(row["scores"])), key=row["scores"].__getitem__)]
            assert row["selected"] in [c.strip() for c in ref["refinements"]]
            assert row["prompt"].endswith("TL;DR:")
        for comp in read_jsonl(run / f"round{r}" / "selection" / "comparisons.jsonl"):
            assert comp["chosen"].strip() in [row["selected"] for row in selected]
            assert comp["rejected"].strip() in {s.generated_summary_for_feedback for s in samples}

    # Round 2 starts from round 1's model and trains on both rounds' samples.
    assert [m["n_train_examples"] for m in result.metrics] == [2, 4]
    base, round1, round2 = weights(Path(tiny_lm_path)), weights(run / "round1" / "model"), weights(run / "round2" / "model")
    key = "transformer.h.0.attn.c_attn.weight"
    assert not torch.equal(base[key], round1[key]) and not torch.equal(round1[key], round2[key])
    assert result.final_model == run / "round2" / "model"


def test_no_feedback_ablation_and_bad_inputs(tiny_lm_path, tmp_path):
    samples = load_slf5k(data_file(tmp_path))
    cfg = tiny_config(tiny_lm_path, rounds=1, use_feedback=False, selector="embedding")
    with pytest.raises(ValueError, match="needs rounds × samples_per_round = 3 × 2 = 6 samples with feedback, but only 5"):
        run_ilf(dataclasses.replace(cfg, rounds=3), samples, tmp_path / "too_many")
    with pytest.raises(ConfigError, match="config key 'selector': unknown selector 'bleu'; known selectors: embedding, "):
        dataclasses.replace(cfg, selector="bleu")
    with pytest.raises(ConfigError, match="config key 'reward_model': selector 'reward_model' needs `reward_model`"):
        dataclasses.replace(cfg, selector="reward_model")
    with pytest.raises(ConfigError, match="config key 'num_refinements': must be >= 1, got 0"):
        dataclasses.replace(cfg, num_refinements=0)
    with pytest.raises(ConfigError, match="config key 'dtype': one of auto, float32, bfloat16, float16, got 'bf16'"):
        dataclasses.replace(cfg, dtype="bf16")
    assert not (tmp_path / "too_many").exists()  # nothing was claimed or generated
    run_ilf(dataclasses.replace(cfg, selector="human"), samples, tmp_path / "ablation")
    refinements = read_jsonl(tmp_path / "ablation" / "round1" / "refinements" / "refinements.jsonl")
    assert all("Feedback" not in row["prompt"] and "Improved TL;DR:" in row["prompt"] for row in refinements)
    selected = read_jsonl(tmp_path / "ablation" / "round1" / "selection" / "selected.jsonl")
    # The human selector trains on the people's ideal summaries.
    assert [row["selected"] for row in selected] == [samples[0].ideal_human_summary, samples[1].ideal_human_summary]


RESUME_SCRIPT = """
from language_feedback.summarization_data import load_slf5k
from language_feedback.selectors import Selector
from language_feedback.summarization_ilf import SummarizationILF, SummarizationILFSettings
from rlhf.training import TrainingSettings
settings = SummarizationILFSettings(**{settings!r})
settings.sft = TrainingSettings(**settings.sft)
SummarizationILF(settings, load_slf5k({data!r}), {run!r}).run()
"""


def test_resume_after_kill(tiny_lm_path, tmp_path):
    data, run = data_file(tmp_path), tmp_path / "run"
    settings = dataclasses.asdict(tiny_config(tiny_lm_path, rounds=1))
    script = RESUME_SCRIPT.format(settings=settings, data=str(data), run=str(run))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    selection = run / "round1" / "selection"
    deadline = time.monotonic() + 240
    while not selection.is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # as abrupt as a crash: no cleanup handlers run
    _, err = proc.communicate()
    assert selection.is_dir(), f"the run died before selection: {err.decode()[-2000:]}"
    assert not (run / "summary.json").exists(), "the kill came after the run finished; the test proves nothing"

    finished = {p: p.stat().st_mtime_ns for p in run.glob("*/**/*.jsonl")}  # the stages' files (not the time log)
    assert len(finished) >= 4  # data, initial, refinements, selected (+ comparisons)
    result = run_ilf(tiny_config(tiny_lm_path, rounds=1), load_slf5k(data), run)
    # Finished stages were kept as they were, the rest was built, and the run is complete.
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    assert (run / "round1" / "model" / "model.safetensors").is_file() and (run / "summary.json").is_file()
    assert len(result.metrics) == 1


def test_refinement_requests_are_instructions_for_chat_models(tiny_lm_path):
    from transformers import AutoTokenizer

    from language_feedback.prompts import refine_prompt

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    raw = refine_prompt("T", "A post.", "A summary.", "Say what it cost.", tokenizer)
    assert raw.endswith("Improved TL;DR:") and "Feedback on summary: Say what it cost." in raw  # no chat template
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}"
                               "{% if add_generation_prompt %}<assistant>{% endif %}")
    chat = refine_prompt("T", "A post.", "A summary.", "Say what it cost.", tokenizer)
    assert chat.startswith("<user>") and chat.endswith("<assistant>")
    request = "Summarize this post in one sentence."
    assert chat.count(request) == 2 and chat.index(request) < chat.index("Post: A post.")  # before and after
    assert chat.index("Post: A post.") < chat.index("An earlier summary was: A summary.")
    assert chat.removesuffix("<assistant>").removesuffix("</user>").endswith(f"{request} Say what it cost.")  # feedback last
    ablation = refine_prompt("T", "A post.", "A summary.", None, tokenizer)
    assert "Say what it cost" not in ablation and ablation.count(request) == 2
    assert "An earlier summary was: A summary." in ablation


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ("Here is the rewritten summary:\n\nThe repair cost 300 euros.\n\nI hope this helps!", "The repair cost 300 euros."),
        ("The repair cost 300 euros.", "The repair cost 300 euros."),
        ("The repair: it cost 300 euros.\nMore.", "The repair: it cost 300 euros.\nMore."),
        ("Summary:", "Summary:"),  # nothing follows the introduction: kept as it is (and scored as what it is)
    ],
)
def test_chat_replies_lose_their_introduction(reply, answer):
    from language_feedback.summarization_ilf import chat_reply

    assert chat_reply(reply) == answer


class InitialWinsFor(Selector):
    """A selector that prefers the initial summary of the given samples and any refinement elsewhere."""

    name = "initial_wins_for"

    def __init__(self, initials: set[str]):
        self.initials = initials

    def score(self, items):
        return [[(2.0 if c == item.initial and item.initial in self.initials else 1.0 if c != item.initial else 0.0)
                 for c in item.candidates] for item in items]


def test_require_improvement_drops_samples_whose_initial_summary_the_selector_prefers(tiny_lm_path, tmp_path, caplog):
    samples = load_slf5k(data_file(tmp_path))
    settings = tiny_config(tiny_lm_path, rounds=1, require_improvement=True)
    first = samples[0].generated_summary_for_feedback
    with caplog.at_level(logging.INFO, logger="language_feedback.summarization_ilf"):
        SummarizationILF(settings, samples, tmp_path / "run", selector=InitialWinsFor({first})).run()
    assert "the selector prefers a refinement to the initial summary for 1 of 2 samples" in caplog.text
    selected = read_jsonl(tmp_path / "run" / "round1" / "selection" / "selected.jsonl")
    assert [row["id"] for row in selected] == ["t1"]  # t0's initial summary beat its refinements
    assert selected[0]["initial_score"] == 0.0 and len(selected[0]["scores"]) == len(selected[0]["candidates"])

    # Nothing kept: nothing to imitate, and the model stays as it was, through every later round too.
    everything = {s.generated_summary_for_feedback for s in samples}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="language_feedback.summarization_ilf"):
        none = SummarizationILF(dataclasses.replace(settings, rounds=2, samples_per_round=1), samples,
                                tmp_path / "none", selector=InitialWinsFor(everything)).run()
    assert "round 1: no refinement scored above its initial summary by more than min_improvement=0.0" in caplog.text
    assert str(none.final_model) == tiny_lm_path and not (tmp_path / "none" / "round2" / "trainer").exists()
    assert [m["n_selected"] for m in none.metrics] == [0, 0] and none.metrics[0]["mean_selected_score"] is None
    # A margin: refinements score 1, initial summaries 0; nothing beats them by more than 1.
    margin = SummarizationILF(dataclasses.replace(settings, min_improvement=1.0), samples, tmp_path / "margin",
                              selector=InitialWinsFor(set())).run()
    assert read_jsonl(margin.selected[0]) == [] and str(margin.final_model) == tiny_lm_path
    kept = SummarizationILF(dataclasses.replace(settings, min_improvement=0.5), samples, tmp_path / "half",
                            selector=InitialWinsFor(set())).run()
    assert len(read_jsonl(kept.selected[0])) == 2 and kept.final_model == tmp_path / "half" / "round1" / "model"
    with pytest.raises(ConfigError, match="'min_improvement': a margin >= 0 that needs require_improvement: true"):
        dataclasses.replace(settings, require_improvement=False, min_improvement=0.5)


def test_skip_truncated_keeps_refinements_cut_off_at_max_new_tokens_out_of_selection(tiny_lm_path, tmp_path):
    from rlhf.artifacts import write_jsonl_atomic

    samples = load_slf5k(data_file(tmp_path))
    run = SummarizationILF(tiny_config(tiny_lm_path, rounds=1, skip_truncated=True), samples, tmp_path / "run")
    for name, build in run.stages()[:3]:  # data, round1/initial, round1/refinements
        run.run_dir.stage(name, build)
    path = tmp_path / "run" / "round1" / "refinements" / "refinements.jsonl"
    rows = read_jsonl(path)
    # The tiny model writes random tokens up to max_new_tokens (12): its refinements are recorded as cut off.
    assert [r["finished"] for r in rows] == [[False] * 3] * 2
    with pytest.raises(RuntimeError, match=r"no refinement is a candidate \(non-empty, finished\)"):
        run.run()
    for row in rows:  # one finished refinement per sample
        row["refinements"][-1], row["finished"] = f"A finished refinement of {row['id']}.", [False, False, True]
    write_jsonl_atomic(path, rows)
    run.run()
    selected = read_jsonl(tmp_path / "run" / "round1" / "selection" / "selected.jsonl")
    assert [(s["selected"], s["candidates"]) for s in selected] == [
        (f"A finished refinement of {r['id']}.", [f"A finished refinement of {r['id']}."]) for r in rows]


def test_max_sentences_keeps_longer_refinements_out_of_selection(tiny_lm_path, tmp_path, caplog):
    from rlhf.artifacts import write_jsonl_atomic

    samples = load_slf5k(data_file(tmp_path))
    run = SummarizationILF(tiny_config(tiny_lm_path, rounds=1, max_sentences=1), samples, tmp_path / "run")
    for name, build in run.stages()[:3]:  # data, round1/initial, round1/refinements
        run.run_dir.stage(name, build)
    path = tmp_path / "run" / "round1" / "refinements" / "refinements.jsonl"
    rows = read_jsonl(path)
    rows[0]["refinements"] = ["One sentence. And another one.", "The only candidate, one sentence.", "A? B!"]
    rows[1]["refinements"] = ["Two sentences here. Yes.", "First. Second. Third.", "A! B."]
    write_jsonl_atomic(path, rows)
    with caplog.at_level(logging.WARNING, logger="language_feedback.summarization_ilf"):
        run.run()
    assert "1 of 2 samples have no refinement that is a candidate (non-empty, at most 1 sentence(s))" in caplog.text
    selected = read_jsonl(tmp_path / "run" / "round1" / "selection" / "selected.jsonl")
    assert [(s["id"], s["candidates"]) for s in selected] == [(rows[0]["id"], ["The only candidate, one sentence."])]
    with pytest.raises(ConfigError, match="'max_sentences': must be >= 1 or null, got 0"):
        tiny_config(tiny_lm_path, max_sentences=0)


def test_drift_reports_after_every_round_compare_with_the_base_and_the_previous_round(tiny_lm_path, tmp_path):
    from language_feedback.feedback_world import generate_world, to_slf5k_row
    from language_feedback.summarization_data import validate_row
    from rlhf.behaviour import DriftReport, DriftSettings

    held_out = [validate_row(to_slf5k_row(p, "A summary.", ""), p.id) for p in generate_world(10, seed=3)]
    settings = tiny_config(tiny_lm_path, drift=DriftSettings(task_prompts=10, probes=10, max_new_tokens=8))
    run = tmp_path / "run"
    SummarizationILF(settings, load_slf5k(data_file(tmp_path)), run, held_out=held_out).run()
    base = json.loads((run / "drift" / "base" / "samples.json").read_text())
    assert len(base["task"]) == len(base["probes"]) == 10
    for kind in ("task", "probes"):
        report = DriftReport.from_json((run / "round2" / "drift" / kind / "report.json").read_text())
        assert report.groups == ["base", "round_1", "round_2"]
        assert [(c.before, c.after) for c in report.comparisons] == [("round_1", "round_2"), ("base", "round_2")]
        assert (run / "round2" / "drift" / kind / "shares.png").is_file()
    with pytest.raises(ValueError, match="drift.task_prompts = 10 held-out posts are needed .* only 2 are there"):
        SummarizationILF(settings, load_slf5k(data_file(tmp_path)), tmp_path / "no_held_out")
