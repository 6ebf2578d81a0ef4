"""Parallel search: a chief, two local workers and a real `tunetrack server` on loopback."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tunetrack import names

from .conftest import write_pipeline

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server_uri(workdir: Path):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tunetrack.cli", "server", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{workdir / 'server.db'}",
                             "--artifacts-destination", str(workdir / "served")],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("tunetrack server did not start") from None
            time.sleep(0.5)
    yield uri
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_two_workers_record_every_trial_once(workdir: Path, server_uri: str):
    from mlflow import MlflowClient

    pipeline = write_pipeline(workdir, trials=4, epochs=1)
    env = dict(os.environ, MLFLOW_TRACKING_URI=server_uri, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-m", "tunetrack.cli", "search", str(pipeline),
                          "--workers", "2", "-q"], env=env, cwd=workdir, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    client = MlflowClient(server_uri)
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_SEARCH]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    trials = [r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_TRIAL]
    assert all(r.data.tags[names.TAG_PARENT] == parent.info.run_id for r in trials)
    ids = [r.data.tags[names.TAG_TRIAL_ID] for r in trials]
    assert len(ids) == 4 and len(set(ids)) == 4, ids
    assert all(r.info.status == "FINISHED" for r in trials)
    # each trial run names the worker that trained it, as that worker reported it
    printed = {trial_id: worker for worker, trial_id in
               re.findall(r"^\[(tuner[01])\] trial (\d+) completed", out.stdout, re.M)}
    assert len(printed) == 4, out.stdout
    assert {r.data.tags[names.TAG_TRIAL_ID]: r.data.tags[names.TAG_WORKER]
            for r in trials} == printed
    assert parent.data.metrics["search/trials_completed"] == 4
    for run in trials:
        history = client.get_metric_history(run.info.run_id, names.curve_name("val_loss"))
        assert [m.step for m in history] == [1]  # epochs count from 1
    assert "4 trained" in out.stdout
