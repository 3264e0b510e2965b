"""ILF for code: the pipeline's pieces, a tiny end-to-end round, resume after an interrupted stage."""

from __future__ import annotations

import json

import pytest
import torch

from language_feedback import code_ilf
from language_feedback.code_data import load_mbpp
from language_feedback.code_feedback import Draft
from language_feedback.code_ilf import (
    CodeILF,
    CodeILFConfig,
    UnitTestSelector,
    parse_task_ids,
    pass_at_k_summary,
    refiner_examples,
    run_tests,
    select_passing,
)
from language_feedback.critic import CriticFeedback
from language_feedback.prompts import code_critic_prompt, code_prompt
from language_feedback.sandbox import ExecResult
from language_feedback.selectors import SelectionItem, Selector
from rlhf.artifacts import RunDirectoryMismatch, read_jsonl
from rlhf.config import ConfigError
from rlhf.training import TrainingSettings

# Three small MBPP-format tasks of our own; short texts keep the tiny model's prompts well under its context.
MBPP_ROWS = [
    {"task_id": 1, "text": "Add two numbers.", "code": "def add(a, b):\n    return a + b",
     "test_setup_code": "", "test_list": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"], "challenge_test_list": []},
    {"task_id": 2, "text": "Check if even.", "code": "def is_even(n):\n    return n % 2 == 0",
     "test_setup_code": "", "test_list": ["assert is_even(4)", "assert not is_even(3)"], "challenge_test_list": []},
    {"task_id": 3, "text": "Max of a list.", "code": "def max_of(xs):\n    return max(xs)",
     "test_setup_code": "", "test_list": ["assert max_of([1, 3, 2]) == 3"], "challenge_test_list": []},
]
WRONG_BODIES = {1: "\n    return a - b\n", 2: "\n    return n % 2 == 1\n"}
FEEDBACK = {1: "Use + instead of -.", 2: "Even numbers have remainder 0, not 1."}
RIGHT_BODIES = {1: "\n    return a + b\n", 2: "\n    return n % 2 == 0\n"}


@pytest.fixture
def data(tmp_path):
    """An MBPP file and a code-feedback annotation file in the formats of ../shared/data, written here."""
    mbpp = tmp_path / "mbpp.jsonl"
    mbpp.write_text("".join(json.dumps(r) + "\n" for r in MBPP_ROWS))
    problems = {int(p.task_id): p for p in load_mbpp(mbpp)}
    rows = []
    for tid in (1, 2):
        prompt = problems[tid].prompt
        rows.append({
            "task_id": str(tid), "prompt": prompt, "original_model_completion": prompt + WRONG_BODIES[tid],
            "Feedback": FEEDBACK[tid], "completion": RIGHT_BODIES[tid],
            "unedited_annotator_completion": prompt + RIGHT_BODIES[tid],
            "test": "def check(candidate):\n" + "".join(
                "    " + t.replace(problems[tid].entry_point, "candidate") + "\n" for t in problems[tid].tests),
            "passed": True, "result": "passed",
        })
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return mbpp, feedback, problems


def test_parse_task_ids():
    assert parse_task_ids("11-13,20, 12") == [11, 12, 13, 20]
    with pytest.raises(ValueError, match=r"config key 'test_tasks': cannot read '5-x'"):
        parse_task_ids("1,5-x", "test_tasks")
    with pytest.raises(ValueError, match="cannot read '9-3'"):
        parse_task_ids("9-3")


def test_config_checks_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"config key 'mbpp_path': no file at .*pass --mbpp_path"):
        CodeILFConfig(mbpp_path=str(tmp_path / "nope.jsonl"), output_dir=str(tmp_path / "run"))
    mbpp = tmp_path / "m.jsonl"
    mbpp.write_text("")
    with pytest.raises(ConfigError, match=r"config key 'eval_k': \[10\] needs"):
        CodeILFConfig(mbpp_path=str(mbpp), train_refiner=False, feedback_source="execution",
                      eval_samples=5, eval_k=[1, 10])
    assert not (tmp_path / "run").exists()


def test_pass_at_k_summary_uses_the_unbiased_estimator():
    rows = [{"task_id": 1, "passed": p} for p in (True, False, False, False)] + \
           [{"task_id": 2, "passed": False} for _ in range(4)]
    summary = pass_at_k_summary(rows, [1, 2])
    assert summary["pass@1"] == pytest.approx((1 / 4 + 0) / 2)
    assert summary["pass@2"] == pytest.approx((1 - 3 / 6 + 0) / 2)  # 1 - C(3,2)/C(4,2)
    assert summary["tasks_solved"] == 1 and summary["n_tasks"] == 2


