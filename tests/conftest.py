"""Shared fixtures: tiny models built locally (no network, no hub)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
# Tests use tiny models, which gain nothing from a second thread; with another process on the
# two cores, torch with 2 threads ran many times slower than with 1 (see DESIGN.md).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)

import pytest

TINY_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def is_even(n):\n    return n % 2 == 0\n",
    "The summary is too long; make it shorter and mention the dog.",
    "TL;DR: my landlord will not return the deposit after I moved out.",
    "Feedback: the function fails when the list is empty. Refinement:",
    "Does the new summary incorporate the feedback? Answer yes or no. Yes No",
    "assert add(1, 2) == 3\nassert is_even(4)\n",
    "Write a python function to find the maximum of a list of numbers.",
] * 4


def build_tiny_causal_lm(path: str, seed: int = 0) -> str:
    """A 2-layer GPT-2 with a byte-level BPE tokenizer trained on a tiny corpus, saved to ``path``.

    Byte-level BPE can encode any text, so every pipeline (SFT, reward models, generation)
    runs on it exactly as on a real model.
    """
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TINY_CORPUS, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>", "<|pad|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|pad|>", bos_token="<|endoftext|>")
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=512, n_embd=64, n_layer=2, n_head=2,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_lm_path(tmp_path_factory) -> str:
    """Directory of a tiny causal LM + tokenizer, loadable with ``from_pretrained``."""
    return build_tiny_causal_lm(str(tmp_path_factory.mktemp("tiny_lm")))
