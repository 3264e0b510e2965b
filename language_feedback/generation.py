"""Batched, left-padded sampling from any Hugging Face causal LM, optionally sharded across processes.

Used for first drafts, refinements and pass@k samples. Prompts are sorted by length before batching
(less padding), generated in batches, and returned in input order. With an accelerate ``Accelerator``
running several processes, each process generates for a contiguous slice of the prompts and the
results are gathered back, in order, on every process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext

import torch
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


def truncate_at_stop(text: str, stop_strings: Sequence[str] | None) -> str:
    """Cut ``text`` just before the earliest occurrence of any stop string."""
    if not stop_strings:
        return text
    cut = min((i for i in (text.find(s) for s in stop_strings) if i >= 0), default=len(text))
    return text[:cut]


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    num_return_sequences: int = 1,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    seed: int | None = None,
    accelerator=None,
    stop_strings: Sequence[str] | None = None,
    progress: bool = True,
) -> list[list[str]]:
    """Sample ``num_return_sequences`` completions for each prompt.

    Returns one list of completions per prompt, in input order; each completion is the generated
    text only (prompt stripped, special tokens removed), cut before the first of ``stop_strings``.
    ``temperature == 0`` means greedy decoding. ``seed`` seeds torch's generator (offset by the
    process index when sharded, so processes do not draw the same samples). With ``accelerator``
    running several processes, prompts are split between processes and the gathered result is
    returned on every process; the model must already sit on ``accelerator.device``.
    """
    prompts = list(prompts)
    if not all(isinstance(p, str) for p in prompts):
        bad = next(i for i, p in enumerate(prompts) if not isinstance(p, str))
        raise TypeError(f"prompts[{bad}] is {type(prompts[bad]).__name__}, expected str")
    if num_return_sequences < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError(
            f"num_return_sequences ({num_return_sequences}), batch_size ({batch_size}) and "
            f"max_new_tokens ({max_new_tokens}) must all be >= 1"
        )
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")

    sharded = accelerator is not None and accelerator.num_processes > 1
    if accelerator is not None:
        model = accelerator.unwrap_model(model)
    rank = accelerator.process_index if sharded else 0
    if seed is not None:
        torch.manual_seed(seed + rank)

    split = accelerator.split_between_processes(prompts) if sharded else nullcontext(prompts)
    with split as shard:
        local = _generate_local(
            model, tokenizer, list(shard), num_return_sequences=num_return_sequences,
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, batch_size=batch_size,
            stop_strings=stop_strings, progress=progress and rank == 0,
        )
    if not sharded:
        return local
    from accelerate.utils import gather_object

    # split_between_processes hands out contiguous slices in rank order, and gather_object
    # concatenates per-rank lists in rank order, so the result is in input order.
    gathered = gather_object(local)
    if len(gathered) != len(prompts):
        raise RuntimeError(f"gathered {len(gathered)} results for {len(prompts)} prompts")
    return gathered


def _generate_local(
    model, tokenizer, prompts: list[str], *, num_return_sequences: int, max_new_tokens: int,
    temperature: float, top_p: float, batch_size: int, stop_strings: Sequence[str] | None, progress: bool,
) -> list[list[str]]:
    if not prompts:
        return []
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError("the tokenizer has neither a pad token nor an eos token; set tokenizer.pad_token")
    device = next(model.parameters()).device
    sampling = temperature > 0
    # Greedy decoding gives the same sequence every time: generate it once and repeat it
    # (transformers refuses num_return_sequences > 1 without sampling).
    per_call = num_return_sequences if sampling else 1
    gen_kwargs = {
        "max_new_tokens": max_new_tokens, "num_return_sequences": per_call, "do_sample": sampling, "pad_token_id": pad_id,
    }
    if sampling:
        gen_kwargs.update(temperature=temperature, top_p=top_p)
    else:
        # Greedy: clear sampling knobs a model's generation_config may carry, so no warning fires.
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    if stop_strings:
        gen_kwargs.update(stop_strings=list(stop_strings), tokenizer=tokenizer)

    # Longest first: similar lengths share a batch (less padding) and an out-of-memory shows up at once.
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    results: list[list[str] | None] = [None] * len(prompts)
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only models must see the prompt end right before new tokens
    was_training = model.training
    model.eval()
    try:
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        for batch in tqdm(batches, desc="generate", disable=not progress):
            enc = tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True)
            enc = {k: v.to(device) for k, v in enc.items()}
            out = model.generate(**enc, **gen_kwargs)
            new_tokens = out[:, enc["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for j, i in enumerate(batch):
                chunk = texts[j * per_call : (j + 1) * per_call] * (num_return_sequences // per_call)
                results[i] = [truncate_at_stop(t, stop_strings) for t in chunk]
    finally:
        tokenizer.padding_side = previous_side
        model.train(was_training)
    return results  # type: ignore[return-value]
