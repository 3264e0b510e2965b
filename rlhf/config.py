"""Dataclass configs from a YAML file plus command-line overrides: one pattern for every recipe.

    cfg = load_config(TrainConfig)             # reads sys.argv
    # python recipe.py --config cfg.yaml --learning_rate 1e-4 --rl.algo_kwargs '{n_steps: 256}'

Nested dataclass fields are addressed with dots. Unknown keys and values of the wrong type are
errors that name the key, and for YAML the file and line. Cross-field checks live in the config
classes themselves (``__post_init__`` raising :class:`ConfigError` with the ``key`` at fault); the
loader adds where that key was set. Fields marked ``runtime_field(...)`` (thread counts, progress
bars) change how fast a run goes, not what it computes: :func:`run_identity` leaves them out, so a
run directory can be resumed with other values.

Why not ``TrlParser``/``HfArgumentParser``: they read flat argument lists, while the experiments here
nest several trainers' settings in one file (an ILF run holds SFT settings for two models), and their
errors do not name the YAML file and line. The keys inside each section are TRL's and SB3's argument
names, so a TRL user reads these files as they read TRL's.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is unknown, missing, of the wrong type, or inconsistent with another value.

    ``key`` is the dotted key at fault, relative to the config class that raised (set by cross-field
    checks in ``__post_init__``); the loader prefixes it with the file, line and enclosing keys.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(f"config key '{key}': {message}" if key else message)
        self.key, self.message = key, message


def runtime_field(default: Any, **kwargs: Any) -> Any:
    """A dataclass field that changes speed or display, not results (left out of :func:`run_identity`)."""
    return dataclasses.field(default=default, metadata={"runtime": True}, **kwargs)


def _yaml_lines(node: yaml.Node, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML mapping to its 1-based line number."""
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = prefix + (str(key_node.value),)
            lines[path] = key_node.start_mark.line + 1
            lines.update(_yaml_lines(value_node, path))
    return lines


@dataclasses.dataclass(frozen=True)
class _Source:
    """Where values came from: a YAML file (with line numbers per key path) and/or the command line."""

    path: str = ""
    lines: dict = dataclasses.field(default_factory=dict)
    command_line: frozenset = frozenset()

    def where(self, key: str) -> str:
        parts = tuple(key.split("."))
        line = self.lines.get(parts)
        if line is not None:
            return f"{self.path} line {line}: config key '{key}'"
        if any(parts[:n] in self.command_line for n in range(1, len(parts) + 1)):
            return f"config key '{key}' (command line)"
        return f"config key '{key}' (default value)" if self.path or self.command_line else f"config key '{key}'"


def _coerce(value: Any, hint: Any, key: str, src: _Source) -> Any:
    """Check ``value`` against the type ``hint``; convert only where it is lossless and expected."""
    where = src.where(key)
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # an optional value or section: its own error says what is wrong, and where
            return _coerce(value, options[0], key, src)
        for arg in options:
            try:
                return _coerce(value, arg, key, src)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {value!r} matches none of {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(hint):
        if isinstance(hint, type) and isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {hint.__name__}, got {type(value).__name__}")
        return _build(hint, value, key + ".", src)
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]", src) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{key}[{i}]", src) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        key_t, val_t = args if args else (Any, Any)
        return {_coerce(k, key_t, key, src): _coerce(v, val_t, f"{key}.{k}", src) for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        # PyYAML reads "1e-4" (no dot) as a string; accept numeric strings for float fields.
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    raise ConfigError(f"{where}: unsupported config type {hint}")


def _build(cls: type[T], values: dict, prefix: str, src: _Source) -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"{src.where(prefix + str(key))} is unknown for {cls.__name__} "
                              f"({hint}known keys: {', '.join(fields)})")
        kwargs[name] = _coerce(value, hints[name], prefix + name, src)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{src.path or cls.__name__}: missing required config key(s): {', '.join(prefix + m for m in missing)}")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        if e.key is None:
            raise
        raise type(e)(f"{src.where(prefix + e.key)}: {e.message}") from None


def _parse_cli_value(raw: str, hint: Any) -> Any:
    """Command-line values are YAML scalars/lists (``--n 3``, ``--tags [a,b]``); strings stay strings."""
    if hint is str or hint is Path:
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _nested_dataclass(hint: Any) -> Any:
    """``X`` for a dataclass ``X`` or ``X | None``; otherwise ``hint`` unchanged."""
    if get_origin(hint) in (typing.Union, types.UnionType):
        classes = [a for a in get_args(hint) if dataclasses.is_dataclass(a)]
        if len(classes) == 1 and all(a is type(None) or a is classes[0] for a in get_args(hint)):
            return classes[0]
    return hint


