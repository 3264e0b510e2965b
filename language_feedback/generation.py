"""Batched, left-padded sampling from any Hugging Face causal LM, optionally sharded across processes.

Used for first drafts, refinements and pass@k samples. Prompts are sorted by length before batching
(less padding), generated in batches, and returned in input order. With an accelerate ``Accelerator``
running several processes, each process generates for a contiguous slice of the prompts and the
results are gathered back, in order, on every process. At scale, vLLM can do the sampling instead of
transformers' ``generate`` (:class:`VLLMModel`, ``pip install 'lf-rewards[vllm]'``), with the same prompts,
stop strings and output.
"""

from __future__ import annotations

import inspect
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
    return_finished: bool = False,
) -> list[list[str]] | list[list[tuple[str, bool]]]:
    """Sample ``num_return_sequences`` completions for each prompt.

    Returns one list of completions per prompt, in input order; each completion is the generated
    text only (prompt stripped, special tokens removed), cut before the first of ``stop_strings``.
    ``temperature == 0`` means greedy decoding. ``seed`` seeds the sampler (offset by the
    process index when sharded, so processes do not draw the same samples). With ``accelerator``
    running several processes, prompts are split between processes and the gathered result is
    returned on every process; the model must already sit on ``accelerator.device``. ``model`` is a
    transformers causal LM or a :class:`VLLMModel` (see :func:`load_generation_model`): both continue the
    same prompt token ids (:func:`encode_prompts`) and their token ids are decoded the same way
    (:func:`decode_completion`). With ``return_finished`` each completion is a pair ``(text, finished)``:
    ``finished`` is False when the completion was cut off at ``max_new_tokens`` before it ended (no end of
    sequence, no stop string), as TRL's ``mask_truncated_completions`` tells them apart.
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
    if accelerator is not None and not isinstance(model, VLLMModel):
        model = accelerator.unwrap_model(model)
    rank = accelerator.process_index if sharded else 0
    if seed is not None:
        seed += rank
        torch.manual_seed(seed)

    split = accelerator.split_between_processes(prompts) if sharded else nullcontext(prompts)
    with split as shard:
        local = _generate_local(
            model, tokenizer, list(shard), num_return_sequences=num_return_sequences,
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, batch_size=batch_size,
            seed=seed, stop_strings=stop_strings, progress=progress and rank == 0, return_finished=return_finished,
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


def encode_prompts(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """The token ids each generation backend continues: the tokenizer's encoding of each prompt, as is."""
    return [tokenizer(p)["input_ids"] for p in prompts]


def decode_completion(tokenizer, token_ids: Sequence[int], stop_strings: Sequence[str] | None) -> str:
    """A completion's text from its generated token ids: special tokens (end of sequence, padding) removed,
    cut before the first stop string."""
    return truncate_at_stop(tokenizer.decode(list(token_ids), skip_special_tokens=True), stop_strings)


def is_finished(token_ids: Sequence[int], text: str, *, max_new_tokens: int, end_ids: set[int],
                stop_strings: Sequence[str] | None) -> bool:
    """Whether a completion ended by itself: shorter than ``max_new_tokens`` (a batch stops when every
    sequence has ended), or holding an end-of-sequence token or a stop string (``text`` is the raw decoding)."""
    return (len(token_ids) < max_new_tokens or any(t in end_ids for t in token_ids)
            or any(s in text for s in stop_strings or ()))


def end_token_ids(model, tokenizer) -> set[int]:
    """The token ids that end a completion: the tokenizer's and the generation config's end of sequence."""
    config = getattr(model, "generation_config", None)
    ids = getattr(config, "eos_token_id", None)
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


