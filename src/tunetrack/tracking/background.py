"""Where a trial's files and figures are uploaded while the next trial trains: a child process.

A trial leaves ~1 s of work after its model is saved: the LoggedModel's MLflow round trips
(create, link, scores, ~8 files, READY), the run's files, and two figures (~0.5 s of
matplotlib). Done on a thread of the search's process, that work holds the GIL in small slices
all through the next trial's ``fit``, whose training loop needs it between every batch: on 2
cores a thread drawing figures made a 6-epoch fit take 1.9x as long, a child process drawing
the same figures 1.15x (``benchmarks/RESULTS.md``, tracking). So the work runs in one child
process per search process (:func:`uploads_process`), started while trial 1 trains and kept
for the searches that follow (a test session, a notebook). Jobs are module-level functions
with plain arguments (file paths, the tracking URI, numbers), pickled to the child's stdin
with the parent's working folder and environment at the time (the job runs as if in the
parent); results come back on its stdout, and what the child prints goes to stderr.

The child is a fresh ``python -c`` interpreter, not a ``multiprocessing`` one: spawning those
re-imports the user's ``__main__``, which reruns a search from a script without an
``if __name__ == "__main__"`` guard (and forking a process that runs TensorFlow or JAX threads
is unsafe). It ignores SIGINT, SIGTERM and SIGHUP (Ctrl-C reaches a terminal's whole process
group; the search drains its uploads before it exits, :meth:`BackgroundUploads.drain`). If the
search's process is killed with ``kill -9``, the child finishes the jobs it has read and ends.
Where a child cannot be started, or dies, the work goes to a thread (the same results, slower).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import pickle
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future, ThreadPoolExecutor
from typing import Any

_log = logging.getLogger("tunetrack")
_lock = threading.Lock()
_shared: dict[str, Executor] = {}
CHILD = "from tunetrack.tracking.background import child_main; child_main()"


def uploads_process() -> Executor:
    """The process's uploads child; a thread where it cannot start."""
    with _lock:
        executor = _shared.get("process")
        if isinstance(executor, ChildProcess) and not executor.alive:  # killed: a new one
            executor = None
        if executor is None:
            try:
                executor = ChildProcess()
            except OSError as exc:
                _log.debug("uploads in a thread: no child process (%s)", exc)
                executor = _thread()
            _shared["process"] = executor
        return executor


def _thread() -> Executor:
    return ThreadPoolExecutor(1, thread_name_prefix="tunetrack-uploads")