def test_unit_test_selection_keeps_passing_programs_and_bad_code_does_not_stop_the_batch(data):
    _, _, problems = data
    p1, p2 = problems[1], problems[2]
    programs = [
        p1.prompt.rstrip() + "\n    return a + b\n",  # passes
        p1.prompt.rstrip() + "\n    return a - b\n",  # fails an assert
        p2.prompt.rstrip() + "\n    return n % 2 ==\n",  # does not parse
        p2.prompt.rstrip() + "\n    return n % 2 == 0\n",  # passes
    ]
    results = run_tests([p1, p1, p2, p2], programs, workers=2, progress=False)
    assert [r.passed for r in results] == [True, False, False, True]
    assert results[2].status == "failed" and "parse" in results[2].message
    candidates = [
        {"task_id": p.task_id, "policy_prompt": p.prompt.rstrip(), "completion": prog[len(p.prompt.rstrip()):],
         "passed": r.passed}
        for p, prog, r in zip([p1, p1, p2, p2], programs, results)
    ]
    candidates.append(dict(candidates[0]))  # the same passing refinement twice counts once
    kept = select_passing(candidates)
    assert [(k["task_id"], k["completion"]) for k in kept] == [("1", "\n    return a + b\n"),
                                                              ("2", "\n    return n % 2 == 0\n")]

    # The same selection through the Selector interface the summarization selectors share.
    selector = UnitTestSelector([p1, p2], workers=2, progress=False)
    assert isinstance(selector, Selector)
    items = [SelectionItem(code_prompt(p.prompt), "", "", tuple(prog[len(p.prompt.rstrip()):] for prog in progs))
             for p, progs in ((p1, programs[:2]), (p2, programs[2:]))]
    assert selector.score(items) == [[1.0, 0.0], [0.0, 1.0]]
    assert selector.select(items) == [0, 1]
    assert selector.results[1][0].status == "failed" and "parse" in selector.results[1][0].message


def test_refiner_examples_end_the_prompt_where_the_refinement_starts(data):
    from language_feedback.code_data import load_code_feedback

    _, feedback, problems = data
    examples = refiner_examples(load_code_feedback(feedback), [1])
    assert len(examples) == 1
    prompt, completion = examples[0]["prompt"], examples[0]["completion"]
    assert prompt.startswith("OLD CODE:\n") and FEEDBACK[1] in prompt and "return a - b" in prompt
    assert prompt.endswith("def add(a, b):") and completion.startswith("\n")  # the boundary is ":" | "\n"
    # the program π_Refine is trained to complete is the annotator's whole refined program
    assert prompt[prompt.rindex('"""\n' + "Add"):] + completion == problems[1].prompt + RIGHT_BODIES[1]


