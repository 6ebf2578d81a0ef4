"""Parallel search: a chief process hosts keras-tuner's oracle over gRPC, workers train trials.

``tunetrack search PIPELINE --workers N`` makes the CLI process the *chief*: it opens (or
reopens) the parent run, serves the oracle on a free local port and starts N worker processes
(``python -m tunetrack.cli search ...`` with ``KERASTUNER_TUNER_ID=tuner0..N-1``). A process
whose environment names an oracle (``KERASTUNER_ORACLE_IP``/``_PORT``) and a tuner id other than
``chief`` is a *worker*: it asks the chief for trials until there are none and logs each as a
child of the parent named by ``TUNETRACK_PARENT_RUN_ID``. The oracle hands every trial to one
worker (keras-tuner's ``ongoing_trials``), so each trial is trained and recorded once.

Across machines (the README text)::

    # host A: tracking server and chief (0 local workers, or some)
    tunetrack server --host 0.0.0.0 --port 5000
    MLFLOW_TRACKING_URI=http://hostA:5000 \\
        tunetrack search pipelines/digits.yaml --workers 0 --oracle-address 0.0.0.0:8000
    # prints: workers: TUNETRACK_PARENT_RUN_ID=<id> KERASTUNER_ORACLE_IP=... PORT=8000
    # host B, C, ...: same checkout and data, one process per GPU
    MLFLOW_TRACKING_URI=http://hostA:5000 KERASTUNER_ORACLE_IP=hostA \\
    KERASTUNER_ORACLE_PORT=8000 KERASTUNER_TUNER_ID=hostB-0 TUNETRACK_PARENT_RUN_ID=<id> \\
        tunetrack search pipelines/digits.yaml

On a multi-GPU host, local workers get one device each: worker i sees
``CUDA_VISIBLE_DEVICES=<i-th of the listed GPUs>`` (round robin when N exceeds the GPUs).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from tunetrack import names
from tunetrack.names import TrialStatus
from tunetrack.search import _keras_tuner as kt_internal
from tunetrack.search import resume
from tunetrack.search.progress import Reporter
from tunetrack.search.records import SearchResult, TrialRecord
from tunetrack.search.session import SearchSession, aborted, frozen_gc, prepare
from tunetrack.search.signals import InterruptHandling, check_interrupted, interrupt_reason
from tunetrack.search.trial import TrialRunner
from tunetrack.space.pipeline import Pipeline

PARENT_ENV = "TUNETRACK_PARENT_RUN_ID"
CHIEF_PID_ENV = "TUNETRACK_CHIEF_PID"
POLL_SECONDS = 0.5


def is_worker() -> bool:
    """Whether this process's environment makes it a worker of a chief oracle."""
    return "KERASTUNER_ORACLE_IP" in os.environ and \
        "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "chief")


def visible_gpus() -> list[str]:
    """GPUs to spread local workers over: CUDA_VISIBLE_DEVICES, else ``nvidia-smi -L``."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def worker_command(pipeline: Pipeline) -> list[str]:
    """A worker re-reads the pipeline with the chief's effective values as flags."""
    t = pipeline.tuner
    return [sys.executable, "-m", "tunetrack.cli", "search", pipeline.path,
            "--space", pipeline.space, "--tuner", t.kind, "--max-trials", str(t.max_trials),
            "--epochs", str(pipeline.training.epochs), "--seed", str(t.seed),
            "--experiment", pipeline.experiment, "--data", pipeline.data.source,
            *[word for k, v in pipeline.pins for word in ("--set", f"{k}={v}")]]


