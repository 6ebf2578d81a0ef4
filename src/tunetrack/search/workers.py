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
    tunetrack server --host 0.0.0.0 --port 5000 --backend-store-uri postgresql://...
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 \\
        tunetrack search pipelines/digits.yaml --workers 0 --oracle-address 0.0.0.0:8000
    # prints the worker command with the search run id
    # host B, C, ...: same checkout and data, one process per GPU
    MLFLOW_TRACKING_URI=http://hostA:5000 \\
        tunetrack worker pipelines/digits.yaml --chief hostA:8000 --id hostB-0

Remote workers are watched by heartbeat (:mod:`tunetrack.search.heartbeat`): a silent one's
trial is requeued, a worker whose chief is gone stops.

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
from tunetrack.search import heartbeat, resume
from tunetrack.search.devices import worker_gpus
from tunetrack.search.progress import Reporter
from tunetrack.search.records import SearchResult, TrialRecord
from tunetrack.search.session import SearchSession, aborted, frozen_gc, prepare
from tunetrack.search.signals import InterruptHandling, check_interrupted, interrupt_reason
from tunetrack.search.trial import TrialRunner
from tunetrack.space.pipeline import Pipeline

PARENT_ENV = "TUNETRACK_PARENT_RUN_ID"
CHIEF_PID_ENV = "TUNETRACK_CHIEF_PID"
POLL_SECONDS = 0.5
RESPAWNS = 2  # times a local worker that died holding a trial is started again


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


def remote_command(pipeline: Pipeline, chief: str, parent: str) -> list[str]:
    """What a user types on another host to work for this chief (the README's text)."""
    return ["tunetrack", "worker", *worker_command(pipeline)[4:], "--chief", chief,
            "--search", parent]


