"""One search from start to record: the lifecycle shared by a search alone and the chief of a
parallel one.

:class:`SearchSession` is a context manager. Entering it validates the files and loads the data
(before anything is written), opens or reopens the parent MLflow run and installs the signal
handlers; :meth:`SearchSession.build_tuner` builds keras-tuner's tuner around a
:class:`~tunetrack.search.trial.TrialRunner`. Leaving it, however the block ends, waits for the
figures still being drawn, marks whatever was in flight KILLED, writes the search's summary,
leaderboard and plots, gives the parent run its final status (FINISHED, FAILED or KILLED with the
reason), and restores what it changed in the process (signal handlers, the garbage collector).
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from types import TracebackType
from typing import Any

from tunetrack.errors import SearchAborted
from tunetrack.names import RunStatus
from tunetrack.search import _keras_tuner as kt_internal
from tunetrack.search import live, parent, resume
from tunetrack.search.progress import Reporter
from tunetrack.search.records import SearchResult
from tunetrack.search.signals import InterruptHandling, interrupt_reason
from tunetrack.search.trial import TrialRunner
from tunetrack.space.pipeline import Pipeline


def prepare(pipeline: Pipeline) -> tuple[Any, Any]:
    """The space and the dataset; every check happens here, before anything is written."""
    from tunetrack.data import load_dataset
    from tunetrack.space.language import load_space

    space = load_space(pipeline.space)
    if pipeline.pins:
        space = space.pinned(dict(pipeline.pins))
    if pipeline.tuner.kind == "grid" and (why := space.grid_ready()):
        from tunetrack.errors import SpaceError

        raise SpaceError(f"the grid tuner needs finite choices: {why}", file=space.path)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return space, load_dataset(pipeline.data)


@contextmanager
def frozen_gc() -> Iterator[None]:
    """The objects alive now (TensorFlow, MLflow, pandas...) moved out of the collector's reach.

    keras-tuner runs ``gc.collect()`` before every trial's build; with those libraries loaded
    that walks millions of long-lived objects, ~1.3 s a trial (measured). Each trial's own
    garbage is still freed. Undone on exit.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class SearchSession:
    """The parent run, the trial runner and the tuner of one search (see the module docstring).

    ``chief=True``: the trials are trained by worker processes, which record them in MLflow
    themselves; the session reads them back from MLflow when it closes.
    """

    def __init__(self, pipeline: Pipeline, *, reporter: Reporter | None = None,
                 mode: str = "auto", notify: Callable[[str], None] | None = None,
                 chief: bool = False) -> None:
        self.pipeline, self.mode, self.chief = pipeline, mode, chief
        self.reporter = reporter or Reporter()
        self.notify = notify or stderr
        self.signals = InterruptHandling()
        self.status: RunStatus = RunStatus.FINISHED
        self.failure: str | None = None
        self.result: SearchResult | None = None
        self._undo = ExitStack()  # what build_tuner changed in the process

    # -- open ----------------------------------------------------------------------------------
    def __enter__(self) -> SearchSession:
        self.signals.__enter__()
        try:
            self.space, self.dataset = prepare(self.pipeline)
            self.opened = parent.open_search(self.pipeline, self.space, self.dataset,
                                             mode=self.mode, notify=self.notify)
        except BaseException:
            self.signals.restore()
            raise
        self.tracker, self.log = self.opened.tracker, self.opened.log
        self.runner = TrialRunner(self.pipeline, self.space, self.dataset, self.tracker,
                                  self.reporter, recorded=self.opened.trials)
        self.runner.start -= self.opened.previous_seconds
        self.reporter.search_started(pipeline=self.pipeline, space=self.space,
                                     dataset=self.dataset, total=self.pipeline.tuner.max_trials,
                                     experiment=self.pipeline.experiment, run_id=self.run_id)
        return self

    @property
    def run_id(self) -> str:
        return self.opened.run_id

    @property
    def directory(self) -> str:
        """keras-tuner's project folder for this search (kept until the search finishes)."""
        return str(self.opened.plan.directory)

    def build_tuner(self) -> Any:
        """keras-tuner's tuner: reloaded when resuming a search whose state is on disk."""
        from tunetrack.search.tuners import build_tuner

        reload = parent.tuner_state(self.opened, self.notify)
        tuner = build_tuner(self.runner, self.directory, overwrite=not reload)
        parent.mark_tuner_state(self.opened)
        self.signals.install()  # again: importing TensorFlow or MLflow may have replaced it
        self._undo.enter_context(frozen_gc())
        return tuner

    def fail(self, reason: str) -> None:
        """End the search FAILED with ``reason`` although no exception was raised."""
        self.status, self.failure = RunStatus.FAILED, reason[:1000]

    # -- close ---------------------------------------------------------------------------------
    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(error, KeyboardInterrupt):
            self.status, self.failure = RunStatus.KILLED, interrupt_reason()
        elif error is not None:
            self.status = RunStatus.FAILED
            self.failure = f"{type(error).__name__}: {error}".strip()[:1000]
        try:
            self._record()
        finally:
            self._undo.close()
            self.signals.restore()

    def _record(self) -> None:
        runner, tracker = self.runner, self.tracker
        live.flush()  # the epochs of the trial in flight are kept, however the search ends
        runner.kill_running(self.failure or "search ended")
        trials = runner.trials
        if not self.chief and self.status is not RunStatus.FINISHED:
            # a signal that landed while a trial's run was being created: the run exists, but
            # not yet as the runner's running trial (one query, on an abnormal end only)
            try:
                resume.kill_stale(tracker, self.run_id, self.failure or "search ended",
                                  worker=runner.worker)
            except Exception as exc:  # noqa: BLE001 - the store may be what failed
                self.notify(f"could not check for runs left RUNNING: {exc}")
        if self.chief:
            reason = (self.failure if self.status is RunStatus.KILLED
                      else f"process died; search ended {self.status}")
            resume.kill_stale(tracker, self.run_id, reason or "search ended")
            trials = resume.recorded_trials(tracker, self.run_id, self.pipeline.objective)
        self.result = SearchResult(self.pipeline, tracker.experiment_id, self.run_id, trials,
                                   runner.elapsed(), self.status, runner.stop_reason,
                                   searched=list(self.space.searched()))
        # the search's own figures are drawn while the last trial's files upload
        parent.finish_search(tracker, self.log, self.result, self.failure,
                             before_end=runner.finish_uploads)
        if self.status is RunStatus.FINISHED:  # nothing left to resume
            shutil.rmtree(self.directory, ignore_errors=True)


