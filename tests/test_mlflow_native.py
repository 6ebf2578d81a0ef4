"""The registered classifier stands on its own in MLflow: loaded, served over MLflow's scoring
protocol and packaged for Docker where ``import tunetrack`` fails.

tunetrack is hidden by a folder first on PYTHONPATH whose ``tunetrack/__init__.py`` raises
ImportError, so the subprocesses here see only what the registered model carries.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_registry import (
    EXPERIMENT,
    module_store,
    record_search,
    train,
    write_digit_pngs,
)
from tunetrack import names

MODEL = "digits-native"


def hidden_env(root: Path, uri: str) -> dict[str, str]:
    """The environment of a process where ``import tunetrack`` raises ImportError."""
    shadow = root / "shadow"
    (shadow / "tunetrack").mkdir(parents=True, exist_ok=True)
    (shadow / "tunetrack" / "__init__.py").write_text(
        'raise ImportError("tunetrack is hidden in this test")\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env |= {"PYTHONPATH": str(shadow), "MLFLOW_TRACKING_URI": uri,
            "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": os.environ.get("KERAS_BACKEND",
                                                                         "tensorflow")}
    env.pop("TUNETRACK_ALLOW_PATHS", None)
    # mlflow models serve execs ``uvicorn`` by name: the venv's bin as an activated venv has it
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


class Promoted:
    def __init__(self, root: Path, uri: str, dataset: Any, result: Any) -> None:
        self.root, self.uri, self.dataset, self.result = root, uri, dataset, result
        self.images = write_digit_pngs(root / "pngs", dataset, 20)
        self.env = hidden_env(root, uri)


@pytest.fixture(scope="module")
def promoted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Promoted]:
    import mlflow
    from mlflow import MlflowClient

    from tests.test_registry import DATA_CONFIG
    from tunetrack.data import DataConfig, load_dataset
    from tunetrack.registry import promote
    from tunetrack.tracking.store import artifact_root

    root = tmp_path_factory.mktemp("native")
    uri = f"sqlite:///{root / 'store' / 'mlflow.db'}"
    (root / "store").mkdir()
    with module_store(root):
        mlflow.set_tracking_uri(uri)
        mlclient = MlflowClient(uri)
        experiment_id = mlclient.create_experiment(EXPERIMENT,
                                                   artifact_location=artifact_root(uri))
        dataset = load_dataset(DataConfig(**DATA_CONFIG))
        mlp, mlp_c, mlp_acc = train("mlp", {"dense.1.units": 32, "learning_rate": 1e-2},
                                    dataset, 12)
        search, _ = record_search(mlclient, experiment_id, dataset,
                                  [("completed", (mlp, "mlp", mlp_c, mlp_acc))])
        result = promote(EXPERIMENT, MODEL, search=search)
        yield Promoted(root, uri, dataset, result)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _run_hidden(root: Path, env: dict[str, str], code: str, timeout: float = 240) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# --------------------------------------------------------------------------- fast checks

def test_runtime_decodes_like_the_training_loader(tmp_path: Path):
    from PIL import Image

    from tunetrack.data import load_images
    from tunetrack.registry._runtime.decode import array_image, decode_bytes

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray((rng.integers(0, 65535, (9, 7))).astype(np.uint16)).save(tmp_path / "b.png")
    for mode in ("rgb", "grayscale"):
        for name in ("a.png", "b.png"):
            want, failed = load_images([tmp_path / name], (8, 8), mode)
            assert not failed
            got = decode_bytes((tmp_path / name).read_bytes(), (8, 8), mode)
            np.testing.assert_array_equal(got.astype(np.float32) / 255.0, want[0])
        want, _ = load_images([tmp_path / "a.png"], (8, 8), mode)
        np.testing.assert_array_equal(array_image(rgb, (8, 8), mode).astype(np.float32) / 255.0,
                                      want[0])
    with pytest.raises(ValueError, match="not a recognised image format"):
        decode_bytes(b"not an image", (8, 8), "rgb")
    with pytest.raises(ValueError, match=r"must be \(H, W\), \(H, W, 1\) or \(H, W, 3\)"):
        array_image(np.zeros((2, 2, 2), np.uint8), (8, 8), "rgb")
    with pytest.raises(ValueError, match="integers 0..255"):
        array_image(np.full((2, 2), 300), (8, 8), "rgb")


@pytest.mark.parametrize("family", ["colour", "hog", "lbp"])
def test_runtime_features_match_tunetrack_featurize(family: str):
    from tunetrack import models as families
    from tunetrack.models import features
    from tunetrack.registry._package import feature_call
    from tunetrack.space.catalog import defaults

    candidate = defaults(family)
    images = np.random.default_rng(1).random((3, 16, 16, 3), dtype=np.float32)
    call = feature_call(family, candidate)
    assert call is not None
    got = getattr(features, call["function"])(images, **call["kwargs"])
    np.testing.assert_array_equal(got, families.featurize(family, candidate, images))
    assert feature_call("cnn", defaults("cnn")) is None


def test_requirements_name_the_backend_and_never_tunetrack():
    import keras

    from tunetrack.registry._package import pip_requirements

    reqs = pip_requirements(features=True)
    names_ = [r.split("==")[0] for r in reqs]
    assert "tunetrack" not in names_
    assert {"mlflow", "keras", "numpy", "pandas", "pillow", "scikit-image"} <= set(names_)
    assert keras.backend.backend() in names_


# --------------------------------------------------------------------------- hidden tunetrack

@pytest.mark.slow
def test_registered_model_carries_its_code(promoted: Promoted, monkeypatch):
    import mlflow

    monkeypatch.chdir(promoted.root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", promoted.uri)
    mlflow.set_tracking_uri(promoted.uri)

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}@champion",
                                                     dst_path=str(promoted.root / "dl")))
    assert (local / "code" / "tunetrack_runtime" / "model.py").is_file()
    assert (local / "code" / "tunetrack_runtime" / "features.py").is_file()
    requirements = (local / "requirements.txt").read_text()
    assert "tunetrack" not in requirements.replace("tunetrack_runtime", "")
    # logging stays fast: explicit requirements, no MLflow inference, no input example
    from mlflow import MlflowClient

    from tunetrack.registry import load_classifier, log_classifier

    classifier = load_classifier(f"models:/{MODEL}@champion")
    experiment = MlflowClient().get_experiment_by_name(EXPERIMENT).experiment_id
    run = MlflowClient().create_run(experiment).info.run_id
    started = time.perf_counter()
    log_classifier(run, classifier)
    seconds = time.perf_counter() - started
    print(f"log_classifier: {seconds:.2f} s")
    assert seconds < 5.0, seconds
    for path in (local / "code" / "tunetrack_runtime").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert not (node.module or "").startswith("tunetrack."), (path, node.module)
                assert node.module != "tunetrack", path
            elif isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "tunetrack" for a in node.names), path


@pytest.mark.slow
def test_load_and_predict_where_tunetrack_is_not_importable(promoted: Promoted):
    files = [str(p) for p, _ in promoted.images]
    labels = [str(y) for _, y in promoted.images]
    code = f"""
