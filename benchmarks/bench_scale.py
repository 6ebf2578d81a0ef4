"""Orchestration overhead of a parallel search: many short trials on 1, 2 and 4 workers.

Each size runs ``tunetrack search --workers N`` (the chief, its oracle over gRPC, N worker
processes) against a ``tunetrack server`` tracking server, on a pipeline whose trials train a
tiny CNN on digits for about a second. A probe in the workers (:data:`PROBE`, a
``sitecustomize`` on their ``PYTHONPATH``; two clock reads per timed call) times each phase of
every trial on the training thread: the oracle's gRPC calls, starting the trial's MLflow run,
building the model (keras-tuner's ``_try_build``: clear the session, build, compile),
``model.fit``, saving the model folder and predictions (``artifacts.log_trial``), ending the run
(``end_run``: the background writer flushed, the run's status), and what is left of the loop.

- *work*: what a Ray Tune trainable would do itself, building and fitting the model (the goal
  row's definition: Ray's figure counts the trainable's own work as the trial); *fit*: the
  seconds in ``model.fit`` alone (reported beside it);
- *wall*: from the first trial run's start to the last one's end (process start-up, which
  is the same whatever the number of trials, is reported beside it but not counted);
- *overhead* = wall / (sum of trial times / workers) − 1: everything else (the oracle, gRPC,
  tracking each trial: its run, params, curves, scores, the model and its figures through the
  server) as a fraction of the ideal.

Work moved off the training thread (uploads in a child process, the tracking writer) still
costs CPU on this machine; the notes give it per trial, with the server's requests by endpoint
and its CPU seconds. The anchor is Ray Tune's published figure: 10,000 one-second trials on
16 CPUs took 715 s against a 625 s floor, 14 % overhead. Goal: ≤ 10 % at 2 workers. The
tracking server's request rate at that load is counted from its access log.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
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
REQUEST = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+)')
PROBE = """\
import atexit, functools, importlib.abc, importlib.util, json, os, sys, threading, time

_DIR, _T = os.environ["TUNETRACK_SCALE_PROBE"], {}


def _timed(owner, attr, phase):
    fn = getattr(owner, attr, None)
    if fn is None:  # another version of tunetrack: that phase is not timed
        return

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            # the uploads run in a child process of each worker (tracking/background.py)
            key = phase if threading.current_thread() is threading.main_thread() \\
                and phase != "uploads" else "bg:" + phase
            n, s = _T.get(key, (0, 0.0))
            _T[key] = (n + 1, s + time.perf_counter() - t0)
    setattr(owner, attr, timed)


_PATCHES = {
    "keras.src.models.model": lambda m: _timed(m.Model, "fit", "fit"),
    "keras_tuner.src.engine.tuner": lambda m: _timed(m.Tuner, "_try_build", "build"),
    "keras_tuner.src.engine.base_tuner": lambda m: _timed(m.BaseTuner, "search", "loop"),
    "keras_tuner.src.distribute.oracle_client": lambda m: [
        _timed(m.OracleClient, a, "oracle")
        for a in ("create_trial", "get_trial", "update_trial", "end_trial")],
    "tunetrack.tracking.store": lambda m: [_timed(m.SearchTracker, "start_trial", "start"),
                                           _timed(m.SearchTracker, "end_run", "end")],
    "tunetrack.tracking.artifacts": lambda m: [_timed(m, "log_trial", "save"),
                                               _timed(m, "_upload_trial", "uploads")],
    "tunetrack.search.trial": lambda m: _timed(m.TrialRunner, "_record_completed", "record"),
    "tunetrack.tracking.writer": lambda m: _timed(m, "_log_batch", "writer"),
}


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in _PATCHES:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module, run=run, patch=_PATCHES[name]):
                run(module)
                patch(module)
            spec.loader.exec_module = exec_module
        return spec


@atexit.register
def _dump():
    if "loop" in _T or "bg:uploads" in _T:  # a worker or its uploads child; not the chief
        with open(os.path.join(_DIR, f"{os.getpid()}.json"), "w") as f:
            json.dump(_T, f)


sys.meta_path.insert(0, _Finder())
"""


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


def _requests(log: Path) -> Counter[str]:
    """Requests by endpoint (ids and artifact paths folded) in the server's access log."""
    found: Counter[str] = Counter()
    for method, path in REQUEST.findall(log.read_text(errors="replace")):
        path = re.sub(r"/mlflow-artifacts/artifacts/.*", "/mlflow-artifacts/artifacts/*", path)
        path = re.sub(r"/logged-models/[^/?]+", "/logged-models/ID", path.split("?")[0])
        found[f"{method} {path.replace('/api/2.0/mlflow/', '/').replace('/api/2.0', '')}"] += 1
    return found


