import pytest
import torch

from rlhf.reward import (
    FunctionReward,
    PromptCompletion,
    RewardModel,
    RunningNormalization,
    WeightedSum,
    as_trl_reward_func,
    completion_text,
)


class LengthReward(RewardModel):
    name = "length"

    def score(self, batch):
        return torch.tensor([float(len(completion_text(item.completion))) for item in batch])


def test_validation_catches_broken_models():
    with pytest.raises(ValueError, match="shape"):
        FunctionReward(lambda b: torch.zeros(len(b) + 1), "bad")([1, 2])
    with pytest.raises(TypeError, match="float dtype"):
        FunctionReward(lambda b: torch.zeros(len(b), dtype=torch.long), "int")([1, 2])
    with pytest.raises(ValueError, match=r"non-finite rewards at batch positions \[1\]"):
        FunctionReward(lambda b: torch.tensor([0.0, float("nan")]), "nan")([1, 2])
    with pytest.raises(ValueError, match="empty batch"):
        FunctionReward(lambda b: torch.zeros(0), "empty")([])

    class ReturnsList(RewardModel):
        def score(self, batch):
            return [0.0] * len(batch)

    with pytest.raises(TypeError, match="returned list, expected torch.Tensor"):
        ReturnsList()([1])


def test_weighted_sum():
    a = FunctionReward(lambda b: torch.tensor(b, dtype=torch.float32), "a")
    b = FunctionReward(lambda b: torch.ones(len(b)), "b")
    combo = WeightedSum([a, b], [2.0, -0.5])
    torch.testing.assert_close(combo([1.0, 3.0]), torch.tensor([1.5, 5.5]))
    assert combo.name == "2*a+-0.5*b"
    with pytest.raises(ValueError, match="weights"):
        WeightedSum([a], [1.0, 2.0])


def test_running_normalization_matches_stats_of_all_seen_rewards():
    raw = FunctionReward(lambda b: torch.tensor(b, dtype=torch.float32), "raw")
    norm = RunningNormalization(raw)
    data = torch.arange(20, dtype=torch.float64) ** 1.5
    for chunk in data.split(7):
        norm(chunk.tolist())
    assert norm.count == 20
    assert norm.mean == pytest.approx(float(data.mean()))
    assert norm.std == pytest.approx(float(data.std(unbiased=False)))
    norm.update = False
    out = norm([float(data.mean())])
    assert out.item() == pytest.approx(0.0, abs=1e-6)
    assert norm.count == 20  # frozen statistics


def test_trl_adapter_standard_and_conversational():
    f = as_trl_reward_func(LengthReward())
    assert f.__name__ == "length"
    assert f(prompts=["p1", "p2"], completions=["abc", "a"], extra_column=[1, 2]) == [3.0, 1.0]
    seen = []

    class Recording(LengthReward):
        def score(self, batch):
            seen.extend(batch)
            return super().score(batch)

    chat_prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    conv = as_trl_reward_func(Recording())(prompts=[chat_prompt], completions=[[{"role": "assistant", "content": "hey!"}]])
    assert conv == [4.0]
    assert seen[0].prompt == chat_prompt and seen[0].conversational  # the roles reach the model, not flattened
    with pytest.raises(TypeError, match=r"prompts\[0\]: expected a string or a list of chat messages"):
        f(prompts=[{"text": "x"}], completions=["a"])
    with pytest.raises(ValueError, match="prompts"):
        f(prompts=["a"], completions=["a", "b"])


def test_skipped_items_are_nan_only_for_models_that_declare_skips():
    class Skipping(RewardModel):
        name, may_skip = "skipping", True

        def score(self, batch):
            return torch.tensor([float("nan") if x is None else float(x) for x in batch])

        def batch_metrics(self):
            return {"skipped": 1.0}

    assert torch.isnan(Skipping()([None, 2.0])[0])
    with pytest.raises(ValueError, match=r"non-finite rewards at batch positions \[0\]"):
        Skipping()([float("inf")])
    logged = {}
    f = as_trl_reward_func(FunctionReward(lambda b: torch.tensor([len(x.completion) for x in b], dtype=torch.float),
                                          "plain"))
    assert f(prompts=["p"], completions=["ab"], log_metric=lambda k, v: logged.update({k: v})) == [2.0]
    assert logged == {}  # no metrics by default
    skipping = Skipping()
    skipping.score = lambda batch: torch.tensor([float("nan"), 1.0])
    assert as_trl_reward_func(skipping)(prompts=["a", "b"], completions=["x", "y"],
                                        log_metric=lambda k, v: logged.update({k: v})) == [None, 1.0]
    assert logged == {"skipping/skipped": 1.0}


def test_trl_adapter_inside_grpo_reward_computation(tiny_lm_path, tmp_path):
    """TRL's GRPOTrainer calls the adapter with its own argument names and logs it by name."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    seen = []

    class Recording(LengthReward):
        def score(self, batch):
            seen.extend(batch)
            return super().score(batch)

    args = GRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=4, max_completion_length=6,
        max_steps=1, logging_steps=1, report_to=[], use_cpu=True, save_strategy="no", bf16=False,
    )
    trainer = GRPOTrainer(
        model=tiny_lm_path, reward_funcs=as_trl_reward_func(Recording()), args=args,
        train_dataset=Dataset.from_dict({"prompt": ["def add(a, b):", "TL;DR:"] * 4}),
    )
    trainer.train()
    assert seen and all(isinstance(x, PromptCompletion) for x in seen)
    assert any("rewards/length" in k for row in trainer.state.log_history for k in row)
