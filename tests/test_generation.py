"""Batched generation: left padding, ordering, stop strings, sharding across 2 CPU processes."""

from __future__ import annotations

import importlib.util
import json
import textwrap

import pytest
import torch
from _launch import accelerate_launch
from transformers import AutoModelForCausalLM, AutoTokenizer

from language_feedback.generation import (
    VLLMModel,
    decode_completion,
    encode_prompts,
    generate,
    is_finished,
    truncate_at_stop,
)

# Different lengths so a batch needs padding; more than one batch at batch_size=2.
PROMPTS = [
    "def add(a, b):",
    "Write a python function to find the maximum of a list of numbers.\ndef max_of(xs):",
    "assert",
    "The summary is too long; make it shorter and mention the dog.",
    "Feedback: the function fails when the list is empty. Refinement:",
]


@pytest.fixture(scope="module")
def tiny(tiny_lm_path):
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    return model, tokenizer


def test_batched_greedy_equals_one_at_a_time(tiny):
    model, tokenizer = tiny
    tokenizer.padding_side = "right"  # generate must switch to left padding itself (and restore this)
    batched = generate(model, tokenizer, PROMPTS, temperature=0, max_new_tokens=12, batch_size=4, progress=False)
    single = [generate(model, tokenizer, [p], temperature=0, max_new_tokens=12, progress=False)[0] for p in PROMPTS]
    assert batched == single
    assert tokenizer.padding_side == "right"
    assert all(len(c) == 1 and c[0] for c in batched)  # something was generated for every prompt
    # the completions depend on the prompt: a dropped or misaligned prompt would show up here
    assert len({c[0] for c in batched}) > 1


def test_num_return_sequences_grouped_per_prompt_and_seeded(tiny):
    model, tokenizer = tiny
    kw = {"num_return_sequences": 3, "temperature": 1.0, "max_new_tokens": 8, "batch_size": 2, "progress": False}
    a = generate(model, tokenizer, PROMPTS, seed=7, **kw)
    b = generate(model, tokenizer, PROMPTS, seed=7, **kw)
    assert a == b
    assert [len(x) for x in a] == [3] * len(PROMPTS)
    # a prompt generated on its own gets greedy-identical samples grouped the same way: check the
    # grouping with greedy decoding, where every sequence of a prompt must be identical
    greedy = generate(model, tokenizer, PROMPTS, num_return_sequences=2, temperature=0, max_new_tokens=8,
                      batch_size=2, progress=False)
    single = generate(model, tokenizer, PROMPTS, temperature=0, max_new_tokens=8, batch_size=2, progress=False)
    assert greedy == [[s[0], s[0]] for s in single]


def test_samples_of_a_prompt_share_one_pass_over_it_and_are_the_samples_transformers_draws(tiny):
    """n samples per prompt: the prompts go through the model once (their cache repeated n times), and with the
    same seed the samples are those of transformers' own num_return_sequences expansion."""
    model, tokenizer = tiny
    widths = []
    hook = model.register_forward_pre_hook(lambda _, args, kwargs: widths.append(tuple(kwargs["input_ids"].shape)),
                                           with_kwargs=True)
    try:
        shared = generate(model, tokenizer, PROMPTS, num_return_sequences=3, temperature=1.0, max_new_tokens=8,
                          batch_size=len(PROMPTS), seed=5, progress=False)
    finally:
        hook.remove()
    longest = max(len(ids) for ids in encode_prompts(tokenizer, PROMPTS))
    assert widths[0] == (len(PROMPTS), longest - 1)  # the prompts, once each (their last token goes with step 1)
    assert all(rows == 3 * len(PROMPTS) and width == 1 for rows, width in widths[1:])
    for prompt, samples in zip(PROMPTS, shared):
        alone = generate(model, tokenizer, [prompt], num_return_sequences=3, temperature=1.0, max_new_tokens=8,
                         seed=11, progress=False)
        torch.manual_seed(11)
        ids = torch.tensor(encode_prompts(tokenizer, [prompt]))
        drawn = model.generate(ids, attention_mask=torch.ones_like(ids), num_return_sequences=3, do_sample=True,
                               temperature=1.0, top_p=1.0, max_new_tokens=8, pad_token_id=tokenizer.pad_token_id)
        assert alone == [[decode_completion(tokenizer, row[ids.shape[1]:].tolist(), None) for row in drawn]]
        assert len(samples) == 3 and len(set(samples)) > 1  # sampled, not one sample repeated


