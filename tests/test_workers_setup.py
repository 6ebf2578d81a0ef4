"""How the chief starts its workers: command, environment, GPUs. No process is started."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunetrack.search import workers
from tunetrack.space.pipeline import load_pipeline

from .conftest import write_pipeline


def test_worker_command_repeats_the_effective_values(workdir: Path):
    pipeline = load_pipeline(write_pipeline(workdir)).override(max_trials=5, epochs=3, seed=9,
                                                              tuner="bayesian")
    command = workers.worker_command(pipeline)
    assert command[1:5] == ["-m", "tunetrack.cli", "search", pipeline.path]
    flags = dict(zip(command[5::2], command[6::2], strict=True))
    assert flags == {"--space": pipeline.space, "--tuner": "bayesian", "--max-trials": "5",
                     "--epochs": "3", "--seed": "9", "--experiment": "tiny", "--data": "digits"}


def test_worker_env_names_the_oracle_parent_and_its_gpu(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    env = workers.worker_env(3, ("10.0.0.1", 8000), "run42", "http://h:5000", 4, ["0", "1"])
    assert env["KERASTUNER_TUNER_ID"] == "tuner3"
    assert (env["KERASTUNER_ORACLE_IP"], env["KERASTUNER_ORACLE_PORT"]) == ("10.0.0.1", "8000")
    assert env[workers.PARENT_ENV] == "run42" and env["MLFLOW_TRACKING_URI"] == "http://h:5000"
    assert env["CUDA_VISIBLE_DEVICES"] == "1"  # round robin over the listed GPUs
    assert env["OMP_NUM_THREADS"] == "2"  # 8 cores shared by 4 workers
    single = workers.worker_env(0, ("h", 1), "r", "u", 1, ["0"])
    assert "CUDA_VISIBLE_DEVICES" not in single  # one GPU: nothing to pin


@pytest.mark.parametrize("listed, gpus", [("0,1", ["0", "1"]), ("", []), ("-1", []),
                                          (" 2 , 3 ", ["2", "3"])])
def test_visible_gpus_follow_cuda_visible_devices(monkeypatch, listed, gpus):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    assert workers.visible_gpus() == gpus


@pytest.mark.parametrize("env, expected", [
    ({}, False),
    ({"KERASTUNER_ORACLE_IP": "h", "KERASTUNER_TUNER_ID": "chief"}, False),
    ({"KERASTUNER_ORACLE_IP": "h"}, False),
    ({"KERASTUNER_ORACLE_IP": "h", "KERASTUNER_TUNER_ID": "tuner0"}, True),
])
def test_is_worker(monkeypatch, env, expected):
    for key in ("KERASTUNER_ORACLE_IP", "KERASTUNER_TUNER_ID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert workers.is_worker() is expected


def test_remote_command_is_what_a_user_types_on_another_host(workdir: Path):
    pipeline = load_pipeline(write_pipeline(workdir)).override(max_trials=5)
    command = workers.remote_command(pipeline, "10.0.0.1:8000", "run42")
    assert command[:3] == ["tunetrack", "worker", pipeline.path]
    flags = dict(zip(command[3::2], command[4::2], strict=True))
    assert flags["--chief"] == "10.0.0.1:8000" and flags["--search"] == "run42"
    assert flags["--max-trials"] == "5"
