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
from tunetrack.errors import SearchAborted
from tunetrack.names import TrialStatus
from tunetrack.search import resume
from tunetrack.search.progress import Reporter
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
            "--experiment", pipeline.experiment, "--data", pipeline.data.source]


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


def _serve(oracle: Any, address: str) -> tuple[Any, Any, int]:
    """keras-tuner's oracle servicer on our own gRPC server (its loop polls only every 20 s)."""
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    port = server.add_insecure_port(address)
    if not port:
        raise OSError(f"cannot listen on {address} for the oracle")
    server.start()
    return server, servicer, port


def _requeue(oracle: Any, tuner_id: str) -> None:
    """A worker died holding a trial: give the trial to the next worker that asks."""
    from keras_tuner.src.engine.oracle import LOCKS

    with LOCKS[oracle]:
        trial = oracle.ongoing_trials.pop(tuner_id, None)
        oracle.tuner_ids.discard(tuner_id)
        if trial is not None:
            oracle._retry_queue.append(trial.trial_id)
            oracle.save()


def run_parallel(pipeline: Pipeline, *, workers: int, reporter: Reporter | None = None,
                 mode: str = "auto", notify: Callable[[str], None] | None = None,
                 oracle_address: str = "127.0.0.1:0") -> Any:
    """The chief: serve the oracle, run ``workers`` local workers, close the parent run."""
    from tunetrack.search import parent as searchrun
    from tunetrack.search.session import (
        SearchResult,
        _Search,
        _stderr,
        check_interrupted,
        install_interrupt_handler,
        prepare,
    )
    from tunetrack.search.tuners import build_tuner, stop_oracle
    from tunetrack.tracking.store import tracking_uri

    reporter, notify = reporter or Reporter(), notify or _stderr
    space, dataset, data_config = prepare(pipeline)
    opened = searchrun.open_search(pipeline, space, dataset, data_config, mode=mode,
                                   notify=notify)
    tracker, log, parent = opened.tracker, opened.log, opened.run_id
    log.tags({"tunetrack.workers": workers}).flush()
    search = _Search(pipeline, space, dataset, tracker, reporter, recorded=opened.trials)
    start = time.perf_counter() - opened.previous_seconds
    reporter.search_started(pipeline=pipeline, space=space, dataset=dataset,
                            total=pipeline.tuner.max_trials, experiment=pipeline.experiment,
                            run_id=parent)
    directory = str(opened.plan.directory)
    status, failure, stop_reason, aborted = "FINISHED", None, None, None
    procs: dict[str, subprocess.Popen] = {}
    server = None
    try:
        tuner = build_tuner(search, directory,
                            overwrite=not searchrun.tuner_state(opened, notify))
        searchrun.mark_tuner_state(opened)
        oracle = tuner.oracle
        oracle.verbose = 0
        tuner.save()
        server, servicer, port = _serve(oracle, oracle_address)
        host = oracle_address.rpartition(":")[0]
        notify(f"oracle on {host}:{port}; workers elsewhere: {PARENT_ENV}={parent} "
               f"KERASTUNER_ORACLE_IP=<this host> KERASTUNER_ORACLE_PORT={port} "
               f"KERASTUNER_TUNER_ID=<unique> MLFLOW_TRACKING_URI={tracking_uri()}")
        local = "127.0.0.1" if host in ("0.0.0.0", "", "[::]") else host
        gpus = visible_gpus()
        for i in range(workers):
            env = worker_env(i, (local, port), parent, tracking_uri(), workers, gpus)
            procs[f"tuner{i}"] = subprocess.Popen(worker_command(pipeline), env=env)
        ended: dict[str, int] = {}
        if threading.current_thread() is threading.main_thread():
            install_interrupt_handler()
        limit = pipeline.tuner.max_minutes
        while True:
            time.sleep(POLL_SECONDS)
            check_interrupted()
            for tid, proc in procs.items():
                if tid not in ended and proc.poll() is not None:
                    ended[tid] = proc.returncode
                    if proc.returncode != 0:
                        _requeue(oracle, tid)
                        resume.kill_stale(tracker, parent, f"process died: worker {tid} exited "
                                          f"with status {proc.returncode}", worker=tid)
            if limit is not None and stop_reason is None and \
                    time.perf_counter() - start > 60 * limit:
                stop_reason = f"the {limit:g}-minute budget (--max-minutes) was used up"
                stop_oracle(oracle)
            if procs:
                if len(ended) == len(procs) and not oracle.ongoing_trials:
                    break
            elif servicer.stop_triggered and not oracle.ongoing_trials \
                    and not oracle.tuner_ids:
                break
        try:
            oracle._check_consecutive_failures()
        except RuntimeError as exc:
            aborted = exc
        if aborted is not None:
            status, failure = "FAILED", f"consecutive failures: {aborted}"[:1000]
        elif procs and all(rc != 0 for rc in ended.values()):
            status, failure = "FAILED", f"every worker failed (exit statuses {ended})"
    except KeyboardInterrupt:
        status, failure = "KILLED", "interrupted (Ctrl-C)"
        raise
    except Exception as exc:
        status, failure = "FAILED", f"{type(exc).__name__}: {exc}".strip()[:1000]
        raise
    finally:
        _stop_workers(procs)
        if server is not None:
            server.stop(grace=1)
        resume.kill_stale(tracker, parent, f"process died; search ended {status}"
                          if status != "KILLED" else "interrupted (Ctrl-C)")
        trials = resume.recorded_trials(tracker, parent, pipeline.objective)
        result = SearchResult(pipeline, tracker.experiment_id, parent, trials,
                              time.perf_counter() - start, status, stop_reason,
                              searched=list(space.searched()))
        searchrun.finish_search(tracker, log, result, failure)
        if status == "FINISHED":
            shutil.rmtree(directory, ignore_errors=True)
    if aborted is not None:
        raise SearchAborted(f"search stopped after {pipeline.tuner.max_consecutive_failures} "
                            "consecutive failed trials (tuner.max_consecutive_failures)")
    reporter.search_ended(result)
    return result