import base64, json
import numpy as np, pandas as pd
from PIL import Image
try:
    import tunetrack
    raise SystemExit("tunetrack is importable")
except ImportError:
    pass
import mlflow
model = mlflow.pyfunc.load_model("models:/{MODEL}@champion")
files = {files!r}
b64 = [base64.b64encode(open(f, "rb").read()).decode() for f in files]
by_bytes = model.predict(pd.DataFrame({{"image": b64}}))
arrays = [np.asarray(Image.open(f)) for f in files]
by_array = model.predict(pd.DataFrame({{"image": arrays}}))
batch = model.predict({{"image": [a.tolist() for a in arrays]}})
print(json.dumps({{"bytes": by_bytes.to_dict("list"), "arrays": by_array.to_dict("list"),
                  "batch": batch.to_dict("list"), "columns": list(by_bytes.columns)}}))
"""
    out = json.loads(_run_hidden(promoted.root, promoted.env, code).strip().splitlines()[-1])
    assert out["columns"] == ["class", "probability"]
    right = sum(c == y for c, y in zip(out["bytes"]["class"], labels, strict=True))
    assert right >= 16, f"{right}/20 digits right"
    assert all(0.0 <= p <= 1.0 for p in out["bytes"]["probability"])
    assert out["arrays"]["class"] == out["bytes"]["class"] == out["batch"]["class"]
    np.testing.assert_allclose(out["arrays"]["probability"], out["bytes"]["probability"],
                               rtol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: bytes, content_type: str = "application/json"
          ) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.slow
def test_mlflow_models_serve_answers_the_scoring_protocol_without_tunetrack(promoted: Promoted):
    port = _free_port()
    log = (promoted.root / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL}@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=promoted.env, cwd=promoted.root, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (promoted.root / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "mlflow models serve did not start"
            time.sleep(1)
        cells = [_b64(p) for p, _ in promoted.images[:4]]
        labels = [str(y) for _, y in promoted.images[:4]]
        bodies = {
            "dataframe_split": {"dataframe_split": {"columns": ["image"],
                                                   "data": [[c] for c in cells]}},
            "dataframe_records": {"dataframe_records": [{"image": c} for c in cells]},
            "instances": {"instances": [{"image": c} for c in cells]},
            "inputs": {"inputs": {"image": cells}},
        }
        answers = {}
        for form, body in bodies.items():
            status, text = _post(f"{url}/invocations", json.dumps(body).encode())
            assert status == 200, (form, text)
            answers[form] = [row["class"] for row in json.loads(text)["predictions"]]
        assert len({tuple(a) for a in answers.values()}) == 1, answers
        assert sum(c == y for c, y in zip(answers["inputs"], labels, strict=True)) >= 3

        text_cell = base64.b64encode(b"this is not an image").decode()
        malformed = {
            "not JSON": b"{not json",
            "empty": b"",
            "no known key": b'{"rows": [1, 2]}',
            "wrong column": json.dumps({"dataframe_split": {"columns": ["pixels"],
                                                            "data": [["x"]]}}).encode(),
            "not an image": json.dumps({"inputs": {"image": [text_cell]}}).encode(),
            "not base64": json.dumps({"inputs": {"image": ["%%%"]}}).encode(),
            "wrong dtype": json.dumps({"inputs": {"image": [[["a", "b"]]]}}).encode(),
            "wrong shape": json.dumps({"inputs": {"image": [[[[1, 2, 3, 4]]]]}}).encode(),
            "oversized, not an image": json.dumps({"inputs": {"image": ["A" * 8_000_000]}}
                                                  ).encode(),
        }
        for case, body in malformed.items():
            status, text = _post(f"{url}/invocations", body)
            assert 400 <= status < 500, (case, status, text[:500])
            answer = json.loads(text)  # MLflow's error format: one JSON object with a reason
            assert answer["error_code"] and answer["message"], (case, text[:500])
        # after all that it still serves
        status, text = _post(f"{url}/invocations", json.dumps(bodies["inputs"]).encode())
        assert status == 200, text
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
                break
        log.close()


@pytest.mark.slow
def test_generate_dockerfile(promoted: Promoted):
    out = promoted.root / "docker"
    done = subprocess.run(
        [sys.executable, "-m", "mlflow", "models", "generate-dockerfile", "-m",
         f"models:/{MODEL}@champion", "-d", str(out), "--env-manager", "local"],
        env=promoted.env, cwd=promoted.root, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    dockerfile = (out / "Dockerfile").read_text()
    assert "mlflow" in dockerfile and "ENTRYPOINT" in dockerfile
    assert (out / "model_dir" / "code" / "tunetrack_runtime" / "model.py").is_file()


# --------------------------------------------------------------------------- with tunetrack

_LEGACY_CODE = """\
from mlflow.models import set_model

