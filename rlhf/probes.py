"""Out-of-task probe prompts: instructions far from any training task, to see drift where training did not look.

A fine-tuning round changes a model on its task's prompts, and often elsewhere too. Sampling the
model before and after on these probes and comparing the outputs with :func:`rlhf.behaviour.behaviour_diff`
shows such changes. The shipped set (``rlhf/data/probes.jsonl``, written for this project, not taken from a
dataset) holds 132 instructions in 12 categories: factual questions, how-tos, creative writing, rewriting,
math word problems, coding, advice, summarising a short paragraph, explanations, opinions, planning and
classification. Each line is ``{"id": str, "category": str, "prompt": str}``.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rlhf.artifacts import iter_jsonl


@dataclass(frozen=True)
class Probe:
    id: str
    category: str
    prompt: str


def default_probes_path() -> Path:
    """The probe set shipped as package data."""
    return Path(str(importlib.resources.files("rlhf") / "data" / "probes.jsonl"))


def load_probes(path: str | os.PathLike | None = None, *, categories: Sequence[str] | None = None) -> list[Probe]:
    """The probes of ``path`` (default: the shipped set), optionally only those of ``categories``.

    A line without a non-empty string ``id``, ``category`` or ``prompt``, or a repeated id, raises naming the
    file and line; an unknown category raises listing the known ones.
    """
    path = Path(path) if path is not None else default_probes_path()
    probes: list[Probe] = []
    seen: set[str] = set()
    for _, where, row in iter_jsonl(path):
        for key in ("id", "category", "prompt"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise ValueError(f"{where}: '{key}' must be a non-empty string, got {row.get(key)!r}")
        if row["id"] in seen:
            raise ValueError(f"{where}: id {row['id']!r} appears twice")
        seen.add(row["id"])
        probes.append(Probe(row["id"], row["category"], row["prompt"]))
    if not probes:
        raise ValueError(f"{path}: no probes")
    if categories is not None:
        known = sorted({p.category for p in probes})
        unknown = sorted(set(categories) - set(known))
        if unknown:
            raise ValueError(f"unknown probe categories {unknown} in {path}; known: {', '.join(known)}")
        probes = [p for p in probes if p.category in set(categories)]
    return probes


def spread_probes(n: int, path: str | os.PathLike | None = None) -> list[Probe]:
    """``n`` probes taken in turn from every category (the first of each, then the second, ...), so that a
    small sample still covers all of them; the same ``n`` always gives the same probes."""
    by_category: dict[str, list[Probe]] = {}
    for probe in load_probes(path):
        by_category.setdefault(probe.category, []).append(probe)
    ordered = [queue[i] for i in range(max(map(len, by_category.values())))
               for queue in by_category.values() if i < len(queue)]
    if n > len(ordered):
        raise ValueError(f"asked for {n} probes but {path or default_probes_path()} holds {len(ordered)}")
    return ordered[:n]

