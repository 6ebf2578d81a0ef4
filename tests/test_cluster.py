"""Several hosts on one machine (network namespaces): the tracking server and the chief on a
hub, two workers on two other "hosts", talking only over veth links. A worker killed -9 mid-
trial, a link that drops for a few seconds, a chief killed and resumed.

The commands are the README's multi-host ones: ``tunetrack server``, ``tunetrack search ...
--workers 0 --oracle-address 0.0.0.0:PORT`` and ``tunetrack worker ... --chief HOST:PORT``.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tunetrack import names

from . import netns
from .conftest import write_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]

SERVER_PORT, ORACLE_PORT = 5000, 8000
TIMEOUT = "15"  # TUNETRACK_HEARTBEAT_TIMEOUT: longer than the link drop, short for the test
CLI = [sys.executable, "-m", "tunetrack.cli"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[netns.Cluster, Path]]:
    try:
        built = netns.build(["a", "b"])
    except netns.Unavailable as exc:
        pytest.skip(f"no network namespaces for the multi-host tests: {exc}")
    folder = tmp_path_factory.mktemp("cluster")
    try:
        env = _env()
        server = built.popen(None, [*CLI, "server", "--host", "0.0.0.0", "--port",
                                    str(SERVER_PORT), "--backend-store-uri",
                                    f"sqlite:///{folder / 'tracking.db'}",
                                    "--artifacts-destination", str(folder / "served")],
                             env=env, cwd=folder, log=folder / "server.log")
        # the log, not the database: opening the store here would race the server's migrations
        _wait(lambda: "Uvicorn running" in (folder / "server.log").read_text()
              or server.poll() is not None, 180, "the tracking server to start")
        assert server.poll() is None, (folder / "server.log").read_text()[-2000:]
        yield built, folder
    finally:
        built.close()


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TUNETRACK_HEARTBEAT_TIMEOUT=TIMEOUT,
                PYTHONUNBUFFERED="1", **extra)


def _client(folder: Path) -> Any:
    """The server's store read from this (the root) namespace, as SQLite allows."""
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{folder / 'tracking.db'}")


def _wait(ready: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = ready()
        except Exception:  # the store may not have its tables yet
            value = None
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def _trials(folder: Path, experiment: str) -> list[Any]:
    client = _client(folder)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return [r for r in client.search_runs([exp.experiment_id], max_results=500)
            if r.data.tags.get(names.TAG_ROLE) == names.ROLE_TRIAL]


def _running_on(folder: Path, experiment: str, worker: str) -> Any:
    return next((r for r in _trials(folder, experiment) if r.info.status == "RUNNING"
                 and r.data.tags.get(names.TAG_WORKER) == worker), None)


def _search(cluster: netns.Cluster, folder: Path, name: str, trials: int,
            *extra: str) -> tuple[Any, Path]:
    """The chief on the hub, 0 local workers, the oracle open to the other hosts."""
    pipeline = write_pipeline(folder, trials=trials, epochs=3, name=name)
    chief = cluster.popen(None, [*CLI, "search", str(pipeline), "--workers", "0",
                                 "--oracle-address", f"0.0.0.0:{ORACLE_PORT}", "-q", *extra],
                          env=_env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{SERVER_PORT}"),
                          cwd=folder, log=folder / f"chief-{name}-{time.monotonic():.0f}.log")
    return chief, pipeline


def _worker(cluster: netns.Cluster, folder: Path, host: str, pipeline: Path,
            log: str, name: str | None = None) -> Any:
    """A worker on its own "host": its own folder (a copy of the files), the hub by address."""
    home = folder / f"host-{host}"
    home.mkdir(exist_ok=True)
    for file in (pipeline, pipeline.parent / "space.yaml"):
        shutil.copy(file, home / file.name)
    hub = cluster.hub_ip(host)
    return cluster.popen(host, [*CLI, "worker", pipeline.name, "--chief", f"{hub}:{ORACLE_PORT}",
                                "--id", name or f"host-{host}"],
                         env=_env(MLFLOW_TRACKING_URI=f"http://{hub}:{SERVER_PORT}"),
                         cwd=home, log=folder / log)


def _logs(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}"
                     for p in sorted(folder.glob("*.log")))


