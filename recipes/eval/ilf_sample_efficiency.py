"""Sample efficiency of ILF against its baselines: win rate vs. reference summaries at several feedback-sample counts.

All the work is in ``language_feedback.sample_efficiency``.

    python recipes/eval/ilf_sample_efficiency.py --config recipes/configs/ilf_summarize_sample_efficiency_cpu.yaml
    python recipes/eval/ilf_sample_efficiency.py --config ... --data /path/to/slf5k --sample_counts [100,1000,5000]

For each count n (nested subsamples of the train split's feedback samples, ``data_seed``) and each method:

- ``ilf``: one ILF round on the n samples (``language_feedback.summarization_ilf``, settings under ``ilf``);
- ``sft_human``: fine-tune on summarize-prompt → the people's ideal summaries of the same n posts;
- ``sft_initial``: fine-tune on summarize-prompt → the initial summaries the feedback was written on;
- ``best_of_n``: a Bradley–Terry reward model trained on the n samples' human comparisons picks the best of
  ``best_of`` samples of the base model (``rlhf.preference``, ``rlhf.best_of_n``);
- ``ilf_best_of_n``: the same reward model picks the best of ``best_of`` samples of the ILF model,

each method's greedy (or best-of) summaries of the test posts are judged against the test split's TL;DR
reference summaries by a judge reward model (``judge_reward_model``, or one trained here on all train
comparisons), giving a win rate with a 95% bootstrap CI (``rlhf.metrics.win_rate``). The base model's
zero-shot win rate is the n = 0 point. A judge trained here has seen every best-of-N reward model's comparisons
(at the largest count, exactly the same ones), so the best-of-N points are optimistic (a warning says so). Every (method, n) is a stage of a resumable run directory.
Prints one line per point and writes ``results.csv``, ``results.json`` (with the ids of each count's train
samples) and ``sample_efficiency.png`` to ``output_dir``. ``sample_counts`` and ``methods`` are not part of the run's
identity: rerunning with more counts or methods reuses the finished stages.
"""

from __future__ import annotations

from language_feedback.sample_efficiency import SampleEfficiencyConfig, SummarizationSampleEfficiency
from rlhf.cli import run_recipe
from rlhf.config import load_config


def main(argv: list[str] | None = None) -> list[dict]:
    config = load_config(SampleEfficiencyConfig, argv)
    experiment = SummarizationSampleEfficiency(config)
    results = experiment.run()
    for r in results:
        print(f"{r['method']} n={r['n']}: win rate vs reference {r['value']:.2f} [{r['low']:.2f}, {r['high']:.2f}] "
              f"(n_test={len(experiment.test)})")
    print(f"wrote results.csv, results.json and sample_efficiency.png to {config.output_dir}")
    return results


if __name__ == "__main__":
    run_recipe(main)
