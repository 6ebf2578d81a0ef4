"""``tunetrack predict`` and ``tunetrack serve``: image files in, class names out.

Both take any model URI tunetrack understands (``models:/NAME@champion``,
``models:/NAME/VERSION``, ``runs:/ID/classifier`` or a trial's ``runs:/ID/model``) and go
through the same :class:`~tunetrack.registry.Classifier` that promotion scored.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from tunetrack.data import IMAGE_EXTENSIONS
from tunetrack.errors import DataError, TrackingError, allowed_list
from tunetrack.registry._classifier import CLASSIFIER, KERAS_MODEL
from tunetrack.registry._pyfunc import load_classifier, model_info

FORMATS = ("table", "csv", "json")


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
    if "python_function" not in model_info(uri).flavors:  # reads MLmodel only: no TensorFlow
        raise TrackingError(f"model {uri!r} has no python_function flavor to serve")
    argv, env = serve_command(uri, host, port, workers)
    try:
        return subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        return 130


__all__ = ["FORMATS", "classifier_uri", "format_rows", "image_files", "predict", "serve",
           "serve_command"]