def test_a_completion_is_finished_when_it_ends_before_max_new_tokens():
    assert not is_finished([5, 6, 7], "abc", max_new_tokens=3, end_ids={0}, stop_strings=None)  # cut off
    assert is_finished([5, 6], "ab", max_new_tokens=3, end_ids={0}, stop_strings=None)  # its batch stopped early
    assert is_finished([5, 0, 0], "a", max_new_tokens=3, end_ids={0}, stop_strings=None)  # end of sequence
    assert is_finished([5, 6, 7], "a\n\nb", max_new_tokens=3, end_ids={0}, stop_strings=["\n\n"])


def test_finished_completions_are_the_ones_a_stop_string_ended(tiny):
    model, tokenizer = tiny
    free = generate(model, tokenizer, PROMPTS, temperature=0, max_new_tokens=16, progress=False,
                    return_finished=True)
    assert all(not finished for (_, finished), in free)  # the tiny model runs on to the limit
    stop = next(text for (text, _), in free if len(text) > 3)[2]
    stopped = generate(model, tokenizer, PROMPTS, temperature=0, max_new_tokens=16, stop_strings=[stop],
                       progress=False, return_finished=True)
    assert [finished for (_, finished), in stopped] == [stop in text for (text, _), in free]
    assert [[text] for (text, _), in stopped] == generate(model, tokenizer, PROMPTS, temperature=0, max_new_tokens=16,
                                                          stop_strings=[stop], progress=False)


def test_stop_strings_cut_the_completion():
    assert truncate_at_stop("x = 1\ndef f():\n  pass", ["\ndef ", "\nclass "]) == "x = 1"
    assert truncate_at_stop("abc", ["zz"]) == "abc"
    assert truncate_at_stop("a#b!c", ["!", "#"]) == "a"


def test_stop_strings_applied_to_generation(tiny):
    model, tokenizer = tiny
    free = generate(model, tokenizer, PROMPTS, temperature=0, max_new_tokens=16, progress=False)
    # stop at a character the free-running outputs contain, so the cut is exercised
    text = next(c[0] for c in free if len(c[0]) > 3)
    stop = text[2]
    stopped = generate(model, tokenizer, PROMPTS, temperature=0, max_new_tokens=16, stop_strings=[stop],
                       progress=False)
    for f, s in zip(free, stopped):
        assert stop not in s[0]
        assert f[0].startswith(s[0])


def test_completions_are_the_decoded_ids_generated_after_the_encoded_prompt(tiny):
    """The pre- and post-processing every backend shares (transformers and vLLM): the model continues the ids of
    encode_prompts, and a completion is decode_completion of the ids it generated. Stopping at a stop string
    gives what generating on and cutting at its first occurrence gives (vLLM's ``stop``)."""
    model, tokenizer = tiny
    free = generate(model, tokenizer, PROMPTS, temperature=0, max_new_tokens=12, progress=False)
    stop = next(c[0] for c in free if len(c[0]) > 3)[2]
    out = generate(model, tokenizer, PROMPTS, temperature=0, max_new_tokens=12, stop_strings=[stop], progress=False)
    for prompt, (text,) in zip(PROMPTS, out):
        ids = encode_prompts(tokenizer, [prompt])[0]
        assert ids == tokenizer(prompt)["input_ids"]
        generated = model.generate(torch.tensor([ids]), max_new_tokens=12, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id)[0, len(ids):].tolist()
        assert text == decode_completion(tokenizer, generated, [stop])


