"""Win rate of methods' summaries against reference summaries, judged by a reward model or an LM judge.

    python recipes/eval/win_rate.py --config recipes/configs/win_rate_cpu.yaml \\
        --summaries [ilf=runs/x/ilf.jsonl,sft=runs/x/sft.jsonl] --judge_model runs/reward_model_cpu
    python recipes/eval/win_rate.py --config recipes/configs/win_rate_cpu.yaml --judge lm \\
        --judge_model smollm2-135m-instruct --summaries [runs/x/ilf.jsonl]

Each ``summaries`` entry is a JSONL file of ``{"id", "summary"}`` rows (other keys are ignored, so
the ``summaries.jsonl`` files of ``recipes/eval/ilf_sample_efficiency.py`` work as they are),
optionally prefixed ``name=`` to name the method (default: the file's stem). Rows are matched by
``id`` to the posts of ``split`` in the SLF5K-format ``data``; the reference is the post's
``reference_field``. ``judge: reward_model`` compares reward-model scores of the two summaries;
``judge: lm`` asks a causal LM which summary is better in both orders (``rlhf.preference``).
All the work is in ``language_feedback.evaluation``. Prints one line per method (win rate, 95% bootstrap CI from ``rlhf.metrics.win_rate``) and writes
``results.json``, ``results.csv``, ``outcomes.jsonl`` and ``win_rate.png`` to ``output_dir``.
"""

from __future__ import annotations

from language_feedback.evaluation import WinRateConfig, evaluate_win_rate, win_rate_line
from rlhf.cli import run_recipe
from rlhf.config import load_config


def main(argv: list[str] | None = None) -> list[dict]:
    config = load_config(WinRateConfig, argv)
    rows = evaluate_win_rate(config)
    print("\n".join(map(win_rate_line, rows)), f"\nwrote results.json, results.csv, outcomes.jsonl and win_rate.png to "
          f"{config.output_dir}")
    return rows


if __name__ == "__main__":
    run_recipe(main)
