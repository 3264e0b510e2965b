"""Stdlib-only code shared by the sandbox's caller and its fork server (which imports it by file name).

- The strict value format. A value crosses between the untrusted program process and a trusted judge
  (the caller, or the trusted test harness) only as data: :func:`to_tree` turns a plain value into a
  JSON-able tree, :func:`from_tree` rebuilds it. Plain means exactly ``None``, ``bool``, ``int``, ``float``,
  ``complex``, ``str``, ``bytes`` and ``list``, ``tuple``, ``dict``, ``set``, ``frozenset`` of plain values,
  checked with ``type(v) is ...`` all the way down (no subclasses, no foreign objects), plus the three
  ``collections`` dicts that MBPP solutions return (``Counter``, ``OrderedDict``, ``defaultdict`` with a
  builtin factory). The judge rebuilds genuine instances of these types from the data, so nothing a program
  defines (``__eq__``, ``__hash__``, ``__bool__``, ``__class__``...) ever runs on the trusted side. Oversized
  or too deeply nested values are refused on both sides.
- The wording of failure reports (failing assert with actual and expected values, exception, traceback),
  so that a verdict reads the same whichever side judged it.
"""

from __future__ import annotations

import collections
import json
import reprlib
import traceback
from typing import Any

MAX_VALUE_CHARS = 1_000_000  # one value, as JSON text
MAX_DEPTH = 100
MAX_NODES = 200_000
MAX_INT_BITS = 40_000  # about 12,000 decimal digits; str() refuses more than 4,300 by default anyway
PLAIN_DESCRIPTION = (
    "None, bool, int, float, complex, str, bytes, and lists, tuples, dicts, sets and frozensets of them"
)
_DEFAULT_FACTORIES = {"list": list, "int": int, "float": float, "str": str, "set": set, "dict": dict, "tuple": tuple}
_DICT_TYPES = {"dict": dict, "Counter": collections.Counter, "OrderedDict": collections.OrderedDict}
SOURCE_PARTS = {"<setup>": "setup", "<program>": "program", "<tests>": "tests"}


class NotPlainData(TypeError):
    """A value is not plain data; ``type_name`` names the offending type."""

    def __init__(self, type_name: str):
        super().__init__(f"the value is of type {type_name}, not plain data ({PLAIN_DESCRIPTION})")
        self.type_name = type_name


class ValueTooLarge(ValueError):
    """A value is over the size limits of the value format."""


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0
        self.chars = 0

    def spend(self, nodes: int, chars: int) -> None:
        self.nodes += nodes
        self.chars += chars
        if self.nodes > MAX_NODES or self.chars > MAX_VALUE_CHARS:
            raise ValueTooLarge(f"the value is larger than {MAX_VALUE_CHARS} characters or {MAX_NODES} items")


def to_tree(value: Any) -> Any:
    """A plain value as a JSON-able tree; raises :class:`NotPlainData` or :class:`ValueTooLarge`.

    ``None``, bools, ints, floats, strings and lists map to JSON; every other type is a one-key object
    naming it (``{"tuple": [...]}``, ``{"dict": [[k, v], ...]}``, ``{"bytes": "hex"}``...).
    """
    return _to_tree(value, _Budget(), 0)


