"""`tunetrack ui` serves the real MLflow UI on tunetrack's store, bound to loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tunetrack import names

from .localhttp import free_port, post_json

pytestmark = pytest.mark.slow


def test_ui_serves_the_search_runs(store, workdir: Path):
    experiment = store.create_experiment("ui-check")
    parent = store.create_run(experiment, tags={names.TAG_ROLE: names.ROLE_SEARCH})
    for i in range(3):
        store.create_run(experiment, tags={names.TAG_PARENT: parent.info.run_id,
                                           names.TAG_ROLE: names.ROLE_TRIAL,
                                           names.TAG_TRIAL_ID: str(i)})
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tunetrack.cli", "ui", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ),
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")),
                              daemon=True)
    reader.start()
    runs_link = (f"{base}/#/experiments/{experiment}/runs?workflowType=machine_learning"
                 "&orderByKey=metrics.%60best_val_accuracy%60&orderByAsc=false")
    try:
        deadline = time.monotonic() + 120
        while not any(runs_link in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "no runs link within 120 s:\n" + "".join(lines)
            time.sleep(0.2)
        # the link is printed once the server answers
        with urllib.request.urlopen(f"{base}/health", timeout=30) as response:
            assert response.status == 200
        status, found = post_json(f"{base}/api/2.0/mlflow/runs/search",
                                  {"experiment_ids": [experiment],
                                   "filter": f"tags.`{names.TAG_PARENT}` = "
                                             f"'{parent.info.run_id}'"})
        assert status == 200 and len(found["runs"]) == 3
        with urllib.request.urlopen(base + "/", timeout=60) as response:
            assert b"<html" in response.read().lower()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    reader.join(timeout=10)
    printed = "".join(lines)
    assert f"MLflow UI on sqlite:///{workdir / 'store' / 'mlflow.db'}: {runs_link}" in printed
    assert f"latest search: {base}/#/experiments/{experiment}/runs/{parent.info.run_id}" in printed


# A grid over units x learning rate: 4096 units break max_params (rejected), the first model
# built raises (failed), a learning rate of 1e-9 leaves val_accuracy flat, so early stopping
# (patience 2) ends it after 3 of 5 epochs.
UI_SPACE = """\
family: mlp
dense:
  count: 1
  units: {choice: [8, 16, 4096]}
learning_rate: {choice: [0.01, 1.0e-9]}
constraints: {max_params: 20000}
"""


def test_search_as_users_see_it_in_the_mlflow_ui(store, workdir: Path, monkeypatch):
    """Names, descriptions, metric names, leaderboard, models and promotion, read back through
    MlflowClient as the UI shows them."""
    import re

    import pandas as pd

    from tunetrack.registry import promote
    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline

    from .conftest import fail_first_build, write_pipeline

    fail_first_build(monkeypatch)
    result = run_search(load_pipeline(write_pipeline(workdir, space=UI_SPACE, trials=4,
                                                     epochs=5, tuner="grid")))
    by_status: dict[str, list] = {}
    for t in result.trials:
        by_status.setdefault(t.status.value, []).append(store.get_run(t.run_id))
    assert {"completed", "rejected", "failed"} <= set(by_status), by_status.keys()

    # names read without columns; rejected/failed say why (short tag, whole description)
    for run in by_status["completed"]:
        assert re.fullmatch(r"t\d\d 0\.\d{3} [\d.]+k?( ep\d/5)?", run.info.run_name)
    stopped = [r for r in by_status["completed"] if r.info.run_name.endswith(" ep3/5")]
    assert stopped, [r.info.run_name for r in by_status["completed"]]
    for run in by_status["rejected"]:
        assert re.fullmatch(r"t\d\d rejected: params > 20k", run.info.run_name)
        assert run.data.tags[names.TAG_REASON] == "params > 20k"
        assert "max_params 20,000" in run.data.tags[names.TAG_NOTE].splitlines()[0]
        assert "plan.txt" in {a.path for a in store.list_artifacts(run.info.run_id)}
    failed = by_status["failed"][0]
    assert failed.info.run_name.endswith("failed: RuntimeError: simulated out of memory")
    assert names.full_reason(failed.data.tags) == "RuntimeError: simulated out of memory"

    # metric names: curves and sections by "/", search summary under search/, no collisions
    parent = store.get_run(result.parent_run_id)
    trial_metrics = {k for r in by_status["completed"] for k in r.data.metrics}
    assert all(k.startswith("search/") for k in parent.data.metrics), parent.data.metrics
    assert not trial_metrics & set(parent.data.metrics)
    assert {"accuracy/val", "loss/train", names.METRIC_PARAMS_TOTAL,
            "best_val_accuracy"} <= trial_metrics
    # one convention: curve steps and best_epoch count epochs from 1
    for run in by_status["completed"]:
        curve = store.get_metric_history(run.info.run_id, "accuracy/val")
        assert curve[0].step == 1
        best = max(curve, key=lambda m: (m.value, -m.step))
        assert run.data.metrics[names.METRIC_BEST_EPOCH] == best.step
        assert run.data.metrics["best_val_accuracy"] == pytest.approx(best.value)
    assert "Best trials" in parent.data.tags[names.TAG_NOTE]
    experiment = store.get_experiment(parent.info.experiment_id)
    assert experiment.tags[names.TAG_EXPERIMENT_KIND] == names.EXPERIMENT_KIND_ML

    # every trained trial's model under the experiment's Models tab
    logged = store.search_logged_models([parent.info.experiment_id])
    assert {m.source_run_id for m in logged} == {r.info.run_id for r in by_status["completed"]}
    assert all("best_val_accuracy" in {x.key for x in m.metrics} for m in logged)

    # leaderboard: by the objective, 4 places, status and reason beside it
    csv = store.download_artifacts(parent.info.run_id, "leaderboard.csv", str(workdir))
    board = pd.read_csv(csv, dtype={"trial_id": str})
    assert list(board.columns[:4]) == ["trial_id", "val_accuracy", "status", "reason"]
    trained = board[board["status"] == "completed"]
    assert list(trained.index) == list(range(len(trained)))  # trained trials first
    assert trained["val_accuracy"].is_monotonic_decreasing
    assert all(len(f"{v}".split(".")[-1]) <= 4 for v in trained["val_accuracy"])
    md = store.download_artifacts(parent.info.run_id, "leaderboard.md", str(workdir))
    assert Path(md).read_text().startswith("| trial_id | val_accuracy | status | reason |")

    # promotion reads the trials and writes its own run; no trial's times or status change
    before = {r.info.run_id: (r.info.start_time, r.info.end_time, r.info.status,
                              sorted(r.data.metrics)) for r in store.search_runs(
        [parent.info.experiment_id], max_results=100)}
    promoted = promote("tiny", "tiny-ui", search=result.parent_run_id)
    after = {r.info.run_id: (r.info.start_time, r.info.end_time, r.info.status,
                             sorted(r.data.metrics)) for r in store.search_runs(
        [parent.info.experiment_id], max_results=100) if r.info.run_id in before}
    assert after == before
    decision = store.get_run(promoted.decision_run_id)
    assert decision.data.metrics[names.METRIC_TEST_ACCURACY] == pytest.approx(
        promoted.test_accuracy)
    assert decision.data.tags["tunetrack.trial_run_id"] == promoted.winner.run_id
    version = store.get_model_version("tiny-ui", promoted.version)
    assert version.tags["tunetrack.trial_run_id"] == promoted.winner.run_id
