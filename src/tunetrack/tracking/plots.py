"""Figures logged with a search: learning curves, confusion matrix, accuracy vs size, and the
hyperparameters of every trial side by side.

Each function returns a ``matplotlib.figure.Figure`` drawn on an Agg canvas: no pyplot, so no
global figure registry to leak from a long search and no GUI backend on a headless machine.
matplotlib is imported inside the functions; ``pareto_front`` is pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

COMPLETED = "completed"
ANNOTATE_ALL_UP_TO = 40  # beyond this many points only the Pareto front gets trial ids
INACTIVE = -0.12  # where a parallel-coordinates axis puts trials without that hyperparameter


def _figure(width: float, height: float, *, margins: dict[str, float] | None = None) -> Figure:
    """A figure on the Agg canvas. Figures drawn by every search pass fixed ``margins``: the
    constrained layout engine costs about half of each ``savefig`` (~0.25 s)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100,
                 layout=None if margins else "constrained")
    if margins:
        fig.subplots_adjust(**margins)
    FigureCanvasAgg(fig)
    return fig


def learning_curve(history: dict[str, list[float]], epochs: Sequence[int]) -> Figure:
    """Loss and accuracy per epoch, train against validation, to show over- and under-fitting."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(9, 3.6, margins={"left": 0.07, "right": 0.98, "bottom": 0.14, "top": 0.84,
                                   "wspace": 0.25})
    axes = fig.subplots(1, 2)
    x = list(epochs)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label, style in ((metric, "train", "-o"), (f"val_{metric}", "validation", "--s")):
            values = history.get(key)
            if values:
                ax.plot(x[:len(values)], values, style, markersize=3, label=label)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle("Learning curve")
    return fig


def confusion_matrix(y_true: npt.ArrayLike, y_pred: npt.ArrayLike,
                     class_names: Sequence[str]) -> Figure:
    """Counts of true class (rows) against predicted class (columns), each cell annotated."""
    n = len(class_names)
    true, pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (true, pred), 1)
    size = max(4.0, 0.45 * n + 2)
    fig = _figure(size + 1, size, margins={"left": 0.12, "right": 0.98, "bottom": 0.12,
                                           "top": 0.92})
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, label="count")
    ticks = np.arange(n)
    ax.set_xticks(ticks, labels=[str(c) for c in class_names], rotation=45 if n > 5 else 0,
                  ha="right" if n > 5 else "center")
    ax.set_yticks(ticks, labels=[str(c) for c in class_names])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(counts) / counts.sum() if counts.sum() else float("nan")
    ax.set_title(f"Confusion matrix (accuracy {accuracy:.3f})")
    threshold = counts.max() / 2 if counts.size else 0
    fontsize = 9 if n <= 12 else 6
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=fontsize,
                    color="white" if counts[i, j] > threshold else "black")
    return fig


def pareto_front(params: npt.ArrayLike, scores: npt.ArrayLike,
                 direction: str = "max") -> np.ndarray:
    """Mask of the trials no other trial beats on both size and score.

    A trial is dominated when another has fewer-or-equal params and a better-or-equal score,
    one of them strictly. Identical points do not dominate each other; NaNs are never on the
    front and dominate nothing. O(n log n): sort by params, sweep with the best score so far.
    """
    if direction not in ("max", "min"):
        raise ValueError(f"direction must be 'max' or 'min', but got {direction!r}")
    p = np.asarray(params, dtype=float)
    s = np.asarray(scores, dtype=float)
    if p.shape != s.shape:
        raise ValueError(f"params and scores must have the same length, but got "
                         f"{p.shape[0]} and {s.shape[0]}")
    s = s if direction == "max" else -s
    mask = np.zeros(p.shape, dtype=bool)
    valid = np.flatnonzero(~(np.isnan(p) | np.isnan(s)))
    order = valid[np.lexsort((-s[valid], p[valid]))]  # params ascending, score best first
    best_before = -np.inf  # best score among trials with strictly fewer params
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and p[order[end]] == p[order[start]]:
            end += 1
        group = order[start:end]
        top = s[group[0]]
        if top > best_before:
            mask[group[s[group] == top]] = True
        best_before = max(best_before, top)
        start = end
    return mask


def _completed(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    done = df[df["status"] == COMPLETED] if "status" in df.columns else df
    return done.dropna(subset=list(columns))


def accuracy_vs_params(df: pd.DataFrame, objective: str, direction: str = "max") -> Figure:
    """Score against model size (log scale), the Pareto front marked: the best model per budget."""
    done = _completed(df, ["params_total", objective])
    fig = _figure(7.5, 4.8, margins={"left": 0.1, "right": 0.97, "bottom": 0.11, "top": 0.92})
    ax = fig.subplots()
    ax.set_title(f"{objective} vs parameters ({len(done)} completed trials)")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel(objective)
    ax.grid(alpha=0.3, which="both")
    if done.empty:
        ax.text(0.5, 0.5, "no completed trials", ha="center", va="center",
                transform=ax.transAxes)
        return fig
    params = done["params_total"].astype(float).to_numpy()
    scores = done[objective].astype(float).to_numpy()
    ids = done["trial_id"].astype(str).to_numpy() if "trial_id" in done else np.arange(len(done))
    front = pareto_front(params, scores, direction)
    ax.scatter(params[~front], scores[~front], s=22, alpha=0.6, color="tab:blue",
               label="trial")
    order = np.argsort(params[front], kind="stable")
    ax.plot(params[front][order], scores[front][order], "-o", color="tab:red", markersize=6,
            drawstyle="steps-post", label="Pareto front")
    if (params > 0).all():
        ax.set_xscale("log")
    label_all = len(done) <= ANNOTATE_ALL_UP_TO
    for x, y, name, on_front in zip(params, scores, ids, front, strict=True):
        if label_all or on_front:
            ax.annotate(str(name), (x, y), textcoords="offset points", xytext=(4, 4),
                        fontsize=7, color="tab:red" if on_front else "0.3")
    ax.legend(loc="best")
    return fig


def _axis(values: Any) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Positions in [0, 1] for one hyperparameter, and the (position, label) ticks to draw.

    Numbers are scaled min-max (log when positive and spanning 100x or more, as learning rates
    do); anything else is a category at evenly spaced positions in sorted order. Missing values
    (inactive group elements) go just below the axis at ``INACTIVE``.
    """
    import pandas as pd

    series = pd.Series(values).astype(object)
    present = series.notna().to_numpy()
    positions = np.full(len(series), INACTIVE)
    ticks: list[tuple[float, str]] = []
    numeric = pd.to_numeric(series[present], errors="coerce")
    is_bool = series[present].map(lambda v: isinstance(v, (bool, np.bool_))).any()
    if present.any() and numeric.notna().all() and not is_bool:
        x = numeric.to_numpy(dtype=float)
        lo, hi = x.min(), x.max()
        log = lo > 0 and hi / lo >= 100
        f = np.log10 if log else (lambda v: v)
        span = f(hi) - f(lo)
        positions[present] = (f(x) - f(lo)) / span if span > 0 else 0.5
        shown = [lo, hi] if span > 0 else [lo]
        ticks = [((f(v) - f(lo)) / span if span > 0 else 0.5, f"{v:.3g}") for v in shown]
        if len(np.unique(x)) <= 6 and span > 0:
            ticks = [((f(v) - f(lo)) / span, f"{v:.3g}") for v in np.unique(x)]
    elif present.any():
        labels = sorted({str(v) for v in series[present]})
        where = {v: (i / (len(labels) - 1) if len(labels) > 1 else 0.5)
                 for i, v in enumerate(labels)}
        positions[present] = [where[str(v)] for v in series[present]]
        ticks = [(pos, label) for label, pos in where.items()]
    if not present.all():
        ticks.append((INACTIVE, "inactive"))
    return positions, ticks


