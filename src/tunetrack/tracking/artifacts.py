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

A trial's model folder is saved on the training thread (it needs the model), then uploaded
while the next trial trains, in a child process (``background.BackgroundUploads``): the
LoggedModel is created there and its id written into the folder's ``MLmodel``, as
``log_model`` would have written it up front.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tunetrack.tracking.versioning import package_versions

if TYPE_CHECKING:
    from tunetrack.tracking.background import BackgroundUploads


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
                    extras: dict[str, Callable[[str], Any]] | None = None,
                    experiment_id: str | None = None) -> str:
    """Log ``model`` as the run's Keras-flavor LoggedModel ``name`` (signature, input example);
    ``extras`` writes folders beside it (``classic/``: ``extras["classic"](folder)``);
    ``scores`` are logged to the run and to the model at step 0. Returns the model id."""
    with tempfile.TemporaryDirectory(prefix="tunetrack-model-") as tmp:
        path = save_keras_model(model, example, os.path.join(tmp, name), extras=extras)
        if experiment_id is None:
            experiment_id = client.get_run(run_id).info.experiment_id
        return upload_keras_model(client, experiment_id, run_id, path, name, scores=scores,
                                  params=params)


def save_keras_model(model: Any, example: np.ndarray, path: str, *,
                     extras: dict[str, Callable[[str], Any]] | None = None,
                     output: np.ndarray | None = None) -> str:
    """The MLflow model folder of ``model`` at ``path``, written here and now (what needs the
    model itself: the signature, the saved weights); :func:`upload_keras_model` makes it a
    LoggedModel later, from any thread. ``output``: the model's output for ``example[:2]``,
    when the caller has it."""
    import mlflow.keras
    from mlflow.models import infer_signature

    example = np.asarray(example[:2], dtype="float32")
    if output is None:
        output = keras_ops_numpy(model(example, training=False))  # eager call: no retracing
    signature = infer_signature(example, output)
    os.makedirs(path)
    mlflow.keras.save_model(model, path, signature=signature, input_example=example,
                            pip_requirements=model_requirements())
    for folder, write in (extras or {}).items():
        write(os.path.join(path, folder))
    return path


def upload_keras_model(client: Any, experiment_id: str, run_id: str, path: str,
                       name: str = "model", *, scores: dict[str, float] | None = None,
                       params: dict[str, Any] | None = None, stamp: int | None = None) -> str:
    """The LoggedModel ``name`` of the run, from the folder :func:`save_keras_model` wrote:
    created, its ``MLmodel`` given the model's id and location (as ``mlflow.keras.log_model``
    writes them), uploaded, READY. ``scores`` go to the run and the model at step 0, stamped
    ``stamp`` (the run may hold them already, from the same stamp: MLflow keeps one copy)."""
    from mlflow.entities import LoggedModelOutput, Metric
    from mlflow.models import Model

    from tunetrack.tracking.store import retry_locked

    logged = retry_locked(client.create_logged_model, experiment_id, name=name,
                          source_run_id=run_id,
                          params={k: str(v) for k, v in (params or {}).items()},
                          tags={"mlflow.modelFlavor": "keras"})
    retry_locked(client.log_outputs, run_id, [LoggedModelOutput(logged.model_id, step=0)])
    if scores:
        now = stamp or int(time.time() * 1000)
        retry_locked(client.log_batch, run_id, metrics=[
            Metric(k, float(v), now, 0, model_id=logged.model_id, run_id=run_id)
            for k, v in scores.items()])
    described = Model.load(os.path.join(path, "MLmodel"))
    described.artifact_path, described.run_id = logged.artifact_location, run_id
    described.model_uuid = described.model_id = logged.model_id
    described.save(os.path.join(path, "MLmodel"))
    retry_locked(_repository(client, logged.artifact_location).log_artifacts, path)
    retry_locked(client.finalize_logged_model, logged.model_id, "READY")
    return str(logged.model_id)


