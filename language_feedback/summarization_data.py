"""SLF5K-format summarization feedback (Scheurer et al. 2023): loading, validation, subsampling, comparisons.

Each row is a Reddit post with a model summary that a person wrote feedback on, an ideal summary written
by a person (the "human refinement"), the TL;DR reference summary, and a pairwise comparison of two other
summaries. Sources: a JSONL file, a directory holding ``<split>.jsonl`` files, or the hub id
``JeremyAlain/SLF5K`` (only where a dataset hub is reachable).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from language_feedback.prompts import summary_completion
from rlhf.artifacts import iter_jsonl, unique_rows

logger = logging.getLogger(__name__)

HUB_ID = "JeremyAlain/SLF5K"
SPLITS = ("train", "development", "validation", "test")
# Labels SLF5K uses in `comparison_preference`; an empty value means the row has no comparison label.
PREFERENCE_LABELS = {"Summary A": "A", "Summary B": "B", "A": "A", "B": "B"}


@dataclass(frozen=True)
class SummaryFeedbackSample:
    """One SLF5K row. Empty strings stand for absent values (e.g. no feedback, no comparison label)."""

    id: str
    subreddit: str
    title: str
    post: str
    tldr_human_reference_summary: str
    ideal_human_summary: str
    generated_summary_for_feedback: str
    feedback: str
    feedback_class: str
    generated_summary_for_comparison_A: str
    generated_summary_for_comparison_B: str
    comparison_preference: str

    @property
    def has_feedback(self) -> bool:
        return bool(self.feedback.strip()) and bool(self.generated_summary_for_feedback.strip())


FIELDS = tuple(f.name for f in dataclasses.fields(SummaryFeedbackSample))
# Fields without which a row is useless for any part of the pipeline.
NON_EMPTY_FIELDS = ("id", "post")


class SLF5KFormatError(ValueError):
    """A row of an SLF5K-format file is malformed; the message names file, line and field."""


def validate_row(row: object, where: str) -> SummaryFeedbackSample:
    """Check one raw row (a JSON object) and build a sample; ``where`` (``file:line``) prefixes errors."""
    if not isinstance(row, dict):
        raise SLF5KFormatError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [f for f in FIELDS if f not in row]
    if missing:
        raise SLF5KFormatError(f"{where}: missing field(s) {', '.join(missing)}")
    values = {}
    for field in FIELDS:
        value = row[field]
        if value is None:
            value = ""
        if field == "id" and isinstance(value, int):
            value = str(value)
        if not isinstance(value, str):
            raise SLF5KFormatError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")
        values[field] = value
    for field in NON_EMPTY_FIELDS:
        if not values[field].strip():
            raise SLF5KFormatError(f"{where}: field {field!r} is empty")
    pref = values["comparison_preference"].strip()
    if pref and pref not in PREFERENCE_LABELS:
        raise SLF5KFormatError(
            f"{where}: field 'comparison_preference' is {pref!r}; expected one of {sorted(PREFERENCE_LABELS)} or empty"
        )
    return SummaryFeedbackSample(**values)


def _load_jsonl(path: Path) -> list[SummaryFeedbackSample]:
    rows = ((where, validate_row(row, where)) for _, where, row in iter_jsonl(path, SLF5KFormatError))
    return unique_rows(rows, lambda sample: sample.id, "id", path, SLF5KFormatError)


def _load_hub(split: str) -> list[SummaryFeedbackSample]:
    hint = (
        f"could not load {HUB_ID!r} split {split!r} from the dataset hub (no hub is reachable offline). "
        f"Pass a local SLF5K-format JSONL file, or a directory holding <split>.jsonl files, instead"
    )
    if os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise FileNotFoundError(hint + " (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set).")
    try:
        import datasets

        ds = datasets.load_dataset(HUB_ID, split=split)
    except Exception as e:  # any failure to reach or read the hub gets the same actionable message
        raise FileNotFoundError(f"{hint}. Cause: {type(e).__name__}: {e}") from e
    return [validate_row(dict(row), f"{HUB_ID}[{split}] row {i}") for i, row in enumerate(ds)]


def load_slf5k(source: str | os.PathLike, split: str = "train") -> list[SummaryFeedbackSample]:
    """Load and validate SLF5K-format rows.

    ``source`` is a JSONL file (loaded whole; ``split`` is then only a label), a directory with
    ``<split>.jsonl``, or the hub id ``JeremyAlain/SLF5K``. A malformed row raises
    :class:`SLF5KFormatError` naming file, line and field.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; SLF5K splits are {', '.join(SPLITS)}")
    path = Path(source)
    if path.is_dir():
        path = path / f"{split}.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{source}: no {split}.jsonl in this directory (SLF5K split files are <split>.jsonl)")
        return _load_jsonl(path)
    if path.is_file():
        return _load_jsonl(path)
    if str(source) == HUB_ID:
        return _load_hub(split)
    raise FileNotFoundError(
        f"{source}: no such file or directory. Pass an SLF5K-format JSONL file, a directory of <split>.jsonl "
        f"files, or the hub id {HUB_ID!r} where a dataset hub is reachable"
    )


def feedback_samples(samples: Sequence[SummaryFeedbackSample]) -> list[SummaryFeedbackSample]:
    """The samples that carry feedback (and the summary it is about); logs how many were dropped."""
    kept = [s for s in samples if s.has_feedback]
    if len(kept) < len(samples):
        logger.warning("%d of %d samples have empty feedback or no summary for it; skipped", len(samples) - len(kept), len(samples))
    return kept


def subsample(samples: Sequence[SummaryFeedbackSample], n: int, seed: int = 0) -> list[SummaryFeedbackSample]:
    """``n`` feedback samples drawn with ``seed``; nested across ``n`` (the 100 are inside the 1K for one seed).

    Nesting makes a sample-efficiency sweep compare growing datasets rather than unrelated ones.
    """
    pool = feedback_samples(samples)
    if n < 1:
        raise ValueError(f"subsample: n must be >= 1, got {n}")
    if n > len(pool):
        raise ValueError(f"subsample: asked for {n} feedback samples but only {len(pool)} have feedback")
    order = list(range(len(pool)))
    random.Random(seed).shuffle(order)
    return [pool[i] for i in order[:n]]


def comparisons(samples: Sequence[SummaryFeedbackSample], prompt_fn,
                completion_fn=summary_completion) -> list[dict[str, str]]:
    """Human pairwise comparisons as ``{"prompt", "chosen", "rejected"}`` rows (TRL's preference format).

    ``prompt_fn(sample) -> str`` builds the prompt the summaries answer (e.g. the summarization
    prompt), ``completion_fn(summary) -> str`` the completion in that prompt's format. Rows without a comparison label, or with an empty summary, are skipped with a warning
    that counts them.
    """
    rows, unlabelled, empty = [], 0, 0
    for s in samples:
        label = PREFERENCE_LABELS.get(s.comparison_preference.strip())
        if label is None:
            unlabelled += 1
            continue
        a, b = s.generated_summary_for_comparison_A.strip(), s.generated_summary_for_comparison_B.strip()
        if not a or not b:
            empty += 1
            continue
        chosen, rejected = (a, b) if label == "A" else (b, a)
        rows.append({"prompt": prompt_fn(s), "chosen": completion_fn(chosen), "rejected": completion_fn(rejected)})
    if unlabelled or empty:
        logger.warning(
            "comparisons: skipped %d of %d samples without a comparison label and %d with an empty summary",
            unlabelled, len(samples), empty,
        )
    return rows