def worker_env(index: int, address: tuple[str, int], parent: str, uri: str, count: int,
               gpus: list[str], per_worker: int | None = None) -> dict[str, str]:
    env = dict(os.environ, KERASTUNER_TUNER_ID=f"tuner{index}", KERASTUNER_ORACLE_IP=address[0],
               KERASTUNER_ORACLE_PORT=str(address[1]), MLFLOW_TRACKING_URI=uri,
               **{PARENT_ENV: parent, CHIEF_PID_ENV: str(os.getpid())})
    pinned = worker_gpus(gpus, index, per_worker)  # --gpus-per-worker (search/devices.py)
    if pinned is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(pinned)
    threads = str(max(1, (os.cpu_count() or 1) // count))
    for key in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        env.setdefault(key, threads)  # N workers on one CPU share its cores instead of fighting
    return env


def run_parallel(pipeline: Pipeline, *, workers: int, reporter: Reporter | None = None,
                 mode: str = "auto", notify: Callable[[str], None] | None = None,
                 oracle_address: str = "127.0.0.1:0",
                 gpus_per_worker: int | None = None) -> SearchResult:
    """The chief: serve the oracle, run ``workers`` local workers, close the parent run."""
    from tunetrack.tracking.store import tracking_uri

    if gpus_per_worker is not None:
        worker_gpus(visible_gpus(), 0, gpus_per_worker)  # too few GPUs: refused before anything

    with SearchSession(pipeline, reporter=reporter, mode=mode, notify=notify,
                       chief=True) as session:
        session.log.tags({names.TAG_WORKERS: workers}).flush()
        tuner = session.build_tuner()
        oracle = tuner.oracle
        oracle.verbose = 0
        tuner.save()
        liveness = heartbeat.Liveness()
        server, servicer, port = kt_internal.serve_oracle(
            oracle, oracle_address, on_heartbeat=liveness.beat,
            hold=lambda tid: _may_requeue(oracle, tid))
        procs: dict[str, subprocess.Popen[bytes]] = {}
        try:
            host = oracle_address.rpartition(":")[0]
            shown = "<this host>" if host in ("0.0.0.0", "", "[::]") else host
            uri = tracking_uri().replace("//127.0.0.1:", "//<this host>:").replace(
                "//localhost:", "//<this host>:")
            session.notify(f"oracle on {host}:{port}; on other hosts start workers with:\n  "
                           f"MLFLOW_TRACKING_URI={uri} "
                           + " ".join(remote_command(pipeline, f"{shown}:{port}",
                                                     session.run_id)))
            local = "127.0.0.1" if host in ("0.0.0.0", "", "[::]") else host
            gpus = visible_gpus()
            envs = {f"tuner{i}": worker_env(i, (local, port), session.run_id, tracking_uri(),
                                            workers, gpus, gpus_per_worker)
                    for i in range(workers)}

            def spawn(tid: str) -> subprocess.Popen[bytes]:
                procs[tid] = subprocess.Popen(worker_command(pipeline), env=envs[tid])
                return procs[tid]

            for tid in envs:
                spawn(tid)
            ended = _watch(session, tuner, servicer, procs, liveness, spawn)
            try:
                kt_internal.check_consecutive_failures(oracle)
            except RuntimeError as exc:
                raise aborted(pipeline, None) from exc
            if procs and all(rc != 0 for rc in ended.values()):
                session.fail(f"every worker failed (exit statuses {ended})")
            heartbeat.tag_retries(session.tracker, session.run_id)  # requeued or resumed
        finally:
            _stop_workers(procs)
            server.stop(grace=1)
    assert session.result is not None
    session.reporter.search_ended(session.result)
    return session.result


def _may_requeue(oracle: Any, tuner_id: str) -> bool:
    """A worker asking for a trial when none is left waits while others still train: one of
    them may be lost, and its trial would then have nobody to train it."""
    if not kt_internal.budget_spent(oracle) or kt_internal.retries_pending(oracle):
        return False
    return any(t != tuner_id for t in kt_internal.ongoing_tuners(oracle))


def _requeue(session: SearchSession, oracle: Any, tuner_id: str, why: str) -> str | None:
    """The run first (KILLED), then the trial: its next attempt finds the run it retries."""
    resume.kill_stale(session.tracker, session.run_id, why, worker=tuner_id)
    trial_id = kt_internal.requeue(oracle, tuner_id)
    if trial_id is not None:
        session.notify(f"{why}; trial {trial_id} goes to the next worker that asks")
    return trial_id


def _watch(session: SearchSession, tuner: Any, servicer: Any,
           procs: dict[str, subprocess.Popen[bytes]],
           liveness: heartbeat.Liveness | None = None,
           spawn: Callable[[str], Any] | None = None) -> dict[str, int]:
    """Until the search is over: requeue the trial of a worker that dies (a local process that
    exits, a remote worker silent for the heartbeat timeout), apply the time budget. A local
    worker that died holding a trial is started again (up to ``RESPAWNS`` times), so its trial
    is not left waiting when the others have finished. Returns each local worker's exit
    status."""
    oracle = tuner.oracle
    ended: dict[str, int] = {}
    respawned: dict[str, int] = {}
    waiting_noted = False
    while True:
        time.sleep(POLL_SECONDS)
        check_interrupted()
        for tid, proc in list(procs.items()):
            if tid not in ended and proc.poll() is not None:
                ended[tid] = proc.returncode
                if proc.returncode != 0:
                    requeued = _requeue(session, oracle, tid, f"process died: worker {tid} "
                                                              f"exited with status "
                                                              f"{proc.returncode}")
                    if requeued and spawn and respawned.get(tid, 0) < RESPAWNS:
                        respawned[tid] = respawned.get(tid, 0) + 1
                        del ended[tid]
                        spawn(tid)
        silent = liveness.silent(kt_internal.ongoing_tuners(oracle), procs) if liveness else []
        for tid in silent:
            _requeue(session, oracle, tid, f"worker {tid} lost: no heartbeat for "
                                           f"{liveness.timeout if liveness else 0:g} s")
        session.runner.check_budget(tuner)
        pending = kt_internal.retries_pending(oracle)
        if procs:
            if len(ended) == len(procs) and not oracle.ongoing_trials:
                if pending:
                    session.fail(f"{pending} requeued trial(s) left untrained: every local "
                                 f"worker ended (exit statuses {ended})")
                return ended
        elif kt_internal.stop_requested(servicer) and not oracle.ongoing_trials \
                and not oracle.tuner_ids:
            if not pending:
                return ended
            if not waiting_noted:  # a lost worker's trial waits for any worker to join
                waiting_noted = True
                session.notify(f"{pending} requeued trial(s) wait for a worker: start one "
                               "with the command above")


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


def join(pipeline: Pipeline, *, chief: str, tuner_id: str | None = None,
         parent: str | None = None) -> int:
    """``tunetrack worker``: work for the chief at ``chief`` (HOST:PORT); the exit status."""
    import socket

    from tunetrack.errors import PipelineError

    host, _, port = chief.rpartition(":")
    if not host or not port.isdigit():
        raise PipelineError(f"--chief must be HOST:PORT (the chief's --oracle-address), got "
                            f"{chief!r}", file=pipeline.path)
    tuner_id = tuner_id or f"{socket.gethostname()}-{os.getpid()}"
    if "chief" in tuner_id:
        raise PipelineError(f"--id {tuner_id!r}: a worker's name may not contain 'chief' "
                            "(keras-tuner reserves it)", file=pipeline.path)
    os.environ.update(KERASTUNER_ORACLE_IP=host.strip("[]"), KERASTUNER_ORACLE_PORT=port,
                      KERASTUNER_TUNER_ID=tuner_id)
    if parent:
        os.environ[PARENT_ENV] = parent
    return run_worker(pipeline)


def run_worker(pipeline: Pipeline, *, notify: Callable[[str], None] | None = None) -> int:
    """A worker: train the chief's trials until it has none; returns the exit status."""
    from tunetrack.search.tuners import build_tuner
    from tunetrack.tracking.store import SearchTracker

    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    watch = heartbeat.ChiefWatch(address, tuner_id, echo=print)
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
            watch.start()
            signals.install()  # again, after TensorFlow and MLflow are imported
            runner.warm_up()
            with frozen_gc():
                tuner.search(epochs=pipeline.training.epochs, verbose=0)
        except KeyboardInterrupt:
            if watch.reason:
                reason = f"worker {tuner_id} stopped: {watch.reason}"
                print(f"[{tuner_id}] stopped (exit status {heartbeat.EXIT_CHIEF_LOST}); a trial "
                      "in flight is marked KILLED", flush=True)
                return heartbeat.EXIT_CHIEF_LOST
            reason = f"{interrupt_reason()}: worker {tuner_id} was stopped"
            return 130
        except Exception as exc:  # a call in flight when the chief's process died
            if not heartbeat.chief_gone(exc):
                raise
            watch.stop()
            reason = f"worker {tuner_id} stopped: the chief at {address} dropped the connection"
            print(f"[{tuner_id}] stopping: the chief at {address} dropped the connection "
                  "mid-call; resume the search on the chief's host with --resume, then start "
                  f"this worker again (exit status {heartbeat.EXIT_CHIEF_LOST})", flush=True)
            return heartbeat.EXIT_CHIEF_LOST
        finally:
            watch.stop()
            runner.finish_uploads()
            runner.kill_running(reason or "worker ended")
            shutil.rmtree(directory, ignore_errors=True)
    return 0


def _find_parent(tracker: Any, pipeline: Pipeline, wait: float | None = None) -> str:
    """Without TUNETRACK_PARENT_RUN_ID: the running search of the same files and flags,
    waited for (a worker may start before its chief) up to ``wait`` seconds."""
    from tunetrack.errors import PipelineError

    wait = max(120.0, heartbeat.timeout_seconds()) if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        runs = tracker.client.search_runs(
            [tracker.experiment_id],
            f"tags.`{names.TAG_SEARCH_KEY}` = '{resume.search_key(pipeline)}' and "
            "attributes.status = 'RUNNING'", order_by=["attributes.start_time DESC"],
            max_results=1)
        if runs:
            return str(runs[0].info.run_id)
        if time.monotonic() > deadline:
            raise PipelineError(f"no running search of this pipeline to work for after "
                                f"{wait:.0f} s; start the chief first, or pass --search (or "
                                f"{PARENT_ENV}) with the chief's search run id",
                                file=pipeline.path)
        time.sleep(2)
