"""Promotion through the sealed test split, on a real SQLite store and registry.

The searches are built here in the exact layout ``tunetrack.search`` leaves (parent run with
``data_config.json`` and the data fingerprint; completed trial runs with ``runs:/ID/model`` and
``preprocessing.json``), with tiny digits models trained once per module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunetrack import names
from tunetrack.errors import DataError, PromotionRefused, TrackingError

pytestmark = pytest.mark.slow

EXPERIMENT = "digits-promo"
DATA_CONFIG = {"source": "digits", "image_size": None, "color_mode": None,
               "validation_split": 0.2, "test_split": 0.2, "seed": 0, "on_bad_image": "error"}


@dataclass
class Searches:
    """Search run ids of the module's store and the trial runs inside them."""

    root: Path
    uri: str
    good: str  # mlp (best val) + linear + a rejected trial
    bad: str  # one untrained mlp: near-chance accuracy
    empty: str  # rejected and failed trials only
    trials: dict[str, list[str]] = field(default_factory=dict)
    dataset: Any = None


def train(family: str, overrides: dict[str, Any], dataset: Any, epochs: int, seed: int = 0
          ) -> tuple[Any, dict[str, Any], float]:
    """A compiled, trained model of ``family``, its candidate and its best val accuracy."""
    import keras

    from tunetrack import models as families
    from tunetrack.space.catalog import defaults

    candidate = {**defaults(family), **overrides}
    keras.utils.set_random_seed(seed)
    shape = families.input_shape(family, candidate, dataset.image_shape)
    model = families.build_model(family, candidate, shape, dataset.num_classes)
    model.compile(**families.compile_kwargs(family, candidate))
    x_train = families.featurize(family, candidate, dataset.x_train)
    x_val = families.featurize(family, candidate, dataset.x_val)
    if epochs:
        history = model.fit(x_train, dataset.y_train, validation_data=(x_val, dataset.y_val),
                            epochs=epochs, batch_size=32, verbose=0)
        return model, candidate, float(max(history.history["val_accuracy"]))
    return model, candidate, float(model.evaluate(x_val, dataset.y_val, verbose=0)[1])


def log_trial_model(run_id: str, model: Any, family: str, candidate: dict[str, Any],
                    dataset: Any) -> None:
    """The trial-run layout: keras flavor ``model`` and ``preprocessing.json``."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from tunetrack import models as families
    from tunetrack.registry import pip_requirements

    x = families.featurize(family, candidate, dataset.x_val[:2])
    with mlflow.start_run(run_id=run_id):
        mlflow.keras.log_model(model, name="model", pip_requirements=pip_requirements(),
                               signature=infer_signature(x, model.predict(x, verbose=0)))
    MlflowClient().log_dict(run_id, {
        "family": family, "candidate": candidate, "image_shape": list(dataset.image_shape),
        "color_mode": "grayscale", "class_names": dataset.class_names,
        "outputs_probabilities": families.outputs_probabilities(family, candidate),
        "source": "digits"}, "preprocessing.json")


def record_search(mlclient: Any, experiment_id: str, dataset: Any,
                  trials: list[tuple[str, Any]], fingerprint: str | None = None
                  ) -> tuple[str, list[str]]:
    """A search run and its trials; ``trials``: (status, (model, family, candidate, val_acc)
    or None). Returns the search run id and the trial run ids."""
    search = mlclient.create_run(experiment_id, run_name="search", tags={
        names.TAG_ROLE: names.ROLE_SEARCH, names.TAG_OBJECTIVE: "val_accuracy",
        names.TAG_DATA_FINGERPRINT: fingerprint or dataset.fingerprint,
        names.TAG_CLASSES: json.dumps(dataset.class_names)}).info.run_id
    mlclient.log_param(search, "objective", "val_accuracy")
    mlclient.log_dict(search, DATA_CONFIG, "data_config.json")
    run_ids = []
    for number, (status, trained) in enumerate(trials, start=1):
        run = mlclient.create_run(experiment_id, run_name=f"trial-{number}", tags={
            names.TAG_PARENT: search, names.TAG_ROLE: names.ROLE_TRIAL,
            names.TAG_TRIAL_ID: f"{number:02d}", names.TAG_TRIAL_STATUS: status}).info.run_id
        if trained is not None:
            model, family, candidate, val_acc = trained
            mlclient.log_metric(run, "best_val_accuracy", val_acc)
            mlclient.log_metric(run, "best_val_loss", 1.0 - val_acc)
            log_trial_model(run, model, family, candidate, dataset)
        mlclient.set_terminated(run, "FINISHED")
        run_ids.append(run)
    mlclient.set_terminated(search, "FINISHED")
    return search, run_ids


def build_searches(root: Path) -> Searches:
    """Train the module's models once and record three searches in a fresh store."""
    import mlflow
    from mlflow import MlflowClient

    from tunetrack.data import DataConfig, load_dataset
    from tunetrack.tracking.store import artifact_root

    uri = f"sqlite:///{root / 'store' / 'mlflow.db'}"
    (root / "store").mkdir()
    mlflow.set_tracking_uri(uri)  # the fluent API (start_run) is global, the client is not
    mlclient = MlflowClient(uri)
    experiment_id = mlclient.create_experiment(EXPERIMENT, artifact_location=artifact_root(uri))
    dataset = load_dataset(DataConfig(**DATA_CONFIG))
    mlp, mlp_c, mlp_acc = train("mlp", {"dense.1.units": 32, "learning_rate": 1e-2}, dataset, 12)
    lin, lin_c, lin_acc = train("linear", {"learning_rate": 1e-2}, dataset, 3)
    raw, raw_c, raw_acc = train("mlp", {"dense.1.units": 8}, dataset, 0, seed=3)
    assert mlp_acc > 0.9 and lin_acc < mlp_acc and raw_acc < 0.4, (mlp_acc, lin_acc, raw_acc)
    good, good_runs = record_search(mlclient, experiment_id, dataset, [
        ("completed", (lin, "linear", lin_c, lin_acc)), ("rejected", None),
        ("completed", (mlp, "mlp", mlp_c, mlp_acc))])
    bad, bad_runs = record_search(mlclient, experiment_id, dataset, [
        ("completed", (raw, "mlp", raw_c, raw_acc))])
    empty, empty_runs = record_search(mlclient, experiment_id, dataset, [
        ("rejected", None), ("failed", None), ("rejected", None)])
    return Searches(root, uri, good, bad, empty,
                    {good: good_runs, bad: bad_runs, empty: empty_runs}, dataset)


