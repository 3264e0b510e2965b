"""ILF for code (Chen et al. 2023/2024): feedback → π_Refine refinements → unit-test selection → fine-tune π_θ.

One round, in resumable stages written atomically into a run directory (``rlhf.artifacts.RunDir``):

1. ``eval_before``  n samples per test task from π_θ, run against the unit tests; pass@k.
2. ``refiner``      π_Refine: fine-tune a model on (task, old program, feedback) → human refinement from the
                    code-feedback annotations of the refinement-training tasks, loss on refinement tokens only.
3. ``drafts``       programs to improve for the policy-training tasks: sampled from π_θ (``feedback_source`` critic or
                    execution) or the annotated programs (``human``); run against the tests (each full ``ExecResult``
                    is kept), failing ones kept.
4. ``feedback``     feedback in words on every failing program from one ``FeedbackProvider`` (critic LM, execution
                    results, or the annotation), read from the drafts' stored results (nothing is run again).
5. ``refinements``  k refinements per failing program from π_Refine; the unit-test selector (a ``Selector``) runs
                    them against the tests, and those that pass form the fine-tuning set (prompt → passing refinement).
6. ``policy``       π_θ fine-tuned on that set (unchanged when nothing passed, and the results say so).
7. ``eval_after``   as ``eval_before``, with the fine-tuned π_θ.

``results.json`` in the run directory collects the figures of every stage. A rerun with the same config skips
finished stages and redoes the unfinished one. Under ``accelerate launch`` every process takes part in generation
(prompts sharded), test execution (jobs sharded) and training; the main process writes the artifacts.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from language_feedback.finetune import sft
from language_feedback.generation import check_vllm, generate, load_generation_model
from language_feedback.prompts import CODE_STOP_STRINGS, code_completion, code_prompt, code_refine_prompt
from language_feedback.selectors import SelectionItem, Selector
from rlhf.artifacts import read_jsonl, write_json_atomic, write_jsonl_atomic
from rlhf.config import ConfigError, runtime_field
from rlhf.experiment import Experiment
from rlhf.metrics import mean_pass_at_k
from rlhf.training import LoraSettings, TrainingSettings

logger = logging.getLogger(__name__)

FeedbackSource = Literal["critic", "execution", "human"]


@dataclass
class CodeILFConfig:
    """Everything one ILF-for-code round depends on (the recipe loads it from YAML with ``rlhf.config``)."""

    output_dir: str = "runs/ilf_code"
    # Data: paths the user sets (the reference copies live outside the checkout, e.g. ../shared/data/).
    mbpp_path: str = "../shared/data/mbpp.jsonl"
    code_feedback_path: str = "../shared/data/mbpp_code_feedback.jsonl"
    # Task-id sets, e.g. "111-310" or "11-20,35". Defaults are the paper's splits.
    refiner_train_tasks: str = "111-310"
    policy_train_tasks: str = "311-974"
    test_tasks: str = "11-110"
    # Models: local path, hub id or embedded name (rlhf.models). refiner/critic default to the policy model.
    policy_model: str = "smollm2-135m-instruct"
    refiner_model: str | None = None
    critic_model: str | None = None
    train_refiner: bool = True  # False: the untrained refiner model is prompted directly
    feedback_source: FeedbackSource = "critic"
    # Sampling
    num_drafts: int = 1  # programs sampled per policy-training task
    draft_temperature: float = 0.8
    num_refinements: int = 4  # k refinements per failing program
    refine_temperature: float = 0.8
    eval_samples: int = 10  # n samples per test task for pass@k
    eval_temperature: float = 0.8
    eval_k: list[int] = field(default_factory=lambda: [1, 10])
    max_new_tokens: int = 128
    critic_max_new_tokens: int = 96
    generation_batch_size: int = runtime_field(16)  # sequences per forward pass
    # vLLM samples every program, critique and refinement instead of transformers (same prompts, stop strings and
    # output format; its own random draws); needs `pip install 'lf-rewards[vllm]'` and a GPU.
    use_vllm: bool = False
    vllm_gpu_memory_utilization: float = runtime_field(0.3)  # share of each GPU the vLLM engine may take
    # Execution
    sandbox_workers: int = runtime_field(2)
    sandbox_timeout_s: float = 10.0
    # Training
    refiner_sft: TrainingSettings = field(default_factory=TrainingSettings)
    policy_sft: TrainingSettings = field(default_factory=TrainingSettings)
    lora: LoraSettings | None = None  # None: fine-tune every weight
    seed: int = 0
    torch_threads: int | None = runtime_field(None)  # None: leave torch's default
    progress: bool = runtime_field(True)

    def __post_init__(self) -> None:
        for name in ("refiner_train_tasks", "policy_train_tasks", "test_tasks"):
            parse_task_ids(getattr(self, name), name)
        for name in ("num_drafts", "num_refinements", "eval_samples", "max_new_tokens", "generation_batch_size",
                     "sandbox_workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", key=name)
        check_vllm(self.use_vllm)
        bad_k = [k for k in self.eval_k if not 1 <= k <= self.eval_samples]
        if bad_k:
            raise ConfigError(f"{bad_k} needs 1 <= k <= eval_samples ({self.eval_samples})", key="eval_k")
        for name in ("mbpp_path",) + (("code_feedback_path",) if self.train_refiner or self.feedback_source == "human"
                                      else ()):
            path = Path(getattr(self, name))
            if not path.is_file():
                raise ConfigError(
                    f"no file at {path} (resolved: {path.resolve()}); pass --{name} /path/to/{path.name} "
                    "(the reference data is not part of the repository)", key=name)


def parse_task_ids(spec: str, field_name: str = "task ids") -> list[int]:
    """``"11-20,35"`` → ``[11, ..., 20, 35]`` (ranges inclusive, order kept, duplicates dropped)."""
    ids: list[int] = []
    for part in (p.strip() for p in str(spec).split(",")):
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                ids.extend(range(lo, hi + 1))
            else:
                ids.append(int(part))
        except ValueError:
            raise ConfigError(f"cannot read {part!r} in {spec!r}; expected ids or ranges like '11-20,35'",
                              key=field_name) from None
    return list(dict.fromkeys(ids))


# --------------------------------------------------------------------------------------------------
# Pieces used by the stages (public so that other loops and the tests can use them)
# --------------------------------------------------------------------------------------------------


def program_of(problem, completion: str) -> str:
    """The program that runs: the task prompt (docstring + signature) followed by the generated body."""
    return code_prompt(problem.prompt) + completion


def run_tests(problems: Sequence, programs: Sequence[str], *, workers: int = 2, timeout_s: float = 10.0,
              accelerator=None, progress: bool = True) -> list:
    """Run each program against its problem's unit tests in the sandbox; one ``ExecResult`` per program, in order.

    With several accelerate processes the jobs are split between them and the results gathered on every process.
    """
    from language_feedback.code_data import sandbox_job
    from language_feedback.sandbox import SandboxLimits, run_programs

    jobs = [sandbox_job(p, prog) for p, prog in zip(problems, programs, strict=True)]
    limits = SandboxLimits(timeout_s=timeout_s)
    sharded = accelerator is not None and accelerator.num_processes > 1
    if not sharded:
        return run_programs(jobs, workers=workers, limits=limits, progress=progress)
    from accelerate.utils import gather_object

    with accelerator.split_between_processes(jobs) as shard:
        local = run_programs(list(shard), workers=workers, limits=limits,
                             progress=progress and accelerator.is_main_process) if shard else []
    return gather_object(local)


def sample_and_test(model, tokenizer, problems: Sequence, *, num_samples: int, temperature: float,
                    max_new_tokens: int, generation_batch_size: int, seed: int, workers: int, timeout_s: float,
                    accelerator=None, progress: bool = True) -> list[dict]:
    """Sample ``num_samples`` bodies per problem and test each; one row per sample (task, completion, result)."""
    prompts = [code_prompt(p.prompt) for p in problems]
    completions = generate(
        model, tokenizer, prompts, num_return_sequences=num_samples, temperature=temperature,
        max_new_tokens=max_new_tokens, batch_size=max(1, generation_batch_size // num_samples), seed=seed,
        accelerator=accelerator, stop_strings=CODE_STOP_STRINGS, progress=progress,
    )
    flat = [(p, code_completion(c)) for p, cs in zip(problems, completions) for c in cs]
    results = run_tests([p for p, _ in flat], [program_of(p, c) for p, c in flat], workers=workers,
                        timeout_s=timeout_s, accelerator=accelerator, progress=progress)
    return [{"task_id": p.task_id, "completion": c, "program": program_of(p, c), "passed": r.passed,
             "result": asdict(r)} for (p, c), r in zip(flat, results)]


def pass_at_k_summary(rows: Sequence[dict], ks: Sequence[int]) -> dict[str, Any]:
    """Unbiased pass@k per task (Chen et al. 2021) averaged over tasks, from per-sample rows.

    Samples the sandbox could not judge (status ``error``: an infrastructure failure, not the program's)
    count neither as passed nor as failed; ``n_errors`` says how many there were.
    """
    judged = [r for r in rows if r.get("result", {}).get("status") != "error"]
    per_task: dict[Any, list[bool]] = {}
    for row in judged:
        per_task.setdefault(row["task_id"], []).append(bool(row["passed"]))
    if not per_task:
        raise ValueError("pass@k: no judged samples")
    n, c = [len(v) for v in per_task.values()], [sum(v) for v in per_task.values()]
    summary: dict[str, Any] = {"n_tasks": len(per_task), "n_samples": len(rows), "n_errors": len(rows) - len(judged)}
    for k in ks:  # pass@k needs k judged samples of every task: None (not a guess) when errors left fewer
        summary[f"pass@{k}"] = mean_pass_at_k(n, c, k) if k <= min(n) else None
        if summary[f"pass@{k}"] is None:
            logger.warning("pass@%d: a task has only %d judged samples (sandbox errors); not computed", k, min(n))
    summary["tasks_solved"] = sum(x > 0 for x in c)
    return summary


def refiner_examples(records: Sequence, task_ids: Sequence[int]) -> list[dict[str, str]]:
    """π_Refine training pairs from code-feedback annotations: (task, old program, feedback) → human refinement."""
    wanted = {str(t) for t in task_ids}
    return [
        {"prompt": code_refine_prompt(r.prompt, r.original_program, r.feedback),
         "completion": code_completion(r.refinement_completion)}
        for r in records
        if str(r.task_id) in wanted and r.feedback.strip() and r.refinement_completion.strip()
    ]


class UnitTestSelector(Selector):
    """Scores each candidate body 1.0 if the program it completes passes the problem's unit tests, else 0.0.

    An item's ``context`` is the policy prompt of its problem (``code_prompt(problem.prompt)``). Every
    candidate of a batch runs in the sandbox in one call; the results stay in :attr:`results` (per item,
    per candidate) for the run's records.
    """

    name = "unit_tests"

    def __init__(self, problems: Sequence, *, workers: int = 2, timeout_s: float = 10.0, accelerator=None,
                 progress: bool = True):
        self.by_prompt = {code_prompt(p.prompt): p for p in problems}
        self.workers, self.timeout_s, self.accelerator, self.progress = workers, timeout_s, accelerator, progress
        self.results: list[list] = []

    def score(self, items: Sequence[SelectionItem]) -> list[list[float]]:
        missing = [i for i, item in enumerate(items) if item.context not in self.by_prompt]
        if missing:
            raise ValueError(f"unit-test selector: items {missing[:5]} do not name a known problem's prompt")
        flat = [(self.by_prompt[item.context], c) for item in items for c in item.candidates]
        results = run_tests([p for p, _ in flat], [program_of(p, c) for p, c in flat], workers=self.workers,
                            timeout_s=self.timeout_s, accelerator=self.accelerator, progress=self.progress)
        self.results, pos = [], 0
        for item in items:
            self.results.append(results[pos : pos + len(item.candidates)])
            pos += len(item.candidates)
        return [[1.0 if r.passed else 0.0 for r in item_results] for item_results in self.results]


def select_passing(candidates: Sequence[dict]) -> list[dict[str, str]]:
    """The fine-tuning set: prompt → refinement for refinements that passed, one per distinct program."""
    seen, kept = set(), []
    for c in candidates:
        key = (str(c["task_id"]), c["completion"].strip())
        if c["passed"] and key not in seen:
            seen.add(key)
            kept.append({"task_id": c["task_id"], "prompt": c["policy_prompt"], "completion": c["completion"]})
    return kept


# --------------------------------------------------------------------------------------------------
# The round
# --------------------------------------------------------------------------------------------------


class CodeILF(Experiment):
    """One round of ILF for code in a run directory; :meth:`run` executes (or resumes) every stage."""

    STAGES = ("eval_before", "refiner", "drafts", "feedback", "refinements", "policy", "eval_after")
    config: CodeILFConfig

    def __init__(self, config: CodeILFConfig, accelerator=None):
        super().__init__(config, state=accelerator)
        self.accelerator = accelerator
        self._models: dict[str, tuple[Any, Any]] = {}
        self._problems: dict[str, Any] | None = None
        self._records: list | None = None

    # -- plumbing ---------------------------------------------------------------------------------

    def _model(self, name_or_path: str):
        """Load (once) a causal LM for generation, on the accelerator's device (a vLLM engine with ``use_vllm``)."""
        c = self.config
        if name_or_path not in self._models:
            if c.use_vllm:
                self._drop_models()  # one vLLM engine at a time on the GPU
            device = str(self.accelerator.device) if self.accelerator is not None else None
            self._models[name_or_path] = load_generation_model(
                name_or_path, use_vllm=c.use_vllm, device=device,
                vllm_gpu_memory_utilization=c.vllm_gpu_memory_utilization)
        return self._models[name_or_path]

    def _drop_models(self) -> None:
        for model, _ in self._models.values():
            if hasattr(model, "close"):
                model.close()  # a vLLM engine
        self._models.clear()  # free memory before training

    @property
    def problems(self) -> dict[str, Any]:
        if self._problems is None:
            from language_feedback.code_data import load_mbpp

            self._problems = {str(p.task_id): p for p in load_mbpp(self.config.mbpp_path)}
        return self._problems

    @property
    def records(self) -> list:
        if self._records is None:
            from language_feedback.code_data import load_code_feedback

            self._records = list(load_code_feedback(self.config.code_feedback_path))
        return self._records

    def split(self, field_name: str) -> tuple[list, list[str]]:
        """Problems of a task-id field, and the ids missing from the problem set (reported, not fatal)."""
        ids = parse_task_ids(getattr(self.config, field_name), field_name)
        found = [self.problems[str(i)] for i in ids if str(i) in self.problems]
        missing = [str(i) for i in ids if str(i) not in self.problems]
        if missing:
            logger.warning("%s: %d task id(s) not in %s, skipped: %s", field_name, len(missing), self.config.mbpp_path,
                           ", ".join(missing[:20]))
        if not found:
            raise ValueError(f"{field_name}: none of the task ids {getattr(self.config, field_name)!r} "
                             f"is in {self.config.mbpp_path}")
        return found, missing

    def _sandbox_kwargs(self) -> dict[str, Any]:
        c = self.config
        return {"workers": c.sandbox_workers, "timeout_s": c.sandbox_timeout_s, "accelerator": self.accelerator,
                "progress": c.progress}

    def _sample_kwargs(self) -> dict[str, Any]:
        c = self.config
        return {"max_new_tokens": c.max_new_tokens, "generation_batch_size": c.generation_batch_size,
                **self._sandbox_kwargs()}

    @property
    def policy_path(self) -> str:
        """π_θ after fine-tuning (the policy stage's model), or the base model when nothing was trained."""
        trained = self.run_dir.stage_path("policy") / "model"
        return str(trained) if trained.is_dir() else self.config.policy_model

    def feedback_provider(self):
        """The :class:`~language_feedback.code_feedback.FeedbackProvider` that ``feedback_source`` names."""
        from language_feedback.code_feedback import ExecutionFeedback, HumanFeedback

        c = self.config
        if c.feedback_source == "human":
            return HumanFeedback(self.records)
        if c.feedback_source == "execution":
            return ExecutionFeedback()
        from language_feedback.critic import CriticFeedback

        model, tokenizer = self._model(c.critic_model or c.policy_model)
        return CriticFeedback(model, tokenizer, max_new_tokens=c.critic_max_new_tokens,
                              batch_size=c.generation_batch_size, accelerator=self.accelerator, progress=c.progress)

    # -- stages -----------------------------------------------------------------------------------

    def _evaluate(self, model_name: str, out: Path) -> None:
        c = self.config
        problems, missing = self.split("test_tasks")
        model, tokenizer = self._model(model_name)
        rows = sample_and_test(model, tokenizer, problems, num_samples=c.eval_samples,
                               temperature=c.eval_temperature, seed=c.seed, **self._sample_kwargs())
        write_jsonl_atomic(out / "samples.jsonl", rows)
        write_json_atomic(out / "summary.json", {"model": model_name, "temperature": c.eval_temperature,
                                                 **pass_at_k_summary(rows, c.eval_k), "missing_task_ids": missing})

    def eval_before(self, out: Path) -> None:
        self._evaluate(self.config.policy_model, out)

    def refiner(self, out: Path) -> None:
        c = self.config
        base = c.refiner_model or c.policy_model
        if not c.train_refiner:
            write_json_atomic(out / "summary.json", {"trained": False, "model": base})
            return
        examples = refiner_examples(self.records, parse_task_ids(c.refiner_train_tasks, "refiner_train_tasks"))
        if not examples:
            raise ValueError(f"refiner_train_tasks: no annotation in {c.code_feedback_path} has a task id in "
                             f"{c.refiner_train_tasks!r} with non-empty feedback and refinement")
        self._drop_models()
        metrics = sft(base, examples, out / "model", lora=c.lora, trainer_dir=self.run_dir.path / "refiner.trainer",
                      settings=c.refiner_sft)
        write_jsonl_atomic(out / "train.jsonl", examples)
        write_json_atomic(out / "summary.json", {"trained": True, "base_model": base, **metrics})

    def drafts(self, out: Path) -> None:
        c = self.config
        problems, missing = self.split("policy_train_tasks")
        if c.feedback_source == "human":
            wanted = {str(p.task_id) for p in problems}
            records = [r for r in self.records if str(r.task_id) in wanted]
            if not records:
                raise ValueError(f"policy_train_tasks: no annotation in {c.code_feedback_path} for these tasks "
                                 "(feedback_source 'human' improves the annotated programs)")
            chosen = [self.problems[str(r.task_id)] for r in records]
            programs = [r.original_program for r in records]
            results = run_tests(chosen, programs, **self._sandbox_kwargs())
            rows = [{"task_id": p.task_id, "program": prog, "passed": r.passed, "result": asdict(r)}
                    for p, prog, r in zip(chosen, programs, results)]
        else:
            model, tokenizer = self._model(c.policy_model)
            rows = sample_and_test(model, tokenizer, problems, num_samples=c.num_drafts,
                                   temperature=c.draft_temperature, seed=c.seed + 1, **self._sample_kwargs())
        # "error": the sandbox could not judge the program (e.g. tests that do not parse); not a failing program.
        failing = list({(str(r["task_id"]), r["program"]): r for r in rows
                        if not r["passed"] and r["result"]["status"] != "error"}.values())
        write_jsonl_atomic(out / "drafts.jsonl", rows)
        write_jsonl_atomic(out / "failing.jsonl", failing)
        write_json_atomic(out / "summary.json", {
            "source": "annotations" if c.feedback_source == "human" else "policy samples",
            "n_programs": len(rows), "n_passing": sum(r["passed"] for r in rows),
            "n_errors": sum(r["result"]["status"] == "error" for r in rows),
            "n_failing_distinct": len(failing), "missing_task_ids": missing,
        })

    def feedback(self, out: Path) -> None:
        from language_feedback.code_feedback import Draft
        from language_feedback.sandbox import ExecResult

        failing = read_jsonl(self.run_dir.stage_path("drafts") / "failing.jsonl")
        drafts = [Draft(self.problems[str(r["task_id"])], r["program"], ExecResult(**r["result"])) for r in failing]
        provider = self.feedback_provider()
        texts = provider(drafts) if drafts else []
        rows = [{**r, "feedback": t, "feedback_source": provider.name} for r, t in zip(failing, texts)]
        write_jsonl_atomic(out / "feedback.jsonl", rows)
        write_json_atomic(out / "summary.json", {"source": provider.name, "n": len(rows),
                                                 "n_empty": sum(not t.strip() for t in texts)})

    def refinements(self, out: Path) -> None:
        c = self.config
        rows = read_jsonl(self.run_dir.stage_path("feedback") / "feedback.jsonl")
        usable = [r for r in rows if r["feedback"].strip()]  # empty feedback: nothing to refine with (counted)
        refiner_dir = self.run_dir.stage_path("refiner") / "model"
        refiner_name = str(refiner_dir) if refiner_dir.is_dir() else (c.refiner_model or c.policy_model)
        candidates: list[dict] = []
        if usable:
            problems = [self.problems[str(r["task_id"])] for r in usable]
            prompts = [code_refine_prompt(p.prompt, r["program"], r["feedback"]) for p, r in zip(problems, usable)]
            model, tokenizer = self._model(refiner_name)
            outputs = generate(
                model, tokenizer, prompts, num_return_sequences=c.num_refinements, temperature=c.refine_temperature,
                max_new_tokens=c.max_new_tokens, batch_size=max(1, c.generation_batch_size // c.num_refinements),
                seed=c.seed + 2, accelerator=self.accelerator, stop_strings=CODE_STOP_STRINGS, progress=c.progress,
            )
            items = [SelectionItem(context=code_prompt(p.prompt), initial=r["program"], feedback=r["feedback"],
                                   candidates=tuple(code_completion(o) for o in outs))
                     for p, r, outs in zip(problems, usable, outputs)]
            selector = UnitTestSelector(problems, **self._sandbox_kwargs())
            scores = selector.score(items)
            candidates = [
                {"task_id": p.task_id, "old_program": r["program"], "feedback": r["feedback"],
                 "policy_prompt": item.context, "completion": completion, "score": score, "passed": result.passed,
                 "result": asdict(result)}
                for p, r, item, item_scores, item_results in zip(problems, usable, items, scores, selector.results)
                for completion, score, result in zip(item.candidates, item_scores, item_results)
            ]
        selected = select_passing(candidates)
        write_jsonl_atomic(out / "candidates.jsonl", candidates)
        write_jsonl_atomic(out / "finetune.jsonl", selected)
        write_json_atomic(out / "summary.json", {
            "refiner": refiner_name, "selector": UnitTestSelector.name, "n_programs": len(rows),
            "n_skipped_empty_feedback": len(rows) - len(usable), "n_refinements": len(candidates),
            "n_passing": sum(x["passed"] for x in candidates),
            "n_programs_fixed": len({(str(x["task_id"]), x["old_program"]) for x in candidates if x["passed"]}),
            "n_finetune_examples": len(selected),
        })

    def policy(self, out: Path) -> None:
        c = self.config
        examples = read_jsonl(self.run_dir.stage_path("refinements") / "finetune.jsonl")
        if not examples:
            write_json_atomic(out / "summary.json", {
                "trained": False, "reason": "no refinement passed the unit tests; π_θ is unchanged",
            })
            return
        self._drop_models()
        pairs = [{"prompt": e["prompt"], "completion": e["completion"]} for e in examples]
        metrics = sft(c.policy_model, pairs, out / "model", lora=c.lora, trainer_dir=self.run_dir.path / "policy.trainer",
                      settings=c.policy_sft)
        write_json_atomic(out / "summary.json", {"trained": True, "base_model": c.policy_model, **metrics})

    def eval_after(self, out: Path) -> None:
        if not (self.run_dir.stage_path("policy") / "model").is_dir():
            # Same model as before: its evaluation stands (sampling it again would only add noise and time).
            summary = json.loads((self.run_dir.stage_path("eval_before") / "summary.json").read_text())
            write_json_atomic(out / "summary.json", {**summary, "note": "policy unchanged; copied from eval_before"})
            return
        self._drop_models()
        self._evaluate(self.policy_path, out)

    # -- driver -----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run (or resume) every stage; write and return ``results.json``."""
        c = self.config
        if c.torch_threads:
            import torch

            torch.set_num_threads(c.torch_threads)
        for name in self.STAGES:
            self.run_dir.stage(name, getattr(self, name))
        results = self.results()
        if self.run_dir.is_main:
            write_json_atomic(self.run_dir.path / "results.json", results)
        self.run_dir.wait()
        return results

    def results(self) -> dict[str, Any]:
        """Every finished stage's summary, plus pass@k before/after side by side."""
        out: dict[str, Any] = {"output_dir": str(self.run_dir.path), "feedback_source": self.config.feedback_source}
        for name in self.STAGES:
            path = self.run_dir.stage_path(name) / "summary.json"
            if path.is_file():
                out[name] = json.loads(path.read_text())
        if "eval_before" in out and "eval_after" in out:
            out["pass_at_k"] = {
                f"pass@{k}": {"before": out["eval_before"][f"pass@{k}"], "after": out["eval_after"][f"pass@{k}"]}
                for k in self.config.eval_k
            }
        return out


def run_code_ilf(config: CodeILFConfig, accelerator=None) -> dict[str, Any]:
    """Run (or resume) one ILF-for-code round as configured; returns the results also written to ``results.json``."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return CodeILF(config, accelerator).run()