def _repository(client: Any, artifact_uri: str) -> Any:
    """The artifact repository at ``artifact_uri`` (as MlflowClient resolves a run's or a
    model's, minus reading the run or model back from the store to learn where it is)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri

    uri = add_databricks_profile_info_to_artifact_uri(artifact_uri, client.tracking_uri)
    return get_artifact_repository(uri, tracking_uri=client.tracking_uri)


def keras_ops_numpy(tensor: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(tensor))


def warm_up() -> None:
    """Pay the first-use cost of saving a trial's model while trial 1 trains (on a thread).

    The first ``mlflow.keras.save_model`` of a process spends ~0.9 s checking the model's pip
    requirements against the installed packages (it maps every installed distribution to its
    modules, then caches the map). The uploads child pays its own first-use costs
    (``background``).
    """
    try:
        import mlflow.keras  # noqa: F401
        from mlflow.models import infer_signature  # noqa: F401
        from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

        warn_dependency_requirement_mismatches(model_requirements())
    except Exception:  # noqa: BLE001 - only a head start: the real calls report real errors
        return


def log_trial(tracker: Any, run_id: str, *, model: Any, plan: Any, history: Any,
              x_val: np.ndarray, y_val: np.ndarray, preprocessing: dict[str, Any],
              uploads: BackgroundUploads | None = None, scores: dict[str, float] | None = None,
              model_params: dict[str, Any] | None = None,
              model_extras: dict[str, Callable[[str], Any]] | None = None) -> None:
    """The artifacts of one trained trial: model, architecture, preprocessing, plots.

    What needs the model happens now: the MLflow model folder is saved to a temporary folder,
    the validation predictions made, and ``scores`` queued on the run (``tracker.writer``:
    written before the run ends). The rest on ``uploads`` (``background.BackgroundUploads``)
    when given, else here: the LoggedModel (created, uploaded, the same scores linked to it),
    the run's files and figures.
    """
    import logging

    # Each trial's new model retraces predict(); TensorFlow warns about that from trial 6 on.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    client = tracker.client
    stamp = int(time.time() * 1000)
    writer = getattr(tracker, "writer", None)
    if scores and writer is not None:  # on the run before it ends: what resume reads back
        from mlflow.entities import Metric

        writer.submit(client, run_id, [Metric(k, float(v), stamp, 0) for k, v in scores.items()],
                      what=f"scores of run {run_id}")
        writer.hurry()  # with the run's end tags, in one request, while the model is saved
    folder = tempfile.mkdtemp(prefix="tunetrack-trial-")
    try:
        probabilities = np.concatenate([
            keras_ops_numpy(model(x_val[i:i + 256], training=False))  # eager: no predict()
            for i in range(0, len(x_val), 256)])  # 256 at a time: a split streamed from disk
        model_dir = save_keras_model(model, x_val, os.path.join(folder, "model"),
                                     extras=model_extras, output=probabilities[:2])
        files = os.path.join(folder, "run")
        os.makedirs(os.path.join(files, "plots"))
        _write(files, "architecture.txt", plan.table())
        _write(files, "architecture.json", json.dumps(plan.to_dict(), indent=2, default=str))
        _write(files, "preprocessing.json", json.dumps(preprocessing, indent=2, default=str))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    uris = getattr(tracker, "artifact_uris", {})
    job = (_upload_trial, client.tracking_uri, tracker.experiment_id, run_id, uris.get(run_id),
           folder, model_dir, {"scores": scores, "params": model_params, "stamp": stamp},
           ({k: list(v) for k, v in history.history.items()},
            [int(e) + 1 for e in history.epoch], np.asarray(y_val), probabilities.argmax(axis=1),
            list(preprocessing["class_names"])))
    if uploads is None:
        job[0](*job[1:])
    else:
        uploads.submit(*job)


def _write(folder: str, name: str, text: str) -> None:
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
        f.write(text)


def _upload_trial(tracking_uri: str, experiment_id: str, run_id: str,
                  artifact_uri: str | None, folder: str, model_dir: str, model: dict[str, Any],
                  figures: tuple[Any, ...]) -> None:
    """A trial's LoggedModel, then its files and figures (both tried; the first error raised).
    Plain arguments: it runs in the uploads child process."""
    from tunetrack.tracking.store import retry_locked

    client = _client(tracking_uri)
    errors: list[BaseException] = []
    try:
        try:
            upload_keras_model(client, experiment_id, run_id, model_dir, **model)
        except Exception as exc:  # noqa: BLE001 - the files and figures are still worth saving
            errors.append(exc)
        files = os.path.join(folder, "run")
        try:
            _trial_figures(files, *figures)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        if artifact_uri is None:
            retry_locked(client.log_artifacts, run_id, files)
        else:
            retry_locked(_repository(client, artifact_uri).log_artifacts, files)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if errors:
        raise errors[0]


_CLIENTS: dict[str, Any] = {}


def _client(tracking_uri: str) -> Any:
    """One ``MlflowClient`` per tracking URI in this process (the uploads child's)."""
    if tracking_uri not in _CLIENTS:
        from mlflow import MlflowClient

        _CLIENTS[tracking_uri] = MlflowClient(tracking_uri)
    return _CLIENTS[tracking_uri]


def _trial_figures(folder: str, history: dict[str, list[float]], epochs: list[int],
                   y_val: np.ndarray, predicted: np.ndarray, class_names: list[str]) -> None:
    """``plots/learning_curve.png`` and ``plots/confusion_matrix.png`` (as ``log_figure``)."""
    from tunetrack.tracking import plots

    plots.learning_curve(history, epochs).savefig(
        os.path.join(folder, "plots", "learning_curve.png"))
    plots.confusion_matrix(y_val, predicted, class_names).savefig(
        os.path.join(folder, "plots", "confusion_matrix.png"))


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
