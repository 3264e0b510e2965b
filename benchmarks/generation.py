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

- ``shared_prompt_sampling_speedup``: sampling 4 refinements of each of 16 feedback-world refinement prompts
  (the text quickstart's requests, 40 new tokens, temperature 0.7) with ``generate``, whose prompts go
  through the model once with their cache repeated 4 times, over ``model.generate`` with
  ``num_return_sequences=4``, which runs every prompt 4 times (batch 16 prompts on both sides; fp32).
- ``bf16_sampling_speedup``: the same sampling with ``generate`` and the weights in bfloat16 over fp32
  (AVX512-BF16 on these machines); the samples differ in their draws, not in what is asked.

Rounds alternate the two sides so that load from other jobs hits both alike; the ratio uses each side's
median time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from language_feedback.feedback_world import Oracle, flawed_summary, generate_world
from language_feedback.generation import encode_prompts, generate
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

    # --- refinements sampled 4 per prompt: the prompt once, and bf16 weights ------------------------------
    rng, oracle = random.Random(0), Oracle(seed=0, max_points=1, required=("amount",))
    world = generate_world(16, seed=0)
    summaries = [flawed_summary(post, rng) for post in world]
    refine = [refine_prompt(p.title, p.text, s, oracle(p, s), tokenizer) for p, s in zip(world, summaries)]
    sample = {"max_new_tokens": 40, "temperature": 0.7, "top_p": 0.95}
    bf16_model = load_causal_lm(args.model, dtype=torch.bfloat16)[0].eval()
    for m in (model, bf16_model):
        m.generation_config.min_new_tokens = sample["max_new_tokens"]  # equal token counts on every side

    def run_shared(m) -> None:
        generate(m, tokenizer, refine, num_return_sequences=4, batch_size=16, seed=0, progress=False, **sample)

    def run_expanded() -> None:  # what generate did before: transformers repeats each prompt 4 times, then prefills
        ids = encode_prompts(tokenizer, refine)
        width = max(map(len, ids))
        input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(x)) + x for x in ids])
        with torch.no_grad():
            model.generate(input_ids=input_ids, attention_mask=(input_ids != tokenizer.pad_token_id).long(),
                           num_return_sequences=4, do_sample=True, pad_token_id=tokenizer.pad_token_id, **sample)

    n_prompt_tokens = sum(map(len, encode_prompts(tokenizer, refine)))
    shared_t, expanded_t, bf16_t = [], [], []
    for _ in range(args.rounds):
        shared_t.append(timed(lambda: run_shared(model)))
        expanded_t.append(timed(run_expanded))
        bf16_t.append(timed(lambda: run_shared(bf16_model)))
    th, te, tbf = statistics.median(shared_t), statistics.median(expanded_t), statistics.median(bf16_t)
    print(f"refinement sampling (16 prompts of {n_prompt_tokens / 16:.0f} tokens on average x 4 samples x 40 tokens): "
          f"prompt once {th:.1f} s, prompt 4 times {te:.1f} s, prompt once in bf16 {tbf:.1f} s")

    print(f"batched_generation_speedup: {ts / tb:.2f} (target >= 3)")
    print(f"instructrm_logits_speedup: {tg / tl:.2f} (target >= 5)")
    print(f"shared_prompt_sampling_speedup: {te / th:.2f} (target >= 1.5)")
    print(f"bf16_sampling_speedup: {th / tbf:.2f} (target >= 1.5)")


if __name__ == "__main__":
    main()
