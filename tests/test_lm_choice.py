"""Next-token choice probabilities (rlhf.lm_choice) against plain forward passes of a tiny real LM."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf.lm_choice import (
    NO_SPELLINGS,
    YES_SPELLINGS,
    NextTokenChoice,
    answer_token_ids,
    choice_probabilities,
    choice_token_ids,
    format_prompt,
)

CHAT_TEMPLATE = (
    "{% for m in messages %}<|user|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
QUESTIONS = [
    "Is the sky blue?",
    "Does the summary mention the dog that barks at the mail carrier every morning for ten minutes?",
    "Yes or no?",
    "Is 2 + 2 equal to 4? Think about it before you answer, then say yes or no.",
    "x",
]


@pytest.fixture(scope="module")
def model(tiny_lm_path):
    return AutoModelForCausalLM.from_pretrained(tiny_lm_path)


def tokenizer(path: str, chat: bool = False):
    tok = AutoTokenizer.from_pretrained(path)
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def alone(model, ids: list[int], choice_ids: list[list[int]]) -> torch.Tensor:
    """p(choice) by hand: one unpadded forward pass, softmax over the vocabulary, summed per choice, normalised."""
    with torch.no_grad():
        p = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].double(), -1)
    per_choice = torch.stack([p[c].sum() for c in choice_ids])
    return (per_choice / per_choice.sum()).float()


def test_probabilities_equal_a_plain_forward_pass_whatever_the_padding_side_and_batch(model, tiny_lm_path):
    results = []
    for padding_side, batch_size in (("left", 2), ("right", 2), ("right", 5), ("left", 1)):
        tok = tokenizer(tiny_lm_path)
        tok.padding_side = padding_side
        judge = NextTokenChoice(model, tok, [YES_SPELLINGS, NO_SPELLINGS], batch_size=batch_size)
        assert not judge.chat  # the tiny tokenizer has no chat template
        prompts = [judge.prompt(q) for q in QUESTIONS]
        assert prompts[0] == "Is the sky blue?\nAnswer:"
        probs = judge.probabilities(prompts)
        assert probs.shape == (len(QUESTIONS), 2)
        torch.testing.assert_close(probs.sum(-1), torch.ones(len(QUESTIONS)))
        expected = torch.stack([alone(model, tok(p)["input_ids"], judge.choice_ids) for p in prompts])
        torch.testing.assert_close(probs, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(judge.ask(QUESTIONS), probs)
        results.append(probs)
    assert all(torch.allclose(r, results[0], atol=1e-6) for r in results)
    # Prompts of very different lengths: the answers really differ between them (not a constant).
    assert results[0][:, 0].max() - results[0][:, 0].min() > 1e-4
    model.train()
    NextTokenChoice(model, tokenizer(tiny_lm_path), [["A"], ["B"]]).ask(["Which?"])
    assert model.training  # the judge restores training mode after scoring in eval mode
    model.eval()


def test_choice_probabilities_sum_each_choices_tokens_and_normalise():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0], [5.0, -1.0, -1.0, 0.0]])
    p = choice_probabilities(logits, [[0, 1], [3]])
    softmax = torch.softmax(logits, -1)
    expected = torch.stack([softmax[:, 0] + softmax[:, 1], softmax[:, 3]], -1)
    torch.testing.assert_close(p, expected / expected.sum(-1, keepdim=True))


def test_answer_tokens_are_the_single_token_spellings_and_shared_tokens_count_for_no_choice(tiny_lm_path):
    tok = tokenizer(tiny_lm_path)
    yes, no = choice_token_ids(tok, [YES_SPELLINGS, NO_SPELLINGS])
    assert yes and no and not set(yes) & set(no)
    assert {tok.decode([t]) for t in yes} <= set(YES_SPELLINGS) and {tok.decode([t]) for t in no} <= set(NO_SPELLINGS)
    assert answer_token_ids(tok, ["Q"]) == tok.encode("Q", add_special_tokens=False)
    # "zq" is two tokens here: its first token stands in when no spelling is a single token.
    assert answer_token_ids(tok, ["zqzq"]) == tok.encode("zqzq", add_special_tokens=False)[:1]
    with pytest.raises(ValueError, match="judge: the tokenizer gives the answer 'Q' no first token of its own"):
        choice_token_ids(tok, [["Q"], ["Q", "R"]], "judge")
    with pytest.raises(ValueError, match="need at least 2 choices"):
        choice_token_ids(tok, [["Q"]])


def test_chat_template_is_applied_when_the_tokenizer_has_one(model, tiny_lm_path):
    tok = tokenizer(tiny_lm_path, chat=True)
    judge = NextTokenChoice(model, tok, [YES_SPELLINGS, NO_SPELLINGS], batch_size=3)
    assert judge.chat
    prompt = judge.prompt("Is the sky blue?")
    assert prompt == "<|user|>Is the sky blue?\n<|assistant|>\n" == format_prompt(tok, "Is the sky blue?", chat=True)
    probs = judge.ask(QUESTIONS)
    expected = torch.stack([alone(model, tok(judge.prompt(q), add_special_tokens=False)["input_ids"], judge.choice_ids)
                            for q in QUESTIONS])
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=0)
    plain = NextTokenChoice(model, tok, [YES_SPELLINGS, NO_SPELLINGS], use_chat_template=False)
    assert plain.prompt("Is the sky blue?") == "Is the sky blue?\nAnswer:"
    assert not torch.allclose(plain.ask(QUESTIONS), probs)
    with pytest.raises(ValueError, match="my judge: use_chat_template=True but its tokenizer has no chat template"):
        NextTokenChoice(model, tokenizer(tiny_lm_path), [["A"], ["B"]], use_chat_template=True, who="my judge")


def test_instructrm_and_the_critic_format_through_the_chat_template(model, tiny_lm_path):
    from language_feedback.critic import CriticFeedback
    from language_feedback.selectors import InstructRMSelector, SelectionItem

    tok = tokenizer(tiny_lm_path, chat=True)
    selector = InstructRMSelector(model, tok, progress=False)
    item = SelectionItem("post", "summary", "feedback", ("new summary",))
    prompts = selector.prompts([item])
    assert all(p.startswith("<|user|>Here is an input") and p.endswith("Answer Yes or No.\n<|assistant|>\n")
               for p in prompts)
    # The yes/no answer of InstructRM's packed fast path equals the helper's answer on the same prompts.
    judge = NextTokenChoice(model, tok, [YES_SPELLINGS, NO_SPELLINGS], use_chat_template=True)
    assert [selector.yes_ids, selector.no_ids] == judge.choice_ids
    expected = torch.stack([alone(model, tok(p)["input_ids"], judge.choice_ids)[0] for p in prompts])
    torch.testing.assert_close(selector.yes_probabilities(selector.judge_inputs([item]))[0], expected, atol=1e-5, rtol=0)
    critic = CriticFeedback(model, tok)
    assert critic.prompt("def f(): pass", "failed").startswith("<|user|>") and critic.use_chat_template
    with pytest.raises(ValueError, match="InstructRM: use_chat_template=True but its tokenizer has no chat template"):
        InstructRMSelector(model, tokenizer(tiny_lm_path), use_chat_template=True)


def test_long_prompts_keep_their_end_and_bad_prompts_are_named(model, tiny_lm_path, caplog):
    tok = tokenizer(tiny_lm_path)
    judge = NextTokenChoice(model, tok, [YES_SPELLINGS, NO_SPELLINGS], max_length=16, who="judge")
    long = "My dog barks at the mail carrier every morning. " * 10 + "Is that a problem?\nAnswer:"
    with caplog.at_level("WARNING", logger="rlhf.lm_choice"):
        probs = judge.probabilities([long, "Short?\nAnswer:"])
    assert "judge: 1 of 2 prompts longer than 16 tokens; kept their last 16 tokens" in caplog.text
    ids = tok(long)["input_ids"]
    torch.testing.assert_close(probs[0], alone(model, ids[-16:], judge.choice_ids), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="judge: no prompts to score"):
        judge.probabilities([])
    with pytest.raises(TypeError, match=r"judge: prompts\[1\] is int, expected str"):
        judge.probabilities(["a", 3])
