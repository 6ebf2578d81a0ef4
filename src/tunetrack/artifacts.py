"""What a trial and a search leave in MLflow besides params and metrics: model, plots, tables.

Models are saved with ``mlflow.keras.save_model`` into a temporary folder and uploaded as the
run's ``model/`` artifact: with explicit ``pip_requirements`` and a ``signature`` this takes
~0.1 s per model instead of ~8.5 s of requirement inference. The folder is created before
``save_model`` is called, which works around MLflow 3.17 writing ``input_example.json`` before
it creates the model folder (``FileNotFoundError`` otherwise).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np

from .versioning import package_versions


def model_requirements() -> list[str]:
    """The pins a served model needs: keras, its backend, numpy."""
    import keras

    versions = package_versions()
    backend = keras.backend.backend()
    pins = [f"keras=={versions['keras']}", f"numpy=={versions['numpy']}"]
    if backend in versions:
        pins.append(f"{backend}=={versions[backend]}")
    return pins


def log_keras_model(client: Any, run_id: str, model: Any, example: np.ndarray,
                    artifact_path: str = "model") -> None:
    """Upload ``model`` as an MLflow Keras-flavor model with signature and input example."""
    import mlflow.keras
    from mlflow.models import infer_signature

    example = np.asarray(example[:2], dtype="float32")
    output = keras_ops_numpy(model(example, training=False))  # eager call: no retracing
    signature = infer_signature(example, output)
    with tempfile.TemporaryDirectory(prefix="tunetrack-model-") as tmp:
        path = os.path.join(tmp, artifact_path)
        os.makedirs(path)
        mlflow.keras.save_model(model, path, signature=signature, input_example=example,
                                pip_requirements=model_requirements())
        client.log_artifacts(run_id, path, artifact_path)


def keras_ops_numpy(tensor: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(tensor))


def log_trial(tracker: Any, run_id: str, *, model: Any, plan: Any, history: Any,
              x_val: np.ndarray, y_val: np.ndarray, preprocessing: dict[str, Any]) -> None:
    """The artifacts of one trained trial: model, architecture, preprocessing, plots."""
    import logging

    from . import plots

    # Each trial's new model retraces predict(); TensorFlow warns about that from trial 6 on.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    client = tracker.client
    client.log_text(run_id, plan.table(), "architecture.txt")
    client.log_dict(run_id, plan.to_dict(), "architecture.json")
    client.log_dict(run_id, preprocessing, "preprocessing.json")
    log_keras_model(client, run_id, model, x_val)
    figure = plots.learning_curve(history.history, list(history.epoch))
    _log_figure(client, run_id, figure, "plots/learning_curve.png")
    scores = np.concatenate([keras_ops_numpy(model(x_val[i:i + 512], training=False))
                             for i in range(0, len(x_val), 512)])  # eager: no predict() trace
    figure = plots.confusion_matrix(y_val, scores.argmax(axis=1),
                                    preprocessing["class_names"])
    _log_figure(client, run_id, figure, "plots/confusion_matrix.png")


def log_search(tracker: Any, run_id: str, result: Any) -> None:
    """The artifacts of a whole search: leaderboard and the accuracy/size picture."""
    from . import compare, plots

    client = tracker.client
    objective = result.pipeline.objective
    board = compare.leaderboard(result.trials, objective)
    client.log_text(run_id, board.to_csv(index=False), "leaderboard.csv")
    done = board[board["status"] == "completed"] if "status" in board else board
    if len(done):
        _log_figure(client, run_id, plots.accuracy_vs_params(
            board, objective, result.pipeline.direction), "plots/accuracy_vs_params.png")
        hps = [k for k in result.searched if k in board.columns]
        if hps:
            _log_figure(client, run_id, plots.parallel_coordinates(board, hps, objective),
                        "plots/parallel_coordinates.png")


def _log_figure(client: Any, run_id: str, figure: Any, artifact_file: str) -> None:
    import matplotlib.pyplot as plt

    try:
        client.log_figure(run_id, figure, artifact_file)
    finally:
        plt.close(figure)


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value):
        return asdict(value)
    return json.loads(json.dumps(value, default=str))
