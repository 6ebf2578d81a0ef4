"""The failure map of a search: for each hyperparameter, which of its values were trained, and
which failed, were rejected, pruned or killed (``plots/failure_map.png`` on the search run).

One band of rows per searched hyperparameter, one horizontal bar per value, stacked by what
became of the trials that had it; an element of an unused group shows as ``inactive``.
Many-valued numbers (a log-uniform learning rate) are put into at most :data:`BINS` ranges
(log-spaced when they span more than a decade and a half). Drawn only when some trial did not
complete. matplotlib on its own Agg canvas (no pyplot), like :mod:`tunetrack.tracking.plots`.
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
MAX_PANELS = 16  # hyperparameters shown


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
    """The figure, or None when every trial completed (or nothing was searched).

    One axes, one row per (hyperparameter, value), the hyperparameters in bands separated by
    a rule and named on the left: one axes draws in a fraction of the time of a panel each
    (the search's last step waits for this figure).
    """
    statuses = [_status(t) for t in trials]
    if not trials or all(s == "completed" for s in statuses) or not hyperparameters:
        return None
    from matplotlib.ticker import MaxNLocator

    from tunetrack.tracking.plots import _figure

    shown = [s for s in STATUSES if s in statuses] + sorted(set(statuses) - set(STATUSES))
    rows: list[tuple[str, str]] = []  # (hyperparameter, value label), top to bottom
    counts: Counter[tuple[str, str, str]] = Counter()
    bands: list[tuple[str, int, int]] = []  # hyperparameter, first row, last row
    for hp in list(hyperparameters)[:MAX_PANELS]:
        labels, order = value_labels([t.candidate.get(hp) for t in trials])
        counts.update((hp, label, status) for label, status in zip(labels, statuses,
                                                                   strict=True))
        bands.append((hp, len(rows), len(rows) + len(order) - 1))
        rows += [(hp, value) for value in order]
    width_in = 7.5
    name_chars = max(len(hp) for hp, _, _ in bands)
    value_chars = max(len(value) for _, value in rows)
    left_in = 0.25 + 0.065 * (name_chars + value_chars)  # 8-point text: ~0.065 in a character
    axes_in = 0.24 * len(rows)
    height_in = axes_in + 1.5  # 0.5 in above for the title, 1 in below: ticks, label, legend
    fig = _figure(width_in, height_in, margins={
        "left": min(0.6, left_in / width_in), "right": 0.97,
        "bottom": 1.0 / height_in, "top": 1 - 0.5 / height_in})
    ax = fig.subplots()
    left = [0] * len(rows)
    for status in shown:
        widths = [counts.get((hp, value, status), 0) for hp, value in rows]
        ax.barh(range(len(rows)), widths, left=left, color=COLORS.get(status, "#e0a030"),
                label=status, height=0.7)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_yticks(range(len(rows)), [value for _, value in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # the first hyperparameter on top
    for hp, first, last in bands:
        if first:
            ax.axhline(first - 0.5, color="0.75", linewidth=0.8)
        ax.annotate(hp, xy=(0, (first + last) / 2), xycoords=("axes fraction", "data"),
                    xytext=(-6 - 5.2 * value_chars, 0), textcoords="offset points",
                    ha="right", va="center", fontsize=8, fontweight="bold")
    ax.tick_params(axis="x", labelsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, max(left + [1]) * 1.05)
    ax.set_xlabel("trials")
    ax.set_title("what became of the trials, per hyperparameter value", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45 / axes_in), ncol=len(shown),
              fontsize=8, frameon=False)
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
