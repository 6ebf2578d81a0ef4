"""The registered classifier as an MLflow pyfunc that needs no tunetrack.

Input (the signature): a DataFrame column ``image``; each cell is an encoded image file (PNG,
JPEG, BMP, GIF, TIFF) as base64 text, optionally a ``data:`` URL. From Python a cell may also
be raw ``bytes`` or a uint8 array (H, W), (H, W, 1) or (H, W, 3) of any size: it is converted
to the model's colour mode and resized like a file. Output: ``class`` (the class name) and
``probability`` (its probability), one row per input row. A row that is not an image fails the
whole request with MLflow's INVALID_PARAMETER_VALUE (HTTP 400) naming the row.

A file path is read only when ``$TUNETRACK_ALLOW_PATHS`` names a folder (``tunetrack serve
--allow-paths DIR``) and the path lies inside it; otherwise, and for a path outside it whether
or not it exists, the row is refused with the same words, so a client cannot learn which files
the server has.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from .decode import array_image, decode_bytes

ALLOW_PATHS_ENV = "TUNETRACK_ALLOW_PATHS"
IMAGE_COLUMN = "image"
_SHOWN_ERRORS = 5  # rows named in one error message


def _softmax(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


class Member:
    """One trained network (or classic pipeline) and how images become its input."""

    def __init__(self, prep: dict[str, Any], keras_path: str | None,
                 classic_path: str | None) -> None:
        self.prep = prep
        h, w, _ = (int(n) for n in prep["image_shape"])
        self.size = (h, w)
        self.color_mode = str(prep["color_mode"])
        self.class_names = [str(c) for c in prep["class_names"]]
        self.model: Any = None
        self.classic: Any = None
        self.classic_path = classic_path
        if classic_path is not None:
            self.classic = import_module(f"{__package__}.classic_runtime").load(classic_path)
        if keras_path is not None:
            backend = prep.get("keras_backend")
            if backend:
                os.environ.setdefault("KERAS_BACKEND", str(backend))
            import keras

            self.model = keras.saving.load_model(keras_path, compile=False)

    def _inputs(self, images: np.ndarray) -> np.ndarray:
        if self.classic is not None:
            return np.asarray(self.classic.features(images))
        call = self.prep.get("featurize")
        if not call:
            return images
        features = import_module(f"{__package__}.features")
        return np.asarray(getattr(features, call["function"])(images, **call["kwargs"]))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, C) probabilities for float32 NHWC images in [0, 1] of the model's shape."""
        if len(images) == 0:
            return np.zeros((0, len(self.class_names)))
        if self.model is None:  # a classic pipeline with its own classifier
            return np.asarray(self.classic.predict_proba(images), dtype=np.float64)
        out = np.asarray(self.model.predict(self._inputs(images), batch_size=256, verbose=0),
                         dtype=np.float64)
        return out if self.prep.get("outputs_probabilities", True) else _softmax(out)


def member_suffixes(artifacts: dict[str, str]) -> list[str]:
    """``""`` for the first member, then ``"_1"``, ``"_2"``… while the artifacts have them."""
    suffixes = [""]
    while f"preprocessing_{len(suffixes)}" in artifacts:
        suffixes.append(f"_{len(suffixes)}")
    return suffixes


def admitted(column: list[Any], allow_paths: str | None) -> tuple[list[Any], list[str]]:
    """Each cell as image bytes, a uint8 array or a file path inside ``allow_paths``; an error
    line per other row that never repeats the cell (it may be megabytes, or a probe for a
    file)."""
    root = os.path.realpath(allow_paths) if allow_paths else None
    paths = f"a file inside {allow_paths}" if root else \
        "a file path (paths are off: tunetrack serve --allow-paths DIR)"
    cells: list[Any] = []
    errors: list[str] = []
    for i, value in enumerate(column):
        if isinstance(value, (bytes, bytearray)):
            cells.append(bytes(value))
            continue
        if isinstance(value, (np.ndarray, list, tuple)):
            cells.append(value)
            continue
        if not isinstance(value, str) or not value.strip():
            got = "an empty string" if isinstance(value, str) else type(value).__name__
            errors.append(f"row {i}: expected base64 image bytes, got {got}")
            continue
        text = value.strip()
        if root is not None and len(text) < 4096:
            real = os.path.realpath(os.path.join(root, text))
            if real.startswith(root + os.sep) and os.path.isfile(real):
                cells.append(Path(real))
                continue
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
        try:
            cells.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            errors.append(f"row {i}: neither base64-encoded image bytes nor {paths}")
    return cells, errors


