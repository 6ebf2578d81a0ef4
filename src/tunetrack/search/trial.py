"""One trial, from the oracle's proposal to its MLflow record.

Every candidate the oracle proposes is planned first (pure arithmetic, milliseconds). An
impossible or over-budget candidate is *rejected*: recorded in MLflow with its reason, reported
to the oracle as a completed trial scored like a model that learned nothing (see
:meth:`TrialRunner.penalty`), and the trial budget is extended by one, so ``max_trials`` counts
trained models and keras-tuner's consecutive-failure limit is not touched. A candidate that
raises while building or training, or whose loss becomes NaN, is *failed*: recorded with its
reason and traceback, and keras-tuner is told through ``FailedTrialError`` (it stops after
``max_consecutive_failures``).

The same :class:`TrialRunner` serves a search alone, and each worker of a parallel one.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable
from typing import Any

from tunetrack import names
from tunetrack.errors import CandidateRejected
from tunetrack.names import RunStatus, TrialStatus
from tunetrack.search import repeats, runnames
from tunetrack.search.progress import Reporter
from tunetrack.search.records import HYPERBAND_KEYS, REJECTED_METRIC, TrialRecord, best_of
from tunetrack.space.pipeline import Pipeline

_log = logging.getLogger("tunetrack")
# The search's clock (seconds); a test replaces it to make the time budget deterministic.
clock: Callable[[], float] = time.perf_counter


class TrialRunner:
    """State shared by the keras-tuner hooks of one search process (see ``tuners.TrialHost``)."""

    def __init__(self, pipeline: Pipeline, space: Any, dataset: Any, tracker: Any,
                 reporter: Reporter, *, recorded: list[TrialRecord] | None = None,
                 worker: str | None = None) -> None:
        self.pipeline, self.space, self.dataset = pipeline, space, dataset
        self.tracker, self.reporter = tracker, reporter
        self.family: str = space.family
        self.num_classes = len(dataset.class_names)
        self.constraints = space.constraints.merged(pipeline.constraints)
        # Trials MLflow already holds (a resumed search): counted, and never trained again.
        self.trials: list[TrialRecord] = list(recorded or [])
        self.recorded = {t.trial_id: t for t in self.trials}
        self.worker = worker
        self.start = clock()
        self.stop_reason: str | None = None
        self.running: tuple[TrialRecord, str] | None = None
        self.last_model: Any = None
        self.macro_f1: Any = None  # set by the hypermodel's build (search/tuners.py)
        self.batch_size_override: int | None = None  # search/oom.py, read by tuners.py's fit
        self.repeat_of: str | None = None  # the candidate's run while a seed repeat trains
        self.fit_seed: int | None = None  # a seed repeat's seed (shuffling of streamed data)
        self.repeat_number: int | None = None  # the seed repeat training (from 1)
        self.pruned: Any = None  # the pruning.Verdict that stopped the running trial (tuners.py)
        self.uploads: Any = None  # background.BackgroundUploads, made by warm_up()
        self._features: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        self.trained = sum(t.status.is_trained() for t in self.trials)

    # -- helpers ---------------------------------------------------------------------------
    def candidate(self, hp: Any) -> dict[str, Any]:
        candidate: dict[str, Any] = self.space.declare(hp.copy())
        return candidate

    def inputs(self, candidate: dict[str, Any]) -> tuple[Any, Any]:
        """Training and validation inputs; feature families extract once per feature setting."""
        from tunetrack import models

        if self.dataset.x_train.ndim == 4 and models.input_shape(
                self.family, candidate, self.dataset.image_shape) == self.dataset.image_shape:
            return self.dataset.x_train, self.dataset.x_val
        from tunetrack.search import classic_trial  # cached per feature setting (H15)

        return classic_trial.inputs(self, candidate)

    def penalty(self) -> float:
        """A rejected candidate's score for the oracle: no better than chance, nor than the
        worst trained trial.

        It stays within the range of scores the oracle has seen (plus the chance level), so a
        Bayesian oracle's model of the objective is not stretched by an arbitrary constant: a
        rejection reads as "as bad as a model that learned nothing" (accuracy ``1/C``,
        cross-entropy ``ln C``). keras-tuner's own failed/invalid path is not used because it
        counts towards ``max_consecutive_failed_trials`` and would end a search whose space is
        mostly over budget.
        """
        scores = [float(t.objective) for t in self.trials
                  if t.status is TrialStatus.COMPLETED and t.objective is not None]
        chance = names.chance_score(self.pipeline.objective, self.num_classes)
        floor = scores + ([chance] if chance is not None else [])
        if not floor:
            return 0.0
        return min(floor) if self.pipeline.direction == "max" else max(floor)

    def elapsed(self) -> float:
        """Seconds since the search started (a resumed search counts its earlier time)."""
        return clock() - self.start

    def best(self) -> TrialRecord | None:
        return best_of(self.trials, self.pipeline.direction)

    def shown(self, candidate: dict[str, Any]) -> dict[str, Any]:
        searched = set(self.space.searched())
        return {k: v for k, v in candidate.items() if k in searched}

    def preprocessing(self, candidate: dict[str, Any]) -> dict[str, Any]:
        """How raw images become this trial's model input: logged beside the model."""
        from tunetrack import models

        return {"family": self.family, "candidate": candidate,
                "image_shape": list(self.dataset.image_shape),
                "color_mode": "grayscale" if self.dataset.image_shape[-1] == 1 else "rgb",
                "class_names": list(self.dataset.class_names),
                "outputs_probabilities": models.outputs_probabilities(self.family, candidate),
                "source": self.dataset.source, "scaling": "pixel / 255"}

    def trial_tags(self) -> dict[str, Any]:
        from tunetrack.models import device_tag, precision_policy

        return {names.TAG_FAMILY: self.family, names.TAG_TUNER: self.pipeline.tuner.kind,
                names.TAG_SEED: self.pipeline.tuner.seed, names.TAG_WORKER: self.worker,
                names.TAG_DEVICE: device_tag(),
                names.TAG_PRECISION: precision_policy(self.pipeline.training.mixed_precision)}

    def replay(self, trial_id: str) -> dict[str, float] | None:
        """The oracle hands out a trial MLflow already finished: report it, do not train it."""
        from keras_tuner.errors import FailedTrialError

        done = self.recorded.pop(trial_id, None)
        if done is None:
            return None
        if done.status.is_trained() and done.objective is not None:
            return {self.pipeline.objective: float(done.objective)}
        if done.status is TrialStatus.REJECTED:
            return {self.pipeline.objective: self.penalty(), REJECTED_METRIC: 1.0}
        raise FailedTrialError(done.reason or "failed")

    # -- one trial ---------------------------------------------------------------------------
    def run_trial(self, tuner: Any, trial: Any, fit: Callable[[], Any]) -> Any:
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
        plan = None
        try:
            plan = plan_candidate(self.family, candidate, self.dataset.image_shape,
                                  self.num_classes)
            check_constraints(plan, self.constraints)
            from tunetrack.search import classic_trial

            classic_trial.check(self.family, candidate, self.dataset)
        except CandidateRejected as exc:
            self._record_rejected(trial.trial_id, candidate, exc, t0, extra, plan)
            return {self.pipeline.objective: self.penalty(), REJECTED_METRIC: 1.0}

        record = TrialRecord(trial.trial_id, TrialStatus.COMPLETED, candidate,
                             params_total=plan.total_params)
        log = self.tracker.start_trial(trial.trial_id, runnames.running_name(trial.trial_id),
                                       self.trial_tags())
        record.run_id = log.run_id
        self.running = (record, log.run_id)  # before any other write: a signal may land there
        log.params(candidate).params(extra).flush()
        self.batch_size_override = None  # out of memory: halved once (search/oom.py)
        try:  # seeded by trial id; once, or once per seed repeat (search/repeats.py)
            histories, history, repeated = repeats.train(self, record, log, fit, number)
        except Exception as exc:  # a failed trial must never end the search by itself
            self.running = None
            self._record_failed(record, log, exc, t0)
            raise FailedTrialError(record.reason) from exc
        self.running = None
        self._record_completed(record, log, history, plan, t0, repeated)
        return histories

    def _finish(self, record: TrialRecord) -> None:
        self.trials.append(record)
        self.reporter.trial_ended(record, best=self.best(), elapsed=self.elapsed())

    def _outcome_tags(self, record: TrialRecord, **description: Any) -> dict[str, Any]:
        """Name, short reason and description of a finished trial (see ``runnames``)."""
        planned = self.pipeline.training.epochs
        tags = {names.TAG_TRIAL_STATUS: record.status.value,
                names.TAG_RUN_NAME: runnames.trial_run_name(record, epochs_planned=planned),
                names.TAG_NOTE: runnames.trial_description(
                    record, self.pipeline.objective, epochs_planned=planned, **description)}
        if record.reason:
            tags[names.TAG_REASON] = runnames.short_reason(record.reason)
        return tags

    def _record_rejected(self, trial_id: str, candidate: dict[str, Any], exc: CandidateRejected,
                         t0: float, extra: dict[str, Any], plan: Any = None) -> None:
        record = TrialRecord(trial_id, TrialStatus.REJECTED, candidate, reason=exc.reason)
        tags = self._outcome_tags(record)
        if plan is not None:  # it broke a budget: the plan shows which layer
            tags[names.TAG_NOTE] += " `plan.txt` lists every layer's shape and parameters."
        log = self.tracker.start_trial(trial_id, tags[names.TAG_RUN_NAME], {
            **self.trial_tags(), **tags, names.TAG_REJECT_KIND: exc.kind})
        record.run_id = log.run_id
        log.params(candidate).params(extra).flush()
        if plan is not None:
            self.tracker.log_text(log.run_id, plan.table(), "plan.txt")
        self.tracker.end_run(log.run_id, RunStatus.FINISHED)
        record.seconds = time.perf_counter() - t0
        self._finish(record)

    def _record_failed(self, record: TrialRecord, log: Any, exc: BaseException,
                       t0: float) -> None:
        record.status = TrialStatus.FAILED
        record.reason = f"{type(exc).__name__}: {exc}".strip()[:500]
        record.seconds = time.perf_counter() - t0
        log.tags(self._outcome_tags(record)).metric(names.METRIC_TRAIN_SECONDS,
                                                    record.seconds).flush()
        self.tracker.log_text(log.run_id, "".join(traceback.format_exception(exc)),
                              "traceback.txt")
        self.tracker.end_run(log.run_id, RunStatus.FAILED)
        self._finish(record)

    def _record_completed(self, record: TrialRecord, log: Any, history: Any, plan: Any,
                          t0: float, repeated: repeats.Repeated | None = None) -> None:
        record.seconds = time.perf_counter() - t0
        steps = [int(e) + 1 for e in history.epoch]  # epochs count from 1 (names.py)
        objective = self.pipeline.objective
        series = history.history
        # the curves reached MLflow epoch by epoch (search/live.py)
        pick = max if self.pipeline.direction == "max" else min
        best_index = series[objective].index(pick(series[objective]))
        record.objective = float(series[objective][best_index])
        record.epochs = len(steps)
        if self.pruned is not None:  # tuner.pruning stopped it (search/pruning.py)
            record.status, record.reason = TrialStatus.PRUNED, self.pruned.reason
            log.metric(names.METRIC_PRUNED_AT, self.pruned.epoch).tags(
                {names.TAG_PRUNER: self.pruned.kind})
        model = self.last_model
        total = int(model.count_params()) if model is not None else plan.total_params
        trainable = (int(sum(math.prod(w.shape) for w in model.trainable_weights))
                     if model is not None else plan.trainable_params)
        record.params_total = total
        for key, values in series.items():
            record.metrics[f"best_{key}"] = float(min(values) if "loss" in key else max(values))
            record.metrics[f"final_{key}"] = float(values[-1])
        record.metrics[objective] = record.objective
        if repeated is not None:  # seed repeats: the candidate scores their mean
            repeated.apply(record, objective)
        # The scores also go on the trial's LoggedModel (the experiment's Models tab), the
        # objective under its own name: search_logged_models(order_by=metrics.val_accuracy).
        scores = {names.METRIC_PARAMS_TOTAL: total, **record.metrics}
        log.metrics({names.METRIC_PARAMS_TRAINABLE: trainable, names.METRIC_FLOPS: plan.flops,
                     names.METRIC_TRAIN_SECONDS: record.seconds,
                     names.METRIC_BEST_EPOCH: steps[best_index],
                     names.METRIC_EPOCHS_TRAINED: len(steps)})
        log.tags(self._outcome_tags(record, best_epoch=steps[best_index]))
        if model is None:
            log.metrics(scores)
        log.flush()
        if model is not None:
            from tunetrack.search import classic_trial
            from tunetrack.tracking import artifacts

            self.warm_up()
            _, x_val = self.inputs(record.candidate)
            artifacts.log_trial(self.tracker, log.run_id, model=model, plan=plan,
                                history=history, x_val=x_val, y_val=self.dataset.y_val,
                                preprocessing=self.preprocessing(record.candidate),
                                uploads=self.uploads, scores=scores,
                                model_params=record.candidate,
                                model_extras=classic_trial.model_extras(self, record.candidate))
        self.tracker.end_run(log.run_id, RunStatus.FINISHED)
        self.trained += 1
        self.last_model = None
        self._finish(record)

    # -- around the trials ---------------------------------------------------------------------
    def warm_up(self) -> None:
        """Start the uploads child and pay the first-use costs of logging while trial 1 trains
        (``tracking/background.py``, ``artifacts.warm_up``)."""
        if self.uploads is None:
            import threading

            from tunetrack.tracking import artifacts, background

            self.uploads = background.BackgroundUploads()
            self.uploads.submit(background.ready)
            threading.Thread(target=artifacts.warm_up, name="tunetrack-warm-up",
                             daemon=True).start()

    def finish_uploads(self) -> None:
        """Wait for the figures still being drawn; a failed one is a warning, not a failure."""
        if self.uploads is None:
            return
        for error in self.uploads.drain():
            _log.warning("a trial figure was not saved: %s", error)

    def kill_running(self, reason: str) -> None:
        """Mark the trial in flight KILLED: no run may stay RUNNING after its process ends."""
        if self.running is None:
            return
        from tunetrack.tracking.store import RunLogger

        record, run_id = self.running
        self.running = None
        if self.repeat_of is not None:  # a seed repeat in flight: it, then its candidate
            self.tracker.end_run(run_id, RunStatus.KILLED)
            run_id, self.repeat_of = self.repeat_of, None
        # One batch, retried while SQLite is locked (a reader may hold it as we are stopped).
        record.status, record.reason = TrialStatus.KILLED, reason
        RunLogger(self.tracker.client, run_id).tags(self._outcome_tags(record)).flush()
        self.tracker.end_run(run_id, RunStatus.KILLED)

    def check_budget(self, tuner: Any) -> None:
        """Stop cleanly once ``max_minutes`` has passed: no new trial after the running one."""
        limit = self.pipeline.tuner.max_minutes
        if self.worker is None and limit is not None and self.elapsed() > 60 * limit:
            if self.stop_reason is None:
                self.stop_reason = f"the {limit:g}-minute budget (--max-minutes) was used up"
            from tunetrack.search.tuners import stop_oracle

            stop_oracle(tuner.oracle)
