"""The uploads child process (tracking/background.py): jobs run there, in order, their errors
kept; it outlives Ctrl-C and a ``kill -9`` of its parent; a dead child falls back to a thread;
and a user's script without a ``__main__`` guard is not run a second time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tunetrack.tracking import background
from tunetrack.tracking.background import BackgroundUploads


def test_jobs_run_in_a_child_process_in_order_with_their_errors_kept(tmp_path: Path):
    executor = background.uploads_process()
    assert isinstance(executor, background.ChildProcess)
    assert executor.submit(os.getpid).result(timeout=120) == executor.pid != os.getpid()
    uploads, folder = BackgroundUploads(), tmp_path / "made"
    uploads.submit(time.sleep, 0.3)
    uploads.submit(os.mkdir, str(folder))  # after the sleep, before the rmdir: or rmdir fails
    uploads.submit(os.stat, str(tmp_path / "missing"))
    uploads.submit(os.rmdir, str(folder))
    errors = uploads.drain()
    assert len(errors) == 1 and errors[0].startswith("stat: FileNotFoundError: "), errors
    assert not folder.exists()
    assert uploads.drain() == []


def test_a_job_runs_in_the_parents_folder_and_environment(tmp_path: Path, monkeypatch):
    """As the parent is when it submits: a test or a notebook may chdir, a store path may be
    relative, MLflow reads its settings and credentials from the environment."""
    executor = background.uploads_process()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "from-the-parent")
    assert executor.submit(os.getcwd).result(timeout=120) == str(tmp_path)
    assert executor.submit(os.getenv, "MLFLOW_TRACKING_TOKEN").result() == "from-the-parent"
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    assert executor.submit(os.getenv, "MLFLOW_TRACKING_TOKEN").result() is None


def test_a_deleted_folder_does_not_break_the_child(tmp_path: Path, monkeypatch):
    executor = background.uploads_process()
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    assert executor.submit(os.getcwd).result(timeout=120) == str(gone)
    gone.rmdir()  # the parent's folder and the child's, both gone
    assert executor.submit(background.ready).result(timeout=60) is None
    monkeypatch.chdir(tmp_path)
    assert executor.submit(os.getcwd).result(timeout=60) == str(tmp_path)
    assert executor.alive


def test_ctrl_c_to_the_process_group_does_not_stop_the_child(tmp_path: Path):
    executor = background.uploads_process()
    executor.submit(background.ready).result(timeout=120)
    os.kill(executor.pid, signal.SIGINT)  # as a terminal's Ctrl-C reaches every process
    uploads = BackgroundUploads()
    uploads.submit(os.mkdir, str(tmp_path / "still"))
    assert uploads.drain() == []
    assert (tmp_path / "still").is_dir() and executor.alive


def test_a_dead_child_is_replaced(tmp_path: Path):
    executor = background.uploads_process()
    executor.submit(background.ready).result(timeout=120)
    uploads = BackgroundUploads()
    uploads.submit(background.ready)
    assert uploads.drain() == []
    os.kill(executor.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while executor.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    uploads.submit(os.mkdir, str(tmp_path / "on-a-thread"))  # this search goes on in a thread
    assert uploads.drain() == []
    assert (tmp_path / "on-a-thread").is_dir()
    assert background.uploads_process() is not executor  # the next search gets a new child


SCRIPT = """\
import os, sys, time
print("script ran", flush=True)  # no __main__ guard, as many training scripts are written
from tunetrack.tracking.background import BackgroundUploads
uploads = BackgroundUploads()
uploads.submit(time.sleep, {sleep})
uploads.submit(os.mkdir, sys.argv[1])
if {kill}:
    print("submitted", flush=True)
    time.sleep(60)
print(uploads.drain(), flush=True)
"""


def test_a_script_without_a_main_guard_runs_once(tmp_path: Path):
    (tmp_path / "train.py").write_text(SCRIPT.format(sleep=0, kill=False))
    done = subprocess.run([sys.executable, "train.py", str(tmp_path / "made")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["script ran", "[]"]
    assert (tmp_path / "made").is_dir()


def test_a_kill_9_of_the_search_keeps_the_uploads_the_child_has_read(tmp_path: Path):
    (tmp_path / "train.py").write_text(SCRIPT.format(sleep=2, kill=True))
    process = subprocess.Popen([sys.executable, "train.py", str(tmp_path / "made")],
                               cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "script ran\n"
        assert process.stdout.readline() == "submitted\n"
        process.kill()  # while the child sleeps in the first job
        process.wait(timeout=30)
        deadline = time.monotonic() + 60
        while not (tmp_path / "made").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (tmp_path / "made").is_dir()
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("process", [True, False], ids=["child", "thread"])
def test_at_most_limit_jobs_wait(process: bool):
    uploads = BackgroundUploads(process=process)
    uploads.submit(background.ready)
    uploads.drain()
    t0 = time.perf_counter()
    for _ in range(BackgroundUploads.LIMIT + 1):
        uploads.submit(time.sleep, 0.5)
    assert time.perf_counter() - t0 >= 0.45  # the third waited for the first
    assert uploads.drain() == []


def test_a_thread_mode_search_ends_its_thread_at_drain():
    def uploads_threads() -> int:
        return sum(t.name.startswith("tunetrack-uploads") for t in threading.enumerate())

    before = uploads_threads()
    uploads = BackgroundUploads(process=False)
    uploads.submit(background.ready)
    assert uploads_threads() == before + 1
    assert uploads.drain() == []
    assert uploads_threads() == before
    uploads.submit(background.ready)  # and a later upload starts another
    assert uploads.drain() == [] and uploads_threads() == before
