"""`tunetrack server` on a real PostgreSQL, a 2-worker search through it, artifacts proxied.

PostgreSQL is started for this module (initdb in a temporary folder, a free port) and
stopped at the end; where it cannot be installed or started the tests skip with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunetrack import names

from . import pg
from .conftest import write_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres")]


@pytest.fixture(scope="module")
def postgres() -> Iterator[pg.Postgres]:
    try:
        server = pg.start()
    except pg.Unavailable as exc:
        pytest.skip(f"no PostgreSQL for the tracking-server tests: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tracking(postgres: pg.Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``tunetrack server`` on the PostgreSQL store; yields its http:// URI."""
    folder = tmp_path_factory.mktemp("pgserver")
    port = pg.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunetrack.cli", "server", "--port", str(port),
         "--backend-store-uri", postgres.uri, "--artifacts-destination", str(folder / "served")],
        cwd=folder, stdout=open(folder / "server.log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        pg.wait_http(f"{uri}/health", proc)
    except AssertionError as exc:
        proc.kill()
        raise AssertionError(f"{exc}: {(folder / 'server.log').read_text()[-2000:]}") from None
    yield uri
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_server_command_passes_postgres_and_proxies_artifacts(tmp_path: Path):
    from tunetrack.tracking.server import server_command

    command = server_command(backend_store_uri="postgresql://u@db:5432/mlflow",
                             artifacts_destination=str(tmp_path / "art"))
    backend = command[command.index("--backend-store-uri") + 1]
    assert backend == "postgresql+psycopg2://u@db:5432/mlflow"  # the driver tunetrack installs
    assert "--serve-artifacts" in command
    assert command[command.index("--artifacts-destination") + 1] == (tmp_path / "art").as_uri()


def test_two_workers_on_postgres(workdir: Path, postgres: pg.Postgres, tracking: str):
    import psycopg2
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    pipeline = write_pipeline(workdir, trials=3, epochs=1, name="pgsearch")
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-m", "tunetrack.cli", "search", str(pipeline),
                          "--workers", "2", "-q"], env=env, cwd=workdir, capture_output=True,
                         text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name("pgsearch")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parent = next(r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_SEARCH)
    assert parent.info.status == "FINISHED"
    trials = [r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_TRIAL]
    ids = sorted(r.data.tags[names.TAG_TRIAL_ID] for r in trials)
    assert ids == ["0", "1", "2"], ids  # every trial recorded once
    assert all(r.info.status == "FINISHED" for r in trials)
    assert {r.data.tags[names.TAG_WORKER] for r in trials} <= {"tuner0", "tuner1"}

    # the runs really are in PostgreSQL
    with psycopg2.connect(postgres.uri) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from runs where experiment_id = %s",
                    (int(exp.experiment_id),))
        assert cur.fetchone()[0] == 4

    # artifacts went through the server's proxy, and come back through it
    run = trials[0]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
    listed = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert listed, "no artifact was logged through the server"
    got = Path(download_artifacts(run_id=run.info.run_id, artifact_path=sorted(listed)[0],
                                  tracking_uri=tracking, dst_path=str(workdir / "dl")))
    assert got.exists()

    shown = subprocess.run([sys.executable, "-m", "tunetrack.cli", "compare", "--experiment",
                            "pgsearch", "--format", "json"], env=env, cwd=workdir,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    rows = rows["trials"] if isinstance(rows, dict) else rows
    assert len(rows) == 3, shown.stdout[:2000]
