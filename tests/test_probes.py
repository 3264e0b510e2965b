"""The shipped out-of-task probe set and its loader."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rlhf.probes import default_probes_path, load_probes


def test_shipped_probe_set_is_large_varied_and_unique():
    probes = load_probes()
    assert len(probes) >= 100
    categories = Counter(p.category for p in probes)
    assert len(categories) >= 10 and min(categories.values()) >= 5
    assert {"question", "howto", "creative", "rewrite", "math", "coding", "advice", "summarize"} <= set(categories)
    assert len({p.prompt for p in probes}) == len(probes) and len({p.id for p in probes}) == len(probes)
    assert all(len(p.prompt) >= 15 for p in probes)
    # summarise-this-paragraph probes carry a short paragraph to summarise
    assert all(p.prompt.count('"') >= 2 and len(p.prompt) > 150 for p in probes if p.category == "summarize")
    assert default_probes_path().is_file()


def test_categories_filter_and_unknown_category():
    math = load_probes(categories=["math", "coding"])
    assert math and {p.category for p in math} == {"math", "coding"}
    with pytest.raises(ValueError, match=r"unknown probe categories \['poetry'\].*known: advice, classify"):
        load_probes(categories=["poetry"])


def test_bad_probe_files_name_file_and_line(tmp_path):
    path = tmp_path / "probes.jsonl"
    good = {"id": "a", "category": "math", "prompt": "What is 2 + 2?"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"id": "b", "category": "math", "prompt": ""}) + "\n")
    with pytest.raises(ValueError, match=r"probes.jsonl, line 2: 'prompt' must be a non-empty string"):
        load_probes(path)
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(good) + "\n")
    with pytest.raises(ValueError, match=r"line 3: id 'a' appears twice"):
        load_probes(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"line 1: invalid JSON"):
        load_probes(path)
    path.write_text("")
    with pytest.raises(ValueError, match="no probes"):
        load_probes(path)
    with pytest.raises(FileNotFoundError):
        load_probes(tmp_path / "missing.jsonl")
