"""Load a recipe script as a module by its path (recipes are scripts, not a package; no sys.path edits)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"


def load_recipe(relative_path: str) -> ModuleType:
    """``load_recipe("eval/win_rate.py")``: the script's module, loaded once per test session."""
    path = RECIPES / relative_path
    name = "recipe_" + relative_path.removesuffix(".py").replace("/", "_")
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
