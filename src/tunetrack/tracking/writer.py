"""One background thread per process that writes runs' params, tags and metrics to MLflow.

Each epoch's curves (``search/live.py``) and a trial's params, tags and scores
(``store.RunLogger`` of a trial run) are queued here instead of costing the training thread a
round trip to the store each. The thread takes what queued meanwhile and writes it as one
``log_batch`` per run (MLflow's limits: 1000 metrics, 100 params, 100 tags a call), in the
order it was queued, retried while SQLite is locked (``retry.retry_locked``: several workers
share one store). It writes a round at most every ``INTERVAL`` seconds unless it is hurried
(:meth:`Writer.hurry`, :meth:`Writer.flush`): curves in the UI lag by a second at most, and a
trial of six short epochs costs two or three requests, not six. :meth:`Writer.flush` waits
for everything queued; a run is ended only after it (``SearchTracker.end_run``), so a FINISHED
or KILLED run has everything logged before it ends; interpreter exit flushes too. A write the
store refuses (MLflow's client has already retried what a network or a busy server fails) is
a warning, never an error on the training thread.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tunetrack.tracking.retry import retry_locked

_log = logging.getLogger("tunetrack")
LIMITS = {"metrics": 900, "params": 100, "tags": 100}  # per log_batch call


class Writer:
    """A FIFO of ``(client, run_id, metrics, params, tags)`` and calls, on one daemon thread."""

    THREAD = "tunetrack-live"
    INTERVAL = 1.0  # seconds between two rounds of writes, unless someone flushes

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._hurry = threading.Event()
        self.errors: list[str] = []

    def _put(self, item: tuple[Any, ...]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name=self.THREAD,
                                                daemon=True)
                self._thread.start()
        self._queue.put(item)

    def submit(self, client: Any, run_id: str, metrics: Iterable[Any] = (), *,
               params: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None,
               what: str = "per-epoch metrics") -> None:
        """Queue MLflow ``Metric`` entities and ``{key: text}`` params and tags for a run."""
        self._put(("batch", client, run_id, list(metrics), dict(params or {}),
                   dict(tags or {}), what))

    def call(self, fn: Callable[[], Any], what: str) -> None:
        """Queue ``fn()``: it runs after everything queued before it."""
        self._put(("call", fn, what))

    def _work(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:  # what queued meanwhile is written in the same batch, per run
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write_all(items)
            finally:
                for _ in items:
                    self._queue.task_done()
            if not self._hurry.is_set():  # what comes meanwhile waits for the next batch
                self._hurry.wait(self.INTERVAL)
            self._hurry.clear()

    def _write_all(self, items: list[tuple[Any, ...]]) -> None:
        pending: dict[tuple[int, str], list[Any]] = {}
        for item in items:
            if item[0] == "call":
                self._send(pending)
                pending = {}
                self._guarded(item[2], item[1])
                continue
            _, client, run_id, metrics, params, tags, what = item
            merged = pending.setdefault((id(client), run_id), [client, run_id, [], {}, {}, what])
            merged[2].extend(metrics)
            merged[3].update(params)
            merged[4].update(tags)
        self._send(pending)

    def _send(self, pending: dict[tuple[int, str], list[Any]]) -> None:
        for client, run_id, metrics, params, tags, what in pending.values():
            params_, tags_ = list(params.items()), list(tags.items())
            while metrics or params_ or tags_:
                chunk = metrics[:LIMITS["metrics"]], params_[:LIMITS["params"]], \
                    tags_[:LIMITS["tags"]]
                metrics, params_, tags_ = metrics[len(chunk[0]):], params_[len(chunk[1]):], \
                    tags_[len(chunk[2]):]
                self._guarded(what, _log_batch, client, run_id, *chunk)

    def _guarded(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            retry_locked(fn, *args)
        except Exception as exc:  # noqa: BLE001 - a lost write is a warning, see flush()
            self.errors.append(f"{what} not saved: {type(exc).__name__}: {exc}")

    def hurry(self) -> None:
        """Write what is queued now, not at the end of the interval."""
        self._hurry.set()

    def flush(self) -> None:
        """Wait until everything queued is written; warn about what could not be (three at
        most: one store gone fails every write alike)."""
        if self._thread is not None and self._thread is not threading.current_thread():
            self._hurry.set()
            self._queue.join()
        errors, self.errors = self.errors, []
        for error in errors[:3]:
            _log.warning("%s", error)


def _log_batch(client: Any, run_id: str, metrics: list[Any], params: list[tuple[str, str]],
               tags: list[tuple[str, str]]) -> None:
    from mlflow.entities import Param, RunTag

    kwargs: dict[str, Any] = {"metrics": metrics}
    if params:
        kwargs["params"] = [Param(k, v) for k, v in params]
    if tags:
        kwargs["tags"] = [RunTag(k, v) for k, v in tags]
    client.log_batch(run_id, **kwargs)


WRITER = Writer()  # the process's writer: live epochs and trial runs share it (one batch a run)
atexit.register(WRITER.flush)
