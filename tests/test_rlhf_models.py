import pytest
import torch

from rlhf.models import ModelNotAvailableError, load_causal_lm, load_sentence_embedder, resolve_model_path


def test_load_from_local_path_left_pads_and_generates(tiny_lm_path):
    model, tok = load_causal_lm(tiny_lm_path)
    assert tok.padding_side == "left" and tok.pad_token is not None
    batch = tok(["def add(a, b):", "TL;DR"], return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape == (2, batch["input_ids"].shape[1] + 3)


def test_embedded_smollm2_generates_text():
    model, tok = load_causal_lm("smollm2-135m-instruct")
    assert model.config.model_type == "llama" and model.num_parameters() > 100_000_000
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    answer = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer  # a real model, not random weights


def test_embedded_sentence_embedder_separates_meaning():
    emb = load_sentence_embedder("all-minilm-l6-v2")
    v = emb.encode(["the function fails on empty lists", "handle the empty list case", "a cat sat on the mat"],
                   normalize_embeddings=True)
    assert v.shape == (3, 384)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_unavailable_models_name_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="smollm2-135m-instruct"):
        load_causal_lm("someorg/not-downloadable-model")
    # A name shaped like a hub id ("gpt2", "org/name") is one; offline it cannot be fetched, and the error says
    # both that no such local path exists and that the hub is out of reach, never that it is "not a hub id".
    with pytest.raises(ModelNotAvailableError, match="no such local path, and as a hub id it could not be fetched"):
        load_causal_lm("smollm3-tiny")
    with pytest.raises(ModelNotAvailableError, match="no such path, and not an embedded name or a hub id"):
        resolve_model_path("./runs/missing model")
    with pytest.raises(ModelNotAvailableError, match="is a sentence_embedder, not a causal_lm"):
        load_causal_lm("all-minilm-l6-v2")
