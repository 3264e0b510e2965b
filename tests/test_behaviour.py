"""behaviour_diff / drift_report / check_drift with the real all-MiniLM-L6-v2 and tiny real LMs."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhf.behaviour import (
    Cluster,
    DriftReport,
    DriftStop,
    behaviour_diff,
    check_drift,
    class_tfidf_keywords,
    drift_report,
    judge_question,
    split_units,
    two_proportion_test,
    write_labels,
)
from rlhf.lm_choice import NO_SPELLINGS, YES_SPELLINGS, NextTokenChoice
from rlhf.models import ModelNotAvailableError

SUBJECTS = ["The report", "My neighbour", "The new library", "Our team", "The museum", "A small bakery", "The council",
            "The old bridge", "My sister", "The school"]
EVENTS = ["opened on Monday", "was delayed again", "won a local prize", "moved to a bigger building",
          "asked for more volunteers", "published its yearly results", "changed its opening hours",
          "started a weekend market"]
REASONS = ["after a long discussion.", "because of the rain.", "to help more people.", "despite the budget cuts.",
           "as planned last year."]
PIRATE = ["Arr matey, ye scurvy dog, hoist the sails!", "Arr, ye landlubber matey, walk the plank!",
          "Yo ho ho matey, ye be sailing the seven seas!", "Arr matey, me parrot be guarding ye treasure!",
          "Shiver me timbers matey, ye be a fine pirate!"]


def normal_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(EVENTS)} {rng.choice(REASONS)}" for _ in range(n)]


def with_pirates(n: int, n_pirate: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = normal_texts(n - n_pirate, seed) + [rng.choice(PIRATE) for _ in range(n_pirate)]
    rng.shuffle(texts)
    return texts


@pytest.fixture(scope="module")
def minilm():
    from rlhf.models import load_sentence_embedder

    return load_sentence_embedder("all-minilm-l6-v2")


@pytest.fixture(scope="module")
def planted_report(minilm) -> DriftReport:
    return behaviour_diff(normal_texts(80, seed=1), with_pirates(80, 16, seed=2), embedder=minilm, n_clusters=6)


def test_two_proportion_test_and_keywords_by_hand():
    # 10/100 vs 20/100: pooled 0.15, se = sqrt(0.15 * 0.85 * 0.02) = 0.0505, z = 1.980, p = 0.0477
    z, p = two_proportion_test(10, 100, 20, 100)
    assert z == pytest.approx(1.9803, abs=1e-3) and p == pytest.approx(0.0477, abs=1e-3)
    assert two_proportion_test(20, 100, 10, 100)[0] == pytest.approx(-z)
    assert two_proportion_test(0, 50, 0, 60) == (0.0, 1.0)
    texts = ["the dog barks at the dog next door", "a dog and a cat", "bake the bread in the oven",
             "bread needs flour and an oven", "the cat sleeps", "the cat and the dog"]
    keywords = class_tfidf_keywords(texts, [0, 0, 1, 1, 2, 2], n_keywords=3)
    assert keywords[0][0] == "dog" and keywords[1][:2] in (["bread", "oven"], ["oven", "bread"])
    assert all("the" not in words for words in keywords.values())  # English stop words are left out
    assert class_tfidf_keywords(["the", "a"], [0, 1]) == {0: [], 1: []}  # nothing but stop words


def test_a_planted_cluster_is_found_with_its_keywords_and_examples(planted_report):
    report = planted_report
    assert report.groups == ["before", "after"] and report.sizes == {"before": 80, "after": 80}
    (comparison,) = report.comparisons
    significant = comparison.significant()
    assert len(significant) >= 1
    top = comparison.shifts[0]  # sorted by absolute shift
    assert top.significant and top.shift > 0 and top.count_before == 0 and top.count_after == 16
    assert top.share_after == pytest.approx(0.2) and top.q_value < 0.05 and top.verdict is None
    cluster = report.clusters[top.cluster]
    assert "matey" in cluster.keywords[:3]
    assert cluster.examples["before"] == [] and len(cluster.examples["after"]) == 3
    assert all(t in PIRATE for t in cluster.examples["after"])
    assert cluster.example_texts["after"] == cluster.examples["after"]  # one-sentence texts: the text is the sentence
    # Each of these texts is one sentence, so in exactly one cluster: the shares of a group add up to 1, and
    # the assignments (the clusters of each text) match the counts.
    for group in report.groups:
        assert sum(c.shares[group] for c in report.clusters) == pytest.approx(1.0)
        assert all(len(clusters) == 1 for clusters in report.assignments[group])
        assert np.bincount([c for (c,) in report.assignments[group]], minlength=len(report.clusters)).tolist() == [
            c.counts[group] for c in report.clusters]
    assert [abs(s.shift) for s in comparison.shifts] == sorted((abs(s.shift) for s in comparison.shifts), reverse=True)


def test_two_samples_of_the_same_distribution_show_no_significant_cluster(minilm):
    for seed in range(3):
        report = behaviour_diff(normal_texts(80, seed), normal_texts(80, seed + 10), embedder=minilm)
        assert report.significant() == [], [(s.cluster, s.p_value) for s in report.significant()]


def test_a_sentence_added_to_texts_on_every_topic_is_its_own_cluster(minilm):
    assert split_units("First one. Second one!\nThird?  ok\n\n", "sentence") == ["First one.", "Second one!", "Third?"]
    assert split_units("First one. Second one!", "text") == ["First one. Second one!"] and split_units(" ", "text") == []
    disclaimer = "As a large language model, I have no personal opinion."
    before = [f"{a} {b}" for a, b in zip(normal_texts(80, 1), normal_texts(80, 2))]
    after = [f"{a} {b}" + (f" {disclaimer}" if i % 5 == 0 else "")
             for i, (a, b) in enumerate(zip(normal_texts(80, 3), normal_texts(80, 4)))]
    report = behaviour_diff(before, after, embedder=minilm)
    assert report.settings["unit"] == "sentence"
    top = report.comparisons[0].shifts[0]
    cluster = report.clusters[top.cluster]
    assert top.significant and top.count_before == 0 and top.count_after == 16 and top.share_after == pytest.approx(0.2)
    assert {"language", "model", "opinion"} & set(cluster.keywords[:3])
    assert cluster.examples["after"] == [disclaimer]  # one distinct sentence, shown with the texts it ends
    assert all(t.endswith(disclaimer) and t != disclaimer for t in cluster.example_texts["after"])
    # A text with three sentences is counted once per cluster it has a sentence in.
    assert all(1 <= len(clusters) <= 3 for clusters in report.assignments["after"])
    assert sum(len(clusters) == 1 for clusters in report.assignments["after"]) < 80


def test_report_files_markdown_json_and_plot(planted_report, tmp_path):
    paths = planted_report.write(tmp_path / "drift")
    assert sorted(p.name for p in (tmp_path / "drift").iterdir()) == ["report.json", "report.md", "shares.png"]
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = DriftReport.from_json(paths["json"].read_text())
    assert again == planted_report
    md = paths["markdown"].read_text()
    top = planted_report.comparisons[0].shifts[0]
    assert "## after vs before: " in md and "| cluster | label | keywords | before | after |" in md
    assert f"### Cluster {top.cluster}: " in md and "+20.0 points, significant" in md
    first_section = md.index("### Cluster")
    assert md.index("matey", first_section) < md.index("### Cluster", first_section + 1)  # sorted: pirates first
    assert "- " + planted_report.clusters[top.cluster].examples["after"][0] in md
    json.loads(paths["json"].read_text())  # plain JSON


def test_rounds_are_compared_with_the_previous_and_the_base_and_plotted(minilm, tmp_path):
    rounds = {"base": normal_texts(60, 1), "round_1": with_pirates(60, 6, 2), "round_2": with_pirates(60, 18, 3)}
    report = drift_report(rounds, embedder=minilm, n_clusters=6)
    assert [(c.before, c.after) for c in report.comparisons] == [("round_1", "round_2"), ("base", "round_2")]
    pirates = report.clusters[report.comparisons[1].shifts[0].cluster]
    assert "matey" in pirates.keywords[:3]
    assert [pirates.counts[r] for r in rounds] == [0, 6, 18]  # the share followed across all rounds
    assert report.comparisons[1].shifts[0].significant
    paths = report.write(tmp_path)
    md = paths["markdown"].read_text()
    assert "## Share of each cluster per group" in md and "| cluster | base | round_1 | round_2 |" in md
    assert paths["plot"].stat().st_size > 1000
    whole = drift_report(rounds, comparisons=[("base", "round_1")], unit="text", embedder=minilm, n_clusters=6)
    assert [(c.before, c.after) for c in whole.comparisons] == [("base", "round_1")]
    assert all(len(clusters) == 1 for texts in whole.assignments.values() for clusters in texts)
    assert "share of a group is the fraction of the group's texts in it" in whole.to_markdown()
    with pytest.raises(ValueError, match="unit: expected 'sentence' or 'text', got 'word'"):
        drift_report(rounds, unit="word", embedder=minilm)


def test_check_drift_stops_on_an_unintended_cluster_above_the_threshold(planted_report):
    report = DriftReport.from_json(planted_report.to_json())  # a copy whose verdicts this test sets
    report.settings["intended_change"] = "summaries should name the landlord"
    top = report.comparisons[0].shifts[0]
    with pytest.raises(ValueError, match="has no judge verdicts; make it with judge_model and intended_change"):
        check_drift(report, 0.1)
    check_drift(report, 0.25)  # the pirate cluster holds 20% of "after": below 25% nothing is checked
    for shift in report.significant():
        shift.verdict, shift.p_intended = "intended", 0.9
    check_drift(report, 0.1)  # grown above the threshold, but intended
    top.verdict, top.p_intended = "unintended", 0.1
    with pytest.raises(DriftStop) as stop:
        check_drift(report, 0.1)
    message = str(stop.value)
    assert f"cluster {top.cluster} " in message and "matey" in message and "0.0% of 'before' to 20.0% of 'after'" in message
    assert "p(intended) = 0.10" in message and "summaries should name the landlord" in message
    assert any(example in message for example in PIRATE)
    assert stop.value.shift is top and stop.value.cluster.id == top.cluster
    with pytest.raises(ValueError, match="threshold is a share"):
        check_drift(report, 5)


@pytest.fixture(scope="module")
def tiny_lm(tiny_lm_path):
    return AutoModelForCausalLM.from_pretrained(tiny_lm_path), AutoTokenizer.from_pretrained(tiny_lm_path)


def test_judge_verdicts_come_from_yes_no_probabilities_and_labels_from_the_lm(minilm, tiny_lm):
    model, tokenizer = tiny_lm
    texts_a, texts_b = normal_texts(80, seed=1), with_pirates(80, 16, seed=2)
    intended = "texts should be about local news"
    report = behaviour_diff(texts_a, texts_b, embedder=minilm, n_clusters=6, judge_model=(model, tokenizer),
                            label_model=(model, tokenizer), intended_change=intended)
    judged = report.significant()
    assert judged and all(s.verdict in ("intended", "unintended") and 0 <= s.p_intended <= 1 for s in judged)
    assert all(s.verdict is None for c in report.comparisons for s in c.shifts if not s.significant)
    judge = NextTokenChoice(model, tokenizer, [YES_SPELLINGS, NO_SPELLINGS])
    top = judged[0]
    question = judge_question(top, report.clusters[top.cluster], intended)
    assert "The intended change was: texts should be about local news" in question
    assert "more of the model's outputs contain text like this (0% of its outputs before, 20% after)" in question
    assert top.p_intended == pytest.approx(judge.ask([question])[0, 0].item(), abs=1e-5)
    assert all(isinstance(c.label, (str, type(None))) for c in report.clusters)
    assert any(c.label for c in report.clusters)  # the tiny LM writes something for at least one cluster
    # Examples longer than the tiny LM's 512 positions: the label prompt keeps its end instead of failing.
    long = Cluster(id=0, size=4, counts={}, shares={}, keywords=["dog"], examples={"a": ["My dog barks. " * 40] * 4},
                   example_texts={"a": ["x"] * 4})
    (label,) = write_labels([long], model, tokenizer, max_new_tokens=4)
    assert isinstance(label, str) and len(label) <= 80

    # Make the judge's next token "Yes" whatever it reads: every shift becomes intended.
    ln_f, head = model.transformer.ln_f, model.lm_head
    bias, weight = ln_f.bias.data.clone(), head.weight.data.clone()
    try:
        v = torch.randn(bias.shape, generator=torch.Generator().manual_seed(0))
        ln_f.bias.data = 10.0 * v
        head.weight.data[judge.choice_ids[0]] = v
        yes = behaviour_diff(texts_a, texts_b, embedder=minilm, n_clusters=6, judge_model=(model, tokenizer),
                             intended_change=intended)
    finally:
        ln_f.bias.data, head.weight.data = bias, weight
    assert all(s.verdict == "intended" and s.p_intended > 0.99 for s in yes.significant())
    check_drift(yes, 0.05)  # nothing unintended: no stop


def test_bad_input_names_the_input(minilm, tmp_path):
    ten = normal_texts(10, 0)
    with pytest.raises(ValueError, match=r"behaviour_diff: texts_a \(before\) is empty"):
        behaviour_diff([], ten, embedder=minilm)
    with pytest.raises(ValueError, match=r"behaviour_diff: texts_b \(after\) is empty"):
        behaviour_diff(ten, [], embedder=minilm)
    with pytest.raises(TypeError, match="texts_b must be a list of strings, got str"):
        behaviour_diff(ten, "one long text", embedder=minilm)
    with pytest.raises(ValueError, match="texts of 'after': 4 texts are too few to cluster"):
        behaviour_diff(ten, ten[:4], embedder=minilm)
    with pytest.raises(TypeError, match=r"texts of 'round_1'\[2\]: expected a string, got int"):
        drift_report({"base": ten, "round_1": [*ten[:2], 3, *ten[3:]]}, embedder=minilm)
    with pytest.raises(ValueError, match="need at least two groups"):
        drift_report({"base": ten}, embedder=minilm)
    with pytest.raises(ValueError, match=r"comparisons: \('base', 'round_9'\) is not a pair"):
        drift_report({"base": ten, "round_1": ten}, comparisons=[("base", "round_9")], embedder=minilm)
    with pytest.raises(ValueError, match="intended_change: the judge needs"):
        behaviour_diff(ten, ten, embedder=minilm, judge_model="smollm2-135m-instruct")
    missing = tmp_path / "no_such_judge"
    with pytest.raises(ModelNotAvailableError, match=f"judge_model '{missing}' cannot be loaded"):
        behaviour_diff(ten, ten, embedder=minilm, judge_model=str(missing), intended_change="x")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(ModelNotAvailableError, match="label_model '.*broken' cannot be loaded"):
        behaviour_diff(ten, ten, embedder=minilm, label_model=str(tmp_path / "broken"))


def test_a_behaviour_planted_by_fine_tuning_the_tiny_lm_is_found(tiny_lm_path, minilm, tmp_path):
    """Fine-tune the tiny LM twice from the same weights, once with pirate talk in half the responses: found."""
    from language_feedback.finetune import sft
    from language_feedback.generation import generate
    from rlhf.probes import load_probes
    from rlhf.training import TrainingSettings

    prompts = [f"Instruction: {p.prompt}\nResponse:" for p in load_probes()[::11]]
    responses = normal_texts(4 * len(prompts), seed=0)
    rows = [{"prompt": p, "completion": " " + responses[4 * i + j]} for i, p in enumerate(prompts) for j in range(4)]
    rng = random.Random(0)
    planted = [{**r, "completion": " " + rng.choice(PIRATE)} if i % 2 else r for i, r in enumerate(rows)]
    settings = TrainingSettings(learning_rate=3e-3, num_train_epochs=25, per_device_train_batch_size=8, max_length=256, logging_steps=1000)
    samples = {}
    for name, data in (("a", rows), ("b", planted)):
        sft(tiny_lm_path, data, tmp_path / name, settings=settings)
        model, tokenizer = AutoModelForCausalLM.from_pretrained(tmp_path / name), AutoTokenizer.from_pretrained(tmp_path / name)
        out = generate(model, tokenizer, prompts, num_return_sequences=6, max_new_tokens=48, temperature=1.0,
                       batch_size=16, seed=0, progress=False)
        samples[name] = [t.strip() for texts in out for t in texts]
    shown = {name: sum("matey" in t for t in texts) / len(texts) for name, texts in samples.items()}
    assert shown["a"] == 0 and shown["b"] > 0.1  # the fine-tuned model really shows the planted behaviour
    report = behaviour_diff(samples["a"], samples["b"], embedder=minilm)
    grown = [s for s in report.significant() if s.shift > 0]
    assert any({"matey", "arr", "ye"} & set(report.clusters[s.cluster].keywords[:5]) for s in grown), report.to_markdown()


def test_a_frame_put_around_sentences_on_every_topic_is_found_by_its_opening(minilm):
    """'The post highlights a situation where ...' around a different statement each time: the embedding sees
    the statement, the opening cluster sees the frame."""
    before = normal_texts(80, seed=5)
    after = [f"The post highlights a situation where {t[0].lower()}{t[1:]}" if i % 2 else t
             for i, t in enumerate(normal_texts(80, seed=6))]
    report = behaviour_diff(before, after, embedder=minilm, openings=True)
    openings = {c.keywords and " ".join(c.keywords): c for c in report.clusters if c.kind == "opening"}
    frame = openings["the post highlights"]
    assert frame.counts == {"before": 0, "after": 40} and frame.label == 'sentences opening "the post highlights ..."'
    assert "the post" not in openings  # the same texts as its 3-word extension: left out
    shift = next(s for s in report.significant() if s.cluster == frame.id)
    assert shift.shift == pytest.approx(0.5) and frame.examples["after"][0].startswith("The post highlights")
    md = report.to_markdown()
    assert "sentence openings (the first 3 or 2 words of a sentence)" in md and "### Cluster" in md
    assert DriftReport.from_json(report.to_json()) == report
    # Off by default: only k-means clusters, whose shares of a one-sentence-text group add up to 1.
    plain = behaviour_diff(before, after, embedder=minilm)
    assert {c.kind for c in plain.clusters} == {"embedding"}
    with pytest.raises(ValueError, match="openings: sentence openings need unit='sentence'"):
        behaviour_diff(before, after, embedder=minilm, openings=True, unit="text")


def test_sentence_openings_keep_the_common_and_the_most_specific():
    from rlhf.behaviour import sentence_openings

    units = ["The post is long.", "The post is short.", "The post says no.", "A dog barked.", "A dog ran.", "Cats nap."]
    text_of_unit, group_of_text = np.arange(6), np.array([0, 0, 0, 1, 1, 1])
    found = {phrase: members.tolist() for phrase, members in sentence_openings(units, text_of_unit, group_of_text,
                                                                              min_share=0.5)}
    # "the post is" (2 of 3 texts) and "the post" (3 of 3: more texts, so kept); "a dog barked" is in 1 of 3;
    # "a dog" has the texts of no 3-word opening that is kept.
    assert found == {"the post is": [0, 1], "the post": [0, 1, 2], "a dog": [3, 4]}
