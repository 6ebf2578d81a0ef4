"""Shared fixtures: a temporary MLflow store per test and tiny pipelines that train in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh folder, so caches and default stores never land in the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def blank_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store with MLflow's migrations applied (seconds), made once per
    test process and copied by every ``store``."""
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("blank-store") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def store(workdir: Path, monkeypatch: pytest.MonkeyPatch, blank_store: Path):
    """A temporary SQLite MLflow store named by MLFLOW_TRACKING_URI; yields an MlflowClient.

    It starts as a copy of ``blank_store`` whose Default experiment keeps its artifacts under
    this test's folder, as a store created here would. MLflow's process-global tracking URI is
    pointed at it too: an earlier test in the same worker may have left it on its own store,
    and the registry URI (through which ``runs:/`` URIs of LoggedModels resolve) defaults to
    it."""
    import shutil
    import sqlite3

    import mlflow
    from mlflow import MlflowClient

    db = workdir / "store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copyfile(blank_store, db)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                    (str(workdir / "mlruns" / "0"),))
    con.close()
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


TINY_SPACE = """\
family: cnn
blocks:
  count: {int: [1, 2]}
  filters: {choice: [4, 8]}
  kernel_size: 3
  padding: same
  pooling: {choice: [max, none]}
dense:
  count: {int: [0, 1]}
  units: {choice: [8, 16]}
learning_rate: {float: [1.0e-3, 1.0e-2], log: true}
batch_size: 64
optimizer: adam
"""


def write_pipeline(folder: Path, *, space: str = TINY_SPACE, trials: int = 3, epochs: int = 2,
                   tuner: str = "random", extra: str = "", name: str = "tiny",
                   tuner_options: str = "") -> Path:
    """A pipeline on digits with a tiny space; returns the pipeline path."""
    (folder / "space.yaml").write_text(space)
    path = folder / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
experiment: {name}
space: space.yaml
data: {{source: digits, seed: 0}}
tuner: {{kind: {tuner}, max_trials: {trials}, seed: 7{tuner_options}}}
training: {{epochs: {epochs}, patience: 2}}
{extra}""")
    return path


def fail_first_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the first model a search builds raise (a trial that fails); later builds work."""
    from tunetrack import models

    real_build, calls = models.build_model, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated out of memory")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(models, "build_model", flaky)


@pytest.fixture
def tiny_pipeline(workdir: Path) -> Path:
    return write_pipeline(workdir)