def test_critic_prompts_carry_program_and_test_result(tiny_lm_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    critic = CriticFeedback(model, tokenizer, max_new_tokens=6, progress=False)
    assert not critic.use_chat_template  # the tiny tokenizer has no chat template
    prompt = critic.prompt("def f():\n    return 1", "failed: assert f() == 2")
    assert prompt.startswith(code_critic_prompt("def f():\n    return 1", "failed: assert f() == 2"))
    failed = ExecResult("failed", "assert f() == 2", "", "", 0.0)
    out = critic([Draft(None, "def f():\n    return 1", failed), Draft(None, "def g(): pass", failed)])
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    with pytest.raises(ValueError, match="no chat template"):
        CriticFeedback(model, tokenizer, use_chat_template=True)


def _tiny_config(tmp_path, tiny_lm_path, mbpp, feedback) -> CodeILFConfig:
    # High learning rate, many epochs: the tiny model memorises the two refinements, so the round
    # really fixes programs and the fine-tuned policy really passes tests the base model fails.
    memorise = TrainingSettings(learning_rate=3e-3, num_train_epochs=30, per_device_train_batch_size=2, max_length=512, logging_steps=10, report_to=[])
    return CodeILFConfig(
        output_dir=str(tmp_path / "run"), mbpp_path=str(mbpp), code_feedback_path=str(feedback),
        refiner_train_tasks="1-2", policy_train_tasks="1-2,99", test_tasks="1-3", policy_model=tiny_lm_path,
        feedback_source="human", num_refinements=2, refine_temperature=0.0, eval_samples=2, eval_temperature=0.0,
        eval_k=[1, 2], max_new_tokens=12, generation_batch_size=8, sandbox_workers=2, refiner_sft=memorise,
        policy_sft=memorise, torch_threads=1, progress=False,
    )


def test_tiny_round_end_to_end_and_resume_after_a_failed_stage(tmp_path, tiny_lm_path, data, monkeypatch):
    torch.manual_seed(0)
    mbpp, feedback, problems = data
    config = _tiny_config(tmp_path, tiny_lm_path, mbpp, feedback)

    # First run: the policy fine-tuning stage dies (as a killed run would).
    real_sft = code_ilf.sft
    calls = {"sft": 0, "generate": 0}

    def sft_failing_on_policy(model, examples, output_dir, **kw):
        calls["sft"] += 1
        if "policy" in str(kw.get("trainer_dir")):
            raise RuntimeError("killed during policy fine-tuning")
        return real_sft(model, examples, output_dir, **kw)

    monkeypatch.setattr(code_ilf, "sft", sft_failing_on_policy)
    with pytest.raises(RuntimeError, match="killed"):
        CodeILF(config).run()
    run = tmp_path / "run"
    finished = ["eval_before", "refiner", "drafts", "feedback", "refinements"]
    assert all((run / s).is_dir() for s in finished)
    assert not (run / "policy").exists() and not list(run.glob(".policy.*"))  # nothing half-written
    mtimes = {s: (run / s / "summary.json").stat().st_mtime_ns for s in finished}

    # What the finished stages hold.
    before = json.loads((run / "eval_before" / "summary.json").read_text())
    assert before["pass@1"] == 0.0 and before["n_tasks"] == 3  # the untrained tiny model solves nothing
    drafts = json.loads((run / "drafts" / "summary.json").read_text())
    assert drafts["n_failing_distinct"] == 2 and drafts["missing_task_ids"] == ["99"]  # missing id: reported, run goes on
    finetune = read_jsonl(run / "refinements" / "finetune.jsonl")
    assert sorted(e["task_id"] for e in finetune) == ["1", "2"]  # π_Refine fixed both programs
    for example in finetune:  # only refinements that pass the unit tests were selected
        problem = problems[int(example["task_id"])]
        assert run_tests([problem], [example["prompt"] + example["completion"]], progress=False)[0].passed
    candidates = read_jsonl(run / "refinements" / "candidates.jsonl")
    assert len(candidates) == 2 * config.num_refinements

    # Rerun: earlier stages are not recomputed (no sft for the refiner, no generation before the policy stage).
    def counting_generate(*args, **kw):
        calls["generate"] += 1
        return real_generate(*args, **kw)

    def counting_sft(*args, **kw):
        calls["sft"] += 1
        return real_sft(*args, **kw)

    real_generate = code_ilf.generate
    monkeypatch.setattr(code_ilf, "sft", counting_sft)
    monkeypatch.setattr(code_ilf, "generate", counting_generate)
    calls["sft"] = 0
    results = CodeILF(config).run()
    assert calls["sft"] == 1  # only the policy
    assert calls["generate"] == 1  # only eval_after samples
    assert {s: (run / s / "summary.json").stat().st_mtime_ns for s in finished} == mtimes

    assert results["policy"]["trained"] and results["policy"]["n_examples"] == 2
    assert results["pass_at_k"]["pass@1"]["before"] == 0.0
    # the fine-tuned policy now writes the two memorised bodies: tasks 1 and 2 pass, task 3 still fails
    assert results["pass_at_k"]["pass@1"]["after"] == pytest.approx(2 / 3)
    assert json.loads((run / "results.json").read_text())["pass_at_k"] == results["pass_at_k"]

    # A third run does nothing; a changed config in the same directory is refused.
    calls["sft"] = calls["generate"] = 0
    CodeILF(config).run()
    assert calls == {"sft": 0, "generate": 0}
    config.num_refinements = 3
    with pytest.raises(RunDirectoryMismatch, match="num_refinements: 2 → 3"):
        CodeILF(config)


@pytest.mark.parametrize("source", ["execution", "critic"])
def test_feedback_on_sampled_drafts(tmp_path, tiny_lm_path, data, source, monkeypatch):
    mbpp, feedback, _ = data
    config = _tiny_config(tmp_path, tiny_lm_path, mbpp, feedback)
    config.feedback_source, config.train_refiner, config.num_drafts = source, False, 2
    config.draft_temperature, config.critic_max_new_tokens = 1.0, 8
    ilf = CodeILF(config)
    ilf.run_dir.stage("drafts", ilf.drafts)

    def no_rerun(*args, **kwargs):
        raise AssertionError("the feedback stage ran programs again instead of reading the drafts' results")

    monkeypatch.setattr(code_ilf, "run_tests", no_rerun)
    ilf.run_dir.stage("feedback", ilf.feedback)
    drafts = read_jsonl(tmp_path / "run" / "drafts" / "drafts.jsonl")
    assert len(drafts) == 2 * 2  # tasks 1 and 2 (99 is missing), 2 samples each
    rows = read_jsonl(tmp_path / "run" / "feedback" / "feedback.jsonl")
    failing = read_jsonl(tmp_path / "run" / "drafts" / "failing.jsonl")
    assert len(rows) == len(failing) > 0 and all(r["feedback_source"] == source for r in rows)
    assert [r["program"] for r in rows] == [r["program"] for r in failing]
    if source == "execution":
        # feedback in words from the test run of each program (the tiny model writes no valid body)
        assert all(r["feedback"].startswith(("The program", "The test")) for r in rows)
