"""Sample-efficiency curves over seeds: align, aggregate (mean, spread, IQM with bootstrap bands), plot.

A curve is a sequence of ``(step, value)`` points from one run (e.g. ground-truth return evaluated
every few thousand environment steps). Runs of one method over several seeds are aggregated point by
point; methods are compared by their aggregated curves and by the steps they need to reach a
threshold.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rlhf.artifacts import atomic_path, write_text_atomic
from rlhf.metrics import iqm, iqm_bootstrap_ci

Curve = Sequence[Mapping[str, float]]  # [{"step": ..., <key>: ...}, ...] as written by rlhf.rl.Trainer


def curve_arrays(curve: Curve, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one run's curve, sorted by step; a missing key is an error naming it."""
    if not curve:
        raise ValueError("empty curve")
    missing = [i for i, p in enumerate(curve) if key not in p or "step" not in p]
    if missing:
        raise KeyError(f"curve point {missing[0]} has no 'step' or {key!r} (keys: {sorted(curve[missing[0]])})")
    steps = np.array([p["step"] for p in curve], dtype=float)
    values = np.array([p[key] for p in curve], dtype=float)
    order = np.argsort(steps, kind="stable")
    return steps[order], values[order]


def align(curves: Sequence[Curve], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Put several runs on one step grid: ``(steps (T,), values (runs, T))``.

    Runs evaluated at the same steps (the usual case) are stacked as they are. Otherwise each run is
    linearly interpolated onto the union of all steps within the range every run covers, so no run
    is extrapolated.
    """
    arrays = [curve_arrays(c, key) for c in curves]
    if not arrays:
        raise ValueError("align: no curves")
    first = arrays[0][0]
    if all(len(s) == len(first) and np.array_equal(s, first) for s, _ in arrays):
        return first, np.stack([v for _, v in arrays])
    low = max(s[0] for s, _ in arrays)
    high = min(s[-1] for s, _ in arrays)
    if low > high:
        raise ValueError("align: the runs' step ranges do not overlap")
    grid = np.unique(np.concatenate([s[(s >= low) & (s <= high)] for s, _ in arrays]))
    return grid, np.stack([np.interp(grid, s, v) for s, v in arrays])


def aggregate(
    curves: Sequence[Curve], key: str = "gt_return", n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, np.ndarray]:
    """Per-step statistics over runs: mean, std, min, max, IQM and its bootstrap confidence band."""
    steps, values = align(curves, key)
    estimates = [iqm_bootstrap_ci(values[:, t], n_boot=n_boot, confidence=confidence, seed=seed) for t in range(len(steps))]
    return {
        "step": steps,
        "runs": np.full(len(steps), values.shape[0]),
        "mean": values.mean(axis=0),
        "std": values.std(axis=0),
        "min": values.min(axis=0),
        "max": values.max(axis=0),
        "iqm": np.asarray(iqm(values, axis=0), dtype=float),
        "iqm_low": np.array([e.low for e in estimates]),
        "iqm_high": np.array([e.high for e in estimates]),
    }


def first_step_reaching(steps: Sequence[float], values: Sequence[float], threshold: float) -> float:
    """The first step whose value is at least ``threshold``; ``inf`` if none is."""
    for step, value in zip(steps, values):
        if value >= threshold:
            return float(step)
    return math.inf


def aggregates_to_csv(by_metric: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]) -> str:
    """CSV text, one row per (metric, method, step) with the columns of :func:`aggregate`.

    ``by_metric`` maps a metric name to ``{method: aggregate(...)}``.
    """
    out = io.StringIO()
    columns = ["step", "runs", "mean", "std", "min", "max", "iqm", "iqm_low", "iqm_high"]
    writer = csv.writer(out)
    writer.writerow(["metric", "method", *columns])
    for metric, aggregates in by_metric.items():
        for method, agg in aggregates.items():
            for t in range(len(agg["step"])):
                writer.writerow([metric, method, *(_fmt(agg[c][t]) for c in columns)])
    return out.getvalue()


def write_aggregates_csv(path: str | Path, by_metric: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]]) -> Path:
    """Write :func:`aggregates_to_csv` atomically."""
    return write_text_atomic(path, aggregates_to_csv(by_metric))


def _fmt(x: float) -> str | int:
    x = float(x)
    return int(x) if x.is_integer() else f"{x:.6g}"


#: Bootstrap intervals over fewer runs than this say little: bands show the min–max over seeds instead.
MIN_RUNS_FOR_BOOTSTRAP = 5


def band_for(n_runs: int) -> tuple[tuple[str, str], str]:
    """The band to draw for ``n_runs`` runs and what to call it: the IQM's 95% bootstrap interval from
    :data:`MIN_RUNS_FOR_BOOTSTRAP` runs on, else the min–max over the runs."""
    if n_runs >= MIN_RUNS_FOR_BOOTSTRAP:
        return ("iqm_low", "iqm_high"), "95% bootstrap interval of the IQM"
    return ("min", "max"), f"min–max over {n_runs} seeds"


def plot_aggregates(
    path: str | Path,
    panels: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]],
    *,
    center: str = "iqm",
    band: tuple[str, str] | None = None,
    title: str = "",
    reference_lines: Mapping[str, Mapping[str, float]] | None = None,
    xlabel: str = "environment steps",
) -> Path:
    """One subplot per panel (e.g. "ground-truth return", "success rate"), one line per method.

    ``center`` is the line (``"iqm"`` or ``"mean"``); ``band`` the shaded spread (None: :func:`band_for` the
    number of runs, so a few seeds get a min–max band, not a "95%" one). The legend says what the band is.
    ``reference_lines`` maps a panel to labelled horizontal lines. Written atomically as PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (ylabel, aggregates) in zip(axes[0], panels.items()):
        for method, agg in aggregates.items():
            n = int(agg["runs"][0]) if len(agg["runs"]) else 0
            (low, high), band_name = (band, f"{band[0]}–{band[1]}") if band else band_for(n)
            (line,) = ax.plot(agg["step"], agg[center], label=f"{method} ({center}; band: {band_name})")
            ax.fill_between(agg["step"], agg[low], agg[high], color=line.get_color(), alpha=0.2)
        for label, y in (reference_lines or {}).get(ylabel, {}).items():
            ax.axhline(y, color="grey", linestyle="--", linewidth=1)
            ax.annotate(label, (0, y), xycoords=("axes fraction", "data"), fontsize=8, va="bottom", color="grey")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.ticklabel_format(axis="y", useOffset=False)  # "0.96", not "1e-5 + 9.601e-1"
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Lay out ``fig``, write it as PNG atomically, and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)
