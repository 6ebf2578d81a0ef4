"""A trained network plus its preprocessing: raw images in, class probabilities and names out.

A trial run holds the trained Keras network (``runs:/<id>/model``, MLflow keras flavor) and
``preprocessing.json``, which says how image files become the network's input (size, colour
mode, feature extraction, softmax for score-only models). :class:`Classifier` joins the two,
so promotion's test score, ``predict`` and the server all go through the same code.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunetrack.data import load_images
from tunetrack.errors import DataError, TrackingError, allowed_list

KERAS_MODEL = "model"  # trial run artifact: the trained network, keras flavor
CLASSIFIER = "classifier"  # trial run artifact: the pyfunc made by promotion
PREPROCESSING_FILE = "preprocessing.json"
IMAGE_COLUMN = "image"
OUTPUT_COLUMNS = ("class", "probability")
_PREP_KEYS = ("family", "candidate", "image_shape", "color_mode", "class_names",
              "outputs_probabilities")


@dataclass(frozen=True)
class Preprocessing:
    """The contents of ``preprocessing.json``: how files become the network's input."""

    family: str
    candidate: dict[str, Any]
    image_shape: tuple[int, int, int]
    color_mode: str
    class_names: list[str]
    outputs_probabilities: bool
    source: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = PREPROCESSING_FILE) -> Preprocessing:
        missing = [k for k in _PREP_KEYS if k not in d]
        if missing:
            raise TrackingError(f"{where} must hold {allowed_list(_PREP_KEYS)}; missing "
                                f"{allowed_list(missing)}")
        shape = [int(n) for n in d["image_shape"]]
        if len(shape) != 3:
            raise TrackingError(f"{where}: image_shape must be [height, width, channels], got "
                                f"{d['image_shape']!r}")
        return cls(family=str(d["family"]), candidate=dict(d["candidate"]),
                   image_shape=(shape[0], shape[1], shape[2]),
                   color_mode=str(d["color_mode"]), class_names=[str(c) for c in d["class_names"]],
                   outputs_probabilities=bool(d["outputs_probabilities"]),
                   source=str(d.get("source", "")))

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "candidate": self.candidate,
                "image_shape": list(self.image_shape), "color_mode": self.color_mode,
                "class_names": list(self.class_names),
                "outputs_probabilities": self.outputs_probabilities, "source": self.source}


def softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


@dataclass
class Classifier:
    """A trained network plus its preprocessing; every prediction path goes through here, so
    promotion's test score, ``predict`` and the server see the same numbers."""

    model: Any  # keras.Model: keras is imported only where a model is loaded
    prep: Preprocessing
    # the classic family: its fitted feature pipeline (models/classic_runtime.ClassicPredictor)
    # and the folder it was loaded from, which packaging ships beside the network
    classic: Any = field(default=None, repr=False)
    classic_dir: Path | None = field(default=None, repr=False)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for float32 NHWC images in [0, 1] of ``prep.image_shape``."""
        if images.shape[1:] != self.prep.image_shape:
            expected = (None, *self.prep.image_shape)
            raise DataError(f"images must have shape {expected} (None: any count) for this "
                            f"model, got {images.shape}")
        if len(images) == 0:
            return np.zeros((0, len(self.prep.class_names)), dtype=np.float32)
        from tunetrack import models as families

        x = (self.classic.features(images) if self.classic is not None
             else families.featurize(self.prep.family, self.prep.candidate, images))
        out = np.asarray(self.model.predict(x, batch_size=256, verbose=0), dtype=np.float64)
        return out if self.prep.outputs_probabilities else softmax(out)

    def label(self, probabilities: np.ndarray) -> pd.DataFrame:
        best = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=int)
        return pd.DataFrame({
            "class": [self.prep.class_names[i] for i in best],
            "probability": probabilities[np.arange(len(best)), best].astype(float)})

    def decode(self, sources: Sequence[str | Path]
               ) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
        """Decode image files exactly as the training data was decoded; returns the images, the
        index of each decoded source and (index, reason) for each source that is not an image."""
        h, w, _ = self.prep.image_shape
        x, failed = load_images(sources, image_size=(h, w), color_mode=self.prep.color_mode)
        reasons = dict(failed)
        keys = [str(Path(p)) for p in sources]
        ok = [i for i, k in enumerate(keys) if k not in reasons]
        return x, ok, [(i, reasons[k]) for i, k in enumerate(keys) if k in reasons]

    def classify_paths(self, paths: Sequence[str | Path]) -> tuple[pd.DataFrame, list[str]]:
        """``path, class, probability`` for each decodable file, and an error line per other."""
        x, ok, failed = self.decode(paths)
        table = self.label(self.probabilities(x))
        table.insert(0, "path", [str(paths[i]) for i in ok])
        return table, [f"{paths[i]}: {reason}" for i, reason in failed]

    def classify_column(self, values: Iterable[Any]) -> tuple[pd.DataFrame, list[str]]:
        """Rows of base64 image bytes (optionally a ``data:`` URL) or file paths."""
        values = list(values)
        out = pd.DataFrame({"class": [None] * len(values), "probability": [np.nan] * len(values)})
        errors: list[str] = []
        with tempfile.TemporaryDirectory(prefix="tunetrack-predict-") as tmp:
            sources: list[str] = []
            rows: list[int] = []
            for i, value in enumerate(values):
                try:
                    sources.append(_materialise(value, Path(tmp) / f"row-{i}"))
                    rows.append(i)
                except ValueError as exc:
                    errors.append(f"row {i}: {exc}")
            x, ok, failed = self.decode(sources)
            errors += [f"row {rows[i]}: {reason}" for i, reason in failed]
            labelled = self.label(self.probabilities(x))
            where = [rows[i] for i in ok]
            out.loc[where, "class"] = labelled["class"].to_numpy()
            out.loc[where, "probability"] = labelled["probability"].to_numpy()
        return out, errors


@dataclass
class EnsembleClassifier(Classifier):
    """Several trials' classifiers as one: the mean of their class probabilities.

    The members come from one search, so they share the classes, image size and colour mode
    (``model``/``prep`` are the first member's); each keeps its own feature extraction.
    """

    members: list[Classifier] = field(default_factory=list)

    @classmethod
    def of(cls, members: Sequence[Classifier]) -> EnsembleClassifier:
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        first = members[0].prep
        for m in members[1:]:
            shared = ("class_names", "image_shape", "color_mode")
            differ = [k for k in shared if getattr(m.prep, k) != getattr(first, k)]
            if differ:
                raise TrackingError(f"ensemble members differ in {allowed_list(differ)}: "
                                    f"they must come from one search's data")
        return cls(members[0].model, first, members=list(members))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.mean([m.probabilities(images) for m in self.members], axis=0)


def _materialise(value: Any, spill: Path) -> str:
    """A path to decode for one input cell: the path itself, or the decoded bytes spilled to a
    file, so decoding is exactly :func:`tunetrack.data.load_images`."""
    if isinstance(value, (bytes, bytearray)):
        spill.write_bytes(bytes(value))
        return str(spill)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected base64 image bytes or a file path string, got {value!r:.60}")
    text = value.strip()
    if len(text) < 4096 and os.path.isfile(text):
        return text
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{value!r:.60} is neither an existing file nor base64-encoded image "
                         f"bytes") from None
    spill.write_bytes(raw)
    return str(spill)


__all__ = ["CLASSIFIER", "Classifier", "EnsembleClassifier", "IMAGE_COLUMN", "KERAS_MODEL",
           "OUTPUT_COLUMNS", "PREPROCESSING_FILE", "Preprocessing", "softmax"]
