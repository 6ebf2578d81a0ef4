"""`tunetrack ui` serves the real MLflow UI on tunetrack's store, bound to loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the MLflow UI did not start within 90 s"
            time.sleep(0.5)
        status, found = post_json(f"{base}/api/2.0/mlflow/runs/search",
                                  {"experiment_ids": [experiment],
                                   "filter": f"tags.`{names.TAG_PARENT}` = "
                                             f"'{parent.info.run_id}'"})
        assert status == 200 and len(found["runs"]) == 3
        with urllib.request.urlopen(base + "/", timeout=10) as response:
            assert b"<html" in response.read().lower()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "MLflow UI on sqlite:///" in process.stdout.read()
