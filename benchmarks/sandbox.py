"""Sandboxed execution vs. the unsandboxed baseline on the 974 MBPP reference solutions, plus agreement checks.

Baseline (what the ILF paper's code did): a forked ``multiprocessing.Process`` per program running ``exec``
on program + tests, pass = exit code 0, 2 at a time. Sandbox: :func:`language_feedback.sandbox.run_programs`
with 2 workers, fork servers started inside the timed region. Both run in this process, interleaved,
``--repeats`` times each; the figure uses each method's fastest run (the machine is shared and noisy).

Also checks, on the real data in ../shared/data:
- mbpp_reference_agreement: sandbox pass/fail == plain-Python (baseline) pass/fail, per reference solution
  (the sandbox's verdicts come from the caller or the trusted harness, never from the program's process);
- feedback_annotation_agreement: on mbpp_code_feedback.jsonl, the human refinement passes and the
  original model program fails, as annotated.

Usage: python benchmarks/sandbox.py [--mbpp PATH] [--feedback PATH] [--repeats N] [--workers N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import threading
import time
from collections import Counter
from pathlib import Path

from language_feedback.code_data import load_code_feedback, load_mbpp, sandbox_job
from language_feedback.sandbox import SandboxJob, SandboxLimits, run_programs, sandbox_isolation, shutdown

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# Generous limits for both sides: MBPP task 123's reference solution needs 4-8 s on a busy 2-core
# machine, and pass/fail must not depend on how busy the machine is.
TIMEOUT_S = 60.0
LIMITS = SandboxLimits(timeout_s=TIMEOUT_S, cpu_time_s=int(TIMEOUT_S))


def _exec_job(source: str) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # like the sandbox, keep the programs' output (and tracebacks) off the terminal
    os.dup2(devnull, 2)
    exec(source, {"__name__": "__sandbox__"})  # noqa: S102 - the unsandboxed baseline, on reference code only


def _baseline_one(job: SandboxJob) -> bool:
    process = multiprocessing.get_context("fork").Process(target=_exec_job, args=(f"{job.setup}\n{job.program}\n{job.tests}",))
    process.start()
    process.join(TIMEOUT_S)
    if process.is_alive():
        process.kill()
        process.join()
        return False
    return process.exitcode == 0


def run_baseline(jobs: list[SandboxJob], workers: int) -> tuple[list[bool], float]:
    # Plain threads, not a ThreadPoolExecutor: a process forked from an executor thread runs the
    # executor's exit hook on its way out and ends with exit code 1 whatever the program did.
    passed: list[bool] = [False] * len(jobs)
    todo = queue.SimpleQueue()
    for i in range(len(jobs)):
        todo.put(i)

    def worker() -> None:
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            passed[i] = _baseline_one(jobs[i])

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return passed, time.perf_counter() - start


def run_sandbox(jobs: list[SandboxJob], workers: int) -> tuple[list, float]:
    shutdown()  # cold start: starting the fork servers is part of the measured cost
    start = time.perf_counter()
    results = run_programs(jobs, workers=workers, limits=LIMITS, progress=False)
    return results, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mbpp", default=str(DATA / "mbpp.jsonl"))
    parser.add_argument("--feedback", default=str(DATA / "mbpp_code_feedback.jsonl"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    problems = load_mbpp(args.mbpp)
    jobs = [sandbox_job(p, p.reference_code) for p in problems]
    print(f"isolation: {sandbox_isolation()}")
    print(f"programs: {len(jobs)} MBPP reference solutions, workers: {args.workers}, cpus: {os.cpu_count()}")
    baseline_times, sandbox_times = [], []
    for repeat in range(args.repeats):
        baseline_passed, t_base = run_baseline(jobs, args.workers)
        results, t_sandbox = run_sandbox(jobs, args.workers)
        baseline_times.append(t_base)
        sandbox_times.append(t_sandbox)
        print(f"repeat {repeat}: baseline {t_base:.2f} s ({len(jobs) / t_base:.1f} prog/s), "
              f"sandbox {t_sandbox:.2f} s ({len(jobs) / t_sandbox:.1f} prog/s)")
    agree = [r.passed == b for r, b in zip(results, baseline_passed)]
    print(f"baseline passed: {sum(baseline_passed)}/{len(jobs)}, sandbox passed: {sum(r.passed for r in results)}/{len(jobs)}")
    print(f"judged by: {dict(Counter(r.judged_by for r in results))}, statuses: {dict(Counter(r.status for r in results))}")
    for problem, result in zip(problems, results):
        if not result.passed:
            print(f"  task {problem.task_id} reference solution: sandbox {result.status}: "
                  f"{result.message.splitlines()[0] if result.message else ''}")
    for problem, result, base, same in zip(problems, results, baseline_passed, agree):
        if not same:
            print(f"  disagreement on task {problem.task_id}: baseline passed={base}, sandbox {result.status}: "
                  f"{result.message.splitlines()[0] if result.message else ''}")

    records = load_code_feedback(args.feedback)
    feedback_jobs = [sandbox_job(r, r.refinement) for r in records] + [sandbox_job(r, r.original_program) for r in records]
    feedback_results = run_programs(feedback_jobs, workers=args.workers, limits=LIMITS,
                                    progress=False)
    refined, original = feedback_results[: len(records)], feedback_results[len(records):]
    annotation_ok = [r.passed and not o.passed for r, o in zip(refined, original)]
    print(f"feedback annotations: refinements passing {sum(r.passed for r in refined)}/{len(records)}, "
          f"original programs failing {sum(not o.passed for o in original)}/{len(records)}")
    for record, r, o, ok in zip(records, refined, original, annotation_ok):
        if not ok:
            print(f"  annotation line {record.line} (task {record.task_id}): refinement {r.status} "
                  f"({r.message.splitlines()[0] if r.message else ''}), original {o.status}")

    ratio = min(baseline_times) / min(sandbox_times)
    print(f"mbpp_reference_agreement: {sum(agree) / len(agree):.4f} (target >= 1.0)")
    print(f"feedback_annotation_agreement: {sum(annotation_ok) / len(annotation_ok):.4f} (target >= 1.0)")
    print(f"sandbox_vs_unsandboxed: {ratio:.3f} (target >= 1.0)")


if __name__ == "__main__":
    main()
