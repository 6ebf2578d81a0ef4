"""Liveness between a chief and remote workers, without training anything."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tunetrack.cli import main
from tunetrack.search import heartbeat

from .conftest import write_pipeline


def test_a_silent_remote_worker_is_lost_and_told_so(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(heartbeat.time, "monotonic", lambda: clock[0])
    live = heartbeat.Liveness(timeout=10)
    assert live.beat("hostB-0/p1") == "ok"
    assert live.silent(["hostB-0", "tuner0", "hostC-0"], local=["tuner0"]) == []
    clock[0] += 9
    assert live.beat("hostC-0/p2") == "ok"
    assert live.silent(["hostB-0", "hostC-0"], local=[]) == []  # 9 s < 10 s
    clock[0] += 2
    assert live.silent(["hostB-0", "hostC-0"], local=[]) == ["hostB-0"]
    assert live.silent(["hostB-0"], local=[]) == []  # its clock starts again if it holds one
    assert live.beat("hostB-0/p1") == heartbeat.LOST  # the old process comes back: stop
    assert live.beat("hostB-0/p9") == "ok"  # a new process with the same name may work


def test_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(heartbeat.TIMEOUT_ENV, "7.5")
    assert heartbeat.timeout_seconds() == 7.5
    for bad in ("", "soon", "-1", "0"):
        monkeypatch.setenv(heartbeat.TIMEOUT_ENV, bad)
        assert heartbeat.timeout_seconds() == heartbeat.DEFAULT_TIMEOUT


def test_a_worker_whose_chief_is_gone_stops_with_one_line(monkeypatch):
    import _thread
    import socket

    interrupted, said = [], []
    monkeypatch.setattr(_thread, "interrupt_main", lambda: interrupted.append(1))
    monkeypatch.setattr(heartbeat, "BEAT_SECONDS", 0.2)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    watch = heartbeat.ChiefWatch(f"127.0.0.1:{port}", "hostB-0", echo=said.append, timeout=1)
    watch.start()
    try:
        deadline = time.monotonic() + 30
        while not interrupted and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        watch.stop()  # cancels the forced exit
    assert interrupted == [1]
    assert len(said) == 1 and said[0].startswith(
        f"[hostB-0] stopping: the chief at 127.0.0.1:{port} has not answered for"), said
    assert "--resume" in said[0]


@pytest.mark.parametrize("args, message", [
    (["--chief", "nonsense"], "--chief must be HOST:PORT"),
    (["--chief", "10.0.0.1:8000", "--id", "chief-2"], "may not contain 'chief'"),
])
def test_worker_command_refuses_bad_flags(workdir: Path, args, message):
    pipeline = write_pipeline(workdir)
    out = CliRunner().invoke(main, ["worker", str(pipeline), *args])
    assert out.exit_code == 2, out.output
    assert message in out.output


class _Proc:
    def __init__(self, code: int) -> None:
        self.returncode = code

    def poll(self) -> int:
        return self.returncode


class _Session:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.failed: list[str] = []
        self.tracker, self.run_id = None, "run1"
        self.runner = type("R", (), {"check_budget": lambda self, tuner: None})()

    def notify(self, message: str) -> None:
        self.notes.append(message)

    def fail(self, reason: str) -> None:
        self.failed.append(reason)


@pytest.fixture
def chief(tmp_path: Path, monkeypatch):
    """A real keras-tuner oracle around a chief whose local worker tuner0 died mid-trial."""
    import keras_tuner

    from tunetrack.search import resume, workers

    hp = keras_tuner.HyperParameters()
    hp.Int("units", 1, 4)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=3,
        hyperparameters=hp, seed=1)
    oracle._set_project_dir(str(tmp_path), "watch")
    monkeypatch.setattr(workers, "POLL_SECONDS", 0)
    monkeypatch.setattr(resume, "kill_stale", lambda *a, **k: 0)
    held = oracle.create_trial("tuner0")
    return oracle, held, type("T", (), {"oracle": oracle})(), _Session()


def test_a_local_worker_that_died_holding_a_trial_is_started_again(chief):
    from tunetrack.search import workers

    oracle, held, tuner, session = chief
    procs = {"tuner0": _Proc(-9), "tuner1": _Proc(0)}  # tuner1 already told "no more trials"
    started = []

    def spawn(tid: str) -> _Proc:
        started.append(tid)
        again = oracle.create_trial(tid)  # the new process gets the requeued trial
        assert again.trial_id == held.trial_id
        oracle.update_trial(again.trial_id, {"val_accuracy": 0.5})
        again.status = "COMPLETED"
        oracle.end_trial(again)
        procs[tid] = _Proc(0)
        return procs[tid]

    ended = workers._watch(session, tuner, None, procs, None, spawn)
    assert started == ["tuner0"] and ended == {"tuner0": 0, "tuner1": 0}
    assert session.notes == [f"process died: worker tuner0 exited with status -9; trial "
                             f"{held.trial_id} goes to the next worker that asks"]
    assert session.failed == []


def test_a_requeued_trial_nobody_can_train_fails_the_search(chief):
    from tunetrack.search import workers

    _, _, tuner, session = chief
    procs = {"tuner0": _Proc(-9), "tuner1": _Proc(0)}
    ended = workers._watch(session, tuner, None, procs, None, spawn=None)
    assert ended == {"tuner0": -9, "tuner1": 0}
    assert session.failed == ["1 requeued trial(s) left untrained: every local worker ended "
                              "(exit statuses {'tuner0': -9, 'tuner1': 0})"]


def test_an_idle_worker_waits_while_another_may_yet_be_lost(chief):
    from tunetrack.search import _keras_tuner as door
    from tunetrack.search import workers

    oracle, held, _, _ = chief  # tuner0 holds trial 0 of 3
    assert workers._may_requeue(oracle, "tuner1") is False  # trials left: take one
    for tid in ("tuner1", "tuner2"):
        trial = oracle.create_trial(tid)
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert door.budget_spent(oracle)
    assert workers._may_requeue(oracle, "tuner1") is True  # tuner0 still trains: wait
    assert workers._may_requeue(oracle, "tuner0") is False  # only itself: stop
    door.requeue(oracle, "tuner0")
    assert workers._may_requeue(oracle, "tuner1") is False  # a trial to retry: take it
    assert oracle.create_trial("tuner1").trial_id == held.trial_id


def test_only_an_unavailable_chief_counts_as_gone():
    import grpc

    class Failed(grpc.RpcError):
        def __init__(self, code):
            self._code = code

        def code(self):
            return self._code

    assert heartbeat.chief_gone(Failed(grpc.StatusCode.UNAVAILABLE))
    assert not heartbeat.chief_gone(Failed(grpc.StatusCode.INVALID_ARGUMENT))
    assert not heartbeat.chief_gone(RuntimeError("unavailable"))
