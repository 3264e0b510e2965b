"""ILF for code (Chen et al. 2023/2024): one round of feedback → π_Refine refinements → unit-test selection →
fine-tuning π_θ, with pass@k before and after. All the work is in ``language_feedback.code_ilf``.

    python recipes/ilf_code.py --config recipes/configs/ilf_code_cpu.yaml
    accelerate launch --config_file recipes/accelerate/multi_gpu.yaml recipes/ilf_code.py \\
        --config recipes/configs/ilf_code_gpu.yaml --mbpp_path /path/to/mbpp.jsonl
    accelerate launch --multi_gpu --num_processes 2 recipes/ilf_code.py --config ...   # 2 CPU processes (gloo)

Any config key can be overridden on the command line (``--eval_samples 20``,
``--policy_sft.learning_rate 1e-5``). A rerun with the same config and ``output_dir`` resumes at the first
unfinished stage. Prints pass@k before/after and writes ``<output_dir>/results.json``.
"""

from __future__ import annotations

import json

import torch
from accelerate import Accelerator

from language_feedback.code_ilf import CodeILFConfig, run_code_ilf
from rlhf.cli import run_recipe
from rlhf.config import load_config


def main(argv: list[str] | None = None) -> dict:
    config = load_config(CodeILFConfig, argv)
    # cpu=True without a GPU: under `accelerate launch --multi_gpu --num_processes N` on a CPU machine the
    # processes then form one gloo group (MULTI_CPU) instead of N unrelated single-process runs.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    try:
        results = run_code_ilf(config, accelerator)
    finally:
        accelerator.end_training()  # destroys the process group: else gloo's threads can abort the process at exit
    if accelerator.is_main_process:
        for stage in ("refiner", "drafts", "feedback", "refinements", "policy"):
            print(f"{stage}: {json.dumps(results.get(stage, {}), ensure_ascii=False)}")
        for name, pair in results.get("pass_at_k", {}).items():
            before, after = (f"{v:.3f}" if v is not None else "n/a" for v in (pair["before"], pair["after"]))
            print(f"{name}: before {before} after {after}")
        print(f"results: {config.output_dir}/results.json")
    return results


if __name__ == "__main__":
    run_recipe(main)
