"""Packaging a classifier so MLflow alone can load and serve it.

The logged pyfunc is models-from-code: a three-line script that imports
``tunetrack_runtime.model``, a package written here at log time into the model's ``code/``
folder (MLflow ``code_paths``) from :mod:`tunetrack.registry._runtime`, tunetrack's pure
``models/features.py`` and, when present, ``models/classic_runtime.py``. None of it imports
tunetrack, and the pinned requirements do not name it, so ``mlflow models serve``,
``build-docker`` and a colleague's ``mlflow.pyfunc.load_model`` work without tunetrack.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunetrack.registry._classifier import (
    CLASSIFIER,
    IMAGE_COLUMN,
    Classifier,
    EnsembleClassifier,
)

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

RUNTIME_PACKAGE = "tunetrack_runtime"
_HERE = Path(__file__).resolve().parent
_MODELS = _HERE.parent / "models"
# Pure modules of tunetrack.models copied beside the runtime (the ones that exist).
_PURE_MODULES = ("features.py", "classic_runtime.py")
_MODEL_CODE = f"""\
# tunetrack image classifier (MLflow models-from-code; needs no tunetrack: the code is in
# code/{RUNTIME_PACKAGE}, nothing is unpickled at load time)
from mlflow.models import set_model

from {RUNTIME_PACKAGE}.model import ImageClassifier

set_model(ImageClassifier())
"""
# Feature families: the function of models/features.py and its keyword -> candidate key.
# tests/test_mlflow_native.py checks these give what tunetrack.models.featurize gives.
_FEATURE_CALLS = {
    "colour": ("colour_features", {"k": "colours", "levels": "levels"}),
    "hog": ("hog_features", {"orientations": "orientations",
                             "pixels_per_cell": "pixels_per_cell",
                             "cells_per_block": "cells_per_block"}),
    "lbp": ("lbp_features", {"points": "points", "radius": "radius", "grid": "grid"}),
}
_BASE_REQUIREMENTS = ("mlflow", "keras", "numpy", "pandas", "pillow")
_BACKEND_PACKAGES = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"),
                     "torch": ("torch",)}


def feature_call(family: str, candidate: dict[str, Any]) -> dict[str, Any] | None:
    """``{"function", "kwargs"}`` the runtime calls on images, or None for pixel families."""
    from tunetrack.space.catalog import FAMILIES

    if family not in _FEATURE_CALLS:
        return None
    function, keys = _FEATURE_CALLS[family]
    schema = FAMILIES[family].keys
    return {"function": function,
            "kwargs": {arg: int(candidate.get(key, schema[key].default))
                       for arg, key in keys.items()}}


def keras_backend() -> str:
    import keras

    return str(keras.backend.backend())


def pip_requirements(*, features: bool = False, classic: bool = False) -> list[str]:
    """Pinned requirements, never ``tunetrack``: explicit, because MLflow's inference costs
    ~8 s per model. The Keras backend in use is listed, not TensorFlow by default."""
    from importlib.metadata import PackageNotFoundError, version

    names = [*_BASE_REQUIREMENTS, *_BACKEND_PACKAGES.get(keras_backend(), ())]
    if features or classic:
        names.append("scikit-image")
    if classic:
        names += ["scikit-learn", "scipy", "opencv-python-headless"]
    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


def write_runtime(folder: Path) -> Path:
    """The ``tunetrack_runtime`` package under ``folder``; returns its path."""
    package = folder / RUNTIME_PACKAGE
    package.mkdir(parents=True)
    for source in sorted((_HERE / "_runtime").glob("*.py")):
        shutil.copyfile(source, package / source.name)
    for name in _PURE_MODULES:
        if (_MODELS / name).is_file():
            shutil.copyfile(_MODELS / name, package / name)
    return package


def signature() -> ModelSignature:
    """Column ``image`` (base64 text of an image file; from Python also bytes or a uint8
    array) in; ``class`` and ``probability`` out."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    return ModelSignature(inputs=Schema([ColSpec(AnyType(), IMAGE_COLUMN)]),
                          outputs=Schema([ColSpec("string", "class"),
                                          ColSpec("double", "probability")]))


def log_classifier(run_id: str, classifier: Classifier, name: str = CLASSIFIER) -> str:
    """Log the self-contained pyfunc ``classifier`` (or ensemble) to a run; returns the logged
    model's URI."""
    import mlflow

    members = classifier.members if isinstance(classifier, EnsembleClassifier) else [classifier]
    backend = keras_backend()
    features = classic = False
    with tempfile.TemporaryDirectory(prefix="tunetrack-package-") as tmp:
        artifacts: dict[str, str] = {}
        for i, member in enumerate(members):
            suffix = f"_{i}" if i else ""
            prep = member.prep.to_dict()
            prep["featurize"] = feature_call(member.prep.family, member.prep.candidate)
            prep["keras_backend"] = backend
            features = features or prep["featurize"] is not None
            classic_dir = getattr(member, "classic_dir", None)
            if classic_dir is not None:
                classic = True
                artifacts[f"classic{suffix}"] = str(classic_dir)
            if member.model is not None:
                keras_path = Path(tmp) / f"model{suffix}.keras"
                member.model.save(keras_path)
                artifacts[f"keras_model{suffix}"] = str(keras_path)
            prep_path = Path(tmp) / f"preprocessing{suffix}.json"
            prep_path.write_text(json.dumps(prep, indent=2))
            artifacts[f"preprocessing{suffix}"] = str(prep_path)
        code = Path(tmp) / "code"
        write_runtime(code)
        script = Path(tmp) / "tunetrack_classifier.py"
        script.write_text(_MODEL_CODE)
        with mlflow.start_run(run_id=run_id), warnings.catch_warnings(), _importable(code):
            # an input example would make MLflow load and run the model once more
            warnings.filterwarnings("ignore", message=".*input example was not provided")
            info = mlflow.pyfunc.log_model(
                name=name, python_model=str(script), artifacts=artifacts,
                code_paths=[str(code / RUNTIME_PACKAGE)], signature=signature(),
                pip_requirements=pip_requirements(features=features, classic=classic))
    return info.model_uri


@contextmanager
def _importable(folder: Path) -> Iterator[None]:
    """MLflow runs the models-from-code script when logging it: ``tunetrack_runtime`` is
    importable from ``folder`` meanwhile, and forgotten after (the folder is temporary; a
    later load imports the copy inside the model)."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for module in [m for m in sys.modules
                       if m == RUNTIME_PACKAGE or m.startswith(f"{RUNTIME_PACKAGE}.")]:
            del sys.modules[module]
        importlib.invalidate_caches()


def from_runtime(inner: Any) -> Classifier | None:
    """The tunetrack :class:`Classifier` of a loaded runtime pyfunc (None if not one)."""
    from tunetrack.registry._classifier import Preprocessing

    members = getattr(inner, "members", None)
    if type(inner).__module__ != f"{RUNTIME_PACKAGE}.model" or not members:
        return None
    found = [Classifier(m.model, Preprocessing.from_dict(m.prep), m.classic,
                        Path(m.classic_path) if m.classic_path else None) for m in members]
    return found[0] if len(found) == 1 else EnsembleClassifier.of(found)


__all__ = ["RUNTIME_PACKAGE", "feature_call", "from_runtime", "keras_backend",
           "log_classifier", "pip_requirements", "signature", "write_runtime"]
