"""Figures render headless, and the Pareto front is right on points worked out by hand."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from tunetrack.tracking import plots

PNG = b"\x89PNG\r\n\x1a\n"


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def trials_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "trial_id": ["00", "01", "02", "03", "04", "05"],
        "status": ["completed", "completed", "completed", "rejected", "completed", "completed"],
        "val_accuracy": [0.90, 0.95, 0.93, np.nan, 0.85, 0.80],
        "params_total": pd.array([1000, 5000, 3000, None, 500, 4000], dtype="Int64"),
        "learning_rate": [1e-3, 1e-2, 3e-3, 2e-3, 5e-4, 1e-1],
        "optimizer": ["adam", "sgd", "adam", "adam", "adam", "sgd"],
        "blocks.2.filters": pd.array([None, 16, 32, None, None, 16], dtype="Int64"),
        "batch_norm": [True, False, True, True, False, True],
    })


# -- pareto_front ------------------------------------------------------------------------------
def test_pareto_front_hand_made_points():
    params = [100, 200, 300, 150, 400, 300]
    scores = [0.5, 0.7, 0.9, 0.4, 0.85, 0.9]
    # 150/0.4 loses to 100/0.5; 400/0.85 to 300/0.9; both 300/0.9 stay (neither beats the other)
    assert plots.pareto_front(params, scores).tolist() == [True, True, True, False, False, True]


def test_pareto_front_min_direction_and_ties():
    params = [100, 100, 200, 300]
    losses = [0.5, 0.3, 0.3, 0.1]
    # 100/0.5 loses to 100/0.3 (same size, better); 200/0.3 loses to 100/0.3 (smaller, equal)
    assert plots.pareto_front(params, losses, "min").tolist() == [False, True, False, True]


def test_pareto_front_ignores_nan_and_checks_input():
    mask = plots.pareto_front([1, 2, np.nan, 4], [0.1, np.nan, 0.9, 0.2])
    assert mask.dtype == bool and mask.tolist() == [True, False, False, True]
    assert plots.pareto_front([], []).tolist() == []
    with pytest.raises(ValueError, match="direction must be 'max' or 'min', but got 'up'"):
        plots.pareto_front([1], [1], "up")
    with pytest.raises(ValueError, match="same length"):
        plots.pareto_front([1, 2], [1])


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    params = rng.integers(1, 30, 200).astype(float)
    scores = rng.integers(0, 20, 200) / 20
    brute = [not any(p2 <= p and s2 >= s and (p2 < p or s2 > s)
                     for p2, s2 in zip(params, scores, strict=True))
             for p, s in zip(params, scores, strict=True)]
    assert plots.pareto_front(params, scores).tolist() == brute


# -- figures -----------------------------------------------------------------------------------
def test_learning_curve_renders():
    history = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.7, 0.6],
               "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.45, 0.65, 0.7]}
    fig = plots.learning_curve(history, [1, 2, 3])
    assert png(fig).startswith(PNG)
    loss, accuracy = fig.axes
    assert loss.get_xlabel() == "epoch" and accuracy.get_ylabel() == "accuracy"
    assert len(loss.get_lines()) == 2
    # a history without validation still draws
    assert png(plots.learning_curve({"loss": [1.0, 0.5]}, [0, 1])).startswith(PNG)


def test_confusion_matrix_renders_counts():
    fig = plots.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], ["cat", "dog", "eel"])
    assert png(fig).startswith(PNG)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["1", "1", "0", "0", "1", "0", "1", "0", "2"]
    assert "0.667" in fig.axes[0].get_title()


def test_accuracy_vs_params_renders_with_front():
    fig = plots.accuracy_vs_params(trials_frame(), "val_accuracy", "max")
    assert png(fig).startswith(PNG)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = {t.get_text() for t in ax.texts}
    assert labels == {"00", "01", "02", "04", "05"}  # the rejected trial is not drawn
    front = [line for line in ax.get_lines() if line.get_label() == "Pareto front"][0]
    assert list(front.get_xdata()) == [500, 1000, 3000, 5000]


def test_accuracy_vs_params_without_completed_trials():
    empty = trials_frame().assign(status="rejected")
    fig = plots.accuracy_vs_params(empty, "val_accuracy", "max")
    assert png(fig).startswith(PNG)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["no completed trials"]
    assert ax.get_lines() == [] and "(0 completed trials)" in ax.get_title()


def test_parallel_coordinates_renders():
    hps = ["learning_rate", "optimizer", "blocks.2.filters", "batch_norm", "absent"]
    fig = plots.parallel_coordinates(trials_frame(), hps, "val_accuracy")
    assert png(fig).startswith(PNG)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "learning_rate", "optimizer", "blocks.2.filters", "batch_norm", "val_accuracy"]
    labels = {t.get_text() for t in ax.texts}
    assert {"adam", "sgd", "inactive", "True", "False", "0.0005", "0.1"} <= labels
    assert len(fig.axes) == 2  # the colour bar


def test_axis_positions():
    positions, ticks = plots._axis(np.array([1e-4, 1e-3, 1e-2], dtype=object))
    assert positions.tolist() == pytest.approx([0, 0.5, 1])  # log scale: spans 100x
    positions, ticks = plots._axis(np.array(["b", "a", None, "c"], dtype=object))
    assert positions.tolist() == pytest.approx([0.5, 0, plots.INACTIVE, 1])
    assert ("inactive" in [label for _, label in ticks])


def test_parallel_coordinates_single_trial():
    one = trials_frame().iloc[:1]
    fig = plots.parallel_coordinates(one, ["learning_rate"], "val_accuracy")
    assert png(fig).startswith(PNG)
    (trials,) = fig.axes[0].collections
    (segment,) = trials.get_segments()  # one trial, through learning_rate and val_accuracy
    assert segment.tolist() == [[0.0, 0.5], [1.0, 0.5]]  # a single value sits mid-axis


def test_background_uploads_are_waited_for_and_their_errors_kept():
    import time

    from tunetrack.tracking.background import BackgroundUploads

    uploads, done = BackgroundUploads(process=False), []  # on a thread: closures need not pickle

    def slow(value):
        time.sleep(0.2)
        done.append(value)

    def broken():
        raise OSError("disk full")

    uploads.submit(slow, 1)
    uploads.submit(broken)
    uploads.submit(slow, 2)
    assert uploads.drain() == ["broken: OSError: disk full"]
    assert done == [1, 2]  # in order, all finished when drain returns
    assert uploads.drain() == []
