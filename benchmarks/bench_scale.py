"""Orchestration overhead of a parallel search: many short trials on 1, 2 and 4 workers.

Each size runs ``tunetrack search --workers N`` (the chief, its oracle over gRPC, N worker
processes) against a ``tunetrack server`` tracking server, on a pipeline whose trials train a
tiny CNN on digits for about a second. From the trial runs in MLflow:

- *trial time*: the seconds each trial spent in ``model.fit`` (``training/seconds``);
- *wall*: from the first trial run's start to the last one's end (process start-up, which
  is the same whatever the number of trials, is reported beside it but not counted);
- *overhead* = wall / (sum of trial times / workers) − 1: everything that is not training
  (the oracle, gRPC, building the model, tracking each trial: params, curves, the model and
  its figures through the server) as a fraction of the ideal.

The anchor is Ray Tune's published figure: 10,000 one-second trials on 16 CPUs took 715 s
against a 625 s floor, 14 % overhead. Goal: ≤ 10 % at 2 workers. The tracking server's
request rate at that load is counted from its access log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import Row, check_size, child_env, tmp_root

NAME = "scale"
# trials, worker counts, epochs per trial (a trial trains about a second at the full size)
SIZES: dict[str, tuple[int, tuple[int, ...], int]] = {
    "smoke": (3, (1,), 1), "quick": (16, (1, 2, 4), 3), "full": (200, (1, 2, 4), 6)}
RAY_TUNE = (715.0, 625.0)  # seconds: 10,000 one-second trials on 16 CPUs, and the floor
SPACE = """\
family: cnn
blocks:
  count: 1
  filters: 4
  kernel_size: 3
  padding: same
  pooling: max
dense:
  count: 0
learning_rate: {float: [1.0e-3, 1.0e-2], log: true}
batch_size: 64
optimizer: adam
"""
REQUEST = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) /')


def _pipeline(folder: Path, trials: int, epochs: int) -> Path:
    (folder / "space.yaml").write_text(SPACE)
    path = folder / "scale.yaml"
    path.write_text(f"name: scale\nexperiment: scale\nspace: space.yaml\n"
                    f"data: {{source: digits, seed: 0}}\n"
                    f"tuner: {{kind: random, max_trials: {trials}, seed: 1}}\n"
                    f"training: {{epochs: {epochs}}}\n")
    return path


def _server(folder: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = folder / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunetrack.cli", "server", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "served")],
        cwd=folder, env=child_env(), stdout=open(log, "wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            return proc, uri, log
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"tunetrack server did not start: {log.read_text()[-2000:]}") \
                    from None
            time.sleep(0.5)


def _requests(log: Path) -> int:
    return len(REQUEST.findall(log.read_text(errors="replace")))


def _measure(folder: Path, uri: str, log: Path, trials: int, workers: int,
             epochs: int) -> dict[str, Any]:
    from mlflow import MlflowClient

    from tunetrack import names

    home = folder / f"w{workers}"
    home.mkdir()
    pipeline = _pipeline(home, trials, epochs)
    experiment = f"scale-{workers}"
    before = _requests(log)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tunetrack.cli", "search", str(pipeline), "--workers",
         str(workers), "--experiment", experiment, "-q"], cwd=home,
        env=child_env({"MLFLOW_TRACKING_URI": uri}), capture_output=True, text=True,
        timeout=3600)
    command = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"search --workers {workers} exited {proc.returncode}: "
                           f"{proc.stderr[-2000:]}")
    requests = _requests(log) - before
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    every = [r for r in client.search_runs([exp.experiment_id], max_results=5000)
             if r.data.tags.get(names.TAG_ROLE) == names.ROLE_TRIAL]
    runs = [r for r in every if r.info.status == "FINISHED"]
    others = [f"trial {r.data.tags.get(names.TAG_TRIAL_ID)} {r.info.status} "
              f"({r.data.tags.get(names.TAG_REASON, '?')})" for r in every
              if r.info.status != "FINISHED"]
    trained = {r.data.tags.get(names.TAG_TRIAL_ID) for r in runs}
    if not runs or len(trained) != len(runs):
        raise RuntimeError(f"--workers {workers}: {len(runs)} finished trial runs for "
                           f"{len(trained)} trials; {others}")
    train = [r.data.metrics.get(names.METRIC_TRAIN_SECONDS, 0.0) for r in runs]
    wall = (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000
    ideal = sum(train) / workers
    return {"workers": workers, "wall": wall, "command": command, "train": sum(train),
            "mean": sum(train) / len(train), "overhead": wall / ideal - 1,
            "requests": requests, "rate": requests / command, "finished": len(runs),
            "others": others}


def run(size: str) -> list[Row]:
    check_size(size)
    trials, counts, epochs = SIZES[size]
    root = tmp_root(NAME)
    server, uri, log = _server(root)
    try:
        got = [_measure(root, uri, log, trials, n, epochs) for n in counts]
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(root, ignore_errors=True)
    ray = RAY_TUNE[0] / RAY_TUNE[1] - 1
    rows = []
    for m in got:
        goal = "<= 10 % at 2 workers" if m["workers"] == 2 else ""
        rows.append(Row(
            NAME, f"orchestration overhead, {m['workers']} worker(s)", 100 * m["overhead"], "%",
            100 * ray, "Ray Tune, 10k 1-s trials on 16 CPUs", goal,
            m["overhead"] <= 0.10 if goal else None,
            f"{trials} trials of {m['mean']:.2f} s training on {os.cpu_count()} CPUs: wall "
            f"{m['wall']:.0f} s from first trial start to last end (whole command "
            f"{m['command']:.0f} s with start-up), sum of trial times {m['train']:.0f} s; "
            f"{m['finished']} trials finished" + (f", also: {'; '.join(m['others'])}"
                                                  if m["others"] else "")))
    for m in got:
        rows.append(Row(NAME, f"tracking server requests/s, {m['workers']} worker(s)",
                        m["rate"], "req/s", note=f"{m['requests']} requests over the "
                        f"{m['command']:.0f} s search ({m['requests'] / trials:.0f} per trial)"))
    return rows
