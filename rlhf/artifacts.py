"""Atomic artifacts and resumable run directories.

Every long pipeline (ILF rounds, RL training) writes into a run directory. Each stage builds its
output in a temporary directory next to the final one and renames it into place when complete,
so a killed run never leaves a half-written stage behind, and a rerun skips finished stages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


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
        tmp.write_text(text)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: list[dict]) -> Path:
    return write_text_atomic(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def iter_jsonl(path: str | os.PathLike, error: type[Exception] = ValueError) -> Iterator[tuple[int, str, dict]]:
    """Yield ``(lineno, where, row)`` for each non-blank line of a JSONL file; ``where`` is "<path>, line <n>".

    Invalid JSON or a line that is not a JSON object raises ``error`` naming the file and line;
    loaders pass their own error class and validate fields with ``where`` in their messages.
    """
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


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """All rows of a JSONL file of objects (see :func:`iter_jsonl` for the errors)."""
    return [row for _, _, row in iter_jsonl(path)]


class RunDirectoryMismatch(ValueError):
    """The run directory holds a different run (its saved config differs)."""


class RunDir:
    """A run directory whose stages are directories written atomically.

    ``RunDir(path, config)`` records ``config`` in ``run_config.json``; reopening the same
    directory with a different config raises :class:`RunDirectoryMismatch` instead of silently
    mixing two runs' artifacts.
    """

    CONFIG_FILE = "run_config.json"

    def __init__(self, path: str | os.PathLike, config: dict | None = None):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        if config is not None:
            config = json.loads(json.dumps(config, default=str))  # normalise tuples, paths
            saved = self.path / self.CONFIG_FILE
            if saved.exists():
                previous = json.loads(saved.read_text())
                if previous != config:
                    diff = sorted(k for k in set(previous) | set(config) if previous.get(k) != config.get(k))
                    raise RunDirectoryMismatch(
                        f"run directory {self.path} holds another run (config differs in: {', '.join(diff)}); "
                        "use a new directory or delete it"
                    )
            else:
                write_json_atomic(saved, config)

    def stage_path(self, stage: str) -> Path:
        return self.path / stage

    def is_done(self, stage: str) -> bool:
        return self.stage_path(stage).is_dir()

    def run_stage(self, stage: str, build: Callable[[Path], Any]) -> Path:
        """Run ``build(tmp_dir)`` unless ``stage`` is finished; return the stage directory.

        ``build`` writes its files into ``tmp_dir``; the directory is renamed into place only
        after ``build`` returns, so an interrupted stage is simply rerun. One process writes a run
        directory (the main one under accelerate), so temporary directories of this stage that are
        already there were left by a killed attempt and are removed.
        """
        final = self.stage_path(stage)
        if final.is_dir():
            return final
        leftover = re.compile(rf"\.{re.escape(final.name)}\.[a-z0-9_]+\.tmp")  # atomic_path's names for it
        for path in final.parent.glob(f".{final.name}.*.tmp"):
            if leftover.fullmatch(path.name):
                shutil.rmtree(path, ignore_errors=True)
        with atomic_path(final) as tmp:
            tmp.mkdir()
            build(tmp)
        return final
