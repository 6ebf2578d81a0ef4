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
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from tunetrack import names
from tunetrack.data import IMAGE_EXTENSIONS
from tunetrack.errors import DataError, TrackingError, allowed_list
from tunetrack.registry._aliases import TAG_TRIAL_RUN
from tunetrack.registry._classifier import CLASSIFIER, KERAS_MODEL
from tunetrack.registry._front import DEFAULT_MAX_BODY
from tunetrack.registry._pyfunc import ALLOW_PATHS_ENV, load_classifier, model_info

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
    """Serve the classifier, not the bare network: a promoted trial's ``runs:/ID/model``
    becomes the classifier its latest promotion run logged, ``runs:/PROMOTION/classifier``
    (a trial never promoted is served as its bare Keras network)."""
    prefix = "runs:/"
    if not (model_uri.startswith(prefix) and model_uri.rstrip("/").endswith(f"/{KERAS_MODEL}")):
        return model_uri
    from tunetrack.tracking.store import client

    run_id = model_uri[len(prefix):].split("/", 1)[0]
    mlclient = client()
    experiment = mlclient.get_run(run_id).info.experiment_id
    promotions = mlclient.search_runs(
        [experiment], f"tags.`{TAG_TRIAL_RUN}` = '{run_id}' and "
        f"tags.`{names.TAG_ROLE}` = '{names.ROLE_PROMOTION}'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not promotions:
        return model_uri
    return f"{prefix}{promotions[0].info.run_id}/{CLASSIFIER}"


def serve_command(model_uri: str, host: str = "127.0.0.1", port: int = 5000, workers: int = 1,
                  max_body: int = DEFAULT_MAX_BODY, allow_paths: str | Path | None = None
                  ) -> tuple[list[str], dict[str, str]]:
    """The scoring server's command line and environment: MLflow's scoring app behind
    tunetrack's guard (:mod:`tunetrack.registry._front`), on uvicorn."""
    from tunetrack.tracking.store import tracking_uri

    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = tracking_uri()  # so models:/NAME@alias resolves in our store
    env.pop(ALLOW_PATHS_ENV, None)
    if allow_paths is not None:
        env[ALLOW_PATHS_ENV] = str(Path(allow_paths).resolve())
    argv = [sys.executable, "-m", "tunetrack.registry._front", classifier_uri(model_uri),
            "--host", host, "--port", str(port), "--workers", str(workers),
            "--max-body", str(max_body)]
    return argv, env


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies, even of SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signum)


def _stop_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM to the server's process group, SIGKILL after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            os.killpg(process.pid, signal.SIGKILL)  # workers left behind by the leader
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


def serve(model_uri: str, host: str = "127.0.0.1", port: int = 5000, workers: int = 1,
          max_body: int = DEFAULT_MAX_BODY, allow_paths: str | Path | None = None) -> int:
    """Run the scoring server on the classifier until stopped; returns its exit code.

    The URI is checked first so a wrong one fails here with a clear message. Then::

        curl -s http://127.0.0.1:5000/ping
        curl -s http://127.0.0.1:5000/invocations -H 'Content-Type: application/json' \\
             -d "{\\"dataframe_split\\": {\\"columns\\": [\\"image\\"],
                  \\"data\\": [[\\"$(base64 -w0 digit.png)\\"]]}}"
        # -> {"predictions": [{"class": "3", "probability": 0.97}]}

    A cell that is not an image gets HTTP 400 naming its row; bodies over ``max_body`` bytes get
    413, a missing or unknown Content-Type 415. File paths in cells are refused unless
    ``allow_paths`` names a folder, and then only files inside it are read.

    The server and its workers run in their own process group, which SIGTERM, SIGINT or SIGHUP
    to this process stops as a whole (and which gets SIGTERM if this process is killed).
    """
    from tunetrack.tracking.store import client

    uri = classifier_uri(model_uri)
    if allow_paths is not None and not Path(allow_paths).is_dir():
        raise DataError(f"--allow-paths must name a folder, got {str(allow_paths)!r}")
    client()
    if "python_function" not in model_info(uri).flavors:  # reads MLmodel only: no TensorFlow
        raise TrackingError(f"model {uri!r} has no python_function flavor to serve")
    argv, env = serve_command(uri, host, port, workers, max_body, allow_paths)
    stops = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in stops}
    process = None
    try:
        process = subprocess.Popen(argv, env=env, start_new_session=True,
                                   preexec_fn=_die_with_parent)
        return process.wait()
    except (_Stop, KeyboardInterrupt) as stop:
        return 128 + (stop.signum if isinstance(stop, _Stop) else signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if process is not None:
            _stop_group(process)


__all__ = ["DEFAULT_MAX_BODY", "FORMATS", "classifier_uri", "format_rows", "image_files",
           "predict", "serve", "serve_command"]