@contextmanager
def module_store(root: Path) -> Iterator[pytest.MonkeyPatch]:
    """cwd and MLFLOW_TRACKING_URI for a module's store; MLflow's global URI is reset after,
    since ``mlflow.set_tracking_uri`` would otherwise outlive the module."""
    import mlflow

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'store' / 'mlflow.db'}")
        try:
            yield mp
        finally:
            mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def searches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searches]:
    root = tmp_path_factory.mktemp("registry")
    with module_store(root):
        yield build_searches(root)


@pytest.fixture
def mlclient(searches: Searches, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlflow import MlflowClient

    monkeypatch.chdir(searches.root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", searches.uri)
    return MlflowClient(searches.uri)


def write_digit_pngs(folder: Path, dataset: Any, count: int) -> list[tuple[Path, int]]:
    """Test digits as 8-bit grayscale PNGs (value * 255 / 16), with their labels."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        value = np.rint(dataset.x_test[i, ..., 0] * 16.0)  # back to sklearn's 0..16
        path = folder / f"digit-{i:03d}.png"
        Image.fromarray(np.rint(value * 255.0 / 16.0).astype(np.uint8), "L").save(path)
        out.append((path, int(dataset.y_test[i])))
    return out


def _b64(path: Path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


# --------------------------------------------------------------------------- tests

def test_promote_registers_champion_that_classifies_image_files(searches: Searches, mlclient,
                                                               monkeypatch):
    import mlflow
    import pandas as pd

    from tunetrack.registry import promote, promotion_history

    result = promote(EXPERIMENT, "digits-a", search=searches.good)
    mlp_run = searches.trials[searches.good][2]
    assert result.decision == "promoted" and result.alias == "champion"
    assert result.winner.run_id == mlp_run and result.winner.trial_id == "03"
    assert result.test_accuracy > 0.85
    assert "version 1 is now 'champion'" in result.reason
    assert f"test accuracy {result.test_accuracy:.4f}, test loss" in "\n".join(result.lines())

    version = mlclient.get_model_version_by_alias("digits-a", "champion")
    assert str(version.version) == "1"
    assert version.tags["tunetrack.search_run_id"] == searches.good
    assert version.tags["tunetrack.trial_run_id"] == mlp_run
    assert version.tags["tunetrack.trial_id"] == "03"
    assert float(version.tags["tunetrack.test_accuracy"]) == pytest.approx(result.test_accuracy)
    assert version.tags["tunetrack.data_fingerprint"] == searches.dataset.fingerprint

    # The trial's run is only read; the verdict is on the promotion run.
    trial = mlclient.get_run(mlp_run)
    assert not any(k.startswith("test") for k in trial.data.metrics)
    assert mlclient.list_artifacts(mlp_run, "plots") == []
    decided = mlclient.get_run(result.decision_run_id)
    assert decided.data.metrics[names.METRIC_TEST_ACCURACY] == pytest.approx(result.test_accuracy)
    assert names.METRIC_TEST_LOSS in decided.data.metrics
    # MLflow's evaluation (mlflow.models.evaluate) of the same predictions, on the same run:
    # aggregate metrics, per-class figures in a table, not as metrics
    assert decided.data.metrics["accuracy_score"] == pytest.approx(result.test_accuracy)
    assert {"precision_score", "recall_score", "f1_score"} <= set(decided.data.metrics)
    assert not any(k.startswith(("precision_", "recall_")) and k.count("_") > 1
                   for k in decided.data.metrics)
    listed = {a.path for a in mlclient.list_artifacts(result.decision_run_id)}
    assert {"test_per_class.csv", "decision.json", "per_class_metrics.csv",
            "confusion_matrix.png"} <= listed
    # the registered version is the promotion run's LoggedModel (models:/<model_id>; the SQLite
    # registry of MLflow 3.17 leaves ModelVersion.model_id empty)
    model_id = version.model_id or version.source.removeprefix("models:/")
    assert mlclient.get_logged_model(model_id).source_run_id == result.decision_run_id
    trial_model = mlclient.get_logged_model(version.tags["tunetrack.trial_model_id"])
    assert trial_model.source_run_id == mlp_run  # and the trial's own LoggedModel
    per_class = mlclient.download_artifacts(result.decision_run_id, "test_per_class.csv",
                                            str(searches.root))
    assert Path(per_class).read_text().splitlines()[0] == "class,precision,recall"
    assert decided.data.tags["tunetrack.trial_run_id"] == mlp_run
    assert mlp_run in decided.data.tags[names.TAG_NOTE]

    images = write_digit_pngs(searches.root / "pngs-a", searches.dataset, 50)
    monkeypatch.setenv("TUNETRACK_ALLOW_PATHS", str(searches.root / "pngs-a"))  # paths: opt-in
    model = mlflow.pyfunc.load_model("models:/digits-a@champion")
    frame = pd.DataFrame({"image": [_b64(p) for p, _ in images[:25]]
                                   + [str(p) for p, _ in images[25:]]})
    out = model.predict(frame)
    assert list(out.columns) == ["class", "probability"]
    right = sum(c == str(y) for c, (_, y) in zip(out["class"], images, strict=True))
    assert right >= 40, f"{right}/50 test digits right"
    assert out["probability"].between(0, 1).all()

    history = promotion_history(EXPERIMENT, "digits-a")
    assert len(history) == 1
    decision = history[0]
    assert decision["decision"] == "promoted" and decision["version"] == "1"
    assert decision["search_run_id"] == searches.good and decision["trial_id"] == "03"
    assert decision["test_accuracy"] == pytest.approx(result.test_accuracy)
    assert decision["champion_test_accuracy"] is None  # there was no champion before


def test_worse_candidate_is_refused_and_becomes_challenger(searches: Searches, mlclient):
    from tunetrack.registry import promote, promotion_history

    first = promote(EXPERIMENT, "digits-b", search=searches.good)
    with pytest.raises(PromotionRefused, match=r"test accuracy 0\.\d{4} is below the "
                                               r"champion's 0\.\d{4} \(version 1, re-evaluated"
                                               ) as caught:
        promote(EXPERIMENT, "digits-b", search=searches.bad)
    error = caught.value
    assert error.exit_code == 1
    assert f"{first.test_accuracy:.4f}" in str(error)
    assert f"{error.result.test_accuracy:.4f}" in str(error)
    assert mlclient.get_model_version_by_alias("digits-b", "champion").version == 1
    assert mlclient.get_model_version_by_alias("digits-b", "challenger").version == 2

    decisions = promotion_history(EXPERIMENT, "digits-b")
    assert [d["decision"] for d in decisions] == ["promoted", "refused"]
    refused = decisions[1]
    assert refused["champion_test_accuracy"] == pytest.approx(first.test_accuracy)
    assert refused["test_accuracy"] == pytest.approx(error.result.test_accuracy)
    assert refused["version"] == "2" and refused["champion_version"] == "1"


def test_champion_on_other_data_is_compared_by_its_recorded_score(searches: Searches, mlclient):
    from tunetrack.registry import promote

    promote(EXPERIMENT, "digits-c", search=searches.bad)
    mlclient.set_model_version_tag("digits-c", "1", "tunetrack.data_fingerprint", "other-data")
    mlclient.set_model_version_tag("digits-c", "1", "tunetrack.test_accuracy", "0.999")
    with pytest.raises(PromotionRefused, match=r"below the champion's 0\.9990 \(version 1, "
                                               r"recorded on different data"):
        promote(EXPERIMENT, "digits-c", search=searches.good)
    mlclient.set_model_version_tag("digits-c", "1", "tunetrack.test_accuracy", "0.2")
    result = promote(EXPERIMENT, "digits-c", search=searches.good)
    assert result.version == "3" and result.champion_score_source.startswith("recorded")
    assert "replacing version 1 (0.2000, recorded" in result.reason


def test_min_test_accuracy_gate(searches: Searches, mlclient):
    from tunetrack.registry import promote

    with pytest.raises(PromotionRefused, match=r"test accuracy 0\.\d{4} is below "
                                               r"min_test_accuracy 0\.9990"):
        promote(EXPERIMENT, "digits-d", search=searches.good, min_test_accuracy=0.999)
    assert mlclient.get_model_version_by_alias("digits-d", "challenger").version == 1
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="champion"):  # no version holds the alias
        mlclient.get_model_version_by_alias("digits-d", "champion")
    result = promote(EXPERIMENT, "digits-d", search=searches.good, min_test_accuracy=0.5)
    assert result.alias == "champion" and result.version == "2"
    # the gate as MLflow metric thresholds, checked by mlflow.validate_evaluation_results
    import mlflow

    decision = mlflow.artifacts.load_dict(f"runs:/{result.decision_run_id}/decision.json")
    assert decision["gate"] == {"min_test_accuracy": {
        "accuracy_score": "Threshold: 0.5. Greater value is better."}}
    again = promote(EXPERIMENT, "digits-d", search=searches.good, min_test_accuracy=0.5)
    decision = mlflow.artifacts.load_dict(f"runs:/{again.decision_run_id}/decision.json")
    assert decision["gate"]["beats_champion"] == {
        "accuracy_score": "Minimum Relative Change: 0.0. Greater value is better."}


def test_dry_run_registers_nothing_and_top_k_judges_several(searches: Searches, mlclient):
    from tunetrack.registry import promote, promotion_history

    result = promote(EXPERIMENT, "digits-e", search=searches.good, top=2, dry_run=True)
    assert result.decision == "dry_run" and result.version is None
    assert "nothing registered: it would become champion" in result.reason
    assert [e.family for e in result.candidates] == ["mlp", "linear"]
    assert result.winner.family == "mlp"
    linear = result.candidates[1]
    assert 0.0 < linear.test_accuracy <= 1.0 and np.isfinite(linear.test_loss)  # softmax'd
    assert mlclient.search_registered_models("name = 'digits-e'") == []
    assert promotion_history(EXPERIMENT, "digits-e") == []


def test_ensemble_of_the_best_trials_is_one_registered_classifier(searches: Searches, mlclient):
    import mlflow
    import pandas as pd

    from tunetrack.registry import EnsembleClassifier, load_classifier, promote, promotion_history

    with pytest.raises(TrackingError, match=r"an ensemble of 3 needs 3 completed trials with "
                                            r"best_val_accuracy; search \w+ has 2"):
        promote(EXPERIMENT, "digits-h", search=searches.good, ensemble=3)
    with pytest.raises(TrackingError, match=r"choose --top .* or --ensemble .*, not both"):
        promote(EXPERIMENT, "digits-h", search=searches.good, ensemble=2, top=2)

    result = promote(EXPERIMENT, "digits-h", search=searches.good, ensemble=2)
    linear_run, mlp_run = searches.trials[searches.good][0], searches.trials[searches.good][2]
    assert [e.run_id for e in result.members] == [mlp_run, linear_run]  # by validation
    assert result.winner.run_id == f"{mlp_run},{linear_run}"
    assert result.winner.family == "mlp+linear"
    assert result.lines()[0].endswith("ensemble of the 2 best trials by best_val_accuracy "
                                      "(mlp+linear), probabilities averaged")
    version = mlclient.get_model_version_by_alias("digits-h", "champion")
    assert version.tags["tunetrack.ensemble"] == "2"
    assert version.run_id == result.decision_run_id  # the ensemble lives in its decision run
    assert promotion_history(EXPERIMENT, "digits-h")[0]["trial_id"] == "03+01"

    ensemble = load_classifier("models:/digits-h@champion")
    assert isinstance(ensemble, EnsembleClassifier) and len(ensemble.members) == 2
    x = searches.dataset.x_test
    members = [load_classifier(f"runs:/{run}/model") for run in (mlp_run, linear_run)]
    expected = np.mean([m.probabilities(x) for m in members], axis=0)
    np.testing.assert_allclose(ensemble.probabilities(x), expected, rtol=1e-5, atol=1e-6)
    accuracy = float(np.mean(expected.argmax(axis=1) == searches.dataset.y_test))
    assert result.test_accuracy == pytest.approx(accuracy)

    images = write_digit_pngs(searches.root / "pngs-h", searches.dataset, 10)
    out = mlflow.pyfunc.load_model("models:/digits-h@champion").predict(
        pd.DataFrame({"image": [_b64(p) for p, _ in images]}))
    best = expected[:10].argmax(axis=1)
    assert list(out["class"]) == [searches.dataset.class_names[i] for i in best]


def test_latest_search_is_the_default_and_loss_metrics_rank_low_first(searches: Searches,
                                                                      mlclient):
    from tunetrack.registry import promote

    # the most recent search is "empty": all of its trials were rejected or failed
    with pytest.raises(TrackingError, match=r"has no completed trial to promote: all 3 trials "
                                            r"were rejected or failed \(1 failed, 2 rejected\)"):
        promote(EXPERIMENT, "digits-f")
    result = promote(EXPERIMENT, "digits-f", search=searches.good, metric="val_loss",
                     dry_run=True)
    assert result.winner.family == "mlp"  # lowest best_val_loss
    assert mlclient.search_registered_models("name = 'digits-f'") == []


def test_store_errors_register_nothing(searches: Searches, mlclient,
                                       monkeypatch: pytest.MonkeyPatch):
    from tunetrack.registry import promote

    with pytest.raises(TrackingError, match=r"unknown experiment 'digits-prom'.*did you mean "
                                            r"'digits-promo'"):
        promote("digits-prom", "digits-g")
    with pytest.raises(TrackingError, match="unknown search run 'nope'"):
        promote(EXPERIMENT, "digits-g", search="nope")
    trial = searches.trials[searches.good][0]
    with pytest.raises(TrackingError, match=f"run {trial} is not a search run"):
        promote(EXPERIMENT, "digits-g", search=trial)
    with pytest.raises(TrackingError, match=r"no completed trial .* has metric "
                                            r"'best_val_acc'.*did you mean 'best_val_accuracy'"):
        promote(EXPERIMENT, "digits-g", search=searches.good, metric="val_acc")
    experiment_id = mlclient.get_experiment_by_name(EXPERIMENT).experiment_id
    changed, (trial,) = record_search(mlclient, experiment_id, searches.dataset,
                                      [("completed", None)], fingerprint="0" * 64)
    mlclient.log_metric(trial, "best_val_accuracy", 0.9)
    with pytest.raises(DataError, match=r"the data changed since search .*: its fingerprint "
                                        r"was 0{64}, 'digits' now gives [0-9a-f]{64}") as caught:
        promote(EXPERIMENT, "digits-g", search=changed)
    assert caught.value.exit_code == 2
    mlclient.delete_run(changed)  # keep "latest search" meaning the same for other tests

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "unsupported-scheme://nowhere")
    with pytest.raises(TrackingError, match="has no usable model registry") as caught:
        promote(EXPERIMENT, "digits-g", search=searches.good)
    assert caught.value.exit_code == 2
    monkeypatch.delenv("MLFLOW_REGISTRY_URI")
    assert mlclient.search_registered_models("name = 'digits-g'") == []