def _field_hint(cls: type, dotted: str) -> Any:
    hint: Any = cls
    for part in dotted.split("."):
        hint = _nested_dataclass(hint)
        if not dataclasses.is_dataclass(hint):
            raise ConfigError(f"unknown option --{dotted}: '{part}' is not a nested config")
        hints = get_type_hints(hint)
        if part not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(hint))
            raise ConfigError(f"unknown option --{dotted} (known keys here: {known})")
        hint = hints[part]
    return hint


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        if tree.get(p) is None:  # absent, or `lora: null` in the file: --lora.r 8 switches it on
            tree[p] = {}
        node = tree[p]
        if not isinstance(node, dict):
            raise ConfigError(f"--{dotted}: '{p}' is not a mapping in the config")
        tree = node
    tree[leaf] = value


def _help(cls: type, prefix: str = "") -> list[str]:
    out = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(_nested_dataclass(hint)):
            optional = "" if dataclasses.is_dataclass(hint) else "  (optional section; null = off)"
            out.append(f"  --{prefix}{f.name}.*{optional}")
            out += _help(_nested_dataclass(hint), prefix + f.name + ".")
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        doc = f.metadata.get("help", "")
        out.append(f"  --{prefix}{f.name}  [{getattr(hint, '__name__', str(hint))}] default: {default!r}  {doc}".rstrip())
    return out


def load_config(cls: type[T], argv: Sequence[str] | None = None, *, default_config: str | Path | None = None) -> T:
    """Build ``cls`` from ``--config file.yaml`` (optional) and ``--key value`` overrides.

    Overrides win over the file; both are type-checked against the dataclass fields, and the config's
    own cross-field checks run. ``default_config`` is read when no ``--config`` is given.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if default_config is not None and not any(a == "--config" or a.startswith("--config=") for a in argv):
        argv = ["--config", str(default_config), *argv]
    if "-h" in argv or "--help" in argv:
        print(f"usage: --config FILE.yaml [--key value ...]\n\n{cls.__name__} keys:\n" + "\n".join(_help(cls)))
        raise SystemExit(0)
    config_path, overrides = None, []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}: options look like --key value")
        key, eq, raw = arg[2:].partition("=")
        if not eq:
            # `--model --output_dir x`: the next token is an option, not --model's value.
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise ConfigError(f"option --{key} needs a value (write --{key}=VALUE for a value that starts with --)")
            raw, i = argv[i + 1], i + 1
        i += 1
        key = key.replace("-", "_")
        if key == "config":
            config_path = Path(raw)
        else:
            overrides.append((key, raw))

    values: dict = {}
    lines: dict = {}
    source = ""
    if config_path is not None:
        if not config_path.is_file():
            raise ConfigError(f"config file not found: {config_path}")
        text = config_path.read_text()
        source = str(config_path)
        try:
            node = yaml.compose(text)
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{config_path}: invalid YAML: {e}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{config_path}: the top level must be a mapping of config keys")
        lines = _yaml_lines(node) if node is not None else {}
    for key, raw in overrides:
        _set_dotted(values, key, _parse_cli_value(raw, _field_hint(cls, key)))
        lines.pop(tuple(key.split(".")), None)  # errors for this key come from the command line
    command_line = frozenset(tuple(key.split(".")) for key, _ in overrides)
    return _build(cls, values, "", _Source(source, lines, command_line))


def config_from_dict(cls: type[T], values: dict, source: str = "") -> T:
    """Build ``cls`` from a plain dict (e.g. a run's saved config) with the checks of :func:`load_config`.

    ``source`` (the file the dict came from) starts every error message, which names the key at fault.
    """
    try:
        return _build(cls, values, "", _Source())
    except ConfigError as e:
        if not source:
            raise
        raise type(e)(f"{source}: {e}") from None


def config_to_dict(config: Any) -> dict:
    """A plain dict (for logging, run-directory checks and saving)."""
    return json_safe(dataclasses.asdict(config))


def run_identity(config: Any) -> dict:
    """The config as a plain dict without its runtime fields: what a run directory records and compares."""

    def strip(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return {f.name: strip(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not f.metadata.get("runtime")}
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [strip(v) for v in obj]
        return json_safe(obj)

    return strip(config)


def json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