def worker_env(index: int, address: tuple[str, int], parent: str, uri: str, count: int,
               gpus: list[str]) -> dict[str, str]:
    env = dict(os.environ, KERASTUNER_TUNER_ID=f"tuner{index}", KERASTUNER_ORACLE_IP=address[0],
               KERASTUNER_ORACLE_PORT=str(address[1]), MLFLOW_TRACKING_URI=uri,
               **{PARENT_ENV: parent, CHIEF_PID_ENV: str(os.getpid())})
    if len(gpus) > 1:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    threads = str(max(1, (os.cpu_count() or 1) // count))
    for key in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        env.setdefault(key, threads)  # N workers on one CPU share its cores instead of fighting
    return env


def run_parallel(pipeline: Pipeline, *, workers: int, reporter: Reporter | None = None,
                 mode: str = "auto", notify: Callable[[str], None] | None = None,
                 oracle_address: str = "127.0.0.1:0") -> SearchResult:
    """The chief: serve the oracle, run ``workers`` local workers, close the parent run."""
    from tunetrack.tracking.store import tracking_uri

    with SearchSession(pipeline, reporter=reporter, mode=mode, notify=notify,
                       chief=True) as session:
        session.log.tags({names.TAG_WORKERS: workers}).flush()
        tuner = session.build_tuner()
        oracle = tuner.oracle
        oracle.verbose = 0
        tuner.save()
        server, servicer, port = kt_internal.serve_oracle(oracle, oracle_address)
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            host = oracle_address.rpartition(":")[0]
            session.notify(f"oracle on {host}:{port}; workers elsewhere: "
                           f"{PARENT_ENV}={session.run_id} KERASTUNER_ORACLE_IP=<this host> "
                           f"KERASTUNER_ORACLE_PORT={port} KERASTUNER_TUNER_ID=<unique> "
                           f"MLFLOW_TRACKING_URI={tracking_uri()}")
            local = "127.0.0.1" if host in ("0.0.0.0", "", "[::]") else host
            gpus = visible_gpus()
            for i in range(workers):
                env = worker_env(i, (local, port), session.run_id, tracking_uri(), workers, gpus)
                procs[f"tuner{i}"] = subprocess.Popen(worker_command(pipeline), env=env)
            ended = _watch(session, tuner, servicer, procs)
            try:
                kt_internal.check_consecutive_failures(oracle)
            except RuntimeError as exc:
                raise aborted(pipeline, None) from exc
            if procs and all(rc != 0 for rc in ended.values()):
                session.fail(f"every worker failed (exit statuses {ended})")
        finally:
            _stop_workers(procs)
            server.stop(grace=1)
    assert session.result is not None
    session.reporter.search_ended(session.result)
    return session.result


def _watch(session: SearchSession, tuner: Any, servicer: Any,
           procs: dict[str, subprocess.Popen[bytes]]) -> dict[str, int]:
    """Until the search is over: requeue the trial of a worker that dies, apply the time budget.
    Returns each local worker's exit status."""
    oracle = tuner.oracle
    ended: dict[str, int] = {}
    while True:
        time.sleep(POLL_SECONDS)
        check_interrupted()
        for tid, proc in procs.items():
            if tid not in ended and proc.poll() is not None:
                ended[tid] = proc.returncode
                if proc.returncode != 0:
                    kt_internal.requeue(oracle, tid)
                    resume.kill_stale(session.tracker, session.run_id,
                                      f"process died: worker {tid} exited with status "
                                      f"{proc.returncode}", worker=tid)
        session.runner.check_budget(tuner)
        if procs:
            if len(ended) == len(procs) and not oracle.ongoing_trials:
                return ended
        elif kt_internal.stop_requested(servicer) and not oracle.ongoing_trials \
                and not oracle.tuner_ids:
            return ended


def _stop_workers(procs: dict[str, subprocess.Popen[bytes]], grace: float = 30.0) -> None:
    """Ask running workers to stop (their trial is marked KILLED), then make sure they did."""
    alive = [p for p in procs.values() if p.poll() is None]
    for proc in alive:
        proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for proc in alive:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class WorkerReporter(Reporter):
    """One line per trial, prefixed with the worker's id, on the shared terminal."""

    def __init__(self, tuner_id: str, echo: Callable[[str], None] = print) -> None:
        self.tuner_id, self.echo = tuner_id, echo

    def trial_ended(self, record: TrialRecord, *, best: TrialRecord | None,
                    elapsed: float) -> None:
        what = (f"{record.objective:.4f} ({record.seconds:.1f}s)"
                if record.status is TrialStatus.COMPLETED else f"{record.reason}")
        self.echo(f"[{self.tuner_id}] trial {record.trial_id} {record.status.value}: {what}")


def _watch_chief(pid: int) -> None:
    """A local worker whose chief died stops (its trial KILLED) instead of waiting an hour."""
    import _thread

    def watch() -> None:
        while True:
            time.sleep(2)
            if os.getppid() != pid:
                _thread.interrupt_main()
                return

    threading.Thread(target=watch, daemon=True).start()


def run_worker(pipeline: Pipeline, *, notify: Callable[[str], None] | None = None) -> int:
    """A worker: train the chief's trials until it has none; returns the exit status."""
    from tunetrack.search.tuners import build_tuner
    from tunetrack.tracking.store import SearchTracker

    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    with InterruptHandling() as signals:
        if os.environ.get(CHIEF_PID_ENV, "").isdigit():
            _watch_chief(int(os.environ[CHIEF_PID_ENV]))
        space, dataset = prepare(pipeline)
        tracker = SearchTracker(pipeline.experiment)
        parent = os.environ.get(PARENT_ENV) or _find_parent(tracker, pipeline)
        tracker.parent_run_id = parent
        recorded = resume.recorded_trials(tracker, parent, pipeline.objective)
        runner = TrialRunner(pipeline, space, dataset, tracker, WorkerReporter(tuner_id),
                             recorded=recorded, worker=tuner_id)
        directory = tempfile.mkdtemp(prefix=f"tunetrack-{tuner_id}-")
        reason = None
        try:
            tuner = build_tuner(runner, directory, overwrite=True)
            signals.install()  # again, after TensorFlow and MLflow are imported
            runner.warm_up()
            with frozen_gc():
                tuner.search(epochs=pipeline.training.epochs, verbose=0)
        except KeyboardInterrupt:
            reason = f"{interrupt_reason()}: worker {tuner_id} was stopped"
            return 130
        finally:
            runner.finish_uploads()
            runner.kill_running(reason or "worker ended")
            shutil.rmtree(directory, ignore_errors=True)
    return 0


def _find_parent(tracker: Any, pipeline: Pipeline) -> str:
    """Without TUNETRACK_PARENT_RUN_ID: the running search of the same files and flags."""
    from tunetrack.errors import PipelineError

    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        f"tags.`{names.TAG_SEARCH_KEY}` = '{resume.search_key(pipeline)}' and "
        "attributes.status = 'RUNNING'", order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise PipelineError(f"no running search of this pipeline to work for; set {PARENT_ENV} "
                            "to the chief's search run id", file=pipeline.path)
    return runs[0].info.run_id