def _scalar(value: Any, budget: _Budget, depth: int) -> bool:
    """Charge a scalar (None, bool, int, float, str) to the budget and say whether ``value`` is one.

    Both directions charge the same, so whatever one side accepts, the other can send back.
    """
    if depth > MAX_DEPTH:
        raise ValueTooLarge(f"the value is nested more than {MAX_DEPTH} levels deep")
    kind = type(value)
    if value is None or kind is bool:
        budget.spend(1, 5)
    elif kind is int:
        if value.bit_length() > MAX_INT_BITS:
            raise ValueTooLarge(f"the value is an int of more than {MAX_INT_BITS} bits")
        budget.spend(1, value.bit_length() // 3 + 2)
    elif kind is float:
        budget.spend(1, 24)
    elif kind is str:
        budget.spend(1, len(value) + 2)
    else:
        return False
    return True


def _to_tree(value: Any, budget: _Budget, depth: int) -> Any:
    if _scalar(value, budget, depth):
        return value
    kind = type(value)
    if kind is list:
        budget.spend(1, 2)
        return [_to_tree(v, budget, depth + 1) for v in value]
    if kind in (tuple, set, frozenset):
        budget.spend(1, 12)
        return {kind.__name__: [_to_tree(v, budget, depth + 1) for v in value]}
    if kind is bytes:
        budget.spend(1, 2 * len(value) + 12)
        return {"bytes": value.hex()}
    if kind is complex:
        budget.spend(1, 60)
        return {"complex": [value.real, value.imag]}
    if kind in (dict, collections.Counter, collections.OrderedDict):
        budget.spend(1, 12)
        return {kind.__name__: [[_to_tree(k, budget, depth + 1), _to_tree(v, budget, depth + 1)] for k, v in value.items()]}
    if kind is collections.defaultdict:
        factory = next((n for n, f in _DEFAULT_FACTORIES.items() if value.default_factory is f), None)
        if value.default_factory is not None and factory is None:
            raise NotPlainData(f"defaultdict with factory {value.default_factory!r:.60}")
        budget.spend(1, 24)
        items = [[_to_tree(k, budget, depth + 1), _to_tree(v, budget, depth + 1)] for k, v in value.items()]
        return {"defaultdict": [factory, items]}
    raise NotPlainData(_type_name(value))


def _type_name(value: Any) -> str:
    try:
        kind = type(value)
        module = kind.__module__
        name = kind.__qualname__
        if isinstance(module, str) and isinstance(name, str):
            return name if module in ("builtins", "__sandbox__") else f"{module}.{name}"
    except Exception:  # noqa: BLE001 - a hostile metaclass must not break the report
        return "unknown"
    return "unknown"


def from_tree(tree: Any) -> Any:
    """Rebuild a value from a tree made by :func:`to_tree`; raises ``ValueError`` on anything else.

    This runs on the trusted side on data an untrusted process wrote: it accepts only the format above,
    builds only genuine instances of the plain types, and checks the same size limits.
    """
    try:
        return _from_tree(tree, _Budget(), 0)
    except (TypeError, RecursionError) as exc:  # e.g. an unhashable set member or dict key
        raise ValueError(f"not a valid value: {exc}") from None


def _pairs(items: Any, budget: _Budget, depth: int) -> list[tuple[Any, Any]]:
    if type(items) is not list or not all(type(p) is list and len(p) == 2 for p in items):
        raise ValueError("not a valid value: a dict's items must be [key, value] pairs")
    return [(_from_tree(k, budget, depth + 1), _from_tree(v, budget, depth + 1)) for k, v in items]


def _from_tree(tree: Any, budget: _Budget, depth: int) -> Any:
    # Each value costs what to_tree charges for it, so whatever is accepted here can be sent again.
    if _scalar(tree, budget, depth):
        return tree
    kind = type(tree)
    if kind is list:
        budget.spend(1, 2)
        return [_from_tree(v, budget, depth + 1) for v in tree]
    if kind is not dict or len(tree) != 1:
        raise ValueError(f"not a valid value: unexpected {kind.__name__}")
    (tag, body), = tree.items()
    if tag in ("tuple", "set", "frozenset"):
        budget.spend(1, 12)
        if type(body) is not list:
            raise ValueError(f"not a valid value: {tag} needs a list")
        items = [_from_tree(v, budget, depth + 1) for v in body]
        return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
    if tag in _DICT_TYPES:
        budget.spend(1, 12)
        return _DICT_TYPES[tag](dict(_pairs(body, budget, depth)) if tag == "Counter" else _pairs(body, budget, depth))
    if tag == "defaultdict":
        if type(body) is not list or len(body) != 2 or (body[0] is not None and body[0] not in _DEFAULT_FACTORIES):
            raise ValueError("not a valid value: defaultdict needs [factory name or null, items]")
        budget.spend(1, 24)
        return collections.defaultdict(_DEFAULT_FACTORIES.get(body[0]), _pairs(body[1], budget, depth))
    if tag == "bytes" and type(body) is str:
        budget.spend(1, len(body) + 12)
        return bytes.fromhex(body)
    if tag == "complex" and type(body) is list and len(body) == 2 and all(type(x) in (int, float) for x in body):
        budget.spend(1, 60)
        return complex(body[0], body[1])
    raise ValueError(f"not a valid value: unknown or malformed tag {tag!r:.40}")


# ------------------------------------------------------------------------------------------------
# Failure reports
# ------------------------------------------------------------------------------------------------

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 300
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = _repr.maxfrozenset = _repr.maxdeque = 30
_repr.maxlevel = 4


def safe_repr(value: Any) -> str:
    """A short repr (long containers and strings are cut); never raises."""
    try:
        return _repr.repr(value)
    except BaseException:  # noqa: BLE001 - a hostile __repr__ must not break the report
        return f"<{_type_name(value)} object>"


def describe(exc: BaseException) -> str:
    """``"ZeroDivisionError: division by zero"``; never raises."""
    try:
        text = str(exc)[:1000]
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not break the report
        text = ""
    name = _type_name(exc).rpartition(".")[2]
    return f"{name}: {text}" if text else name


def user_frames(tb) -> list[list]:
    """The traceback's frames in the setup, program or tests as ``[filename, line, function, source]``: those
    a report uses, i.e. the frames in the tests and the last five (a deep recursion has thousands)."""
    frames = [f for f in traceback.extract_tb(tb) if f.filename in SOURCE_PARTS]
    kept = [f for i, f in enumerate(frames) if f.filename == "<tests>" or i >= len(frames) - 5][-25:]
    return [[f.filename, f.lineno, f.name, (f.line or "").strip()] for f in kept]


def valid_frames(value: Any) -> list[list] | None:
    """Frames as an untrusted process sent them (``[filename, line, function, source]``), checked and cut to
    size; None if they are not frames."""
    if type(value) is not list or len(value) > 100:
        return None
    if not all(type(f) is list and len(f) == 4 and f[0] in SOURCE_PARTS and type(f[1]) is int
               and type(f[2]) is str and type(f[3]) is str for f in value):
        return None
    return [[f[0], f[1], f[2][:200], f[3][:500]] for f in value]


def failure_report(exception: str, frames: list[list], *, comparison: tuple[str, str, str] | None = None,
                   assertion: bool = False) -> dict:
    """The report of a failed test run.

    ``exception`` is the exception text, ``frames`` the user frames (``[filename, line, function, source]``,
    outermost first; the innermost names the part and line where it happened, the innermost test frame is
    the failing test); ``comparison`` is ``(assert source, actual repr, expected repr)`` for a failing
    comparison assert, and ``assertion`` says the exception is an assert's own failure.
    """
    report: dict = {"status": "failed", "exception": exception}
    if frames:
        inner = frames[-1]
        report.update(part=SOURCE_PARTS[inner[0]], line=inner[1], line_source=inner[3])
        test_frames = [f for f in frames if f[0] == "<tests>"]
        if test_frames:
            report["failed_test"] = test_frames[-1][3]
    lines = []
    if comparison is not None:
        segment, actual, expected = comparison
        report.update(failed_test=segment, actual=actual, expected=expected)
        lines += [f"Test failed: {segment}", f"  actual:   {actual}", f"  expected: {expected}"]
    else:
        if assertion and report.get("failed_test"):
            lines.append(f"Test failed: {report['failed_test']}")
        lines.append(exception)
    shown = traceback.format_list([traceback.FrameSummary(f[0], f[1], f[2], lookup_line=False, line=f[3])
                                   for f in frames[-5:]])
    lines += ["Traceback (most recent call last):", *[s.rstrip("\n") for s in shown], exception]
    report["message"] = "\n".join(lines)
    return bounded(report)


MAX_REPORT_CHARS = 8_000


def bounded(report: dict) -> dict:
    """A report cut to a readable size: over ``MAX_REPORT_CHARS`` (as JSON), the message keeps its first
    4,000 characters and the other texts their first 500."""
    if len(json.dumps(report)) <= MAX_REPORT_CHARS:
        return report
    report = {**report, "message": report.get("message", "")[: MAX_REPORT_CHARS // 2] + "\n[... truncated]"}
    for key in ("actual", "expected", "failed_test", "line_source", "exception"):
        if isinstance(report.get(key), str):
            report[key] = report[key][:500]
    return report
