"""The classic pipeline from the CLI on an image folder: searched, tracked, promoted, predicted."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tunetrack import names
from tunetrack.cli import main

from .classic_textures import TEXTURES, texture_arrays, write_folder
from .conftest import ROOT

pytestmark = pytest.mark.slow
pytest.importorskip("cv2")


def _run(args: list[str]):
    return CliRunner().invoke(main, args, prog_name="tunetrack")


@pytest.fixture(scope="module")
def textures(tmp_path_factory) -> Path:
    x, y = texture_arrays(30, 64, seed=3)
    return write_folder(tmp_path_factory.mktemp("textures"), x, y, TEXTURES)


def _trials(store, experiment: str):
    exp = store.get_experiment_by_name(experiment)
    runs = store.search_runs([exp.experiment_id], max_results=100)
    return [r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_TRIAL]


def test_sift_fisher_is_searched_tracked_promoted_and_predicted(store, workdir, textures):
    out = _run(["search", str(ROOT / "pipelines" / "sift_fisher.yaml"), "--data", str(textures),
                "--max-trials", "2", "--experiment", "classic-flow", "-q"])
    assert out.exit_code == 0, out.output
    trials = _trials(store, "classic-flow")
    done = [t for t in trials if t.data.tags[names.TAG_TRIAL_STATUS] == "completed"]
    assert len(done) == 2
    for t in done:  # tracked like a Keras trial: params, scores, size, the model
        assert t.data.params["classifier"] == "linear_svm"
        assert t.data.params["encoding"] == "fisher"
        assert {"best_val_accuracy", "best_val_loss", names.METRIC_PARAMS_TRAINABLE
                } <= set(t.data.metrics)
        assert t.data.metrics["best_val_accuracy"] >= 0.75  # ~8 validation images
        models = store.search_logged_models([t.info.experiment_id],
                                            filter_string=f"source_run_id = '{t.info.run_id}'")
        files = {f.path for f in store.list_logged_model_artifacts(models[0].model_id)}
        assert "classic" in files
        classic = {f.path for f in store.list_logged_model_artifacts(models[0].model_id,
                                                                     "classic")}
        assert classic == {"classic/settings.json", "classic/state.npz"}

    promoted = _run(["promote", "--experiment", "classic-flow", "--model-name", "textures"])
    assert promoted.exit_code == 0, promoted.output
    version = store.get_model_version_by_alias("textures", "champion")
    assert float(version.tags["tunetrack.test_accuracy"]) >= 0.75
    x, y = texture_arrays(4, 64, seed=11)  # images it has never seen
    folder = write_folder(workdir / "unseen", x, y, TEXTURES)
    out = _run(["predict", "models:/textures@champion", str(folder), "--format", "csv"])
    assert out.exit_code == 0, out.output
    rows = pd.read_csv(StringIO(out.output))
    truth = rows["path"].map(lambda p: Path(p).parent.name)
    assert len(rows) == 12 and (rows["class"] == truth).mean() >= 0.75


def test_classic_runtime_predicts_without_keras_what_the_trial_scored(store, workdir, textures):
    """classic/ alone (numpy + OpenCV): the same probabilities as the logged Keras model."""
    import mlflow

    from tunetrack.data import load_images
    from tunetrack.models import classic_runtime

    out = _run(["search", str(ROOT / "pipelines" / "bovw.yaml"), "--data", str(textures),
                "--max-trials", "1", "--experiment", "bovw-flow", "-q"])
    assert out.exit_code == 0, out.output
    (trial,) = [t for t in _trials(store, "bovw-flow")
                if t.data.tags[names.TAG_TRIAL_STATUS] == "completed"]
    local = mlflow.artifacts.download_artifacts(f"runs:/{trial.info.run_id}/model",
                                                dst_path=str(workdir / "dl"))
    predictor = classic_runtime.load(Path(local) / "classic")
    model = mlflow.keras.load_model(f"runs:/{trial.info.run_id}/model")
    paths = sorted(textures.rglob("*.png"))[:6]
    x, _ = load_images(paths, image_size=(64, 64), color_mode="grayscale")
    keras_p = np.asarray(model.predict(predictor.features(x), verbose=0))
    assert np.allclose(predictor.predict_proba(x), keras_p, atol=1e-4)


def test_hog_family_searches_its_classifier(store, textures):
    out = _run(["search", str(ROOT / "pipelines" / "hog.yaml"), "--data", str(textures),
                "--max-trials", "1", "--experiment", "hog-svm", "-q",
                "--set", "classifier=logistic"])
    assert out.exit_code == 0, out.output
    (trial,) = _trials(store, "hog-svm")
    assert trial.data.params["classifier"] == "logistic"
    assert trial.data.metrics["best_val_accuracy"] > 0.5
    assert trial.data.metrics[names.METRIC_EPOCHS_TRAINED] == 1