from tunetrack.registry import ImageClassifierModel

set_model(ImageClassifierModel())
"""


@pytest.mark.slow
def test_models_promoted_by_earlier_tunetrack_still_load(promoted: Promoted, monkeypatch):
    """The pyfunc earlier tunetrack logged (models-from-code importing tunetrack.registry)."""
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from tunetrack.registry import load_classifier

    monkeypatch.chdir(promoted.root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", promoted.uri)
    mlflow.set_tracking_uri(promoted.uri)
    current = load_classifier(f"models:/{MODEL}@champion")
    folder = promoted.root / "legacy"
    folder.mkdir()
    current.model.save(folder / "model.keras")
    (folder / "preprocessing.json").write_text(json.dumps(current.prep.to_dict()))
    (folder / "code.py").write_text(_LEGACY_CODE)
    experiment = MlflowClient().get_experiment_by_name(EXPERIMENT).experiment_id
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.pyfunc.log_model(
            name="classifier", python_model=str(folder / "code.py"),
            artifacts={"keras_model": str(folder / "model.keras"),
                       "preprocessing": str(folder / "preprocessing.json")},
            pip_requirements=["mlflow"])
    old = load_classifier(info.model_uri)
    assert old.prep == current.prep
    cells = [_b64(p) for p, _ in promoted.images[:5]]
    legacy = mlflow.pyfunc.load_model(info.model_uri).predict(pd.DataFrame({"image": cells}))
    new = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(
        pd.DataFrame({"image": cells}))
    assert list(legacy["class"]) == list(new["class"])
    np.testing.assert_allclose(legacy["probability"], new["probability"], rtol=1e-5)


@pytest.mark.slow
def test_search_logged_models_rank_a_searchs_trials(store, workdir: Path):
    import mlflow

    from tests.conftest import write_pipeline
    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline

    result = run_search(load_pipeline(write_pipeline(workdir, trials=3, epochs=1)))
    experiment = store.get_experiment_by_name("tiny").experiment_id
    ranked = mlflow.search_logged_models(
        experiment_ids=[experiment], output_format="list",
        order_by=[{"field_name": "metrics.val_accuracy", "ascending": False}])
    trials = {r.info.run_id: r for r in store.search_runs(
        [experiment], f"tags.`{names.TAG_PARENT}` = '{result.parent_run_id}'")}
    trained = {k for k, r in trials.items() if "best_val_accuracy" in r.data.metrics}
    assert {m.source_run_id for m in ranked} == trained and len(trained) >= 2
    scores = [trials[m.source_run_id].data.metrics["best_val_accuracy"] for m in ranked]
    assert scores == sorted(scores, reverse=True)
    wanted = {"val_accuracy", "best_val_accuracy", "best_val_macro_f1"}
    assert all(wanted <= {x.key for x in m.metrics} for m in ranked)
    assert all(m.params for m in ranked)  # each model carries its hyperparameters


@pytest.mark.slow
def test_classic_pipeline_is_served_without_tunetrack(store, workdir: Path):
    """A promoted classic (descriptors + Fisher vectors) model carries classic/ and the
    descriptor code, and predicts where tunetrack is not importable as it does with it."""
    pytest.importorskip("cv2")
    from click.testing import CliRunner

    from tests.classic_textures import TEXTURES, texture_arrays, write_folder
    from tests.conftest import ROOT
    from tunetrack.cli import main
    from tunetrack.registry import predict

    x, y = texture_arrays(20, 64, seed=3)
    data = write_folder(workdir / "textures", x, y, TEXTURES)
    for args in (["search", str(ROOT / "pipelines" / "bovw.yaml"), "--data", str(data),
                  "--max-trials", "1", "--experiment", "classic-native", "-q"],
                 ["promote", "--experiment", "classic-native", "--model-name", "bovw"]):
        out = CliRunner().invoke(main, args, prog_name="tunetrack")
        assert out.exit_code == 0, out.output
    x, y = texture_arrays(2, 64, seed=11)
    unseen = write_folder(workdir / "unseen", x, y, TEXTURES)
    files = sorted(str(p) for p in unseen.rglob("*.png"))
    with_tunetrack, errors = predict("models:/bovw@champion", files, fmt="json")
    assert not errors
    want = [row["class"] for row in json.loads(with_tunetrack)]
    code = f"""
import base64, json
import pandas as pd
import mlflow
files = {files!r}
b64 = [base64.b64encode(open(f, "rb").read()).decode() for f in files]
out = mlflow.pyfunc.load_model("models:/bovw@champion").predict(pd.DataFrame({{"image": b64}}))
print(json.dumps(list(out["class"])))
"""
    env = hidden_env(workdir, os.environ["MLFLOW_TRACKING_URI"])
    got = json.loads(_run_hidden(workdir, env, code).strip().splitlines()[-1])
    assert got == want
