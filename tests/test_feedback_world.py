"""The feedback world: deterministic posts, a ground-truth scorer that knows a real summary, an oracle in words."""

from __future__ import annotations

import random

import pytest

from language_feedback.feedback_world import (
    MAX_COPY_SHARE,
    MAX_WORDS,
    Fact,
    Oracle,
    Post,
    flawed_summary,
    generate_world,
    reference_bounds,
    score,
    to_slf5k_row,
)
from language_feedback.summarization_data import validate_row

POST = Post(
    id="t1", scenario="car_repair", subreddit="personalfinance", title="Garage bill shock",
    text=("On March 3, my car broke down near Lyon while Anna and I were driving home. The mechanic said the "
          "gearbox had to be replaced. They charged me 3,800 euros for the work, although the first quote was "
          "2,100 euros. In the end the insurance paid for the whole repair."),
    facts=(Fact("person", "Anna"), Fact("place", "Lyon"), Fact("date", "March 3"),
           Fact("event", "The mechanic said the gearbox had to be replaced."), Fact("amount", "3,800 euros"),
           Fact("outcome", "In the end the insurance paid for the whole repair.")),
    reference="I had the car repaired in Lyon; the repair cost 3,800 euros and the insurance paid for it.",
    outcome_markers=(("insurance", "insurer"), ("paid", "pay", "cover")), cost_noun="the repair",
    distractor="2,100 euros",
)


def test_world_is_deterministic_varied_and_annotated():
    a, b = generate_world(300, seed=7), generate_world(300, seed=7)
    assert a == b and a != generate_world(300, seed=8)
    assert len({p.text for p in a}) == 300
    assert len({p.scenario for p in a}) >= 10
    # Varied shapes: many distinct first sentences, 3-6 sentences a post.
    assert len({p.text.split(". ")[0] for p in a}) > 150
    assert all(3 <= p.text.count(". ") + 1 <= 6 for p in a)
    for post in a:
        assert [f.type for f in post.facts if f.type != "person"] == ["place", "date", "event", "amount", "outcome"]
        assert all(fact.surface in post.text for fact in post.facts)
        assert Post.from_json(post.to_json()) == post


def test_reference_summaries_are_good_and_fix_the_bounds():
    posts = generate_world(2000, seed=0)
    assert all(score(p, p.reference).good for p in posts)
    bounds = reference_bounds(posts)
    assert bounds["max_words"] <= MAX_WORDS and bounds["max_copy_share"] <= MAX_COPY_SHARE
    rng = random.Random(0)
    assert not any(score(p, flawed_summary(p, rng)).good for p in posts)
    assert not any(score(p, p.text).good for p in posts)  # copying the post is not a summary


@pytest.mark.parametrize(
    ("summary", "amount", "outcome", "good"),
    [
        ("My car broke down and the repair cost 3,800 euros; the insurance paid for it.", True, True, True),
        ("The gearbox repair cost 3800 euros, but my insurer covered everything.", True, True, True),  # paraphrase
        ("My car broke down near Lyon and the insurance paid.", False, True, False),  # amount missing
        ("The repair cost 3,800 euros.", True, False, False),  # outcome missing
        ("The garage quoted 2,100 euros and the insurance paid.", False, True, False),  # the wrong amount
    ],
)
def test_scorer_checks_the_required_facts(summary, amount, outcome, good):
    result = score(POST, summary)
    assert result.present == {"amount": amount, "outcome": outcome}
    assert result.good is good


def test_scorer_catches_invented_names_and_numbers_and_form():
    invented = score(POST, "Ben's repair in Paris cost 3,800 euros and the insurance paid.")
    assert set(invented.unsupported) == {"Ben", "Paris"} and not invented.good
    assert score(POST, "The repair cost 4,000 euros and the insurance paid.").unsupported == ("4000",)
    assert score(POST, "Anna's repair near Lyon cost 3,800 euros and the insurance paid.").good  # names from the post
    meta = score(POST, "The text says the repair cost 3,800 euros and the insurance paid.")
    assert meta.format_violations == ("meta-comment",) and not meta.good
    assert score(POST, "Title: The repair cost 3,800 euros and the insurance paid.").format_violations == ("meta-comment",)
    two = score(POST, "The repair cost 3,800 euros. The insurance paid for it.")
    assert two.format_violations == ("more than one sentence",)
    quoted = score(POST, 'The original text is: "They charged me 3,800 euros for the work."')
    assert {"meta-comment", "quotes"} <= set(quoted.format_violations)
    copied = score(POST, "They charged me 3,800 euros for the work, although the first quote was 2,100 euros and "
                         "in the end the insurance paid for the whole repair.")
    assert copied.copies and not copied.good
    assert score(POST, " ".join(["The repair cost 3,800 euros and the insurance paid"] * 5)).too_long
    assert score(POST, "The repair cost 3,800 euros and the insurance paid for it.").value > score(
        POST, "The repair cost 3,800 euros.").value > score(POST, "It broke.").value


def test_oracle_names_what_is_missing_or_wrong_in_words():
    oracle = Oracle(seed=0)
    missing_both = oracle(POST, "My car broke down.")
    assert "repair" in missing_both and ("cost" in missing_both or "price" in missing_both or "amount" in missing_both)
    assert any(w in missing_both.lower() for w in ("end", "outcome", "turned out", "resolved"))
    assert "3,800" not in missing_both  # feedback says what is missing, it does not write the summary
    wrong = oracle(POST, "The garage quoted 2,100 euros and the insurance paid.")
    assert "3,800 euros" in wrong and "wrong" in wrong.lower() or "right figure" in wrong
    assert "Ben" in oracle(POST, "Ben's repair cost 3,800 euros and the insurance paid.")
    assert "good" in oracle(POST, POST.reference).lower()
    # Many paraphrases, never a label.
    texts = {Oracle(seed=s)(POST, "My car broke down.") for s in range(40)}
    assert len(texts) >= 10


def test_oracle_vague_and_misleading_fractions():
    vague = Oracle(seed=0, vague_fraction=1.0)
    assert all("repair" not in vague(POST, "It broke.") for _ in range(10))
    mixed = Oracle(seed=0, vague_fraction=0.25, misleading_fraction=0.25)
    specific = sum("repair" in mixed(POST, "It broke.") for _ in range(400)) / 400
    assert 0.4 < specific < 0.6
    with pytest.raises(ValueError, match="between 0 and 1"):
        Oracle(vague_fraction=0.8, misleading_fraction=0.5)


def test_rows_are_slf5k_format():
    row = to_slf5k_row(POST, "My car broke down.", Oracle(seed=0)(POST, "My car broke down."))
    sample = validate_row(row, "world row")
    assert sample.has_feedback and sample.ideal_human_summary == POST.reference