def aborted(pipeline: Pipeline, last: str | None) -> SearchAborted:
    """keras-tuner's consecutive-failure limit, as the error the CLI reports (exit 1)."""
    return SearchAborted(
        f"search stopped after {pipeline.tuner.max_consecutive_failures} consecutive failed "
        f"trials (tuner.max_consecutive_failures); the last one: {last or '?'}")


def run_search(pipeline: Pipeline, *, reporter: Reporter | None = None, mode: str = "auto",
               notify: Callable[[str], None] | None = None) -> SearchResult:
    """Run (or resume) the search a pipeline describes and record it in MLflow.

    ``mode``: ``"auto"`` resumes an interrupted search of the same files and flags and starts a
    finished one anew, ``"resume"`` insists on resuming, ``"new"`` always starts a new search
    (see :mod:`tunetrack.search.resume`). ``notify`` receives one-line notes ("resuming ...").
    Ctrl-C, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` after the runs are marked KILLED.
    """
    with SearchSession(pipeline, reporter=reporter, mode=mode, notify=notify) as session:
        tuner = session.build_tuner()
        session.runner.warm_up()
        try:
            tuner.search(epochs=pipeline.training.epochs, verbose=0)
        except RuntimeError as exc:
            try:
                kt_internal.check_consecutive_failures(tuner.oracle)
            except RuntimeError:
                trials = session.runner.trials
                raise aborted(pipeline, trials[-1].reason if trials else None) from exc
            raise
    assert session.result is not None
    session.reporter.search_ended(session.result)
    return session.result


