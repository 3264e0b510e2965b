"""Held-out accuracy of a Bradley–Terry reward model trained on comparisons derived from human code feedback.

    python benchmarks/reward_model.py [--data ../shared/data/mbpp_code_feedback.jsonl] [--model smollm2-135m-instruct]

Comparisons: the annotator's refined program ≻ the model's incorrect program (Chen et al. 2023; 195
annotations), split by MBPP task into train and held-out parts with a seed. The same process measures
two baselines on the held-out part: the untrained reward model (random score head) and "the longer
program wins" (refinements are longer in 62% of all pairs). Prints the baselines, then one figure line.
This is an accuracy measurement, not a speed one; it runs for about 15-30 minutes on 2 shared CPU cores.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch

from language_feedback.code_data import load_code_feedback
from rlhf.preference import train_reward_model
from rlhf.training import TrainingSettings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp_code_feedback.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--heldout_fraction", type=float, default=0.3)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--grad_accum", type=int, default=2)
    parser.add_argument("--max_length", type=int, default=768)
    parser.add_argument("--keep_crlf", action="store_true", help="keep the annotators' \\r\\n line endings")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    records = load_code_feedback(args.data)
    tasks = sorted({r.task_id for r in records})
    random.Random(args.seed).shuffle(tasks)
    held_tasks = set(tasks[: round(len(tasks) * args.heldout_fraction)])
    # 44 of the 195 refinements contain "\r\n" line endings and no model program does: a surface cue that
    # says "written by a person", not "better". Line endings are normalized unless --keep_crlf.
    def text(program: str) -> str:
        return program if args.keep_crlf else program.replace("\r\n", "\n").replace("\r", "\n")

    # Whole programs, no separate prompt: both programs start with the same task prompt.
    rows = [{"prompt": "", "chosen": text(r.refinement), "rejected": text(r.original_program), "task": r.task_id}
            for r in records]
    train = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows if r["task"] not in held_tasks]
    held = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows if r["task"] in held_tasks]
    length_baseline = sum(len(r["chosen"]) > len(r["rejected"]) for r in held) / len(held)

    # Small batches and gradient checkpointing: with batch 4 and 1024 tokens the process grew to 8 GB here
    # and the shared machine's OOM killer stopped it.
    settings = TrainingSettings(learning_rate=args.lr, num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
                                gradient_accumulation_steps=args.grad_accum, max_length=args.max_length,
                                gradient_checkpointing=True, seed=args.seed, logging_steps=5)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        metrics = train_reward_model(args.model, train, Path(tmp) / "rm", eval_comparisons=held, settings=settings)
    minutes = (time.perf_counter() - start) / 60
    print(f"data: {args.data}: {len(train)} train / {len(held)} held-out comparisons "
          f"({metrics['n_train_used']} train used after the max_length filter), model {args.model}, "
          f"{args.epochs:g} epoch(s), lr {args.lr:g}, batch {args.batch_size}x{args.grad_accum}, "
          f"max_length {args.max_length}, line endings {'as annotated' if args.keep_crlf else 'normalized'}, "
          f"{args.threads} thread(s), {minutes:.1f} min")
    print(f"baseline untrained_rm_accuracy: {metrics['eval_accuracy_before']:.3f}")
    print(f"baseline longer_program_wins_accuracy: {length_baseline:.3f}")
    print(f"rm_code_feedback_heldout_accuracy: {metrics['eval_accuracy']:.3f} (target > {length_baseline:.3f})")


if __name__ == "__main__":
    main()
