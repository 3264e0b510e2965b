"""Online RL on MBPP with the execution reward: GRPO, or SDPO with the sandbox's failure messages as feedback.

    python recipes/grpo_code.py --config recipes/configs/grpo_code_cpu.yaml
    python recipes/grpo_code.py --config recipes/configs/grpo_code_cpu.yaml --algorithm sdpo
    accelerate launch --config_file recipes/accelerate/<config>.yaml recipes/grpo_code.py \\
        --config recipes/configs/grpo_code_gpu.yaml --mbpp_path /path/to/mbpp.jsonl

The reward is the fraction of a problem's unit tests the completion passes, judged by the sandbox where a
program cannot forge a pass; programs the sandbox could not judge are left out. Prints the reward, the pass
rate and the number of unjudged programs at every logging step. All the work is in ``language_feedback.grpo``.
"""

from __future__ import annotations

from language_feedback.grpo import CodeRL, CodeRLConfig
from rlhf.cli import run_recipe
from rlhf.config import load_config


def main(argv: list[str] | None = None) -> dict:
    config = load_config(CodeRLConfig, argv)
    result = CodeRL(config).run()
    if config.algorithm == "sdpo":
        print(f"environment feedback (sandbox failure messages) on {result['n_with_feedback']} problems")
    for row in result["per_step"]:
        cells = [f"{name} {value:.3f}" if value is not None else f"{name} n/a" for name, value in row.items()
                 if name != "step"]
        print(f"step {row['step']}: " + ", ".join(cells))
    print(f"policy: {result['policy']}")
    return result


if __name__ == "__main__":
    run_recipe(main)