def test_lost_worker_requeued_once_and_link_drop_survived(cluster):
    hosts, folder = cluster
    chief, pipeline = _search(hosts, folder, "lost", trials=6)
    _worker(hosts, folder, "a", pipeline, "a-lost.log")
    _worker(hosts, folder, "b", pipeline, "b-lost.log")
    try:
        # a cable pulled for 4 s while host b trains: its trial survives
        during = _wait(lambda: _running_on(folder, "lost", "host-b"), 400, "a trial on host b")
        hosts.link("b", up=False)
        time.sleep(4)
        hosts.link("b", up=True)
        _wait(lambda: _client(folder).get_run(during.info.run_id).info.status != "RUNNING",
              240, "host b's trial to end after the link came back")
        assert _client(folder).get_run(during.info.run_id).info.status == "FINISHED"

        # host b loses its power mid-trial
        victim = _wait(lambda: _running_on(folder, "lost", "host-b"), 300, "host b's next trial")
        hosts.kill_host("b")
        # if host a had already been told "no trials left", the chief waits for a worker
        chief_log = next(folder.glob("chief-lost-*.log"))
        deadline = time.monotonic() + 600
        while chief.poll() is None and time.monotonic() < deadline:
            if "wait for a worker" in chief_log.read_text() and not (folder / "a2.log").exists():
                _worker(hosts, folder, "a", pipeline, "a2.log", name="host-a2")
            time.sleep(1)
        assert chief.wait(timeout=10) == 0
    except BaseException:
        print(_logs(folder))
        raise
    trials = _trials(folder, "lost")
    finished = Counter(r.data.tags[names.TAG_TRIAL_ID] for r in trials
                       if r.info.status == "FINISHED")
    assert sorted(finished) == [str(i) for i in range(6)] and set(finished.values()) == {1}, \
        finished  # every trial completed, exactly once
    assert not [r for r in trials if r.info.status == "RUNNING"]
    killed = _client(folder).get_run(victim.info.run_id)
    assert killed.info.status == "KILLED"
    assert "host-b lost: no heartbeat" in killed.data.tags[names.TAG_REASON]
    retry = [r for r in trials if r.data.tags.get(names.TAG_RETRY_OF) == victim.info.run_id]
    assert len(retry) == 1, [r.data.tags for r in trials]
    assert retry[0].info.status == "FINISHED"
    assert retry[0].data.tags[names.TAG_TRIAL_ID] == victim.data.tags[names.TAG_TRIAL_ID]
    assert retry[0].data.tags[names.TAG_WORKER] in ("host-a", "host-a2")


def test_chief_killed_workers_stop_and_resume_loses_nothing(cluster):
    hosts, folder = cluster
    chief, pipeline = _search(hosts, folder, "chiefdies", trials=6)
    workers = [_worker(hosts, folder, h, pipeline, f"{h}-chief1.log") for h in ("a", "b")]
    try:
        _wait(lambda: any(r.info.status == "FINISHED" for r in _trials(folder, "chiefdies"))
              and _running_on(folder, "chiefdies", "host-a"), 400, "a finished trial and one "
              "running")
        chief.kill()  # kill -9: no goodbye to anyone
        chief.wait(timeout=30)  # reaped, as a shell would (a zombie still "runs")
        before = {r.data.tags[names.TAG_TRIAL_ID] for r in _trials(folder, "chiefdies")
                  if r.info.status == "FINISHED"}
        started = time.monotonic()
        codes = [w.wait(timeout=120) for w in workers]
        waited = time.monotonic() - started
    except BaseException:
        print(_logs(folder))
        raise
    assert codes == [3, 3], _logs(folder)
    assert waited < 15 + 30 + 30, waited  # heartbeat timeout + grace, even on a slow machine
    for host in ("a", "b"):
        text = (folder / f"{host}-chief1.log").read_text()
        assert f"[host-{host}] stopping: the chief at 10.231." in text, text[-2000:]
    assert not [r for r in _trials(folder, "chiefdies") if r.info.status == "RUNNING"]

    assert len(before) < 6  # the resumed search has trials left to train
    chief, _ = _search(hosts, folder, "chiefdies", 6, "--resume")
    for h in ("a", "b"):
        _worker(hosts, folder, h, pipeline, f"{h}-chief2.log")
    try:
        assert chief.wait(timeout=600) == 0
    except BaseException:
        print(_logs(folder))
        raise
    trials = _trials(folder, "chiefdies")
    finished = Counter(r.data.tags[names.TAG_TRIAL_ID] for r in trials
                       if r.info.status == "FINISHED")
    assert sorted(finished) == [str(i) for i in range(6)] and set(finished.values()) == {1}, \
        finished  # none lost, none repeated
    assert not [r for r in trials if r.info.status == "RUNNING"]
    client = _client(folder)
    parents = client.search_runs([client.get_experiment_by_name("chiefdies").experiment_id],
                                 f"tags.`{names.TAG_ROLE}` = '{names.ROLE_SEARCH}'")
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert parents[0].data.tags.get(names.TAG_RESUMED) == "1"