def parallel_coordinates(df: pd.DataFrame, hyperparameters: Sequence[str],
                         objective: str) -> Figure:
    """One line per completed trial through every hyperparameter, coloured by the objective,
    to show which settings the good trials share."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    done = _completed(df, [objective])
    axes_names = [h for h in hyperparameters if h in done.columns] + [objective]
    width = max(6.0, 1.3 * len(axes_names) + 2)
    fig = _figure(width, 4.8, margins={"left": 1.0 / width, "right": 1 - 0.2 / width,
                                       "bottom": 0.19, "top": 0.9})
    ax = fig.subplots()
    ax.set_title(f"Hyperparameters of {len(done)} completed trials, coloured by {objective}")
    if done.empty:
        ax.text(0.5, 0.5, "no completed trials", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    columns = [_axis(done[name].to_numpy()) for name in axes_names]
    ys = np.column_stack([pos for pos, _ in columns])
    xs = np.arange(len(axes_names), dtype=float)
    score = done[objective].astype(float).to_numpy()
    norm = Normalize(vmin=score.min(), vmax=score.max() if score.max() > score.min()
                     else score.min() + 1e-9)
    cmap = colormaps["viridis"]
    order = np.argsort(score)  # best drawn last, on top (for "max"; fine either way)
    lines = LineCollection([np.column_stack([xs, ys[i]]) for i in order],
                           colors=cmap(norm(score[order])), linewidths=1.4, alpha=0.8)
    ax.add_collection(lines)
    for x, (_, ticks) in zip(xs, columns, strict=True):
        ax.axvline(x, color="0.4", linewidth=0.8)
        for y, label in ticks:
            ax.text(x + 0.04, y, label, fontsize=7, va="center", ha="left",
                    color="0.5" if y == INACTIVE else "0.1",
                    bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.7))
    ax.set_xlim(-0.2, len(axes_names) - 0.5)
    ax.set_ylim(INACTIVE - 0.08, 1.08)
    ax.set_xticks(xs, labels=axes_names, rotation=30, ha="right", fontsize=8)
    ax.set_yticks([])
    ax.set_ylabel("position on each axis (scaled)")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=objective)
    return fig
