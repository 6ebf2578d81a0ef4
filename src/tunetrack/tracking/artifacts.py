"""What a trial and a search leave in MLflow besides params and metrics: model, plots, tables.

Each trained trial's model is an MLflow 3 *LoggedModel* named ``model`` whose source run is the
trial: it is listed under the experiment's Models tab and the run's "Logged models", with the
trial's hyperparameters and scores, and ``runs:/RUN_ID/model`` still finds it (MLflow resolves a
run URI to the run's logged model of that name). It is made with the client calls
``mlflow.keras.log_model`` makes, minus the two slow ones: the model is saved with
``mlflow.keras.save_model`` with explicit ``pip_requirements`` and a ``signature`` (~0.1 s
instead of ~8.5 s of requirement inference) and not reloaded to validate its input example. The
folder is created before ``save_model`` is called, which works around MLflow 3.17 writing
``input_example.json`` before it creates the model folder (``FileNotFoundError`` otherwise).
"""

from __future__ import annotations

import io
import json
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any

import numpy as np

from tunetrack.tracking.versioning import package_versions


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
                    name: str = "model", *, scores: dict[str, float] | None = None,
                    params: dict[str, Any] | None = None,
                    extras: dict[str, Callable[[str], Any]] | None = None) -> str:
    """Log ``model`` as the run's Keras-flavor LoggedModel ``name`` (signature, input example);
    ``extras`` writes folders beside it (``classic/``: ``extras["classic"](folder)``);
    ``scores`` are logged to the run and to the model at step 0. Returns the model id."""
    import mlflow.keras
    from mlflow.entities import LoggedModelOutput, Metric
    from mlflow.models import Model, infer_signature

    from tunetrack.tracking.store import retry_locked

    example = np.asarray(example[:2], dtype="float32")
    output = keras_ops_numpy(model(example, training=False))  # eager call: no retracing
    signature = infer_signature(example, output)
    experiment_id = client.get_run(run_id).info.experiment_id
    logged = retry_locked(client.create_logged_model, experiment_id, name=name,
                          source_run_id=run_id,
                          params={k: str(v) for k, v in (params or {}).items()},
                          tags={"mlflow.modelFlavor": "keras"})
    retry_locked(client.log_outputs, run_id, [LoggedModelOutput(logged.model_id, step=0)])
    now = int(time.time() * 1000)
    if scores:
        retry_locked(client.log_batch, run_id, metrics=[
            Metric(k, float(v), now, 0, model_id=logged.model_id, run_id=run_id)
            for k, v in scores.items()])
    with tempfile.TemporaryDirectory(prefix="tunetrack-model-") as tmp:
        path = os.path.join(tmp, name)
        os.makedirs(path)
        described = Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id,
                          run_id=run_id, model_id=logged.model_id)
        mlflow.keras.save_model(model, path, mlflow_model=described, signature=signature,
                                input_example=example, pip_requirements=model_requirements())
        for folder, write in (extras or {}).items():
            write(os.path.join(path, folder))
        retry_locked(client.log_model_artifacts, logged.model_id, path)
    retry_locked(client.finalize_logged_model, logged.model_id, "READY")
    return str(logged.model_id)


def keras_ops_numpy(tensor: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(tensor))


class BackgroundUploads:
    """One thread that draws and uploads a trial's figures while the next trial trains.

    Drawing and saving two PNGs is ~0.3-0.5 s of a trial's fixed cost; the training that
    follows leaves a core idle for it. A trial's run is FINISHED before its figures land, so
    :meth:`drain` is called before a search returns; a failed upload is kept in ``errors`` (a
    missing picture must not fail a search), and a process killed with ``kill -9`` loses at most
    the figures of its last trial.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[..., None], tuple] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="tunetrack-uploads",
                                            daemon=True)
            self._thread.start()
        self._queue.put((fn, args))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, args = item
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - reported by drain(), never fatal
                self.errors.append(f"{getattr(fn, '__name__', fn)}: {type(exc).__name__}: {exc}")

    def drain(self) -> list[str]:
        """Wait for every submitted upload; returns (and clears) the errors so far."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        errors, self.errors = self.errors, []
        return errors


