"""Per-epoch metrics in MLflow as each epoch ends, and the search's curves read back for pruning.

:func:`log_epoch` queues each epoch's metrics (``names.curve_name``: ``accuracy/val``...) on
the process's background writer (:mod:`tunetrack.tracking.writer`), so the MLflow UI draws a
trial's curves while it trains and a kill mid-trial keeps the epochs already done. Our own
thread rather than ``log_batch(synchronous=False)``: it retries while SQLite is locked
(``retry_locked``: several workers share one store) and coalesces what queued meanwhile (the
epochs, the trial's params and end-of-trial tags and scores) into one ``log_batch`` per run.
:func:`flush` waits for it; the trial's end, the search's end (also by SIGINT/SIGTERM, see
``session.py``), the end of every run (``SearchTracker.end_run``) and interpreter exit call it.

:class:`PeerCurves` reads the objective curves of a search's other trials from the same store:
what the pruning rules (:mod:`tunetrack.search.pruning`) compare a trial with. Because every
worker of a parallel search writes its epochs there as they end, the rules see every worker's
trials without any state kept by the oracle. A finished trial's curve is read once.
"""

from __future__ import annotations

import time
from typing import Any

from tunetrack import names
from tunetrack.search import pruning
from tunetrack.tracking.writer import WRITER

_LIVE = WRITER  # the process's one writer, shared with the trial runs' own writes


def log_epoch(client: Any, run_id: str, epoch: int, logs: dict[str, Any]) -> None:
    """Queue epoch ``epoch``'s (from 1) Keras logs as the trial's curves, step ``epoch``."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(names.curve_name(key), float(value), now, int(epoch))
               for key, value in logs.items() if isinstance(value, (int, float))
               or hasattr(value, "__float__")]
    if metrics:
        _LIVE.submit(client, run_id, metrics)


def flush() -> None:
    """Every queued epoch written (called at a trial's and a search's end; the writer also
    flushes at interpreter exit)."""
    _LIVE.flush()


class PeerCurves:
    """The objective curves (``{epoch: value}``) of the other trials of one search."""

    TERMINAL = {names.TrialStatus.COMPLETED.value, names.TrialStatus.PRUNED.value,
                names.TrialStatus.FAILED.value}
    SKIPPED = {names.TrialStatus.KILLED.value, names.TrialStatus.REJECTED.value}

    def __init__(self, tracker: Any, objective: str) -> None:
        self.tracker, self.key = tracker, names.curve_name(objective)
        self._finished: dict[str, tuple[str, dict[int, float]]] = {}  # run id -> status, curve

    def read(self, exclude: str) -> tuple[list[dict[int, float]], list[dict[int, float]]]:
        """``(finished, others)``: the curves of the trials that ran to the end, and of every
        other trial with a curve (running, completed, pruned or failed); ``exclude`` is the
        asking trial's run."""
        from tunetrack.search.resume import children

        client = self.tracker.client
        finished, others = [], []
        for run in children(client, self.tracker.experiment_id, self.tracker.parent_run_id):
            run_id = run.info.run_id
            status = run.data.tags.get(names.TAG_TRIAL_STATUS, "")
            if run_id == exclude or status in self.SKIPPED:
                continue
            if run_id in self._finished:
                status, curve = self._finished[run_id]
            else:
                curve = {int(m.step): float(m.value)
                         for m in client.get_metric_history(run_id, self.key)}
                if status in self.TERMINAL:
                    self._finished[run_id] = (status, curve)
            if not curve:
                continue
            others.append(curve)
            if status == names.TrialStatus.COMPLETED.value:
                finished.append(curve)
        return finished, others


class TrialPruner:
    """Judges one trial after each epoch by the configured rule (``tuner.pruning``)."""

    REFRESH_S = 10.0  # how stale the median rule's view of the other trials may get

    def __init__(self, config: Any, objective: str, direction: str, peers: PeerCurves,
                 run_id: str) -> None:
        self.config, self.objective, self.direction = config, objective, direction
        self.peers, self.run_id = peers, run_id
        self.curve: dict[int, float] = {}
        self._seen: tuple[list[Any], list[Any]] | None = None
        self._read_at = 0.0

    def judge(self, epoch: int, logs: dict[str, Any]) -> pruning.Verdict | None:
        if self.objective not in logs:
            return None
        value = float(logs[self.objective])
        self.curve[epoch] = value
        if not pruning.needs_peers(self.config, epoch):
            return None
        stale = time.monotonic() - self._read_at > self.REFRESH_S
        if self._seen is None or stale or self.config.kind == "asha":
            self._seen = self.peers.read(self.run_id)
            self._read_at = time.monotonic()
        finished, others = self._seen
        return pruning.verdict(self.config, self.curve, epoch, direction=self.direction,
                               finished=finished, others=others)


__all__ = ["PeerCurves", "TrialPruner", "flush", "log_epoch"]
