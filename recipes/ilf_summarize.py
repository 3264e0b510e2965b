"""ILF for summarization (Scheurer et al. 2023): rounds of refine-with-feedback → select → fine-tune.

    python recipes/ilf_summarize.py --config recipes/configs/ilf_summarize_cpu.yaml
    accelerate launch --config_file recipes/accelerate/fsdp.yaml recipes/ilf_summarize.py \\
        --config recipes/configs/ilf_summarize_gpu.yaml --data /path/to/slf5k

``--data`` is an SLF5K-format JSONL file, a directory of ``<split>.jsonl`` files, or ``JeremyAlain/SLF5K``
where a dataset hub is reachable. Any key can be overridden (``--ilf.selector instructrm``,
``--ilf.sft.learning_rate 1e-5``). A rerun with the same config and ``run_dir`` resumes at the first unfinished stage.
Prints one line per round and the paths of the final model and of the feedback-derived comparisons
(input for ``recipes/train_reward_model.py``). All the work is in ``language_feedback.summarization_ilf``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator

from language_feedback.summarization_data import HUB_ID, load_slf5k, subsample
from language_feedback.summarization_ilf import ILFConfig, ILFResult, run_ilf
from rlhf.config import load_config


@dataclass
class ILFSummarizeConfig:
    data: str = ""  # SLF5K-format JSONL file, directory of <split>.jsonl, or JeremyAlain/SLF5K
    split: str = "train"
    data_seed: int = 0  # which feedback samples are drawn (nested across sample counts)
    run_dir: str = "runs/ilf_summarize"
    ilf: ILFConfig = field(default_factory=ILFConfig)


def main(argv: list[str] | None = None) -> ILFResult:
    config = load_config(ILFSummarizeConfig, argv)
    if not config.data:
        raise SystemExit(
            "no data: pass --data with an SLF5K-format JSONL file, a directory of <split>.jsonl files, "
            f"or {HUB_ID!r} where a dataset hub is reachable (e.g. --data recipes/data/slf5k_demo, "
            "a small synthetic demo set)"
        )
    # cpu=True without a GPU: processes started by `accelerate launch --multi_gpu` then form one gloo group.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s")
    try:
        samples = load_slf5k(config.data, config.split)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    samples = subsample(samples, config.ilf.rounds * config.ilf.samples_per_round, seed=config.data_seed)
    result = run_ilf(config.ilf, samples, config.run_dir, accelerator=accelerator)
    accelerator.end_training()  # destroys the process group: else gloo's threads can abort the process at exit
    if accelerator.is_main_process:
        for m in result.metrics:
            print(f"round {m['round']}: {json.dumps(m)}")
        print(f"final model: {result.final_model}")
        print(f"feedback-derived comparisons: {' '.join(str(p) for p in result.comparisons)}")
    return result


if __name__ == "__main__":
    main()
