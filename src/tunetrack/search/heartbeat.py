"""Liveness between the chief of a parallel search and workers on other hosts.

The chief sees its local workers die (their process exits); a worker on another host can
vanish without a word (power, kill -9, a network that stays down). Each worker therefore
sends a heartbeat every ``BEAT_SECONDS`` over the oracle's own gRPC port (see
:func:`tunetrack.search._keras_tuner.serve_oracle`):

- the chief (:class:`Liveness`) gives the trial of a worker it has not heard from for
  ``timeout`` seconds to the next worker that asks, after marking its MLflow run KILLED; if
  that worker comes back (a network that healed too late) it is told so and stops, so a
  trial is never trained twice at once;
- a worker (:class:`ChiefWatch`) whose chief has not answered for ``timeout`` seconds stops
  with one clear line: its running trial is marked KILLED and the chief, resumed with
  ``--resume``, hands that trial out again.

A break shorter than ``timeout`` costs nothing: keras-tuner's calls wait for the channel to be
ready again and the heartbeat resumes (``TUNETRACK_HEARTBEAT_TIMEOUT``, default 60 s).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from tunetrack import names
from tunetrack.names import RunStatus

TIMEOUT_ENV = "TUNETRACK_HEARTBEAT_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
BEAT_SECONDS = 2.0
LOST = "lost"  # the chief's answer to a worker whose trial it gave away
EXIT_CHIEF_LOST = 3  # a worker's exit status when it stopped because of the chief


def timeout_seconds() -> float:
    """``TUNETRACK_HEARTBEAT_TIMEOUT`` (seconds, > 0), else the default."""
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


class Liveness:
    """The chief's record of when each remote worker was last heard from."""

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout or timeout_seconds()
        self.seen: dict[str, tuple[float, str]] = {}  # tuner id -> (when, process token)
        self.lost: set[str] = set()  # tokens of worker processes whose trial was given away
        self.lock = threading.Lock()

    def beat(self, text: str) -> str:
        """A heartbeat ``<tuner id>/<process token>``; answers ``LOST`` or ``ok``."""
        tuner_id, _, token = text.rpartition("/")
        with self.lock:
            if token in self.lost:
                return LOST
            self.seen[tuner_id] = (time.monotonic(), token)
            return "ok"

    def silent(self, ongoing: Iterable[str], local: Iterable[str]) -> list[str]:
        """Tuner ids holding a trial that have been silent for ``timeout`` seconds.

        Local workers are watched through their processes instead. Each returned worker's
        process token is remembered as lost."""
        now, skip, out = time.monotonic(), set(local), []
        with self.lock:
            for tuner_id in ongoing:
                if tuner_id in skip:
                    continue
                if tuner_id not in self.seen:  # its clock starts when first seen holding one
                    self.seen[tuner_id] = (now, "")
                    continue
                when, token = self.seen[tuner_id]
                if now - when > self.timeout:
                    self.lost.add(token)
                    self.seen.pop(tuner_id, None)
                    out.append(tuner_id)
        return out


class ChiefWatch:
    """A worker's heartbeat thread; stops the worker when the chief is gone or says so."""

    def __init__(self, address: str, tuner_id: str, *, echo: Callable[[str], None],
                 timeout: float | None = None) -> None:
        self.address, self.tuner_id, self.echo = address, tuner_id, echo
        self.timeout = timeout or timeout_seconds()
        self.token = uuid.uuid4().hex[:12]
        self.reason: str | None = None
        self._stop = threading.Event()
        self._killer: threading.Timer | None = None

    def start(self) -> ChiefWatch:
        from tunetrack.search import _keras_tuner as kt_internal

        send = kt_internal.heartbeat(self.address)
        threading.Thread(target=self._run, args=(send,), daemon=True,
                         name="tunetrack-heartbeat").start()
        return self

    def stop(self) -> None:
        """The worker is ending by itself: no more heartbeats, no forced exit."""
        self._stop.set()
        if self._killer is not None:
            self._killer.cancel()

    def _run(self, send: Callable[[str, float], str]) -> None:
        import grpc

        last_ok = time.monotonic()
        while not self._stop.is_set():
            try:
                reply = send(f"{self.tuner_id}/{self.token}", BEAT_SECONDS * 2)
            except grpc.RpcError:
                silent = time.monotonic() - last_ok
                if silent > self.timeout:
                    self._give_up(f"the chief at {self.address} has not answered for "
                                  f"{silent:.0f} s ({TIMEOUT_ENV}={self.timeout:g}); resume "
                                  "the search on the chief's host with --resume, then start "
                                  "this worker again")
                    return
                self._stop.wait(BEAT_SECONDS)
                continue
            last_ok = time.monotonic()
            if reply == LOST:
                self._give_up(f"the chief gave this worker's trial to another worker (no "
                              f"heartbeat for over {self.timeout:g} s)")
                return
            self._stop.wait(BEAT_SECONDS)

    def _give_up(self, reason: str) -> None:
        import _thread

        if self._stop.is_set():
            return
        self.reason = reason
        self.echo(f"[{self.tuner_id}] stopping: {reason}")
        _thread.interrupt_main()  # the main thread marks its trial KILLED and exits
        # a main thread stuck in a C call cannot take the interrupt: exit regardless
        self._killer = threading.Timer(30.0, os._exit, (EXIT_CHIEF_LOST,))
        self._killer.daemon = True
        self._killer.start()


def chief_gone(error: BaseException) -> bool:
    """A gRPC call to the chief that failed as UNAVAILABLE: its connection was reset (a
    network break only delays calls; keras-tuner's wait for the channel)."""
    import grpc

    return isinstance(error, grpc.RpcError) and \
        getattr(error, "code", lambda: None)() == grpc.StatusCode.UNAVAILABLE


def tag_retries(tracker: Any, parent_id: str) -> int:
    """Tag each retried trial's new run ``tunetrack.retry_of=<the KILLED attempt before it>``;
    returns how many were tagged.

    The chief calls it once its trials are done: one read of the search's runs, instead of one
    per trial on the workers (a requeued trial looks like any other to the worker that gets
    it). A lost worker's run is marked KILLED before its trial is handed out again, and a
    resumed search's stale runs before it starts, so "the latest KILLED run of the same trial
    that started before this one" is the attempt it retries."""
    from tunetrack.search.resume import children
    from tunetrack.tracking.store import retry_locked

    killed: dict[str, str] = {}  # trial id -> its latest KILLED run so far
    tagged = 0
    for run in sorted(children(tracker.client, tracker.experiment_id, parent_id),
                      key=lambda r: (r.info.start_time or 0, r.info.run_id)):
        trial_id = run.data.tags.get(names.TAG_TRIAL_ID)
        if trial_id is None:
            continue
        if trial_id in killed and names.TAG_RETRY_OF not in run.data.tags:
            retry_locked(tracker.client.set_tag, run.info.run_id, names.TAG_RETRY_OF,
                         killed[trial_id])
            tagged += 1
        if run.info.status == RunStatus.KILLED.value:
            killed[trial_id] = run.info.run_id
    return tagged