def _generate_local(
    model, tokenizer, prompts: list[str], *, num_return_sequences: int, max_new_tokens: int,
    temperature: float, top_p: float, batch_size: int, seed: int | None, stop_strings: Sequence[str] | None,
    progress: bool, return_finished: bool = False,
) -> list[list[str]] | list[list[tuple[str, bool]]]:
    if not prompts:
        return []
    sampling = temperature > 0
    # Greedy decoding gives the same sequence every time: generate it once and repeat it
    # (transformers refuses num_return_sequences > 1 without sampling).
    per_call = num_return_sequences if sampling else 1
    prompt_ids = encode_prompts(tokenizer, prompts)
    if isinstance(model, VLLMModel):
        completion_ids = model.generate_ids(
            prompt_ids, n=per_call, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
            stop_strings=stop_strings, seed=seed, progress=progress)
    else:
        completion_ids = _transformers_generate_ids(
            model, tokenizer, prompt_ids, n=per_call, max_new_tokens=max_new_tokens, temperature=temperature,
            top_p=top_p, batch_size=batch_size, stop_strings=stop_strings, progress=progress,
            # Longest first: similar lengths share a batch (less padding) and an out-of-memory shows up at once.
            order=sorted(range(len(prompts)), key=lambda i: -len(prompts[i])))
    repeat = num_return_sequences // per_call
    if not return_finished:
        return [[decode_completion(tokenizer, ids, stop_strings) for ids in outs] * repeat for outs in completion_ids]
    end_ids = end_token_ids(model, tokenizer)

    def with_finished(ids: list[int]) -> tuple[str, bool]:
        raw = tokenizer.decode(list(ids), skip_special_tokens=False)
        return decode_completion(tokenizer, ids, stop_strings), is_finished(
            ids, raw, max_new_tokens=max_new_tokens, end_ids=end_ids, stop_strings=stop_strings)

    return [[with_finished(ids) for ids in outs] * repeat for outs in completion_ids]


