"""Resume: a search killed with SIGKILL part-way continues; a changed one is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunetrack import names

from .conftest import TINY_SPACE, write_pipeline

pytestmark = pytest.mark.slow


def _cli(*args: str, env: dict[str, str], cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tunetrack.cli", "search", *args], env=env,
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def _env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")


def _runs(client, experiment: str = "tiny"):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000) if exp else []


def _trials(runs):
    return [r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_TRIAL]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_sigkill_then_resume(store, workdir: Path):
    pipeline = write_pipeline(workdir, trials=4, epochs=2)
    proc = _cli(str(pipeline), "-q", env=_env(), cwd=workdir)

    def two_done_one_running() -> bool:
        trials = _trials(_runs(store))
        done = sum(r.info.status == "FINISHED" for r in trials)
        return done >= 2 and any(r.info.status == "RUNNING" for r in trials)

    try:
        _wait(two_done_one_running, 150, "2 completed trials and a running one")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    killed_attempt = next(r for r in _trials(_runs(store)) if r.info.status == "RUNNING")

    out = subprocess.run([sys.executable, "-m", "tunetrack.cli", "search", str(pipeline), "-q"],
                         env=_env(), cwd=workdir, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming search run" in out.stderr

    runs = _runs(store)
    parents = [r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_SEARCH]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags[names.TAG_SEARCH_KEY]
    trials = _trials(runs)
    completed = [r for r in trials if r.data.tags.get(names.TAG_TRIAL_STATUS) == "completed"]
    ids = [r.data.tags[names.TAG_TRIAL_ID] for r in completed]
    assert len(ids) == 4 and len(set(ids)) == 4, ids
    assert not [r for r in runs if r.info.status == "RUNNING"]
    again = store.get_run(killed_attempt.info.run_id)
    assert again.info.status == "KILLED"
    assert again.data.tags[names.TAG_TRIAL_STATUS] == "killed"
    assert again.data.tags[names.TAG_REASON].startswith("process died; resumed by")
    assert again.data.tags[names.TAG_TRIAL_ID] in ids  # the interrupted trial ran again
    assert parents[0].data.metrics["search/trials_completed"] == 4


def test_changed_space_refuses_resume_and_new_starts_over(store, workdir: Path):
    from tunetrack.search import resume
    from tunetrack.space.pipeline import load_pipeline
    from tunetrack.tracking.store import SearchTracker

    pipeline_path = write_pipeline(workdir, trials=2, epochs=1)
    pipeline = load_pipeline(pipeline_path)
    tracker = SearchTracker("tiny")
    # an interrupted search of the original files, as a killed process leaves it
    run = tracker.client.create_run(tracker.experiment_id, tags={
        names.TAG_ROLE: names.ROLE_SEARCH, names.TAG_PIPELINE: pipeline.path,
        names.TAG_SEARCH_KEY: resume.search_key(pipeline), **resume.snapshot(pipeline)})
    (workdir / "space.yaml").write_text(TINY_SPACE.replace("[4, 8]", "[4, 6]"))

    out = subprocess.run([sys.executable, "-m", "tunetrack.cli", "search", str(pipeline_path),
                          "--resume"], env=_env(), cwd=workdir, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"cannot resume search run {run.info.run_id}" in out.stderr
    assert "space.yaml changed" in out.stderr and "--new" in out.stderr

    out = subprocess.run([sys.executable, "-m", "tunetrack.cli", "search", str(pipeline_path),
                          "--new", "-q"], env=_env(), cwd=workdir, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    parents = [r for r in _runs(store) if r.data.tags.get(names.TAG_ROLE) == names.ROLE_SEARCH]
    assert len(parents) == 2
    new = next(r for r in parents if r.info.run_id != run.info.run_id)
    assert new.info.status == "FINISHED"
    assert store.get_run(run.info.run_id).info.status == "KILLED"  # superseded, not RUNNING


def test_ctrl_c_marks_killed_and_prints_the_resume_command(store, workdir: Path):
    pipeline = write_pipeline(workdir, trials=3, epochs=2)
    proc = _cli(str(pipeline), "--epochs", "2", "-q", env=_env(), cwd=workdir)
    try:
        _wait(lambda: any(r.info.status == "RUNNING" for r in _trials(_runs(store))), 120,
              "a running trial")
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert f"tunetrack search {pipeline} --epochs 2 --resume" in output
    runs = _runs(store)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    parent = next(r for r in runs if r.data.tags.get(names.TAG_ROLE) == names.ROLE_SEARCH)
    assert parent.info.status == "KILLED"