def decode_cells(cells: list[Any], size: tuple[int, int], color_mode: str
                 ) -> tuple[np.ndarray, list[str]]:
    """float32 NHWC in [0, 1] for every admitted cell, and an error line per other row."""
    images: list[np.ndarray] = []
    errors: list[str] = []
    for i, cell in enumerate(cells):
        try:
            if isinstance(cell, Path):
                images.append(decode_bytes(cell.read_bytes(), size, color_mode))
            elif isinstance(cell, bytes):
                images.append(decode_bytes(cell, size, color_mode))
            else:
                images.append(array_image(cell, size, color_mode))
        except ValueError as exc:
            errors.append(f"row {i}: {exc}")
    channels = 3 if color_mode == "rgb" else 1
    x = np.stack(images) if images else np.zeros((0, *size, channels), dtype=np.uint8)
    return x.astype(np.float32) / 255.0, errors


def _unnest(column: list[Any]) -> list[Any]:
    """MLflow's ``{"inputs": {"image": [...]}}`` arrives as one row holding the whole column:
    a list of strings, or a (N, H, W, C) array; a single image is never either."""
    if len(column) != 1 or isinstance(column[0], (str, bytes)):
        return column
    cell = column[0]
    if isinstance(cell, (list, tuple, np.ndarray)) and len(cell) and all(
            isinstance(v, (str, bytes)) for v in cell):
        return list(cell)
    if isinstance(cell, np.ndarray) and cell.ndim == 4:
        return list(cell)
    return column


def _column(model_input: Any) -> list[Any]:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if isinstance(model_input, pd.DataFrame):
        if IMAGE_COLUMN not in model_input.columns:
            raise MlflowException(f"input must have a column {IMAGE_COLUMN!r}, got columns "
                                  f"{list(model_input.columns)}", INVALID_PARAMETER_VALUE)
        return _unnest(model_input[IMAGE_COLUMN].tolist())
    if isinstance(model_input, np.ndarray) and model_input.dtype != object:
        if model_input.ndim == 3 or model_input.ndim == 4:  # a batch of uint8 images
            return list(model_input)
    return list(np.asarray(model_input, dtype=object).reshape(-1))


class ImageClassifier(PythonModel):
    """MLflow pyfunc: column ``image`` in, ``class`` and ``probability`` out. Artifacts:
    ``preprocessing`` (JSON) and ``keras_model`` (.keras) and/or ``classic`` (folder) per
    member; an ensemble adds ``preprocessing_1``… and averages the members' probabilities."""

    members: list[Member] | None = None

    def load_context(self, context: Any) -> None:
        self.members = []
        for suffix in member_suffixes(context.artifacts):
            prep = json.loads(Path(context.artifacts[f"preprocessing{suffix}"]).read_text())
            self.members.append(Member(prep, context.artifacts.get(f"keras_model{suffix}"),
                                       context.artifacts.get(f"classic{suffix}")))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        assert self.members
        return np.mean([m.probabilities(images) for m in self.members], axis=0)

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        if not self.members:
            raise MlflowException("the model was not loaded: load_context was not called")
        column = _column(model_input)
        first = self.members[0]
        cells, errors = admitted(column, os.environ.get(ALLOW_PATHS_ENV) or None)
        if not errors:
            x, errors = decode_cells(cells, first.size, first.color_mode)
        if errors:  # a server answers 400 naming the rows; a partial answer would hide them
            more = len(errors) - _SHOWN_ERRORS
            raise MlflowException(f"{len(errors)} of {len(column)} input(s) are not images: "
                                  + "; ".join(errors[:_SHOWN_ERRORS])
                                  + (f"; and {more} more" if more > 0 else ""),
                                  INVALID_PARAMETER_VALUE)
        probs = self.probabilities(x)
        best = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
        return pd.DataFrame({"class": [first.class_names[i] for i in best],
                             "probability": probs[np.arange(len(best)), best].astype(float)})