def _cpu_seconds(root: int) -> float:
    """User + system CPU seconds of process ``root`` and its descendants (Linux /proc)."""
    parents, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(cpu.get(pid, 0.0) for pid in tree)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure(folder: Path, uri: str, log: Path, server: int, trials: int, workers: int,
             epochs: int) -> dict[str, Any]:
    from mlflow import MlflowClient

    from tunetrack import names

    home = folder / f"w{workers}"
    probe = home / "probe"
    probe.mkdir(parents=True)
    (probe / "sitecustomize.py").write_text(PROBE)
    pipeline = _pipeline(home, trials, epochs)
    experiment = f"scale-{workers}"
    env = child_env({"MLFLOW_TRACKING_URI": uri, "TUNETRACK_SCALE_PROBE": str(probe)})
    env["PYTHONPATH"] = os.pathsep.join([str(probe), env["PYTHONPATH"]])
    before, server_cpu, own_cpu = _requests(log), _cpu_seconds(server), _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tunetrack.cli", "search", str(pipeline), "--workers",
         str(workers), "--experiment", experiment, "-q"], cwd=home, env=env,
        capture_output=True, text=True, timeout=7200)
    command = time.perf_counter() - t0
    server_cpu, own_cpu = _cpu_seconds(server) - server_cpu, _children_cpu() - own_cpu
    load = Path("/proc/loadavg").read_text().split()[:3]
    if proc.returncode != 0:
        raise RuntimeError(f"search --workers {workers} exited {proc.returncode}: "
                           f"{proc.stderr[-2000:]}")
    endpoints = _requests(log) - before
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
    totals: Counter[str] = Counter()
    files = list(probe.glob("*.json"))
    for file in files:
        for key, (_, seconds) in json.loads(file.read_text()).items():
            totals[key] += seconds
    if not files or not totals["fit"]:
        raise RuntimeError(f"--workers {workers}: no worker's probe reported ({probe})")
    n = len(runs)
    phase = {k: totals[k] / n for k in ("oracle", "start", "build", "fit", "save", "end")}
    phase["other"] = totals["loop"] / n - sum(phase.values())
    wall = (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000
    work, fit = totals["build"] + totals["fit"], totals["fit"]
    return {"workers": workers, "wall": wall, "command": command, "trials": n,
            "work": work, "fit": fit, "overhead": wall / (work / workers) - 1,
            "overhead_fit": wall / (fit / workers) - 1, "phase": phase,
            "uploads": totals["bg:uploads"] / n, "writer": totals["bg:writer"] / n,
            "requests": sum(endpoints.values()), "endpoints": endpoints,
            "rate": sum(endpoints.values()) / command, "server_cpu": server_cpu / n,
            "search_cpu": own_cpu / n, "load": " ".join(load), "others": others}


def run(size: str) -> list[Row]:
    check_size(size)
    trials, counts, epochs = SIZES[size]
    root = tmp_root(NAME)
    server, uri, log = _server(root)
    try:
        got = [_measure(root, uri, log, server.pid, trials, n, epochs) for n in counts]
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
        per = ", ".join(f"{k} {1000 * v:.0f}" for k, v in m["phase"].items())
        rows.append(Row(
            NAME, f"orchestration overhead, {m['workers']} worker(s)", 100 * m["overhead"], "%",
            100 * ray, "Ray Tune, 10k 1-s trials on 16 CPUs", goal,
            m["overhead"] <= 0.10 if goal else None,
            f"trial time = build + fit (a Ray trainable's own work); against fit alone "
            f"{100 * m['overhead_fit']:.1f} %. {m['trials']} trials x {epochs} epochs on "
            f"{os.cpu_count()} CPUs (load {m['load']}): wall {m['wall']:.0f} s from first trial "
            f"start to last end (whole command {m['command']:.0f} s with start-up), build+fit "
            f"{m['work']:.0f} s, fit {m['fit']:.0f} s. Per trial on the training thread (ms): "
            f"{per}; in the background: uploads {1000 * m['uploads']:.0f}, tracking writer "
            f"{1000 * m['writer']:.0f}; CPU s per trial: server {m['server_cpu']:.2f}, search "
            f"processes {m['search_cpu']:.2f}" + (f"; also: {'; '.join(m['others'])}"
                                                  if m["others"] else "")))
    for m in got:
        top = ", ".join(f"{k} {v / m['trials']:.1f}" for k, v in m["endpoints"].most_common(8))
        rows.append(Row(NAME, f"tracking server requests/s, {m['workers']} worker(s)",
                        m["rate"], "req/s", note=f"{m['requests']} requests over the "
                        f"{m['command']:.0f} s search ({m['requests'] / m['trials']:.1f} per "
                        f"trial: {top})"))
    return rows
