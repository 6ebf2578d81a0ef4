"""Pruning: a random search on digits with median pruning against the same search without.

Both arms run the same candidates: keras-tuner's random oracle proposes the same values for the
same seed whatever the scores, and tunetrack seeds every trial's weights by its trial id, so a
pruned trial is the unpruned one cut short. The figures are the epochs trained (all trials,
all seeds) and the best validation accuracy of each search, side by side, over several tuner
seeds; the arms of one seed run back to back in one interpreter.

Goal: at least 30 % fewer epochs, for a best validation accuracy within noise: the mean over
seeds no lower than the unpruned mean minus the seeds' spread of the unpruned best (their
standard deviation, at least 0.01).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks import ROOT, Row, call, check_size, spread, store_uri, tmp_root

NAME = "pruning"
PIPELINE = ROOT / "pipelines" / "digits.yaml"
GOAL_RATIO = 0.70
# trials, epochs, seeds
SIZES = {"smoke": (2, 2, 1), "quick": (6, 8, 3), "full": (10, 20, 5)}
# median pruning as a short search wants it: judge from epoch 2, once 2 trials ran to the end
PRUNING = {"kind": "median", "warmup_epochs": 1, "min_trials": 2}


def worker(payload: dict[str, Any]) -> dict[str, Any]:
    """Per seed: the search without pruning, then with; epochs, best accuracy, seconds."""
    import dataclasses
    import os

    from tunetrack.search.session import run_search
    from tunetrack.space._config import PruningSection
    from tunetrack.space.pipeline import load_pipeline

    out: dict[str, list[Any]] = {"plain": [], "median": []}
    for seed in payload["seeds"]:
        for arm in ("plain", "median"):
            base = load_pipeline(PIPELINE).override(
                max_trials=payload["trials"], epochs=payload["epochs"], seed=seed,
                experiment=f"bench-pruning-{arm}-{seed}")
            pruning = PruningSection(**PRUNING) if arm == "median" else PruningSection()
            pipeline = dataclasses.replace(
                base, tuner=dataclasses.replace(base.tuner, pruning=pruning))
            os.environ["MLFLOW_TRACKING_URI"] = payload["store"]
            t0 = time.perf_counter()
            result = run_search(pipeline, mode="new")
            trained = [t for t in result.trials if t.status.is_trained()]
            out[arm].append({
                "seed": seed, "seconds": time.perf_counter() - t0,
                "epochs": sum(t.epochs for t in trained),
                "pruned": sum(t.status.value == "pruned" for t in trained),
                "best": max((t.objective for t in trained if t.objective is not None),
                            default=0.0)})
    return out


def run(size: str) -> list[Row]:
    check_size(size)
    trials, epochs, seeds = SIZES[size]
    root = tmp_root(NAME)
    got = call(f"{__name__}:worker",
               {"trials": trials, "epochs": epochs, "seeds": list(range(1, seeds + 1)),
                "store": store_uri(root / "store")},
               folder=root, in_process=size == "smoke")
    plain, median = got["plain"], got["median"]
    epochs_plain = sum(r["epochs"] for r in plain)
    epochs_median = sum(r["epochs"] for r in median)
    best_plain = [r["best"] for r in plain]
    best_median = [r["best"] for r in median]
    noise = max(statistics.pstdev(best_plain) if len(best_plain) > 1 else 0.0, 0.01)
    mean_plain, mean_median = statistics.mean(best_plain), statistics.mean(best_median)
    fewer = epochs_median <= GOAL_RATIO * epochs_plain
    close = mean_median >= mean_plain - noise
    pruned = sum(r["pruned"] for r in median)
    where = (f"{seeds} seeds x {trials} trials x {epochs} epochs on digits "
             f"(pipelines/digits.yaml's space, patience 10), median pruning "
             f"warmup_epochs {PRUNING['warmup_epochs']}, min_trials {PRUNING['min_trials']}")
    return [
        Row(NAME, "epochs trained, median pruning", float(epochs_median), "count",
            float(epochs_plain), "same search unpruned", f"<= {GOAL_RATIO:.2f}x", fewer,
            f"{where}; {pruned} of {seeds * trials} trials pruned; per seed "
            f"{[r['epochs'] for r in median]} vs {[r['epochs'] for r in plain]}"),
        Row(NAME, "best val_accuracy (mean over seeds), median pruning", mean_median, "acc",
            mean_plain, "same search unpruned", f">= unpruned - {noise:.4f} (seed spread)",
            close, f"per seed {spread(best_median)} vs {spread(best_plain)}"),
        Row(NAME, "search seconds (all seeds), median pruning",
            sum(r["seconds"] for r in median), "s", sum(r["seconds"] for r in plain),
            "same search unpruned",
            note="wall time on a shared machine; the epochs are the figure"),
    ]
