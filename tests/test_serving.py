"""Predict and serve: image files in, class names out, through the promoted pyfunc classifier."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunetrack.errors import DataError, TrackingError

from .localhttp import free_port, post_json
from .test_registry import EXPERIMENT, build_searches, module_store, write_digit_pngs

pytestmark = pytest.mark.slow

MODEL = "digits-served"
CHAMPION_URI = f"models:/{MODEL}@champion"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One promoted classifier and 30 test digits written as PNG files under ``digits/``."""
    from tunetrack.registry import promote

    root = tmp_path_factory.mktemp("serving")
    with module_store(root):
        searches = build_searches(root)
        result = promote(EXPERIMENT, MODEL, search=searches.good)
        searches.trial = result.winner.run_id  # type: ignore[attr-defined]
        searches.promotion = result.decision_run_id  # type: ignore[attr-defined]
        searches.images = write_digit_pngs(root / "digits", searches.dataset, 30)  # type: ignore[attr-defined]
        yield searches


@pytest.fixture
def env(served: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(served.root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", served.uri)
    return served


def test_predict_folder_in_every_format_with_a_bad_file(env: Any, tmp_path: Path):
    from tunetrack.registry import predict

    folder = tmp_path / "mixed"
    (folder / "nested").mkdir(parents=True)
    for path, _ in env.images[:4]:
        (folder / path.name).write_bytes(path.read_bytes())
    for path, _ in env.images[4:6]:
        (folder / "nested" / path.name).write_bytes(path.read_bytes())
    (folder / "nested" / "notes.png").write_text("not an image at all")
    (folder / "readme.txt").write_text("ignored: not an image extension")
    labels = {p.name: str(y) for p, y in env.images}

    text, errors = predict(CHAMPION_URI, [folder, tmp_path / "missing.png"], fmt="table")
    lines = text.splitlines()
    assert lines[0].split() == ["path", "class", "probability"]
    assert len(lines) == 1 + 6
    assert errors == [f"{tmp_path / 'missing.png'}: no such file or folder",
                      f"{folder / 'nested' / 'notes.png'}: not a recognised image format"]

    text, errors = predict(CHAMPION_URI, [folder], fmt="csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 6 and list(rows[0]) == ["path", "class", "probability"]
    assert [e.split(": ")[0] for e in errors] == [str(folder / "nested" / "notes.png")]
    right = sum(r["class"] == labels[Path(r["path"]).name] for r in rows)
    assert right >= 5

    text, _ = predict(CHAMPION_URI, [folder], fmt="json")
    records = json.loads(text)
    assert [set(r) for r in records] == [{"path", "class", "probability"}] * 6
    assert [(r["path"], r["class"]) for r in records] == [(r["path"], r["class"]) for r in rows]
    assert all(0.0 <= r["probability"] <= 1.0 for r in records)

    with pytest.raises(DataError, match=r"format must be one of 'table', 'csv', 'json', got "
                                        r"'yaml'"):
        predict(CHAMPION_URI, [folder], fmt="yaml")


def test_png_files_predict_like_the_arrays(env: Any):
    """8-bit grayscale PNGs (value * 255 / 16) must give the dataset's own predictions."""
    from tunetrack.registry import load_classifier

    classifier = load_classifier(CHAMPION_URI)
    paths = [p for p, _ in env.images]
    from_files, errors = classifier.classify_paths(paths)
    assert errors == []
    from_arrays = classifier.probabilities(env.dataset.x_test[: len(paths)])
    assert list(from_files["class"]) == [str(i) for i in from_arrays.argmax(axis=1)]
    np.testing.assert_allclose(from_files["probability"], from_arrays.max(axis=1), atol=0.02)
    right = sum(c == str(y) for c, (_, y) in zip(from_files["class"], env.images, strict=True))
    assert right >= 24, f"{right}/30"


def test_every_model_uri_gives_the_same_classes(env: Any):
    from tunetrack.registry import predict

    paths = [p for p, _ in env.images[:8]]
    outputs = {uri: predict(uri, paths, fmt="csv")
               for uri in (CHAMPION_URI, f"models:/{MODEL}/1",
                           f"runs:/{env.promotion}/classifier",
                           f"runs:/{env.trial}/model")}
    texts = {text for text, errors in outputs.values()}
    assert len(texts) == 1, texts
    assert all(errors == [] for _, errors in outputs.values())
    rows = list(csv.DictReader(io.StringIO(texts.pop())))
    assert [r["path"] for r in rows] == [str(p) for p in paths]  # one row per image, in order
    assert all(r["class"] in env.dataset.class_names for r in rows)


def test_pyfunc_names_rows_that_are_not_images(env: Any):
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    model = mlflow.pyfunc.load_model(CHAMPION_URI)
    good = base64.b64encode(env.images[0][0].read_bytes()).decode()
    junk = base64.b64encode(b"hello, not a png").decode()
    out = model.predict(pd.DataFrame({"image": [good, f"data:image/png;base64,{good}"]}))
    assert out["class"].nunique() == 1
    assert out["probability"].iloc[0] == pytest.approx(out["probability"].iloc[1])
    with pytest.raises(MlflowException, match=r"1 of 3 input\(s\) are not images: row 1: "
                                              r"neither base64-encoded image bytes nor a file "
                                              r"path \(paths are off"):
        model.predict(pd.DataFrame({"image": [good, "no/such/file.png", junk]}))
    with pytest.raises(MlflowException, match=r"1 of 2 input\(s\) are not images: row 1: "
                                              r"not a recognised image format"):
        model.predict(pd.DataFrame({"image": [good, junk]}))


def test_unknown_models_are_tracking_errors(env: Any):
    from tunetrack.registry import predict

    with pytest.raises(TrackingError, match=r"cannot load model 'models:/nope@champion'"):
        predict("models:/nope@champion", [env.images[0][0]])
    with pytest.raises(TrackingError, match=r"cannot load model 'models:/digits-served@nope'"):
        predict(f"models:/{MODEL}@nope", [env.images[0][0]])


def test_scoring_server_answers_with_the_class(env: Any, tmp_path: Path):
    from tunetrack.registry import serve_command

    port = free_port()
    argv, _ = serve_command(f"runs:/{env.trial}/model", "127.0.0.1", port)
    # the classifier its promotion logged, not the bare network
    assert f"runs:/{env.promotion}/classifier" in argv
    argv, environment = serve_command(CHAMPION_URI, "127.0.0.1", port)
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(argv, env=environment, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "no /ping answer within 90 s:\n" + \
                (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        path, label = env.images[0]
        image = base64.b64encode(path.read_bytes()).decode()
        status, body = post_json(f"{base}/invocations",
                             {"dataframe_split": {"columns": ["image"], "data": [[image]]}})
        assert status == 200, body
        (prediction,) = body["predictions"]
        assert prediction["class"] == str(label)
        assert 0.0 < prediction["probability"] <= 1.0
        status, body = post_json(f"{base}/invocations", {"dataframe_split": {
            "columns": ["image"], "data": [[base64.b64encode(b"junk").decode()]]}})
        assert status == 400 and "row 0" in body["message"], body
    finally:  # the server runs in its own session: stop the whole group we started
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
        log.close()