def _stop_workers(procs: dict[str, subprocess.Popen], grace: float = 30.0) -> None:
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

    def trial_ended(self, record: Any, *, best: Any, elapsed: float) -> None:
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
    from tunetrack.search.session import _Search, _stderr, install_interrupt_handler, prepare
    from tunetrack.search.tuners import build_tuner
    from tunetrack.tracking.store import SearchTracker

    notify = notify or _stderr
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    install_interrupt_handler(signal.SIGTERM)
    if os.environ.get(CHIEF_PID_ENV, "").isdigit():
        _watch_chief(int(os.environ[CHIEF_PID_ENV]))
    space, dataset, _ = prepare(pipeline)
    tracker = SearchTracker(pipeline.experiment)
    parent = os.environ.get(PARENT_ENV) or _find_parent(tracker, pipeline)
    tracker.parent_run_id = parent
    recorded = resume.recorded_trials(tracker, parent, pipeline.objective)
    search = _Search(pipeline, space, dataset, tracker, WorkerReporter(tuner_id), recorded=recorded,
                     worker=tuner_id)
    directory = tempfile.mkdtemp(prefix=f"tunetrack-{tuner_id}-")
    reason = None
    try:
        tuner = build_tuner(search, directory, overwrite=True)
        install_interrupt_handler(signal.SIGTERM)  # again, after TF and MLflow are imported
        search.warm_up()
        tuner.search(epochs=pipeline.training.epochs, verbose=0)
    except KeyboardInterrupt:
        reason = f"interrupted: worker {tuner_id} was stopped"
        return 130
    finally:
        search.finish_uploads()
        search.kill_running(reason or "worker ended")
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
