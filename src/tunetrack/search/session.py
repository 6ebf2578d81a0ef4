"""keras-tuner glue: the oracles explore the space, tunetrack plans, trains and records each trial.

Every candidate the oracle proposes is planned first (pure arithmetic, milliseconds). An
impossible or over-budget candidate is *rejected*: recorded in MLflow with its reason, reported
to the oracle as a completed trial with the worst score (so Bayesian optimisation learns to avoid
the region, and keras-tuner's consecutive-failure limit is not touched), and the trial budget is
extended by one, so ``max_trials`` counts trained models. A candidate that raises while building
or training, or whose loss becomes NaN, is *failed*: recorded with its reason and traceback, and
keras-tuner is told through ``FailedTrialError`` (it stops after ``max_consecutive_failures``).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunetrack import names
from tunetrack.errors import CandidateRejected, SearchAborted
from tunetrack.names import TrialStatus
from tunetrack.search.progress import Reporter, format_seconds
from tunetrack.space.pipeline import Pipeline

HYPERBAND_KEYS = ("tuner/epochs", "tuner/initial_epoch", "tuner/bracket", "tuner/round",
                  "tuner/trial_id")
# Reported to the oracle beside the penalty score: the oracle extends its budget per rejection,
# which keeps the count right after a reload and on the chief of a parallel search.
REJECTED_METRIC = "tunetrack_rejected"
INTERRUPTED = threading.Event()


def install_interrupt_handler(*signals: int) -> None:
    """Ctrl-C (and ``signals``) stop the search even when the ``KeyboardInterrupt`` lands where
    Python ignores it (a gc callback of JAX, say): the flag is also checked after every batch and
    before every trial (:func:`check_interrupted`)."""

    def handler(signum: int, frame: Any) -> None:
        INTERRUPTED.set()
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, *signals):
        signal.signal(sig, handler)


def check_interrupted() -> None:
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


@dataclass
class TrialRecord:
    """What became of one trial, as the search summary and the tests see it."""

    trial_id: str
    status: TrialStatus
    candidate: dict[str, Any]
    run_id: str | None = None
    objective: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    params_total: int | None = None
    reason: str | None = None
    seconds: float = 0.0
    epochs: int = 0


@dataclass
class SearchResult:
    pipeline: Pipeline
    experiment_id: str
    parent_run_id: str
    trials: list[TrialRecord]
    elapsed: float
    status: str = "FINISHED"
    stop_reason: str | None = None
    searched: list[str] = field(default_factory=list)

    @property
    def best(self) -> TrialRecord | None:
        done = [t for t in self.trials if t.status is TrialStatus.COMPLETED]
        if not done:
            return None
        sign = 1 if self.pipeline.direction == "max" else -1
        return max(done, key=lambda t: sign * t.objective)

    def count(self, status: TrialStatus) -> int:
        return sum(t.status is status for t in self.trials)

    def reasons(self, status: TrialStatus, top: int = 3) -> list[tuple[str, int]]:
        from collections import Counter

        examples: dict[str, str] = {}
        found: Counter[str] = Counter()
        for t in self.trials:
            if t.status is status and t.reason:
                kind = _reason_kind(t.reason)
                examples.setdefault(kind, t.reason)
                found[kind] += 1
        return [(examples[kind], n) for kind, n in found.most_common(top)]

    def summary_lines(self) -> list[str]:
        lines = [f"search {self.status.lower()} in {format_seconds(self.elapsed)}: "
                 f"{self.count(TrialStatus.COMPLETED)} trained, "
                 f"{self.count(TrialStatus.REJECTED)} rejected, "
                 f"{self.count(TrialStatus.FAILED)} failed"]
        for status in (TrialStatus.REJECTED, TrialStatus.FAILED):
            for reason, n in self.reasons(status):
                lines.append(f"  {status.value} x{n}, e.g. {reason}")
        if self.stop_reason:
            lines.append(f"  stopped early: {self.stop_reason}")
        best = self.best
        if best is not None:
            lines.append(f"best trial {best.trial_id}: {self.pipeline.objective} "
                         f"{best.objective:.4f}, {best.params_total:,} params (run {best.run_id})")
        lines.append(f"search run {self.parent_run_id} in experiment "
                     f"'{self.pipeline.experiment}'")
        return lines


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: the numbers differ, the rule is the same."""
    return re.sub(r"[\d.,]+", "#", reason)