def _transformers_generate_ids(
    model, tokenizer, prompt_ids: list[list[int]], *, n: int, max_new_tokens: int, temperature: float, top_p: float,
    batch_size: int, stop_strings: Sequence[str] | None, progress: bool, order: list[int],
) -> list[list[list[int]]]:
    """``n`` generated token-id sequences per prompt with ``model.generate``, left-padded, batched in ``order``."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError("the tokenizer has neither a pad token nor an eos token; set tokenizer.pad_token")
    device = next(model.parameters()).device
    gen_kwargs = {"max_new_tokens": max_new_tokens, "num_return_sequences": n, "do_sample": temperature > 0,
                  "pad_token_id": pad_id}
    if temperature > 0:
        gen_kwargs.update(temperature=temperature, top_p=top_p)
    else:
        # Greedy: clear sampling knobs a model's generation_config may carry, so no warning fires.
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    if stop_strings:
        gen_kwargs.update(stop_strings=list(stop_strings), tokenizer=tokenizer)

    results: list[list[list[int]] | None] = [None] * len(prompt_ids)
    was_training = model.training
    model.eval()
    try:
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        for batch in tqdm(batches, desc="generate", disable=not progress):
            # Left padding: a decoder-only model must see the prompt end right before the new tokens.
            width = max(len(prompt_ids[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, width - len(prompt_ids[i]):] = torch.tensor(prompt_ids[i], dtype=torch.long)
                attention_mask[row, width - len(prompt_ids[i]):] = 1
            input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
            if n > 1 and width > 1:
                # Sampling n completions of a prompt: its tokens go through the model once, not n times.
                cache = shared_prompt_cache(model, input_ids, attention_mask, n)
                input_ids, attention_mask = input_ids.repeat_interleave(n, 0), attention_mask.repeat_interleave(n, 0)
                out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **cache,
                                     **{**gen_kwargs, "num_return_sequences": 1})
            else:
                out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **gen_kwargs)
            new_tokens = out[:, width:].tolist()
            for j, i in enumerate(batch):
                results[i] = new_tokens[j * n : (j + 1) * n]
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]


def shared_prompt_cache(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, n: int) -> dict:
    """``generate``'s cache argument holding the left-padded prompts' keys and values, each repeated ``n`` times.

    Every prompt token but the last goes through the model once (``generate`` feeds the last one and samples
    from its logits); position ids are those ``generate`` gives left-padded rows (count of real tokens before).
    """
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids[:, :-1], attention_mask=attention_mask[:, :-1], position_ids=position_ids[:, :-1],
                use_cache=True, logits_to_keep=1)
    cache = out.cache if hasattr(out, "cache") else out.past_key_values  # renamed in transformers 5
    cache.batch_repeat_interleave(n)
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return {name: cache}


class VLLMModel:
    """A causal LM served by vLLM, for :func:`generate` (the ILF configs' ``use_vllm``, named as in TRL's GRPO).

    :func:`generate` gives it the same prompt token ids as a transformers model and decodes its token ids the
    same way (:func:`encode_prompts`, :func:`decode_completion`), so prompts, stop strings and output are the
    same; only the sampling engine differs. Each process runs its own engine on its GPU and generates its
    shard of the prompts (TRL's colocated mode, one GPU per engine); ``gpu_memory_utilization`` is the share
    of that GPU the engine may take (TRL's default 0.3 leaves room for training on the same GPU). The engine
    holds its memory until the object is dropped (:meth:`close`).
    """

    def __init__(self, name_or_path: str, *, gpu_memory_utilization: float = 0.3, max_model_len: int | None = None):
        from vllm import LLM

        from rlhf.models import resolve_model_path

        kwargs = {}
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # under accelerate launch / torchrun: vLLM joins the launcher's processes instead of spawning its own
            kwargs["distributed_executor_backend"] = "external_launcher"
        self.path = resolve_model_path(name_or_path, "causal_lm")
        self.llm = LLM(model=str(self.path), gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max_model_len, **kwargs)

    def generate_ids(
        self, prompt_ids: list[list[int]], *, n: int, max_new_tokens: int, temperature: float, top_p: float,
        stop_strings: Sequence[str] | None, seed: int | None, progress: bool,
    ) -> list[list[list[int]]]:
        """``n`` generated token-id sequences per prompt (temperature 0: greedy)."""
        from vllm import SamplingParams

        params = SamplingParams(n=n, max_tokens=max_new_tokens, temperature=temperature,
                                top_p=top_p if temperature > 0 else 1.0, stop=list(stop_strings or []) or None,
                                seed=seed)
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], sampling_params=params,
                                    use_tqdm=progress)
        return [[list(c.token_ids) for c in out.outputs] for out in outputs]

    def close(self) -> None:
        """Release the engine (and, once collected, its GPU memory), e.g. before training on the same GPU."""
        import gc

        self.llm = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def load_generation_model(name_or_path: str, *, use_vllm: bool = False, device: str | None = None,
                          vllm_gpu_memory_utilization: float = 0.3):
    """``(model, tokenizer)`` for :func:`generate`: a transformers causal LM on ``device``, or with ``use_vllm``
    a :class:`VLLMModel` (on this process's GPU) with the same tokenizer settings."""
    from rlhf.models import load_causal_lm

    if not use_vllm:
        return load_causal_lm(name_or_path, device=device)
    from transformers import AutoTokenizer

    model = VLLMModel(name_or_path, gpu_memory_utilization=vllm_gpu_memory_utilization)
    tokenizer = AutoTokenizer.from_pretrained(model.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def check_vllm(use_vllm: bool) -> None:
    """Raise ``ConfigError`` on key ``use_vllm`` when vLLM is asked for but not installed."""
    import importlib.util

    from rlhf.config import ConfigError

    if use_vllm and importlib.util.find_spec("vllm") is None:
        raise ConfigError("vLLM is not installed: `pip install 'lf-rewards[vllm]'` (a CUDA GPU machine), or set "
                          "use_vllm: false to generate with transformers", key="use_vllm")
