"""Raw images in, class names out: the packaged classifier, ``predict`` and ``serve``.

A trial run holds the trained Keras network (``runs:/<id>/model``, MLflow keras flavor) and
``preprocessing.json``, which says how image files become the network's input (size, colour
mode, feature extraction, softmax for score-only models). :class:`Classifier` joins the two;
:class:`ImageClassifierModel` is the MLflow pyfunc that carries both, so MLflow's own scoring
server can answer with class names. The pyfunc imports ``tunetrack`` at load time: serve it
from an environment where tunetrack is installed (``serve`` uses ``--env-manager local``).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from tunetrack.data import IMAGE_EXTENSIONS, load_images
from tunetrack.errors import DataError, TrackingError, allowed_list

KERAS_MODEL = "model"  # trial run artifact: the trained network, keras flavor
CLASSIFIER = "classifier"  # trial run artifact: the pyfunc made by promotion
PREPROCESSING_FILE = "preprocessing.json"
IMAGE_COLUMN = "image"
OUTPUT_COLUMNS = ("class", "probability")
FORMATS = ("table", "csv", "json")
_PREP_KEYS = ("family", "candidate", "image_shape", "color_mode", "class_names",
              "outputs_probabilities")
# What the pyfunc needs where it is loaded; versions pinned to what trained it.
_REQUIREMENTS = ("mlflow", "keras", "tensorflow", "numpy", "pandas", "pillow", "scikit-image",
                 "tunetrack")


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
        return cls(family=str(d["family"]), candidate=dict(d["candidate"]),
                   image_shape=tuple(int(n) for n in d["image_shape"]),  # type: ignore[arg-type]
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
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class Classifier:
    """A trained network plus its preprocessing; every prediction path goes through here, so
    promotion's test score, ``predict`` and the server see the same numbers."""

    model: Any  # keras.Model
    prep: Preprocessing

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for float32 NHWC images in [0, 1] of ``prep.image_shape``."""
        if images.shape[1:] != self.prep.image_shape:
            expected = (None, *self.prep.image_shape)
            raise DataError(f"images must have shape {expected} (None: any count) for this "
                            f"model, got {images.shape}")
        if len(images) == 0:
            return np.zeros((0, len(self.prep.class_names)), dtype=np.float32)
        from tunetrack import models as families

        x = families.featurize(self.prep.family, self.prep.candidate, images)
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
        return cls(members[0].model, first, list(members))

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


class ImageClassifierModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: DataFrame column ``image`` (base64 image bytes or a path) in, DataFrame
    ``class, probability`` out. Artifacts: ``keras_model`` (.keras file) and ``preprocessing``;
    an ensemble adds ``keras_model_1``, ``preprocessing_1`` and so on, one pair per member."""

    classifier: Classifier | None = None

    def load_context(self, context: Any) -> None:
        import keras

        members = []
        for suffix in _member_suffixes(context.artifacts):
            prep = json.loads(Path(context.artifacts[f"preprocessing{suffix}"]).read_text())
            model = keras.saving.load_model(context.artifacts[f"keras_model{suffix}"],
                                            compile=False)
            members.append(Classifier(model, Preprocessing.from_dict(prep)))
        self.classifier = members[0] if len(members) == 1 else EnsembleClassifier.of(members)

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
        assert self.classifier is not None, "load_context was not called"
        out, errors = self.classifier.classify_column(column)
        if errors:  # a server answers 400 naming the rows; a partial answer would hide them
            raise MlflowException(f"{len(errors)} of {len(column)} input(s) are not images: "
                                  + "; ".join(errors), INVALID_PARAMETER_VALUE)
        return out


def _member_suffixes(artifacts: dict[str, str]) -> list[str]:
    """``""`` for the first member, then ``"_1"``, ``"_2"``… while the artifacts have them."""
    suffixes = [""]
    while f"keras_model_{len(suffixes)}" in artifacts:
        suffixes.append(f"_{len(suffixes)}")
    return suffixes


