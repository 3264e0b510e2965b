"""The one pattern for package ``__init__`` files: public names exported lazily.

A package lists its main names and the modules that define them; importing the package stays cheap (no
torch or open_clip until a name is used), and ``from package import Name`` works as usual::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"RewardModel": "rlhf.reward", ...})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable, Callable, list[str]]:
    """``(__getattr__, __dir__, __all__)`` for a package exporting ``names`` (name -> defining module)."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(names[name]), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__, sorted(names)
