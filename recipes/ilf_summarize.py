"""ILF for summarization (Scheurer et al. 2023): rounds of refine-with-feedback → select → fine-tune.

    python recipes/ilf_summarize.py --config recipes/configs/ilf_summarize_cpu.yaml
    accelerate launch --config_file recipes/accelerate/fsdp.yaml recipes/ilf_summarize.py \\
        --config recipes/configs/ilf_summarize_gpu.yaml --data /path/to/slf5k

``--data`` is an SLF5K-format JSONL file, a directory of ``<split>.jsonl`` files, or ``JeremyAlain/SLF5K``
where a dataset hub is reachable. Any key can be overridden (``--ilf.selector instructrm``,
``--ilf.sft.learning_rate 1e-5``). A rerun with the same config and ``output_dir`` resumes at the first
unfinished stage. Prints one line per round and the paths of the final model and of the feedback-derived
comparisons (input for ``recipes/train_reward_model.py``). All the work is in ``language_feedback.summarization_ilf``.
"""

from __future__ import annotations

import json

import torch
from accelerate import Accelerator

from language_feedback.summarization_ilf import ILFResult, SummarizationILF, SummarizationILFConfig
from rlhf.cli import run_recipe
from rlhf.config import load_config


def main(argv: list[str] | None = None) -> ILFResult:
    config = load_config(SummarizationILFConfig, argv)
    # cpu=True without a GPU: processes started by `accelerate launch --multi_gpu` then form one gloo group.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    try:
        result = SummarizationILF.from_config(config, accelerator).run()
    finally:
        accelerator.end_training()  # destroys the process group: else gloo's threads can abort the process at exit
    if accelerator.is_main_process:
        for m in result.metrics:
            print(f"round {m['round']}: {json.dumps(m, ensure_ascii=False)}")
        print(f"final model: {result.final_model}")
        print(f"feedback-derived comparisons: {' '.join(str(p) for p in result.comparisons)}")
    return result


if __name__ == "__main__":
    run_recipe(main)