class _Search:
    """State shared by the keras-tuner hooks of one search."""

    def __init__(self, pipeline: Pipeline, space: Any, dataset: Any, tracker: Any,
                 reporter: Reporter, *, recorded: list[TrialRecord] | None = None,
                 worker: str | None = None) -> None:
        self.pipeline, self.space, self.dataset = pipeline, space, dataset
        self.tracker, self.reporter = tracker, reporter
        self.family = space.family
        self.num_classes = len(dataset.class_names)
        self.constraints = space.constraints.merged(pipeline.constraints)
        # Trials MLflow already holds (a resumed search): counted, and never trained again.
        self.trials: list[TrialRecord] = list(recorded or [])
        self.recorded = {t.trial_id: t for t in self.trials}
        self.worker = worker
        self.start = time.perf_counter()
        self.stop_reason: str | None = None
        self.running: tuple[TrialRecord, str] | None = None
        self.last_model: Any = None
        self.uploads: Any = None  # artifacts.BackgroundUploads, made by warm_up()
        self._features: dict[tuple, tuple[Any, Any]] = {}
        self.trained = sum(t.status is TrialStatus.COMPLETED for t in self.trials)

    # -- helpers ---------------------------------------------------------------------------
    def candidate(self, hp: Any) -> dict[str, Any]:
        return self.space.declare(hp.copy())

    def inputs(self, candidate: dict[str, Any]) -> tuple[Any, Any]:
        """Training and validation inputs; feature families extract once per feature setting."""
        from tunetrack import models as families

        if self.dataset.x_train.ndim == 4 and families.input_shape(
                self.family, candidate, self.dataset.image_shape) == self.dataset.image_shape:
            return self.dataset.x_train, self.dataset.x_val
        key = tuple(sorted((k, v) for k, v in candidate.items() if "." not in k))
        if key not in self._features:
            self._features[key] = (families.featurize(self.family, candidate, self.dataset.x_train),
                                   families.featurize(self.family, candidate, self.dataset.x_val))
        return self._features[key]

    def penalty(self) -> float:
        scores = [t.objective for t in self.trials if t.status is TrialStatus.COMPLETED]
        if self.pipeline.direction == "max":
            return min(scores + [0.0])
        return max(scores + [1e3])

    def best(self) -> TrialRecord | None:
        done = [t for t in self.trials if t.status is TrialStatus.COMPLETED]
        sign = 1 if self.pipeline.direction == "max" else -1
        return max(done, key=lambda t: sign * t.objective) if done else None

    def shown(self, candidate: dict[str, Any]) -> dict[str, Any]:
        searched = set(self.space.searched())
        return {k: v for k, v in candidate.items() if k in searched}

    def preprocessing(self, candidate: dict[str, Any]) -> dict[str, Any]:
        """How raw images become this trial's model input: logged beside the model."""
        from tunetrack import models as families

        return {"family": self.family, "candidate": candidate,
                "image_shape": list(self.dataset.image_shape),
                "color_mode": "grayscale" if self.dataset.image_shape[-1] == 1 else "rgb",
                "class_names": list(self.dataset.class_names),
                "outputs_probabilities": families.outputs_probabilities(self.family, candidate),
                "source": self.dataset.source, "scaling": "pixel / 255"}

    def trial_tags(self) -> dict[str, Any]:
        return {names.TAG_FAMILY: self.family, names.TAG_TUNER: self.pipeline.tuner.kind,
                names.TAG_SEED: self.pipeline.tuner.seed, "tunetrack.worker": self.worker}

    def replay(self, trial_id: str) -> dict[str, float] | None:
        """The oracle hands out a trial MLflow already finished: report it, do not train it."""
        from keras_tuner.errors import FailedTrialError

        done = self.recorded.pop(trial_id, None)
        if done is None:
            return None
        if done.status is TrialStatus.COMPLETED:
            return {self.pipeline.objective: float(done.objective)}
        if done.status is TrialStatus.REJECTED:
            return {self.pipeline.objective: self.penalty(), REJECTED_METRIC: 1.0}
        raise FailedTrialError(done.reason or "failed")

    # -- one trial ---------------------------------------------------------------------------
    def run_trial(self, tuner: Any, trial: Any, fit: Any) -> Any:
        from keras_tuner.errors import FailedTrialError

        from tunetrack.space.plan import check_constraints, plan_candidate

        replayed = self.replay(trial.trial_id)
        if replayed is not None:
            return replayed
        hp_values = trial.hyperparameters.values
        candidate = self.candidate(trial.hyperparameters)
        # Weights are seeded by trial id, so a resumed or parallel trial trains as it would have.
        number = int(trial.trial_id) + 1 if trial.trial_id.isdigit() else len(self.trials) + 1
        self.reporter.trial_started(number=self.trained + 1, total=self.pipeline.tuner.max_trials,
                                    trial_id=trial.trial_id, shown=self.shown(candidate))
        t0 = time.perf_counter()
        extra = {k: hp_values[k] for k in HYPERBAND_KEYS if k in hp_values}
        try:
            plan = plan_candidate(self.family, candidate, self.dataset.image_shape,
                                  self.num_classes)
            check_constraints(plan, self.constraints)
        except CandidateRejected as exc:
            self._record_rejected(trial.trial_id, candidate, exc, t0, extra)
            return {self.pipeline.objective: self.penalty(), REJECTED_METRIC: 1.0}

        record = TrialRecord(trial.trial_id, TrialStatus.COMPLETED, candidate,
                             params_total=plan.total_params)
        log = self.tracker.start_trial(trial.trial_id, f"trial-{trial.trial_id}",
                                       self.trial_tags())
        record.run_id = log.run_id
        log.params(candidate).params(extra).flush()
        self.running = (record, log.run_id)
        try:
            import keras

            keras.utils.set_random_seed(self.pipeline.tuner.seed + number)
            histories = fit()
            history = histories[0] if isinstance(histories, list) else histories
            losses = history.history.get("loss", [])
            bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
            if not losses or bad:
                epoch = history.epoch[bad[0]] if bad else 0
                raise FloatingPointError(f"loss became NaN at epoch {epoch + 1}")
        except Exception as exc:  # a failed trial must never end the search by itself
            self.running = None
            self._record_failed(record, log, exc, t0)
            raise FailedTrialError(record.reason) from exc
        self.running = None
        self._record_completed(record, log, history, plan, t0)
        return histories

    def _finish(self, record: TrialRecord) -> None:
        self.trials.append(record)
        self.reporter.trial_ended(record, best=self.best(),
                                  elapsed=time.perf_counter() - self.start)

    def _record_rejected(self, trial_id: str, candidate: dict, exc: CandidateRejected,
                         t0: float, extra: dict) -> None:
        record = TrialRecord(trial_id, TrialStatus.REJECTED, candidate, reason=exc.reason)
        log = self.tracker.start_trial(trial_id, f"trial-{trial_id}", {
            **self.trial_tags(), names.TAG_TRIAL_STATUS: TrialStatus.REJECTED.value,
            names.TAG_REASON: exc.reason, "tunetrack.reject_kind": exc.kind})
        record.run_id = log.run_id
        log.params(candidate).params(extra).flush()
        self.tracker.end_run(log.run_id, "FINISHED")
        record.seconds = time.perf_counter() - t0
        self._finish(record)

    def _record_failed(self, record: TrialRecord, log: Any, exc: BaseException,
                       t0: float) -> None:
        record.status = TrialStatus.FAILED
        record.reason = f"{type(exc).__name__}: {exc}".strip()[:500]
        record.seconds = time.perf_counter() - t0
        log.tags({names.TAG_TRIAL_STATUS: TrialStatus.FAILED.value,
                  names.TAG_REASON: record.reason}).metric(names.METRIC_TRAIN_SECONDS,
                                                           record.seconds).flush()
        self.tracker.log_text(log.run_id, "".join(traceback.format_exception(exc)),
                              "traceback.txt")
        self.tracker.end_run(log.run_id, "FAILED")
        self._finish(record)

    def _record_completed(self, record: TrialRecord, log: Any, history: Any, plan: Any,
                          t0: float) -> None:
        record.seconds = time.perf_counter() - t0
        steps = list(history.epoch)
        objective = self.pipeline.objective
        series = history.history
        for key, values in series.items():
            log.series(key, [float(v) for v in values], steps)
        pick = max if self.pipeline.direction == "max" else min
        best_index = series[objective].index(pick(series[objective]))
        record.objective = float(series[objective][best_index])
        record.epochs = len(steps)
        model = self.last_model
        total = int(model.count_params()) if model is not None else plan.total_params
        trainable = (int(sum(math.prod(w.shape) for w in model.trainable_weights))
                     if model is not None else plan.trainable_params)
        record.params_total = total
        for key, values in series.items():
            record.metrics[f"best_{key}"] = float(min(values) if "loss" in key else max(values))
            record.metrics[f"final_{key}"] = float(values[-1])
        record.metrics[objective] = record.objective
        log.metrics({names.METRIC_PARAMS_TOTAL: total, names.METRIC_PARAMS_TRAINABLE: trainable,
                     names.METRIC_FLOPS: plan.flops, names.METRIC_TRAIN_SECONDS: record.seconds,
                     names.METRIC_BEST_EPOCH: steps[best_index] + 1, "epochs_trained": len(steps),
                     **{k: v for k, v in record.metrics.items() if k != objective}})
        log.tags({names.TAG_TRIAL_STATUS: TrialStatus.COMPLETED.value})
        log.flush()
        if model is not None:
            from tunetrack.tracking import artifacts

            self.warm_up()
            _, x_val = self.inputs(record.candidate)
            artifacts.log_trial(self.tracker, log.run_id, model=model, plan=plan,
                                history=history, x_val=x_val, y_val=self.dataset.y_val,
                                preprocessing=self.preprocessing(record.candidate),
                                uploads=self.uploads)
        self.tracker.end_run(log.run_id, "FINISHED")
        self.trained += 1
        self.last_model = None
        self._finish(record)

    def warm_up(self) -> None:
        """Start the uploads thread on the first-use costs of logging (see artifacts.warm_up)."""
        if self.uploads is None:
            from tunetrack.tracking import artifacts

            self.uploads = artifacts.BackgroundUploads()
            self.uploads.submit(artifacts.warm_up)

    def finish_uploads(self) -> None:
        """Wait for the figures still being drawn; a failed one is a warning, not a failure."""
        if self.uploads is None:
            return
        import logging

        for error in self.uploads.drain():
            logging.getLogger("tunetrack").warning("a trial figure was not saved: %s", error)

    def kill_running(self, reason: str) -> None:
        """Mark the trial in flight KILLED: no run may stay RUNNING after its process ends."""
        if self.running is None:
            return
        from tunetrack.tracking.store import RunLogger

        _, run_id = self.running
        self.running = None
        # One batch, retried while SQLite is locked (a reader may hold it as we are stopped).
        RunLogger(self.tracker.client, run_id).tags({
            names.TAG_TRIAL_STATUS: TrialStatus.KILLED.value, names.TAG_REASON: reason}).flush()
        self.tracker.end_run(run_id, "KILLED")

    def check_budget(self, tuner: Any) -> None:
        """Stop cleanly once ``max_minutes`` has passed: no new trial after the running one."""
        limit = self.pipeline.tuner.max_minutes
        if self.worker is None and limit is not None and \
                time.perf_counter() - self.start > 60 * limit:
            if self.stop_reason is None:
                self.stop_reason = f"the {limit:g}-minute budget (--max-minutes) was used up"
            from tunetrack.search.tuners import stop_oracle

            stop_oracle(tuner.oracle)


