"""The classifier as an MLflow pyfunc: logged to a run, registered, loaded back.

New models are logged by :mod:`tunetrack.registry._package`: self-contained (the code travels
in the model as ``tunetrack_runtime``), so MLflow alone serves them. :class:`ImageClassifierModel`
here is the pyfunc of models promoted by earlier tunetrack versions, whose models-from-code
script imports it from ``tunetrack.registry``; it keeps loading where tunetrack is installed.

A cell is base64 image bytes (optionally a ``data:`` URL). A file path is read only when
``$TUNETRACK_ALLOW_PATHS`` names a folder (``tunetrack serve --allow-paths DIR``) and the path
lies inside it; otherwise, and for a path outside it whether or not it exists, the row is
refused with the same words, so a client cannot learn which files the server has.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from tunetrack.errors import TrackingError
from tunetrack.registry._classifier import (
    CLASSIFIER,
    IMAGE_COLUMN,
    KERAS_MODEL,
    PREPROCESSING_FILE,
    Classifier,
    EnsembleClassifier,
    Preprocessing,
)
from tunetrack.registry._package import from_runtime, log_classifier, pip_requirements

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo
    from mlflow.pyfunc import PythonModelContext

ALLOW_PATHS_ENV = "TUNETRACK_ALLOW_PATHS"
_SHOWN_ERRORS = 5  # rows named in one error message
class ImageClassifierModel(PythonModel):
    """MLflow pyfunc: DataFrame column ``image`` (base64 image bytes or a path) in, DataFrame
    ``class, probability`` out. Artifacts: ``keras_model`` (.keras file) and ``preprocessing``;
    an ensemble adds ``keras_model_1``, ``preprocessing_1`` and so on, one pair per member."""

    classifier: Classifier | None = None

    def load_context(self, context: PythonModelContext) -> None:
        import keras

        members = []
        for suffix in _member_suffixes(context.artifacts):
            prep = json.loads(Path(context.artifacts[f"preprocessing{suffix}"]).read_text())
            model = keras.saving.load_model(context.artifacts[f"keras_model{suffix}"],
                                            compile=False)
            members.append(Classifier(model, Preprocessing.from_dict(prep)))
        self.classifier = members[0] if len(members) == 1 else EnsembleClassifier.of(members)

    # MLflow reads the ``model_input`` hint to decide how to convert inputs: keep DataFrame.
    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        if isinstance(model_input, pd.DataFrame):
            if IMAGE_COLUMN not in model_input.columns:
                raise MlflowException(f"input must have a column {IMAGE_COLUMN!r}, got columns "
                                      f"{list(model_input.columns)}", INVALID_PARAMETER_VALUE)
            column = model_input[IMAGE_COLUMN].tolist()
        else:
            column = list(np.asarray(model_input, dtype=object).reshape(-1))
        if self.classifier is None:
            raise MlflowException("the model was not loaded: load_context was not called")
        cells, errors = admitted(column, os.environ.get(ALLOW_PATHS_ENV) or None)
        if not errors:
            out, errors = self.classifier.classify_column(cells)
        if errors:  # a server answers 400 naming the rows; a partial answer would hide them
            more = len(errors) - _SHOWN_ERRORS
            raise MlflowException(f"{len(errors)} of {len(column)} input(s) are not images: "
                                  + "; ".join(errors[:_SHOWN_ERRORS])
                                  + (f"; and {more} more" if more > 0 else ""),
                                  INVALID_PARAMETER_VALUE)
        return out


def admitted(column: list[Any], allow_paths: str | None) -> tuple[list[Any], list[str]]:
    """Each cell as image bytes, or as a file path (a string) inside ``allow_paths``; an error
    line per other row that never repeats the cell. The rules are the self-contained runtime's
    (``registry/_runtime/model.py``), which this older pyfunc shares."""
    from tunetrack.registry._runtime.model import admitted as admit

    cells, errors = admit(column, allow_paths)
    return [str(c) if isinstance(c, Path) else c for c in cells], errors


def _member_suffixes(artifacts: dict[str, str]) -> list[str]:
    """``""`` for the first member, then ``"_1"``, ``"_2"``… while the artifacts have them."""
    suffixes = [""]
    while f"keras_model_{len(suffixes)}" in artifacts:
        suffixes.append(f"_{len(suffixes)}")
    return suffixes


def model_info(model_uri: str) -> ModelInfo:
    """MLflow's description of a model (reads ``MLmodel`` only: no TensorFlow), or a
    :class:`TrackingError` that lists the URI forms tunetrack understands."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    try:
        return get_model_info(model_uri)
    except (MlflowException, OSError) as exc:
        message = getattr(exc, "message", str(exc))
        raise TrackingError(f"cannot load model {model_uri!r}: {message} (expected "
                            f"models:/NAME@champion, models:/NAME/VERSION, runs:/RUN_ID/"
                            f"{CLASSIFIER} or a trial's runs:/RUN_ID/{KERAS_MODEL})") from exc


def load_classifier(model_uri: str) -> Classifier:
    """A :class:`Classifier` from a packaged pyfunc, or from a trial's keras model plus the
    ``preprocessing.json`` in the same run."""
    import mlflow

    from tunetrack.tracking.store import client

    client()  # points mlflow at tunetrack's store
    info = model_info(model_uri)
    if "keras" in info.flavors:
        if not info.run_id:
            raise TrackingError(f"model {model_uri!r} is a bare keras model outside a run; "
                                f"{PREPROCESSING_FILE} is looked up in the model's run")
        where = f"runs:/{info.run_id}/{PREPROCESSING_FILE}"
        try:
            prep = mlflow.artifacts.load_dict(where)
        except Exception as exc:  # noqa: BLE001 - any download failure means it is missing
            raise TrackingError(f"run {info.run_id} has no {PREPROCESSING_FILE}, so images "
                                f"cannot be prepared for {model_uri!r}") from exc
        model = mlflow.keras.load_model(model_uri, load_model_kwargs={"compile": False})
        return Classifier(model, Preprocessing.from_dict(prep, where))
    inner = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    found = from_runtime(inner) or getattr(inner, "classifier", None)
    if not isinstance(found, Classifier):
        raise TrackingError(f"model {model_uri!r} is not a tunetrack classifier (a "
                            f"{type(inner).__name__}); promote a trial to make one")
    return found


__all__ = ["ALLOW_PATHS_ENV", "ImageClassifierModel", "admitted", "load_classifier",
           "log_classifier", "model_info", "pip_requirements"]
