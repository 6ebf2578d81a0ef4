"""The foundation: a real search on digits, read back from MLflow through MlflowClient."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunetrack import names
from tunetrack.space.pipeline import load_pipeline

from .conftest import write_pipeline

pytestmark = pytest.mark.slow


def _children(client, experiment_id: str, parent_id: str):
    runs = client.search_runs([experiment_id], f"tags.`{names.TAG_PARENT}` = '{parent_id}'",
                              max_results=1000)
    return sorted(runs, key=lambda r: r.data.tags[names.TAG_TRIAL_ID])


def test_search_records_parent_and_children(store, tiny_pipeline: Path, monkeypatch):
    import keras

    from tunetrack import models as families
    from tunetrack.search import _keras_tuner as door
    from tunetrack.search.session import run_search

    dropped: list[int] = []
    release = door.release_trial_graphs
    monkeypatch.setattr(door, "release_trial_graphs",
                        lambda before: dropped.append(release(before)) or dropped[-1])
    before = door.custom_gradient_names()
    result = run_search(load_pipeline(tiny_pipeline))
    # each trial's traced train step registers a TF custom gradient holding its whole graph
    # (~4 MiB); the search drops them after every trial, so memory stays flat over trials
    assert len(dropped) == 3
    if keras.backend.backend() == "tensorflow":
        assert all(n > 0 for n in dropped), dropped
    assert {k for k in door.custom_gradient_names() - before
            if k.startswith("CustomGradient-")} == set()
    client = store
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_SEARCH]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    children = _children(client, experiment.experiment_id, parent.info.run_id)
    assert len(children) == 3 == len(result.trials)
    assert parent.data.metrics[names.METRIC_TRIALS_COMPLETED] == 3
    best = result.best
    assert parent.data.tags[names.TAG_BEST_TRIAL] == best.trial_id
    assert parent.data.metrics["search/best_val_accuracy"] == pytest.approx(best.objective)
    assert "best_val_accuracy" not in parent.data.metrics  # a trial's name only

    for child, record in zip(children, result.trials, strict=True):
        tags = child.data.tags
        assert tags[names.TAG_ROLE] == names.ROLE_TRIAL
        assert tags[names.TAG_TRIAL_STATUS] == "completed"
        assert tags[names.TAG_TRIAL_ID] == record.trial_id
        # every active hyperparameter is a param, and nothing inactive is
        assert set(child.data.params) == set(record.candidate)
        if record.candidate["blocks"] == 1:
            assert "blocks.2.filters" not in child.data.params
        for key in names.EPOCH_METRICS:
            history = client.get_metric_history(child.info.run_id, names.curve_name(key))
            assert [m.step for m in history] == list(range(1, record.epochs + 1))
        model = families.build_model("cnn", record.candidate, (8, 8, 1), 10)
        assert child.data.metrics[names.METRIC_PARAMS_TOTAL] == model.count_params()
        assert child.data.metrics[names.METRIC_PARAMS_TRAINABLE] <= model.count_params()


def test_same_seed_same_sequence_and_flags_override(store, workdir: Path):
    from tunetrack.search.session import run_search

    pipeline = load_pipeline(write_pipeline(workdir, trials=4, epochs=1))
    first = run_search(pipeline.override(max_trials=2))
    second = run_search(pipeline.override(max_trials=2))
    assert len(first.trials) == 2
    assert [t.candidate for t in first.trials] == [t.candidate for t in second.trials]
    other = run_search(pipeline.override(max_trials=2, seed=99))
    assert [t.candidate for t in other.trials] != [t.candidate for t in first.trials]


def test_default_store_lives_under_mlruns(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    from mlflow import MlflowClient

    from tunetrack.search.session import run_search

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = run_search(load_pipeline(write_pipeline(workdir, trials=1, epochs=1)))
    assert (workdir / "mlruns" / "mlflow.db").is_file()
    assert not (workdir / "mlflow.db").exists()
    client = MlflowClient(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(result.trials[0].run_id)
    assert run.info.artifact_uri.startswith((workdir / "mlruns").as_uri())
