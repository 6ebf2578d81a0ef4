"""Live per-epoch metrics: each epoch reaches MLflow as it ends, and a search stopped mid-trial
keeps the epochs already done."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from tunetrack import names
from tunetrack.search import live
from tunetrack.search.progress import Reporter
from tunetrack.space.pipeline import load_pipeline
from tunetrack.tracking.writer import Writer

from .conftest import write_pipeline


class FakeClient:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, list[tuple[str, float, int]]]] = []
        self.fail = fail
        self.threads: set[str] = set()

    def log_batch(self, run_id, metrics=()):
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("store gone")
        self.calls.append((run_id, [(m.key, m.value, m.step) for m in metrics]))


def test_epochs_are_written_in_the_background_and_flushed():
    client = FakeClient()
    log = Writer()
    for epoch in (1, 2):
        log.submit(client, "r1", _metrics({"loss": 1.0 / epoch, "val_accuracy": 0.5}, epoch))
    log.flush()
    written = [m for _, batch in client.calls for m in batch]
    assert sorted(written) == [("accuracy/val", 0.5, 1), ("accuracy/val", 0.5, 2),
                               ("loss/train", 0.5, 2), ("loss/train", 1.0, 1)]
    assert client.threads == {"tunetrack-live"}  # never on the training thread


def test_a_store_error_is_a_warning_not_a_failure(caplog: pytest.LogCaptureFixture):
    log = Writer()
    log.submit(FakeClient(fail=True), "r1", _metrics({"loss": 1.0}, 1))
    with caplog.at_level(logging.WARNING, logger="tunetrack"):
        log.flush()
    assert "per-epoch metrics not saved: RuntimeError: store gone" in caplog.text


def _metrics(logs: dict[str, float], epoch: int) -> list:
    from mlflow.entities import Metric

    return [Metric(names.curve_name(k), v, 0, epoch) for k, v in logs.items()]


class Watcher(Reporter):
    """Reads the trial's curve from MLflow at each epoch's end; stops the search at ``stop_at``."""

    def __init__(self, client, experiment: str, stop_at: int | None = None) -> None:
        self.client, self.experiment, self.stop_at = client, experiment, stop_at
        self.seen: list[list[int]] = []

    def epoch_ended(self, *, epoch: int, epochs: int, logs: dict[str, float]) -> None:
        if self.stop_at is not None and epoch + 1 == self.stop_at:
            raise KeyboardInterrupt  # as SIGINT would: the last epoch may still be queued
        live.flush()  # what the background thread had not written yet
        exp = self.client.get_experiment_by_name(self.experiment)
        running = [r for r in self.client.search_runs([exp.experiment_id])
                   if r.info.status == "RUNNING"
                   and r.data.tags.get(names.TAG_ROLE) == names.ROLE_TRIAL]
        assert len(running) == 1
        history = self.client.get_metric_history(running[0].info.run_id, "accuracy/val")
        self.seen.append(sorted(m.step for m in history))


@pytest.mark.slow
def test_curves_reach_mlflow_while_the_trial_runs(store, workdir: Path):
    from tunetrack.search.session import run_search

    pipeline = load_pipeline(write_pipeline(workdir, trials=1, epochs=3))
    watcher = Watcher(store, "tiny")
    result = run_search(pipeline, reporter=watcher)
    assert watcher.seen == [[1], [1, 2], [1, 2, 3]][:len(watcher.seen)]
    assert len(watcher.seen) == result.trials[0].epochs
    for key in ("accuracy/val", "loss/val", "accuracy/train", "loss/train"):
        steps = [m.step for m in store.get_metric_history(result.trials[0].run_id, key)]
        assert steps == list(range(1, result.trials[0].epochs + 1)), key  # once each


@pytest.mark.slow
def test_a_search_stopped_mid_trial_keeps_its_epochs(store, workdir: Path):
    from tunetrack.search.session import run_search

    pipeline = load_pipeline(write_pipeline(workdir, trials=2, epochs=4))
    watcher = Watcher(store, "tiny", stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_search(pipeline, reporter=watcher)
    exp = store.get_experiment_by_name("tiny")
    trial = next(r for r in store.search_runs([exp.experiment_id])
                 if r.data.tags.get(names.TAG_ROLE) == names.ROLE_TRIAL)
    assert trial.info.status == "KILLED"
    assert trial.data.tags[names.TAG_TRIAL_STATUS] == "killed"
    steps = sorted(m.step for m in store.get_metric_history(trial.info.run_id, "accuracy/val"))
    assert steps == [1, 2]