class ChildProcess(Executor):
    """An ``Executor`` whose one worker is a child interpreter running :func:`child_main`."""

    def __init__(self) -> None:
        import tunetrack

        root = os.path.dirname(os.path.dirname(os.path.abspath(tunetrack.__file__)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        self._proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env, close_fds=True)
        self._numbers = itertools.count()
        self._futures: dict[int, Future[Any]] = {}
        self._send = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="tunetrack-uploads-results",
                                        daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            cwd: str | None = os.getcwd()
        except OSError:  # this process's folder was deleted: the child keeps its own
            cwd = None
        with self._send:
            if self._proc.poll() is not None or self._proc.stdin is None:
                raise BrokenExecutor("the uploads child process has ended")
            number = next(self._numbers)
            self._futures[number] = future
            try:
                pickle.dump((number, cwd, dict(os.environ), fn, args, kwargs),
                            self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self._proc.stdin.flush()
            except OSError as exc:  # the child is gone
                del self._futures[number]
                raise BrokenExecutor(f"the uploads child process has ended: {exc}") from exc
        return future

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while True:
            try:
                number, ok, value = pickle.load(self._proc.stdout)
            except Exception:  # noqa: BLE001 - EOF or a broken pipe: the child has ended
                break
            future = self._futures.pop(number, None)
            if future is None:
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        for future in list(self._futures.values()):  # jobs the child never answered
            future.set_exception(BrokenExecutor("the uploads child process ended"))
        self._futures.clear()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._send:
            if self._proc.stdin is not None and not self._proc.stdin.closed:
                try:
                    self._proc.stdin.close()  # EOF: the child finishes what it has, then exits
                except OSError:
                    pass
        if wait:
            self._proc.wait()
            self._reader.join()


def child_main() -> None:
    """The uploads child: run each job read from stdin, in order, and answer on stdout."""
    import queue
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what the libraries print goes to stderr, not into the answers
    jobs: queue.Queue[Any] = queue.Queue()

    def read() -> None:  # at once: the parent never waits on a full pipe while a job runs
        while True:
            try:
                jobs.put(pickle.load(sys.stdin.buffer))
            except Exception:  # noqa: BLE001 - EOF: the parent closed it or is gone
                jobs.put(None)
                return

    threading.Thread(target=read, daemon=True).start()
    _warm_up_child()
    while (job := jobs.get()) is not None:
        number, cwd, environ, fn, args, kwargs = job
        try:
            _as_in_parent(cwd, environ)
            answer: tuple[int, bool, Any] = (number, True, fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - the parent reports it
            answer = (number, False, exc)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - an unpicklable result or error
            data = pickle.dumps((number, False, RuntimeError(f"{answer[2]!r} ({exc})")))
        try:
            answers.write(data)
            answers.flush()
        except OSError:  # the parent is gone: finish the jobs already read, answer no one
            pass


def _as_in_parent(cwd: str | None, environ: dict[str, str]) -> None:
    """Run the next job where the parent was when it submitted it: its working folder (relative
    store and artifact paths) and its environment (MLflow's settings and credentials)."""
    if cwd is not None:
        os.chdir(cwd)  # even where the folder the child was in is gone (a test's, say)
    if os.environ != environ:
        os.environ.clear()
        os.environ.update(environ)


def _warm_up_child() -> None:
    """The child's first-use costs, paid while trial 1 trains: MLflow and matplotlib."""
    try:
        import io

        import mlflow.models  # noqa: F401
        import mlflow.store.artifact.artifact_repository_registry  # noqa: F401

        from tunetrack.tracking import plots

        plots.learning_curve({"loss": [1.0, 0.5]}, [1, 2]).savefig(io.BytesIO(), format="png")
    except Exception:  # noqa: BLE001 - only a head start: the real calls report real errors
        return


def ready() -> None:
    """A job that does nothing: submitted first, it starts the child while trial 1 trains."""


class BackgroundUploads:
    """The uploads of one search (or worker): submitted in order, waited for by :meth:`drain`.

    ``process=True`` runs them in :func:`uploads_process` (``fn`` and its arguments must then
    pickle: module-level functions, plain data); ``False`` on a thread of this process. A
    failed upload is kept in ``errors`` (a missing file must not fail a search). At most
    ``LIMIT`` jobs wait: a store slower than the trials holds the training thread back rather
    than filling the disk with models to upload.
    """

    LIMIT = 2

    def __init__(self, *, process: bool = True) -> None:
        self.process = process
        self._executor: Executor | None = None
        self._pending: list[tuple[str, Future[Any]]] = []
        self.errors: list[str] = []
        _OPEN.add(self)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._wait(self.LIMIT)
        name = getattr(fn, "__name__", repr(fn))
        if self._executor is None:
            self._executor = uploads_process() if self.process else _thread()
        try:
            future = self._executor.submit(fn, *args)
        except (BrokenExecutor, RuntimeError) as exc:  # the child died, or was shut down
            _log.debug("uploads continue in a thread: %s", exc)
            with _lock:
                if _shared.get("process") is self._executor:
                    del _shared["process"]
            self._executor = _thread()
            future = self._executor.submit(fn, *args)
        self._pending.append((name, future))

    def _wait(self, limit: int) -> None:
        """Wait until fewer than ``limit`` jobs are pending (``limit=1``: none)."""
        while len(self._pending) >= limit:
            name, future = self._pending.pop(0)
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - reported by drain(), never fatal
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")

    def drain(self) -> list[str]:
        """Wait for every submitted upload; returns (and clears) the errors so far."""
        self._wait(1)
        executor = self._executor
        if isinstance(executor, ThreadPoolExecutor) and _shared.get("process") is not executor:
            executor.shutdown(wait=True)  # this search's own thread ends with its uploads
            self._executor = None  # a later submit starts another
        errors, self.errors = self.errors, []
        return errors


_OPEN: weakref.WeakSet[BackgroundUploads] = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:
    """No upload is lost to a process that ends without draining (an uncaught error); then the
    child is told to end."""
    for uploads in list(_OPEN):
        for error in uploads.drain():
            _log.warning("a trial file was not saved: %s", error)
    with _lock:
        executor = _shared.pop("process", None)
    if executor is not None:
        executor.shutdown(wait=True)