def warm_up() -> None:
    """Pay the first-use costs of logging a trial on the uploads thread while trial 1 trains.

    The first ``mlflow.keras.save_model`` of a process spends ~1.2 s checking the model's pip
    requirements against the installed packages (it maps every installed distribution to its
    modules, then caches the map); the first figure loads matplotlib and its fonts. A bare
    keras-tuner search pays neither, so tunetrack pays them where no one waits.
    """
    try:
        import mlflow.keras  # noqa: F401
        from mlflow.models import infer_signature  # noqa: F401
        from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

        from tunetrack.tracking import plots

        warn_dependency_requirement_mismatches(model_requirements())
        figure = plots.learning_curve({"loss": [1.0, 0.5]}, [0, 1])
        figure.savefig(io.BytesIO(), format="png")
    except Exception:  # noqa: BLE001 - only a head start: the real calls report real errors
        return


def log_trial(tracker: Any, run_id: str, *, model: Any, plan: Any, history: Any,
              x_val: np.ndarray, y_val: np.ndarray, preprocessing: dict[str, Any],
              uploads: BackgroundUploads | None = None, scores: dict[str, float] | None = None,
              model_params: dict[str, Any] | None = None,
              model_extras: dict[str, Callable[[str], Any]] | None = None) -> None:
    """The artifacts of one trained trial: model, architecture, preprocessing, plots.

    What needs the model (saving it, the validation predictions) happens now; the figures are
    drawn and uploaded on ``uploads``' thread when one is given.
    """
    import logging

    # Each trial's new model retraces predict(); TensorFlow warns about that from trial 6 on.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    client = tracker.client
    client.log_text(run_id, plan.table(), "architecture.txt")
    client.log_dict(run_id, plan.to_dict(), "architecture.json")
    client.log_dict(run_id, preprocessing, "preprocessing.json")
    log_keras_model(client, run_id, model, x_val, scores=scores, params=model_params,
                    extras=model_extras)
    probabilities = np.concatenate([keras_ops_numpy(model(x_val[i:i + 256], training=False))
                             for i in range(0, len(x_val), 256)])  # eager: no predict() trace;
    # 256 at a time: a split streamed from disk (data.cache) is read one chunk at a time
    args = (client, run_id, {k: list(v) for k, v in history.history.items()},
            [int(e) + 1 for e in history.epoch], np.asarray(y_val), probabilities.argmax(axis=1),
            list(preprocessing["class_names"]))
    if uploads is None:
        _trial_figures(*args)
    else:
        uploads.submit(_trial_figures, *args)


def _trial_figures(client: Any, run_id: str, history: dict[str, list[float]],
                   epochs: list[int], y_val: np.ndarray, predicted: np.ndarray,
                   class_names: list[str]) -> None:
    from tunetrack.tracking import plots

    _log_figure(client, run_id, plots.learning_curve(history, epochs),
                "plots/learning_curve.png")
    _log_figure(client, run_id, plots.confusion_matrix(y_val, predicted, class_names),
                "plots/confusion_matrix.png")


def log_search(tracker: Any, run_id: str, result: Any) -> None:
    """The artifacts of a whole search: leaderboard and the accuracy/size picture."""
    from tunetrack.tracking import compare, plots

    client = tracker.client
    objective = result.pipeline.objective
    board = compare.leaderboard(result.trials, objective, result.pipeline.direction)
    client.log_text(run_id, board.to_csv(index=False), "leaderboard.csv")
    client.log_text(run_id, compare.leaderboard_markdown(board) + "\n", "leaderboard.md")
    done = board[board["status"] == "completed"] if "status" in board else board
    if len(done):
        _log_figure(client, run_id, plots.accuracy_vs_params(
            board, objective, result.pipeline.direction), "plots/accuracy_vs_params.png")
        hps = [k for k in result.searched if k in board.columns]
        if hps:
            _log_figure(client, run_id, plots.parallel_coordinates(board, hps, objective),
                        "plots/parallel_coordinates.png")


def _log_figure(client: Any, run_id: str, figure: Any, artifact_file: str) -> None:
    """Upload a pyplot-free Figure (plots.py draws on its own Agg canvas: thread-safe, and
    nothing to close in pyplot's global registry)."""
    from tunetrack.tracking.store import retry_locked

    retry_locked(client.log_figure, run_id, figure, artifact_file)


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return json.loads(json.dumps(value, default=str))
