"""The failure map of a search: for each hyperparameter, which of its values were trained, and
which failed, were rejected, pruned or killed (``plots/failure_map.png`` on the search run).

One panel per searched hyperparameter, one horizontal bar per value, stacked by what became of
the trials that had it; an element of an unused group shows as ``inactive``. Many-valued numbers
(a log-uniform learning rate) are put into at most :data:`BINS` ranges (log-spaced when they span
more than a decade and a half). Drawn only when some trial did not complete. matplotlib on its
own Agg canvas (no pyplot), like :mod:`tunetrack.tracking.plots`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STATUSES = ("completed", "pruned", "rejected", "failed", "killed")
COLORS = {"completed": "#4c9a5b", "pruned": "#5b8fd1", "rejected": "#a0a0a0",
          "failed": "#d1495b", "killed": "#8a5ea8"}
INACTIVE = "inactive"
MAX_VALUES = 8  # distinct numbers shown as they are; more are binned
BINS = 6
MAX_PANELS = 16


def _status(trial: Any) -> str:
    return str(getattr(trial.status, "value", trial.status))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value: float) -> str:
    return f"{value:.3g}"


def value_labels(values: Sequence[Any]) -> tuple[list[str], list[str]]:
    """Each trial's value as a bar label (binned when numeric and many), and the labels in
    the order they are drawn."""
    numbers = sorted({float(v) for v in values if _is_number(v)})
    if len(numbers) <= MAX_VALUES:
        def label(v: Any) -> str:
            return INACTIVE if v is None else (_short(float(v)) if _is_number(v) else str(v))

        labels = [label(v) for v in values]
        order = [_short(n) for n in numbers]
        order += sorted({x for x in labels if x not in order and x != INACTIVE})
    else:
        low, high = numbers[0], numbers[-1]
        use_log = low > 0 and high / low > 30
        lo, hi = (math.log10(low), math.log10(high)) if use_log else (low, high)
        edges = [lo + (hi - lo) * i / BINS for i in range(BINS + 1)]
        edges = [10 ** e for e in edges] if use_log else edges
        names = [f"{_short(edges[i])}–{_short(edges[i + 1])}" for i in range(BINS)]

        def label(v: Any) -> str:
            if v is None:
                return INACTIVE
            if not _is_number(v):
                return str(v)
            i = sum(float(v) >= e for e in edges[1:-1])
            return names[i]

        labels = [label(v) for v in values]
        order = [n for n in names if n in labels]
        order += sorted({x for x in labels if x not in names and x != INACTIVE})
    if INACTIVE in labels:
        order.append(INACTIVE)
    return labels, order


def failure_map(trials: Sequence[Any], hyperparameters: Sequence[str]) -> Figure | None:
    """The figure, or None when every trial completed (or nothing was searched)."""
    statuses = [_status(t) for t in trials]
    if not trials or all(s == "completed" for s in statuses) or not hyperparameters:
        return None
    from tunetrack.tracking.plots import _figure

    shown = [s for s in STATUSES if s in statuses] + sorted(set(statuses) - set(STATUSES))
    panels = []
    for hp in list(hyperparameters)[:MAX_PANELS]:
        labels, order = value_labels([t.candidate.get(hp) for t in trials])
        counts = Counter(zip(labels, statuses, strict=True))
        panels.append((hp, order, counts))
    bars = sum(len(order) for _, order, _ in panels)
    fig = _figure(7.5, 1.0 + 0.28 * bars + 0.35 * len(panels))
    grid = fig.add_gridspec(len(panels), 1, height_ratios=[max(len(o), 1) for _, o, _ in panels])
    for row, (hp, order, counts) in enumerate(panels):
        ax = fig.add_subplot(grid[row])
        left = [0] * len(order)
        for status in shown:
            widths = [counts.get((value, status), 0) for value in order]
            ax.barh(range(len(order)), widths, left=left, color=COLORS.get(status, "#e0a030"),
                    label=status if row == 0 else None, height=0.7)
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.set_yticks(range(len(order)), order, fontsize=8)
        ax.invert_yaxis()
        ax.set_ylabel(hp, fontsize=8, rotation=0, ha="right", va="center")
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlim(0, max(left + [1]) * 1.05)
    fig.axes[0].set_title("what became of the trials, per hyperparameter value", fontsize=10)
    fig.axes[-1].set_xlabel("trials")
    fig.legend(loc="outside lower center", ncol=len(shown), fontsize=8, frameon=False)
    return fig


def log_failure_map(client: Any, run_id: str, trials: Sequence[Any],
                    hyperparameters: Sequence[str]) -> bool:
    """``plots/failure_map.png`` on the search run; False when there was nothing to map."""
    figure = failure_map(trials, hyperparameters)
    if figure is None:
        return False
    from tunetrack.tracking.store import retry_locked

    retry_locked(client.log_figure, run_id, figure, "plots/failure_map.png")
    return True
