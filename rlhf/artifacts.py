"""Atomic artifacts and resumable run directories.

Every long pipeline (ILF rounds, RL training) writes into a run directory. Each stage builds its
output in a temporary directory next to the final one and renames it into place when complete,
so a killed run never leaves a half-written stage behind, and a rerun skips finished stages.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it onto ``path`` on success.

    Works for files and directories. On an exception the temporary path is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if not target.exists():
            raise FileNotFoundError(f"nothing was written to {target} for {path}")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: list[dict]) -> Path:
    return write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def write_csv_atomic(path: str | os.PathLike, rows: list[dict]) -> Path:
    """Rows of dicts as CSV (columns: the first row's keys), written atomically."""
    import csv
    import io

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, text.getvalue())


def iter_jsonl(path: str | os.PathLike, error: type[Exception] | None = None) -> Iterator[tuple[int, str, dict]]:
    """Yield ``(lineno, where, row)`` for each non-blank line of a JSONL file; ``where`` is "<path>, line <n>".

    Invalid JSON or a line that is not a JSON object raises ``error`` naming the file and line;
    loaders pass their own error class and validate fields with ``where`` in their messages.
    """
    error = error or DataFormatError
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"{where}: invalid JSON: {e.msg}") from None
            if not isinstance(row, dict):
                raise error(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield lineno, where, row


def unique_rows(rows: Iterable[tuple[str, Any]], key: Callable[[Any], Any], what: str, source: Any,
                error: type[Exception] | None = None) -> list[Any]:
    """The items of ``(where, item)`` pairs in order, each ``key`` once; a repeat raises ``error`` naming where
    both are (``what`` names the key, e.g. "id"); no items at all raises too, naming ``source``."""
    error = error or DataFormatError
    items, seen = [], {}
    for where, item in rows:
        k = key(item)
        if k in seen:
            raise error(f"{where}: duplicate {what} {k!r} (first at {seen[k]})")
        seen[k] = where
        items.append(item)
    if not items:
        raise error(f"{source}: no rows")
    return items


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All rows of a JSONL file of objects (see :func:`iter_jsonl` for the errors)."""
    return [row for _, _, row in iter_jsonl(path)]


@dataclass
class Progress:
    """Where a run is, for the Ctrl-C message: the stage running (or the last one finished, between stages), and
    for RL the step reached and the last saved."""

    stage: str = ""
    finished: str = ""
    step: int | None = None
    resume_step: int | None = None

    def message(self) -> str:
        if self.step is not None:
            resume = self.resume_step or 0
            return f"interrupted at step {self.step}; rerun the same command to resume from step {resume}"
        if self.stage:
            return (f"interrupted in stage '{self.stage}'; rerun the same command to resume from that stage "
                    "(finished stages are kept)")
        if self.finished:
            return (f"interrupted after stage '{self.finished}' finished; rerun the same command to resume from "
                    "the next stage (finished stages are kept)")
        return "interrupted before any stage started; rerun the same command to start again"


progress = Progress()

STAGE_TIMES = "stage_times.jsonl"
_stage_clock: list[float] = []  # per stage running in this process, innermost last: seconds of stages nested in it


class DataFormatError(ValueError):
    """A row of a data file is malformed; the message names the file, the line and the field."""


class RunDirectoryMismatch(ValueError):
    """The run directory holds a different run (its saved config differs)."""


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        return {k: v for key, value in tree.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def config_changes(previous: dict, config: dict) -> list[str]:
    """The keys whose values differ, in full (``ilf.temperature: 0.7 → 0.9``), sorted."""
    old, new = _flatten(previous), _flatten(config)
    missing = object()
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, missing), new.get(key, missing)
        if a != b:
            show = lambda v: "(absent)" if v is missing else json.dumps(v, ensure_ascii=False, default=str)
            lines.append(f"{key}: {show(a)} → {show(b)}")
    return lines


class RunDir:
    """A run directory whose stages are directories written atomically: the one stage runner.

    ``RunDir(path, config)`` records ``config`` in ``run_config.json``; reopening the same directory
    with a different config raises :class:`RunDirectoryMismatch` listing every changed key, instead of
    silently mixing two runs' artifacts. Validate the config before opening the directory: a config
    that fails validation must leave nothing behind.

    Under several processes (``state``: an accelerate ``PartialState`` or ``Accelerator``), every
    process computes each stage (generation, test runs and training are sharded between them), the main
    process writes it, and all wait for it before the next stage.
    """

    CONFIG_FILE = "run_config.json"

    def __init__(self, path: str | os.PathLike, config: dict | None = None, *, state: Any = None):
        self.path = Path(path)
        self.state = state
        if self.is_main:
            self._claim(config)
        self.wait()

    def _claim(self, config: dict | None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if config is None:
            return
        config = json.loads(json.dumps(config, default=str))  # normalise tuples, paths
        saved = self.path / self.CONFIG_FILE
        if not saved.exists():
            write_json_atomic(saved, config)
            return
        changes = config_changes(json.loads(saved.read_text()), config)
        if changes:
            raise RunDirectoryMismatch(
                f"run directory {self.path} holds another run; its config differs in:\n  " + "\n  ".join(changes)
                + "\nuse a new output directory, or rerun with the old values to resume"
            )

    @property
    def is_main(self) -> bool:
        return self.state is None or self.state.is_main_process

    def wait(self) -> None:
        """All processes meet here (a no-op in a single process)."""
        if self.state is not None:
            self.state.wait_for_everyone()

    def stage_path(self, stage: str) -> Path:
        return self.path / stage

    def is_done(self, stage: str) -> bool:
        return self.stage_path(stage).is_dir()

    def import_stage(self, stage: str, source: RunDir) -> Path:
        """Take ``source``'s finished ``stage`` as this run's own (hard links; a copy across file systems).

        For experiments that compare methods on identical inputs: a run whose stage would compute exactly
        what another run's finished stage holds (same model, data, prompts, seeds) reuses it instead of
        computing it again. The caller vouches for that identity; a stage already here is kept.
        """
        final = self.stage_path(stage)
        if self.is_main and not final.is_dir():
            if not source.is_done(stage):
                raise FileNotFoundError(f"{source.stage_path(stage)}: stage {stage!r} of {source.path} is not finished")

            def link_or_copy(src: str, dst: str) -> None:
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)

            with atomic_path(final) as tmp:
                shutil.copytree(source.stage_path(stage), tmp, copy_function=link_or_copy)
        self.wait()
        return final

    def stage(self, stage: str, build: Callable[[Path], Any]) -> Path:
        """Run ``build(out_dir)`` unless ``stage`` is finished; return the stage directory.

        The seconds it took, less those of stages run inside it (any run directory), are appended to
        ``stage_times.jsonl`` (:func:`stage_times`).

        ``build`` writes its files into ``out_dir``. On the main process ``out_dir`` is a temporary
        directory renamed into place only after ``build`` returns, so an interrupted stage is simply
        rerun; temporary directories a killed attempt of this stage left are removed first. The other
        processes run ``build`` too (they take part in sharded work) into a scratch directory that is
        discarded. Every process waits until the stage is in place.
        """
        final = self.stage_path(stage)
        if final.is_dir():
            return final
        logger.info("stage %s: running", stage)
        progress.stage = stage
        if self.is_main:
            leftover = re.compile(rf"\.{re.escape(final.name)}\.[a-z0-9_]+\.tmp")  # atomic_path's names for it
            for path in final.parent.glob(f".{final.name}.*.tmp"):
                if leftover.fullmatch(path.name):
                    shutil.rmtree(path, ignore_errors=True)
            started = time.perf_counter()
            _stage_clock.append(0.0)
            try:
                with atomic_path(final) as tmp:
                    tmp.mkdir()
                    build(tmp)
            finally:
                nested = _stage_clock.pop()
            seconds = time.perf_counter() - started
            if _stage_clock:
                _stage_clock[-1] += seconds
            with open(self.path / STAGE_TIMES, "a") as log:  # one short line per stage: a profile, not an artifact
                log.write(json.dumps({"stage": stage, "seconds": round(seconds - nested, 3)}) + "\n")
        else:
            with tempfile.TemporaryDirectory() as scratch:
                out = Path(scratch) / final.name
                out.mkdir()
                build(out)
        self.wait()
        progress.stage, progress.finished = "", stage
        return final


def stage_times(root: str | os.PathLike) -> dict[str, float]:
    """Seconds per stage of every run directory under ``root``, keyed by the stage's path relative to ``root``
    (``seed0/ilf_embedding/round1/refinements``), summed over reruns; each excludes the stages nested in it."""
    root = Path(root)
    times: dict[str, float] = {}
    for log in sorted(root.rglob(STAGE_TIMES)):
        for line in log.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a killed run
            key = (log.parent / row["stage"]).relative_to(root).as_posix()
            times[key] = times.get(key, 0.0) + row["seconds"]
    return times
