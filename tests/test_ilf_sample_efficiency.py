"""The ILF sample-efficiency sweep (recipes/eval/ilf_sample_efficiency.py) end to end on a tiny GPT-2."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import yaml
from _recipes import load_recipe
from test_summarization_data import fixture_rows, write_fixture

from language_feedback import sample_efficiency
from rlhf.artifacts import read_jsonl
from rlhf.config import ConfigError

sweep = load_recipe("eval/ilf_sample_efficiency.py")
METHODS = list(sample_efficiency.METHODS)
COUNTS = [2, 4]  # the fixture's train split has 5 samples with feedback


@pytest.fixture
def config_file(tiny_lm_path, tmp_path) -> Path:
    """An SLF5K-format train/test directory from the shared fixture rows and a config sized for the tiny model."""
    data = tmp_path / "slf5k"
    data.mkdir()
    write_fixture(data / "train.jsonl")
    write_fixture(data / "test.jsonl", [{**row, "id": f"test{i}"} for i, row in enumerate(fixture_rows())])
    cfg = {
        "data": str(data), "sample_counts": COUNTS, "methods": METHODS, "n_test": 3, "best_of": 2,
        "temperature": 1.0, "output_dir": str(tmp_path / "out"),
        "reward": {"learning_rate": 1e-3, "num_train_epochs": 1.0, "per_device_train_batch_size": 4, "max_length": 256,
                   "logging_steps": 1},
        "ilf": {
            "model": tiny_lm_path, "num_refinements": 2, "selector": "random", "max_new_tokens": 8,
            "temperature": 1.0, "generation_batch_size": 4,
            "sft": {"learning_rate": 1e-3, "num_train_epochs": 1.0, "per_device_train_batch_size": 4, "max_length": 256,
                    "logging_steps": 1},
        },
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def stage_files(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in out.glob("**/*") if p.is_file() and p.parent != out}


def test_sweep_points_files_nesting_and_resume(config_file, tmp_path, monkeypatch, capsys, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        results = sweep.main(["--config", str(config_file)])
    assert "the judge is trained on all train comparisons, a superset of every best-of-N" in caplog.text

    expected = [("base", 0)] + [(m, n) for n in COUNTS for m in METHODS]
    assert [(r["method"], r["n"]) for r in results] == expected
    for r in results:
        assert 0.0 <= r["low"] <= r["value"] <= r["high"] <= 1.0, r
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], int(r["n"])) for r in rows] == expected
    assert [float(r["value"]) for r in rows] == pytest.approx([r["value"] for r in results])
    saved = json.loads((out / "results.json").read_text())
    assert saved["results"] == results and saved["n_test"] == 3
    assert (out / "sample_efficiency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "base n=0: win rate vs reference" in printed and f"ilf_best_of_n n={COUNTS[-1]}:" in printed

    # Each point's win rate is the mean of its judged outcomes on the 3 test posts.
    for method, n in expected:
        stage = out / (method if n == 0 else f"n{n}/{method}")
        judged = read_jsonl(stage / "summaries.jsonl")
        assert [row["id"] for row in judged] == ["test0", "test1", "test2"]
        value = next(r["value"] for r in results if (r["method"], r["n"]) == (method, n))
        assert value == pytest.approx(sum(row["outcome"] for row in judged) / 3)
        assert not (stage / "model").exists()  # fine-tuned weights are dropped once judged

    # Nested subsamples: the 2 samples are among the 4, in the results and in what ILF actually trained on.
    small, large = (saved["sample_ids"][str(n)] for n in COUNTS)
    assert len(small) == 2 and len(large) == 4 and set(small) < set(large)
    ilf_ids = [[row["id"] for row in read_jsonl(out / f"n{n}/ilf_model/run/data/samples.jsonl")] for n in COUNTS]
    assert ilf_ids == [small, large]

    # A rerun trains and generates nothing: every stage is reused, its files untouched.
    before = stage_files(out)
    assert len(before) > 20

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished stage was recomputed")

    for name in ("sft", "generate_replies", "SummarizationILF", "train_reward_model"):
        monkeypatch.setattr(sample_efficiency, name, must_not_run)
    assert sweep.main(["--config", str(config_file)]) == results
    assert stage_files(out) == before
    # Fewer counts and methods are the same run (not a config mismatch) and reuse its stages too.
    again = sweep.main(["--config", str(config_file), "--sample_counts", f"[{COUNTS[0]}]", "--methods", "[ilf]"])
    assert again == [results[0], results[1]]
    assert stage_files(out) == before


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--sample_counts", "[2,6]"], r"'sample_counts': \[6\] outside 1..5, the number of feedback samples in .*'train'"),
        (["--sample_counts", "[0,2]"], r"'sample_counts': \[0\] outside 1..5"),
        (["--methods", "[ilf,rlhf]"], r"'methods' \(command line\): unknown method\(s\) \['rlhf'\]; known: ilf, sft_"),
        (["--sample_counts", "[2,2]"], r"'sample_counts' \(command line\): \[2, 2\]: an entry is repeated"),
    ],
)
def test_bad_sweep_fails_before_any_work(config_file, tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        sweep.main(["--config", str(config_file), *override])
    assert not (tmp_path / "out").exists()
