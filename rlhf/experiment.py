"""What every experiment shares: a validated config, the run directory it claims, its wall clock, worker pools.

An experiment is a typed config and a class whose stages are methods taking an output directory, run by the
stage runner (:meth:`rlhf.artifacts.RunDir.stage`); see ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from typing_extensions import Self

from rlhf.artifacts import RunDir
from rlhf.config import run_identity


class Experiment:
    """Base of the experiments: ``config`` (validated when it was built), ``run_dir`` (claimed here, so a config
    that failed validation left nothing behind), ``started`` and ``fresh`` (for the wall-time target: a rerun
    that reuses stages says nothing about how long the whole thing takes).

    ``identity`` is what the run directory records and compares (default: the config without runtime fields);
    ``state`` is the accelerate state or ``Accelerator`` when several processes share the run.
    """

    def __init__(self, config: Any, *, identity: dict | None = None, state: Any = None):
        self.config = config
        self.started = time.time()
        self.fresh = not Path(config.output_dir).exists()
        self.run_dir = RunDir(config.output_dir, run_identity(config) if identity is None else identity, state=state)


class _InlinePool:
    """``workers: 0``: run each job in this process when it is submitted (no worker start-up cost)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Any, *args: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def map(self, fn: Any, *iterables: Any) -> Any:
        return map(fn, *iterables)


def worker_pool(workers: int) -> ProcessPoolExecutor | _InlinePool:
    """Worker processes (spawned: each starts clean and sets its own torch threads) or, for 0, this process."""
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers else _InlinePool()
