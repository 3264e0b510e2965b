"""The command line every recipe shares: quiet logging, one-line errors, a clean Ctrl-C.

    if __name__ == "__main__":
        run_recipe(main)        # main(argv) loads its config with rlhf.config.load_config and runs

- A config or input error (unknown key, bad value, missing file, another run's directory, a model that
  cannot be loaded offline, a malformed data row, an accelerate launch asking for sharding it cannot have:
  :func:`rlhf.sharding.check_launch`) prints one message naming the file, line and key, with no Python
  traceback, and exits with status 2. ``--debug`` shows the traceback (and debug logging).
- Ctrl-C prints where the run stopped and where a rerun of the same command resumes (:data:`progress`
  is kept up to date by the stage runner and the RL trainer), and exits with status 130.
- Only the toolkit's own loggers print INFO; other libraries' root-logger noise stays at WARNING.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from rlhf.artifacts import DataFormatError, RunDirectoryMismatch, progress
from rlhf.config import ConfigError
from rlhf.models import ModelNotAvailableError
from rlhf.sharding import check_launch

OWN_LOGGERS = ("rlhf", "language_feedback", "vlm_rewards", "envs")
#: Errors that are the user's input, not a bug: shown as one message without a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, RunDirectoryMismatch, ModelNotAvailableError, DataFormatError, FileNotFoundError,
)
INTERRUPTED_EXIT = 130  # the shell's status for a process ended by SIGINT
USAGE_EXIT = 2




def configure_logging(debug: bool = False) -> None:
    """WARNING for everything, INFO (DEBUG with ``debug``) for the toolkit's own loggers."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", force=True)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.INFO)


def run_recipe(main: Callable[[list[str]], Any], argv: list[str] | None = None) -> Any:
    """Run ``main(argv)`` as a command: see the module docstring. Exits on errors and Ctrl-C."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    configure_logging(debug)
    try:
        check_launch()  # a launch that asks for sharding it cannot have fails here, before any work
        return main(argv)
    except KeyboardInterrupt:
        print(f"\n{progress.message()}", file=sys.stderr)
        raise SystemExit(INTERRUPTED_EXIT) from None
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"error: {e}\n(run with --debug to see the traceback)", file=sys.stderr)
        raise SystemExit(USAGE_EXIT) from None