def prepare(pipeline: Pipeline) -> tuple[Any, Any, Any]:
    """Space, dataset and data config; validation happens before anything is written."""
    from tunetrack.data import DataConfig, load_dataset
    from tunetrack.space.language import load_space

    space = load_space(pipeline.space)
    if pipeline.tuner.kind == "grid" and (why := space.grid_ready()):
        from tunetrack.errors import SpaceError

        raise SpaceError(f"the grid tuner needs finite choices: {why}", file=space.path)
    d = pipeline.data
    data_config = DataConfig(
        source=d.source, image_size=d.image_size, color_mode=d.color_mode,
        validation_split=d.validation_split, test_split=d.test_split, seed=d.seed,
        on_bad_image=d.on_bad_image)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return space, load_dataset(data_config), data_config


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def run_search(pipeline: Pipeline, *, reporter: Reporter | None = None, mode: str = "auto",
               notify: Callable[[str], None] | None = None) -> SearchResult:
    """Run (or resume) the search a pipeline describes and record it in MLflow.

    ``mode``: ``"auto"`` resumes an interrupted search of the same files and flags and starts a
    finished one anew, ``"resume"`` insists on resuming, ``"new"`` always starts a new search
    (see :mod:`tunetrack.resume`). ``notify`` receives one-line notes ("resuming ...").
    """
    from tunetrack.search import parent as searchrun
    from tunetrack.search import tuners

    reporter = reporter or Reporter()
    notify = notify or _stderr
    INTERRUPTED.clear()
    space, dataset, data_config = prepare(pipeline)
    opened = searchrun.open_search(pipeline, space, dataset, data_config, mode=mode,
                                   notify=notify)
    tracker, log = opened.tracker, opened.log
    search = _Search(pipeline, space, dataset, tracker, reporter, recorded=opened.trials)
    search.start -= opened.previous_seconds
    reporter.search_started(pipeline=pipeline, space=space, dataset=dataset,
                            total=pipeline.tuner.max_trials, experiment=pipeline.experiment,
                            run_id=log.run_id)
    directory = str(opened.plan.directory)
    status, failure = "FINISHED", None
    try:
        reload = searchrun.tuner_state(opened, notify)
        tuner = tuners.build_tuner(search, directory, overwrite=not reload)
        searchrun.mark_tuner_state(opened)
        if threading.current_thread() is threading.main_thread():
            install_interrupt_handler()  # again: importing TF/MLflow may have replaced it
        search.warm_up()
        tuner.search(epochs=pipeline.training.epochs, verbose=0)
    except KeyboardInterrupt:
        status, failure = "KILLED", "interrupted (Ctrl-C)"
        raise
    except Exception as exc:
        status, failure = "FAILED", f"{type(exc).__name__}: {exc}".strip()[:1000]
        if "consecutive failures" in str(exc):
            last = search.trials[-1].reason if search.trials else ""
            raise SearchAborted(
                f"search stopped after {pipeline.tuner.max_consecutive_failures} consecutive "
                f"failed trials (tuner.max_consecutive_failures); the last one: {last}") from exc
        raise
    finally:
        search.finish_uploads()
        search.kill_running(failure or "search ended")
        result = SearchResult(pipeline, tracker.experiment_id, log.run_id, search.trials,
                              time.perf_counter() - search.start, status, search.stop_reason,
                              searched=list(space.searched()))
        searchrun.finish_search(tracker, log, result, failure)
        if status == "FINISHED":  # nothing left to resume
            shutil.rmtree(directory, ignore_errors=True)
    reporter.search_ended(result)
    return result
