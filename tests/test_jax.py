"""The same search on the JAX backend leaves the same kinds of runs and metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunetrack import names

from .conftest import write_pipeline

pytestmark = pytest.mark.slow


def test_jax_backend_search(store, workdir: Path):
    pytest.importorskip("jax")
    pipeline = write_pipeline(workdir, trials=2, epochs=1)
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-m", "tunetrack.cli", "search", str(pipeline), "-q"],
                         env=env, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    exp = store.get_experiment_by_name("tiny")
    runs = store.search_runs([exp.experiment_id], max_results=100)
    parent = next(r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_SEARCH)
    assert parent.info.status == "FINISHED" and parent.data.metrics["search/trials_completed"] == 2
    trials = [r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_TRIAL]
    assert len(trials) == 2
    for run in trials:
        assert run.data.tags[names.TAG_TRIAL_STATUS] == "completed"
        for metric in (names.METRIC_PARAMS_TOTAL, names.METRIC_TRAIN_SECONDS,
                       "best_val_accuracy", "final_val_loss"):
            assert metric in run.data.metrics
        assert [m.step for m in store.get_metric_history(run.info.run_id, "loss/train")] == [1]
        files = {f.path for f in store.list_artifacts(run.info.run_id)}
        assert {"architecture.json", "preprocessing.json"} <= files
        import mlflow  # the model is the run's LoggedModel: runs:/ URIs resolve to it

        requirements = mlflow.artifacts.download_artifacts(
            f"runs:/{run.info.run_id}/model/requirements.txt", dst_path=str(workdir),
            tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
        assert "jax==" in Path(requirements).read_text()
