"""PASS/FAIL targets that never flatter: what every quickstart and eval script prints.

A target is a measured value, a comparison and a bar. A value that could not be measured (a ratio whose
denominator is zero or undefined, a method that never reached a threshold) is ``None`` and prints
``n/a`` and FAIL, never a number. Relative targets (A / B) pass only together with a target that shows
real learning (an absolute bar, or a clear improvement over the first evaluation), so that two methods
that both learned nothing cannot pass by being equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or not finite, or the denominator is 0."""
    if numerator is None or denominator is None:
        return None
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator == 0:
        return None
    return numerator / denominator


@dataclass(frozen=True)
class Target:
    """``value <op> bar``; ``value`` None means it could not be measured (``why`` says why): FAIL."""

    name: str
    value: float | None
    op: Literal[">=", "<=", ">", "<"]
    bar: float
    why: str = ""

    @property
    def measured(self) -> bool:
        return self.value is not None and math.isfinite(self.value)

    @property
    def passed(self) -> bool:
        if not self.measured:
            return False
        return {">=": self.value >= self.bar, "<=": self.value <= self.bar,
                ">": self.value > self.bar, "<": self.value < self.bar}[self.op]

    def line(self) -> str:
        """``  PASS  name: 0.999 (target >= 0.95)``, or ``n/a`` with the reason when not measured."""
        if not self.measured:
            why = f"; {self.why}" if self.why else ""
            return f"  FAIL  {self.name}: n/a (target {self.op} {self.bar:g}{why})"
        return f"  {'PASS' if self.passed else 'FAIL'}  {self.name}: {self.value:.3f} (target {self.op} {self.bar:g})"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value if self.measured else None, "op": self.op,
                "target": self.bar, "pass": self.passed, **({"why": self.why} if self.why else {})}
