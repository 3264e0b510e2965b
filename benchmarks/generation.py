"""Refinement generation and InstructRM scoring speed, each against its naive baseline in the same process.

    python benchmarks/generation.py [--threads 2] [--rounds 3] [--model smollm2-135m-instruct]

Both sides run with ``--threads`` torch threads (default 2: both cores of these machines, as a user would run).
One sequence at a time is memory-bound (every decode step reads all weights for one token) and gains little
from a second thread; batch 8 is compute-bound and gains more, so the batched ratio depends on the thread count.

- ``batched_generation_speedup``: tokens/s of ``language_feedback.generation.generate`` with batch 8 over
  the same 8 refinement prompts generated one at a time (greedy, exactly ``--new_tokens`` new tokens per
  prompt so both sides produce the same number of tokens).
- ``instructrm_logits_speedup``: judge prompts (candidate × question phrasing) per second of
  ``InstructRMSelector.score`` (p(yes)/(p(yes)+p(no)) from next-token logits, one forward pass per batch
  of 8 candidates: each item's judge prompts packed as a token tree, so the input, original summary and
  feedback are computed once per item and each candidate once for its 4 phrasings, the template start
  shared by all items once per batch, and the LM head only at the answer positions) over asking the
  same model each full judge prompt and generating its answer (greedy, ``generate`` with batch 8, up to
  ``--answer_tokens`` new tokens, stopping at EOS), which is what parsing a yes/no answer from the
  model's reply costs.

Rounds alternate the two sides so that load from other jobs hits both alike; the ratio uses each side's
median time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from language_feedback.generation import generate
from language_feedback.prompts import refine_prompt
from language_feedback.selectors import InstructRMSelector, SelectionItem
from rlhf.models import load_causal_lm

POSTS = [
    ("Dog barks at the mail carrier", ("My dog is calm all day except when the mail carrier comes. Then he barks for ten "
     "minutes and scratches the door. Treats and closing the curtains did not help."), "My dog barks a lot.",
     "Say that it only happens with the mail carrier and what I already tried."),
    ("Landlord keeps my deposit", ("I moved out in June and left the flat clean. The landlord says he will keep the whole "
     "deposit for painting, but the walls were already marked when I moved in and I have photos."),
     "Landlord keeps my deposit.", "Mention the photos; they are the key point."),
    ("Two job offers", ("I have an offer from a startup paying more and from a large company with better training. I am "
     "a junior developer and want to learn as much as possible in the next two years."), "I got two offers.",
     "It should say that learning is my priority."),
    ("Bread does not rise", ("My bread never rises. I use fresh yeast, warm water and let it rest for an hour in the "
     "kitchen, which is quite cold in winter."), "My bread fails.", "Add that the kitchen is cold in winter."),
]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new_tokens", type=int, default=32)
    parser.add_argument("--answer_tokens", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_causal_lm(args.model)
    model.eval()

    # --- batched vs one-at-a-time refinement generation -------------------------------------------------
    prompts = [refine_prompt(t, p, s, f) for t, p, s, f in POSTS * 2]  # 8 prompts
    model.generation_config.min_new_tokens = args.new_tokens  # equal token counts on both sides
    n_tokens = len(prompts) * args.new_tokens

    def run_gen(batch_size: int) -> None:
        generate(model, tokenizer, prompts, max_new_tokens=args.new_tokens, temperature=0.0, batch_size=batch_size,
                 progress=False)

    run_gen(8)  # warm-up
    batched, single = [], []
    for _ in range(args.rounds):
        batched.append(timed(lambda: run_gen(8)))
        single.append(timed(lambda: run_gen(1)))
    model.generation_config.min_new_tokens = None
    tb, ts = statistics.median(batched), statistics.median(single)
    print(f"generation: batch 8 {n_tokens / tb:.1f} tokens/s, one at a time {n_tokens / ts:.1f} tokens/s "
          f"({args.rounds} rounds, {args.threads} thread(s))")

    # --- InstructRM logits vs generating a yes/no answer ------------------------------------------------
    selector = InstructRMSelector(model, tokenizer, batch_size=8, progress=False)
    items = [SelectionItem(p, s, f, (f"{s} {f}", s)) for _, p, s, f in POSTS]
    judge_prompts = selector.prompts(items)  # 4 posts × 2 candidates × 4 phrasings = 32 prompts

    def run_logits() -> None:
        selector.score(items)

    def run_generate_answer() -> list[list[str]]:
        return generate(model, tokenizer, judge_prompts, max_new_tokens=args.answer_tokens, temperature=0.0,
                        batch_size=8, progress=False)

    answers = run_generate_answer()  # warm-up, and a look at what the model answers
    run_logits()
    logits_t, gen_t = [], []
    for _ in range(args.rounds):
        logits_t.append(timed(run_logits))
        gen_t.append(timed(run_generate_answer))
    tl, tg = statistics.median(logits_t), statistics.median(gen_t)
    n_answer_tokens = sum(len(tokenizer(a[0], add_special_tokens=False)["input_ids"]) for a in answers)
    print(f"instructrm: logits {len(judge_prompts) / tl:.1f} prompts/s, generated answers {len(judge_prompts) / tg:.1f} "
          f"prompts/s (answers averaged {n_answer_tokens / len(answers):.1f} tokens; first: {answers[0][0]!r})")

    print(f"batched_generation_speedup: {ts / tb:.2f} (target >= 3)")
    print(f"instructrm_logits_speedup: {tg / tl:.2f} (target >= 5)")


if __name__ == "__main__":
    main()
