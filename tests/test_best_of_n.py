"""Best-of-N with a reward model picks the highest-scored candidate per prompt."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rlhf.best_of_n import Selection, best_of_n
from rlhf.preference import PreferenceRewardModel
from rlhf.reward import FunctionReward, PromptCompletion


def count_dogs(batch: list[PromptCompletion]) -> list[float]:
    return [float(item.completion.count("dog")) for item in batch]


def test_picks_the_highest_scored_candidate_per_prompt():
    rm = FunctionReward(count_dogs, name="dogs")
    prompts = ["p0", "p1", "p2"]
    candidates = [["cat", "dog dog", "dog"], ["dog", "no", "dog"], ["a", "b", "dog dog dog", "c"]]
    selections = best_of_n(prompts, candidates, rm)
    assert selections == [
        Selection(best="dog dog", index=1, scores=[0.0, 2.0, 1.0]),
        Selection(best="dog", index=0, scores=[1.0, 0.0, 1.0]),  # first of tied maxima
        Selection(best="dog dog dog", index=2, scores=[0.0, 0.0, 3.0, 0.0]),
    ]


def test_the_prompt_reaches_the_reward_model():
    rm = FunctionReward(lambda batch: [float(item.completion in item.prompt) for item in batch], name="echo")
    selections = best_of_n(["say blue", "say red"], [["red", "blue"], ["red", "blue"]], rm)
    assert [s.best for s in selections] == ["blue", "red"]


def test_with_a_preference_reward_model_matches_its_own_scores(tiny_lm_path):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_lm_path, num_labels=1)
    rm = PreferenceRewardModel(model, AutoTokenizer.from_pretrained(tiny_lm_path), batch_size=3)
    prompt = "Post: my landlord will not return the deposit\nTL;DR:"
    candidates = [" the dog.", " make it shorter.", " assert add(1, 2) == 3", " Yes", " the summary is too long"]
    (selection,) = best_of_n([prompt], [candidates], rm)
    own = rm([PromptCompletion(prompt, c) for c in candidates])
    assert selection.index == int(own.argmax())
    assert selection.best == candidates[selection.index]
    assert selection.scores == pytest.approx(own.tolist(), abs=1e-5)


def test_bad_input_raises_clearly():
    rm = FunctionReward(count_dogs, name="dogs")
    with pytest.raises(ValueError, match="prompt 1 has no candidates"):
        best_of_n(["a", "b"], [["dog"], []], rm)
    with pytest.raises(ValueError, match="2 prompts but 1 candidate lists"):
        best_of_n(["a", "b"], [["dog"]], rm)
    with pytest.raises(ValueError, match="no prompts"):
        best_of_n([], [], rm)
    with pytest.raises(TypeError, match="candidates for prompt 0 is a string"):
        best_of_n(["a"], ["dog"], rm)
