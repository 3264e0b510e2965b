"""SLF5K-format loader: validation with file:line errors, splits, subsampling, comparisons."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from language_feedback.prompts import summarize_prompt
from language_feedback.summarization_data import (
    HUB_ID,
    SLF5KFormatError,
    comparisons,
    feedback_samples,
    load_slf5k,
    subsample,
)

# Our own short posts, in SLF5K's schema. Feedback asks for something specific the initial summary lacks.
FIXTURE_POSTS = [
    ("relationships", "Partner forgets my birthday every year",
     ("We have been together four years. Every year my partner forgets my birthday until the evening, "
     "then apologises. This year I reminded them a week before and they still forgot."),
     "partner forgets my birthday", "My partner forgets my birthday every year even after I remind them.",
     "The summary should mention that I reminded them a week before."),
    ("personalfinance", "Landlord keeps my deposit",
     ("I moved out in June and left the flat clean. The landlord says he will keep the whole deposit "
     "for painting, but the walls were already marked when I moved in and I have photos."),
     "landlord keeps deposit", "Landlord wants to keep my deposit for painting, but I have photos of the old marks.",
     "Mention the photos; they are the key point."),
    ("dogs", "Dog barks at the mail carrier",
     ("My dog is calm all day except when the mail carrier comes. Then he barks for ten minutes and "
     "scratches the door. Treats and closing the curtains did not help."),
     "dog barks a lot", "My dog barks at the mail carrier for ten minutes and treats did not help.",
     "Say that it only happens with the mail carrier and what I already tried."),
    ("cscareerquestions", "Two job offers",
     ("I have an offer from a startup paying more and from a large company with better training. "
     "I am a junior developer and want to learn as much as possible in the next two years."),
     "two offers", "Junior developer choosing between a better-paid startup and a big company with training.",
     "It should say that learning is my priority."),
    ("fitness", "Knee pain when running",
     ("After two months of running three times a week my left knee hurts after about 5 km. "
     "I bought new shoes but it still hurts. Should I stop running?"),
     "knee hurts when running", "Left knee hurts after 5 km of running, even with new shoes; should I stop?",
     ""),  # no feedback: loaders must skip it for ILF
    ("cooking", "Bread does not rise",
     ("My bread never rises. I use fresh yeast, warm water and let it rest for an hour in the kitchen, "
     "which is quite cold in winter."),
     "bread fails", "My bread does not rise even with fresh yeast, maybe because my kitchen is cold.",
     "Add that the kitchen is cold in winter, that is probably the cause."),
]


def fixture_rows() -> list[dict]:
    rows = []
    for i, (sub, title, post, initial, ideal, feedback) in enumerate(FIXTURE_POSTS):
        rows.append({
            "id": f"t{i}", "subreddit": sub, "title": title, "post": post,
            "tldr_human_reference_summary": ideal, "ideal_human_summary": ideal,
            "generated_summary_for_feedback": initial, "feedback": feedback,
            "feedback_class": "Coverage" if feedback else "",
            "generated_summary_for_comparison_A": ideal, "generated_summary_for_comparison_B": initial,
            # alternate labels so chosen is not always A; the last row has no label
            "comparison_preference": ["Summary A", "Summary B"][i % 2] if i < len(FIXTURE_POSTS) - 1 else "",
        })
    return rows


def write_fixture(path: Path, rows: list[dict] | None = None) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in (rows if rows is not None else fixture_rows())))
    return path


def test_load_valid_file_and_split_directory(tmp_path):
    samples = load_slf5k(write_fixture(tmp_path / "slf.jsonl"))
    assert [s.id for s in samples] == [f"t{i}" for i in range(len(FIXTURE_POSTS))]
    assert samples[1].title == "Landlord keeps my deposit"
    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    write_fixture(split_dir / "development.jsonl", fixture_rows()[:2])
    assert len(load_slf5k(split_dir, split="development")) == 2
    with pytest.raises(FileNotFoundError, match="no test.jsonl"):
        load_slf5k(split_dir, split="test")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_slf5k(split_dir, split="dev")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.pop("feedback"), ", line 3: missing field\\(s\\) feedback"),
        (lambda r: r.update(post=""), ", line 3: field 'post' is empty"),
        (lambda r: r.update(title=["x"]), ", line 3: field 'title' must be a string"),
        (lambda r: r.update(comparison_preference="C"), ", line 3: field 'comparison_preference' is 'C'"),
        (lambda r: r.update(id="t0"), ", line 3: duplicate id 't0' \\(first at .*, line 1\\)"),
    ],
)
def test_bad_row_names_file_line_and_field(tmp_path, edit, message):
    rows = fixture_rows()
    edit(rows[2])
    path = write_fixture(tmp_path / "bad.jsonl", rows)
    with pytest.raises(SLF5KFormatError, match=f"bad.jsonl{message}"):
        load_slf5k(path)


def test_invalid_json_line(tmp_path):
    path = write_fixture(tmp_path / "broken.jsonl")
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(SLF5KFormatError, match=f"broken.jsonl, line {len(FIXTURE_POSTS) + 1}: invalid JSON"):
        load_slf5k(path)


def test_hub_id_offline_says_to_pass_a_local_path(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="Pass a local SLF5K-format JSONL file"):
        load_slf5k(HUB_ID)
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        load_slf5k("/nonexistent/slf5k.jsonl")


def test_subsample_skips_empty_feedback_is_seeded_and_nested(tmp_path, caplog):
    samples = load_slf5k(write_fixture(tmp_path / "slf.jsonl"))
    with caplog.at_level(logging.WARNING):
        assert len(feedback_samples(samples)) == len(FIXTURE_POSTS) - 1
    assert "1 of 6 samples have empty feedback" in caplog.text
    small, large = subsample(samples, 2, seed=3), subsample(samples, 4, seed=3)
    assert [s.id for s in small] == [s.id for s in large[:2]]
    assert all(s.feedback for s in large)
    assert [s.id for s in subsample(samples, 4, seed=3)] == [s.id for s in large]
    assert {tuple(s.id for s in subsample(samples, 5, seed=k)) for k in range(5)} != {tuple(s.id for s in large)}
    with pytest.raises(ValueError, match="only 5 have feedback"):
        subsample(samples, 6)


def test_comparisons_follow_preference_and_skip_unlabelled(tmp_path, caplog):
    samples = load_slf5k(write_fixture(tmp_path / "slf.jsonl"))
    with caplog.at_level(logging.WARNING):
        rows = comparisons(samples, lambda s: summarize_prompt(s.title, s.post))
    assert len(rows) == len(FIXTURE_POSTS) - 1 and "skipped 1 of 6 samples without a comparison label" in caplog.text
    first, second = rows[0], rows[1]
    assert first["chosen"].strip() == samples[0].generated_summary_for_comparison_A  # "Summary A"
    assert second["chosen"].strip() == samples[1].generated_summary_for_comparison_B  # "Summary B"
    assert second["rejected"].strip() == samples[1].generated_summary_for_comparison_A
    assert first["prompt"].startswith("Title: Partner forgets my birthday") and first["prompt"].endswith("TL;DR:")