def test_decode_completion_drops_special_tokens_and_cuts_at_the_first_stop_string(tiny):
    _, tokenizer = tiny
    ids = tokenizer("x = 1\ndef f():")["input_ids"] + [tokenizer.eos_token_id, tokenizer.pad_token_id]
    assert decode_completion(tokenizer, ids, None) == "x = 1\ndef f():"
    assert decode_completion(tokenizer, ids, ["\ndef ", "="]) == "x "


def test_vllm_generates_what_transformers_generates(tiny, tiny_lm_path):
    pytest.importorskip("vllm", reason="vLLM is not installed (pip install 'lf-rewards[vllm]')")
    model, tokenizer = tiny
    engine = VLLMModel(tiny_lm_path)
    for kwargs in ({}, {"stop_strings": ["\n"]}):
        expected = generate(model, tokenizer, PROMPTS, temperature=0, max_new_tokens=12, progress=False, **kwargs)
        got = generate(engine, tokenizer, PROMPTS, num_return_sequences=2, temperature=0, max_new_tokens=12,
                       progress=False, **kwargs)
        assert got == [[e[0], e[0]] for e in expected]
    sampled = generate(engine, tokenizer, PROMPTS, num_return_sequences=3, temperature=1.0, max_new_tokens=8,
                       seed=0, progress=False)
    assert [len(s) for s in sampled] == [3] * len(PROMPTS)


def test_bad_arguments(tiny):
    model, tokenizer = tiny
    with pytest.raises(TypeError, match=r"prompts\[1\]"):
        generate(model, tokenizer, ["ok", None], progress=False)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, tokenizer, ["ok"], temperature=-1, progress=False)
    assert generate(model, tokenizer, [], progress=False) == []


SHARD_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from language_feedback.generation import generate

    torch.set_num_threads(1)
    path, prompts_file, out_prefix = sys.argv[1:4]
    prompts = json.load(open(prompts_file))
    accelerator = Accelerator(cpu=True)
    model = AutoModelForCausalLM.from_pretrained(path).to(accelerator.device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    out = generate(model, tokenizer, prompts, temperature=0, max_new_tokens=12, batch_size=2,
                   accelerator=accelerator, progress=False)
    json.dump({"num_processes": accelerator.num_processes, "out": out},
              open(f"{out_prefix}.{accelerator.process_index}.json", "w"))
    accelerator.end_training()  # destroys the process group: else gloo's threads can abort the process at exit
    """
)


def test_sharded_across_two_processes_matches_single_process(tiny, tiny_lm_path, tmp_path):
    model, tokenizer = tiny
    expected = generate(model, tokenizer, PROMPTS, temperature=0, max_new_tokens=12, batch_size=2, progress=False)
    script = tmp_path / "shard.py"
    script.write_text(SHARD_SCRIPT)
    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(json.dumps(PROMPTS))
    proc = accelerate_launch([script, tiny_lm_path, prompts_file, tmp_path / "out"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        result = json.loads((tmp_path / f"out.{rank}.json").read_text())
        assert result["num_processes"] == 2
        assert result["out"] == expected  # every process holds the full result, in input order


def test_asking_for_vllm_without_vllm_is_a_config_error_naming_the_option(tmp_path):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    from language_feedback.code_ilf import CodeILFConfig
    from language_feedback.summarization_ilf import SummarizationILFConfig
    from rlhf.config import ConfigError, load_config

    config = tmp_path / "ilf.yaml"
    config.write_text("data: recipes/data/slf5k_demo\nilf:\n  rounds: 1\n  use_vllm: true\n")
    with pytest.raises(ConfigError, match=rf"{config} line 4: config key 'ilf.use_vllm': vLLM is not installed: "
                                          r"`pip install 'lf-rewards\[vllm\]'`"):
        load_config(SummarizationILFConfig, ["--config", str(config)])
    mbpp = tmp_path / "mbpp.jsonl"
    mbpp.write_text("")
    with pytest.raises(ConfigError, match=r"config key 'use_vllm' \(command line\): vLLM is not installed"):
        load_config(CodeILFConfig, ["--mbpp_path", str(mbpp), "--train_refiner", "false", "--feedback_source",
                                    "execution", "--use_vllm", "true"])