def _signature() -> Any:
    from mlflow.models import infer_signature

    return infer_signature(pd.DataFrame({IMAGE_COLUMN: ["iVBORw0KGgo="]}),
                           pd.DataFrame({"class": ["0"], "probability": [0.5]}))


def pip_requirements() -> list[str]:
    """Pinned requirements; explicit, because MLflow's inference costs ~8 s per model."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


_MODEL_CODE = """\
# tunetrack image classifier (MLflow models-from-code: nothing is unpickled at load time)
from mlflow.models import set_model

from tunetrack.registry.serving import ImageClassifierModel

set_model(ImageClassifierModel())
"""


def log_classifier(run_id: str, classifier: Classifier, name: str = CLASSIFIER) -> str:
    """Log the pyfunc ``classifier`` (or ensemble) to a run; returns the logged model's URI.

    Logged as models-from-code (a three-line script naming :class:`ImageClassifierModel`)
    rather than a cloudpickle, so loading never unpickles code.
    """
    import warnings

    import mlflow

    members = classifier.members if isinstance(classifier, EnsembleClassifier) else [classifier]
    with tempfile.TemporaryDirectory(prefix="tunetrack-package-") as tmp:
        artifacts = {}
        for i, member in enumerate(members):
            suffix = f"_{i}" if i else ""
            keras_path = Path(tmp) / f"model{suffix}.keras"
            member.model.save(keras_path)
            prep_path = Path(tmp) / f"preprocessing{suffix}.json"
            prep_path.write_text(json.dumps(member.prep.to_dict(), indent=2))
            artifacts |= {f"keras_model{suffix}": str(keras_path),
                          f"preprocessing{suffix}": str(prep_path)}
        code_path = Path(tmp) / "tunetrack_classifier.py"
        code_path.write_text(_MODEL_CODE)
        with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
            # an input example would make MLflow load and run the model once more
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            info = mlflow.pyfunc.log_model(
                name=name, python_model=str(code_path), artifacts=artifacts,
                signature=_signature(), pip_requirements=pip_requirements())
    return info.model_uri


# --------------------------------------------------------------------------- loading

def _model_info(model_uri: str) -> Any:
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
    info = _model_info(model_uri)
    if "keras" in info.flavors:
        if not info.run_id:
            raise TrackingError(f"model {model_uri!r} is a bare keras model outside a run; "
                                f"{PREPROCESSING_FILE} is looked up in the model's run")
        try:
            prep = mlflow.artifacts.load_dict(f"runs:/{info.run_id}/{PREPROCESSING_FILE}")
        except Exception as exc:  # noqa: BLE001 - any download failure means it is missing
            raise TrackingError(f"run {info.run_id} has no {PREPROCESSING_FILE}, so images "
                                f"cannot be prepared for {model_uri!r}") from exc
        model = mlflow.keras.load_model(model_uri, load_model_kwargs={"compile": False})
        return Classifier(model, Preprocessing.from_dict(prep, f"runs:/{info.run_id}/"
                                                               f"{PREPROCESSING_FILE}"))
    inner = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    found = getattr(inner, "classifier", None)
    if not isinstance(found, Classifier):
        raise TrackingError(f"model {model_uri!r} is not a tunetrack classifier (a "
                            f"{type(inner).__name__}); promote a trial to make one")
    return found


# --------------------------------------------------------------------------- predict

def image_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """Files named, plus image files found in folders (recursively, sorted); errors for paths
    that do not exist or folders without images."""
    files: list[Path] = []
    errors: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*")
                           if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                errors.append(f"{p}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this "
                              f"folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            errors.append(f"{p}: no such file or folder")
    return files, errors


def format_rows(table: pd.DataFrame, fmt: str) -> str:
    """``table``: aligned columns; ``csv``: header + rows; ``json``: a list of objects."""
    rows = [(str(p), str(c), float(q)) for p, c, q in
            table[["path", "class", "probability"]].itertuples(index=False)]
    if fmt == "json":
        return json.dumps([{"path": p, "class": c, "probability": round(q, 6)}
                           for p, c, q in rows], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["path", "class", "probability"])
        writer.writerows((p, c, f"{q:.6f}") for p, c, q in rows)
        return buf.getvalue().rstrip("\n")
    header = ("path", "class", "probability")
    cells = [(p, c, f"{q:.4f}") for p, c, q in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *cells]]
    return "\n".join(lines)


def predict(model_uri: str, paths: Iterable[str | Path], fmt: str = "table"
            ) -> tuple[str, list[str]]:
    """Classify image files and folders; returns the formatted rows and one error line per
    file that could not be classified (the others are still predicted)."""
    if fmt not in FORMATS:
        raise DataError(f"format must be one of {allowed_list(FORMATS)}, got {fmt!r}")
    files, errors = image_files(paths)
    classifier = load_classifier(model_uri)
    table, failed = classifier.classify_paths(files)
    return format_rows(table, fmt), errors + failed


# --------------------------------------------------------------------------- serve

def classifier_uri(model_uri: str) -> str:
    """Serve the classifier, not the bare network: a trial's ``runs:/ID/model`` becomes
    ``runs:/ID/classifier`` when the trial was promoted."""
    prefix = "runs:/"
    if model_uri.startswith(prefix) and model_uri.rstrip("/").endswith(f"/{KERAS_MODEL}"):
        run_id = model_uri[len(prefix):].split("/", 1)[0]
        return f"{prefix}{run_id}/{CLASSIFIER}"
    return model_uri


def serve_command(model_uri: str, host: str = "127.0.0.1", port: int = 5000, workers: int = 1
                  ) -> tuple[list[str], dict[str, str]]:
    """The ``mlflow models serve`` command line and environment for the classifier."""
    from tunetrack.tracking.store import tracking_uri

    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = tracking_uri()  # so models:/NAME@alias resolves in our store
    env["MLFLOW_MODELS_WORKERS"] = str(workers)  # MLflow's default is one worker per CPU
    bindir = str(Path(sys.executable).parent)  # MLflow starts `uvicorn` from PATH
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", classifier_uri(model_uri),
            "--env-manager", "local", "-h", host, "-p", str(port)]
    return argv, env


def serve(model_uri: str, host: str = "127.0.0.1", port: int = 5000, workers: int = 1) -> int:
    """Run MLflow's scoring server on the classifier until interrupted; returns its exit code.

    The URI is checked first so a wrong one fails here with a clear message. Then::

        curl -s http://127.0.0.1:5000/ping
        curl -s http://127.0.0.1:5000/invocations -H 'Content-Type: application/json' \\
             -d "{\\"dataframe_split\\": {\\"columns\\": [\\"image\\"],
                  \\"data\\": [[\\"$(base64 -w0 digit.png)\\"]]}}"
        # -> {"predictions": [{"class": "3", "probability": 0.97}]}

    A cell that is not an image gets HTTP 400 naming its row. The server also accepts file
    paths readable by the server process, so keep it on loopback unless that is intended.
    """
    from tunetrack.tracking.store import client

    uri = classifier_uri(model_uri)
    client()
    if "python_function" not in _model_info(uri).flavors:  # reads MLmodel only: no TensorFlow
        raise TrackingError(f"model {uri!r} has no python_function flavor to serve")
    argv, env = serve_command(uri, host, port, workers)
    try:
        return subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        return 130


__all__ = ["CLASSIFIER", "Classifier", "EnsembleClassifier", "FORMATS", "IMAGE_COLUMN",
           "ImageClassifierModel", "KERAS_MODEL", "PREPROCESSING_FILE", "Preprocessing",
           "classifier_uri", "image_files", "load_classifier", "log_classifier",
           "pip_requirements", "predict", "serve", "serve_command", "softmax"]
