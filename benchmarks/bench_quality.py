"""Quality: sealed-test accuracy of the model the default search and ``promote`` produce.

The figure is what a user gets from ``make search`` then ``tunetrack promote``: the promoted
model's accuracy on the digits test split no trial ever saw, for the best trial alone and for
``--ensemble 3`` (the three best trials by validation accuracy, probabilities averaged). The
baselines are scikit-learn's SVC and LogisticRegression fitted on the same train split in the
same run; a CNN search that cannot beat an untuned SVC is not worth its minutes.
"""

from __future__ import annotations

import shutil
from typing import Any

from benchmarks import ROOT, Row, call, check_size, store_uri, tmp_root

NAME = "quality"
PIPELINE = ROOT / "pipelines" / "digits.yaml"
GOAL = 0.99
ENSEMBLE = 3
# trials, epochs; None keeps the pipeline's own value (the default search: 12 x 15)
SIZES: dict[str, tuple[int | None, int | None]] = {
    "smoke": (1, 1), "quick": (4, 15), "full": (None, None)}


def sklearn_baselines() -> dict[str, float]:
    """Test accuracy of SVC and LogisticRegression fitted on the train split alone."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    from tunetrack.data import DataConfig, load_dataset

    data = load_dataset(DataConfig(source="digits"))
    x_train = data.x_train.reshape(len(data.x_train), -1)
    x_test = data.x_test.reshape(len(data.x_test), -1)
    out = {}
    for name, model in (("SVC", SVC()), ("LogisticRegression", LogisticRegression(max_iter=5000))):
        model.fit(x_train, data.y_train)
        out[name] = float((model.predict(x_test) == data.y_test).mean())
    return out


def worker(payload: dict[str, Any]) -> dict[str, Any]:
    """The default search (possibly shortened), then ``promote`` through the sealed test split."""
    from tunetrack.errors import PromotionRefused
    from tunetrack.registry.promote import promote
    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline

    pipeline = load_pipeline(PIPELINE).override(max_trials=payload["trials"],
                                                epochs=payload["epochs"])
    result = run_search(pipeline)
    accuracy = {}
    for name, k in (("single", 1), ("ensemble", ENSEMBLE)):
        try:
            promoted = promote(pipeline.experiment, f"bench-digits-{name}",
                               search=result.parent_run_id, ensemble=k)
        except PromotionRefused as exc:  # still evaluated; only the alias differs
            promoted = exc.result  # type: ignore[attr-defined]
        accuracy[name] = (promoted.test_accuracy, promoted.winner.trial_id)
    return {"test_accuracy": accuracy["single"][0], "trial": accuracy["single"][1],
            "ensemble_accuracy": accuracy["ensemble"][0], "ensemble": accuracy["ensemble"][1],
            "val_accuracy": result.best.objective if result.best else None,
            "trials": pipeline.tuner.max_trials, "epochs": pipeline.training.epochs,
            "seconds": result.elapsed, "baselines": sklearn_baselines()}


def run(size: str) -> list[Row]:
    check_size(size)
    trials, epochs = SIZES[size]
    if size == "smoke":  # an ensemble needs as many completed trials as members
        trials = ENSEMBLE
    root = tmp_root(NAME)
    try:
        got = call(f"{__name__}:worker", {"trials": trials, "epochs": epochs}, folder=root,
                   env={"MLFLOW_TRACKING_URI": store_uri(root / "store")},
                   in_process=size == "smoke")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    acc, ens, base = got["test_accuracy"], got["ensemble_accuracy"], got["baselines"]
    note = (f"search of {got['trials']} trials x {got['epochs']} epochs in "
            f"{got['seconds']:.0f} s, best val_accuracy {got['val_accuracy']:.4f}")
    return [
        Row(NAME, f"promote --ensemble {ENSEMBLE}: test accuracy", ens, "acc", base["SVC"],
            "sklearn SVC()", f">= {GOAL} and > SVC", ens >= GOAL and ens > base["SVC"],
            f"{note}; members: trials {got['ensemble']}"),
        Row(NAME, "promote (best trial alone): test accuracy", acc, "acc", base["SVC"],
            "sklearn SVC()", f">= {GOAL} and > SVC", acc >= GOAL and acc > base["SVC"],
            f"{note}; promoted trial {got['trial']}"),
        Row(NAME, "LogisticRegression test accuracy", base["LogisticRegression"], "acc",
            note="same train split, max_iter=5000"),
    ]
