import json

import pytest

from rlhf.artifacts import RunDir, RunDirectoryMismatch, atomic_path, read_jsonl, write_json_atomic, write_jsonl_atomic


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_run_dir_skips_finished_stages_and_reruns_interrupted_ones(tmp_path):
    calls = []

    def build_a(d):
        calls.append("a")
        (d / "a.txt").write_text("A")

    def crashing_b(d):
        calls.append("b")
        (d / "partial.txt").write_text("partial")
        raise KeyboardInterrupt

    run = RunDir(tmp_path / "run", {"lr": 1})
    run.stage("a", build_a)
    with pytest.raises(KeyboardInterrupt):
        run.stage("b", crashing_b)
    assert not run.is_done("b") and not (tmp_path / "run" / "b").exists()

    run = RunDir(tmp_path / "run", {"lr": 1})  # a rerun
    run.stage("a", build_a)
    run.stage("b", lambda d: (calls.append("b2"), (d / "b.txt").write_text("B")))
    assert calls == ["a", "b", "b2"]
    assert (run.stage_path("b") / "b.txt").read_text() == "B"


def test_run_dir_removes_what_a_killed_stage_left(tmp_path):
    run = RunDir(tmp_path / "run", {"lr": 1})
    killed = tmp_path / "run" / ".b.x1y2.tmp"  # as atomic_path names it; SIGKILL skipped its cleanup
    (killed / "b").mkdir(parents=True)
    (killed / "b" / "weights.bin").write_bytes(b"0" * 1000)
    for other in (".bb.x1y2.tmp", ".b.v2.x1y2.tmp"):  # other stages' ("bb", "b.v2"): not touched
        (tmp_path / "run" / other).mkdir()
    run.stage("b", lambda d: (d / "b.txt").write_text("B"))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        ".b.v2.x1y2.tmp", ".bb.x1y2.tmp", "b", "run_config.json", "stage_times.jsonl"]


def test_run_dir_refuses_another_runs_directory_naming_every_changed_key_in_full(tmp_path):
    RunDir(tmp_path, {"lr": 1, "model": "x", "ilf": {"temperature": 0.7, "seed": 0}})
    with pytest.raises(RunDirectoryMismatch) as error:
        RunDir(tmp_path, {"lr": 2, "model": "x", "ilf": {"temperature": 0.9, "seed": 0}, "new": True})
    assert "ilf.temperature: 0.7 → 0.9" in str(error.value)
    assert "lr: 1 → 2" in str(error.value) and "new: (absent) → true" in str(error.value)
    assert "model" not in str(error.value) and "seed" not in str(error.value)


def test_read_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(ValueError, match=r"d.jsonl, line 3: invalid JSON"):
        read_jsonl(p)


def test_json_artifacts_keep_greek_letters_readable(tmp_path):
    reason = "no refinement passed the unit tests; π_θ is unchanged"
    assert reason in write_json_atomic(tmp_path / "results.json", {"reason": reason}).read_text(encoding="utf-8")
    assert reason in write_jsonl_atomic(tmp_path / "rows.jsonl", [{"reason": reason}]).read_text(encoding="utf-8")
    assert read_jsonl(tmp_path / "rows.jsonl") == [{"reason": reason}]


def test_stage_times_count_each_stage_without_the_stages_nested_in_it(tmp_path):
    import time

    from rlhf.artifacts import stage_times

    outer, inner = RunDir(tmp_path / "outer"), RunDir(tmp_path / "outer" / "inner")

    def parent(out):
        time.sleep(0.05)
        inner.stage("child", lambda d: time.sleep(1.0))

    outer.stage("parent", parent)
    outer.stage("parent", parent)  # finished: not run, not timed again
    times = stage_times(tmp_path)
    assert set(times) == {"outer/parent", "outer/inner/child"}
    assert times["outer/inner/child"] >= 1.0
    assert times["outer/parent"] < 1.0  # its own 0.05 s, without the child's second
