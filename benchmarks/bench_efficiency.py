"""Search efficiency: Hyperband against random search on the same total epoch budget.

Hyperband trains many candidates briefly and continues only the promising ones; with the same
number of epochs, random search trains fewer candidates to the end. Both run through tunetrack
on the default digits space without early stopping, so "epochs spent" (the sum of
``epochs_trained`` over trials) is exactly the budget: Hyperband runs first, then random search
gets ``floor(hyperband_epochs / epochs)`` full-length trials.
"""

from __future__ import annotations

import dataclasses
import shutil
from typing import Any

from benchmarks import ROOT, Row, call, check_size, store_uri, tmp_root

NAME = "efficiency"
PIPELINE = ROOT / "pipelines" / "digits.yaml"
# max epochs per trial, Hyperband's max_trials
SIZES = {"smoke": (2, 2), "quick": (9, 16), "full": (15, 40)}


def _search(kind: str, trials: int, epochs: int) -> dict[str, Any]:
    from tunetrack.names import TrialStatus
    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline

    pipeline = load_pipeline(PIPELINE).override(tuner=kind, max_trials=trials, epochs=epochs,
                                                experiment=f"bench-{kind}")
    pipeline = dataclasses.replace(pipeline, training=dataclasses.replace(pipeline.training,
                                                                          patience=None))
    result = run_search(pipeline)
    done = [t for t in result.trials if t.status is TrialStatus.COMPLETED]
    return {"best": result.best.objective if result.best else None,
            "epochs": sum(t.epochs for t in done), "trials": len(done),
            "seconds": result.elapsed}


def worker(payload: dict[str, Any]) -> dict[str, Any]:
    epochs, trials = payload["epochs"], payload["trials"]
    hyperband = _search("hyperband", trials, epochs)
    random = _search("random", max(1, hyperband["epochs"] // epochs), epochs)
    return {"hyperband": hyperband, "random": random}


def run(size: str) -> list[Row]:
    check_size(size)
    epochs, trials = SIZES[size]
    root = tmp_root(NAME)
    try:
        got = call(f"{__name__}:worker", {"epochs": epochs, "trials": trials}, folder=root,
                   env={"MLFLOW_TRACKING_URI": store_uri(root / "store")},
                   in_process=size == "smoke")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    hb, rnd = got["hyperband"], got["random"]

    def said(r: dict[str, Any]) -> str:
        return f"{r['trials']} trials, {r['epochs']} epochs, {r['seconds']:.0f} s"

    return [
        Row(NAME, "Hyperband best val_accuracy", hb["best"], "acc", rnd["best"],
            "random search best", ">= random, same budget",
            hb["best"] is not None and rnd["best"] is not None and hb["best"] >= rnd["best"],
            f"max {epochs} epochs/trial, no early stopping; Hyperband {said(hb)}; "
            f"random {said(rnd)}"),
        Row(NAME, "Hyperband epochs spent", float(hb["epochs"]), "epochs", float(rnd["epochs"]),
            "random search epochs", "", None, "sum of epochs_trained over trained trials"),
    ]
