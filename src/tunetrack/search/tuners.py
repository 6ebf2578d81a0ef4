"""keras-tuner adapters: the hypermodel, the tuner subclass, and the oracle's trial budget.

The tuner calls back into a :class:`TrialHost` (the search's :class:`~tunetrack.search.trial.
TrialRunner`) for everything tunetrack adds: planning and rejecting a candidate, recording the
trial, the time budget. The chief of a parallel search builds the same tuner without training.
"""

from __future__ import annotations

from typing import Any, Protocol

from tunetrack.search import _keras_tuner as kt_internal
from tunetrack.search import live, release
from tunetrack.search.progress import Reporter
from tunetrack.search.records import REJECTED_METRIC
from tunetrack.search.signals import check_interrupted
from tunetrack.space.pipeline import Pipeline


class TrialHost(Protocol):
    """What the tuner needs from the search it runs for."""

    pipeline: Pipeline
    space: Any
    dataset: Any
    family: str
    num_classes: int
    reporter: Reporter
    last_model: Any
    macro_f1: Any  # the compiled MacroF1 metric of the model being trained
    tracker: Any
    running: Any  # (TrialRecord, run id) of the trial being trained
    pruned: Any  # the pruning.Verdict that stopped the running trial, else None
    batch_size_override: int | None  # set by the out-of-memory retry (search/oom.py)
    repeat_number: int | None  # the seed repeat being trained, from 1 (search/repeats.py)

    def candidate(self, hp: Any) -> dict[str, Any]: ...

    def inputs(self, candidate: dict[str, Any]) -> tuple[Any, Any]: ...

    def run_trial(self, tuner: Any, trial: Any, fit: Any) -> Any: ...

    def check_budget(self, tuner: Any) -> None: ...


def stop_oracle(oracle: Any) -> None:
    """No new trial after the running ones; survives the budget hook's next update."""
    oracle.tunetrack_stopped = True
    oracle.max_trials = len(oracle.trials)


def budget_oracle(oracle: Any, budget: int, max_rejected: int) -> None:
    """Make ``oracle`` extend ``max_trials`` by one per rejected trial (up to ``max_rejected``),
    so ``max_trials`` counts trained models. Recomputed from the trials after every finished
    trial, and now (after a reload), inside the oracle's lock."""

    def sync(o: Any) -> None:
        if getattr(o, "tunetrack_stopped", False):
            o.max_trials = len(o.trials)
            return
        rejected = sum(t.metrics.exists(REJECTED_METRIC) for t in o.trials.values())
        o.max_trials = budget + min(rejected, max_rejected)

    kt_internal.after_end_trial(oracle, sync)


def _hypermodel(host: TrialHost) -> Any:
    import keras
    import keras_tuner

    from tunetrack import models
    from tunetrack.data import fit_data

    class EpochReporter(keras.callbacks.Callback):
        def __init__(self, reporter: Reporter, epochs: int) -> None:
            super().__init__()
            self.reporter, self.epochs = reporter, epochs

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            check_interrupted()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.reporter.epoch_ended(epoch=epoch, epochs=self.epochs, logs=dict(logs or {}))

    class LiveEpochs(keras.callbacks.Callback):
        """Each epoch's metrics to MLflow as it ends (search/live.py); then the pruner's say."""

        def __init__(self, run_id: str, pruner: Any) -> None:
            super().__init__()
            self.run_id, self.pruner = run_id, pruner

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = dict(logs or {})
            host._live_run = self.run_id  # type: ignore[attr-defined]
            live.log_epoch(host.tracker.client, self.run_id, epoch + 1, logs)
            verdict = self.pruner.judge(epoch + 1, logs) if self.pruner is not None else None
            if verdict is not None:
                host.pruned = verdict
                self.model.stop_training = True
        # no flush at the fit's end: ending the run writes what the writer holds first

    def live_callback() -> Any:
        """The running trial's live logging and pruning; None when nothing is recording (or
        a later fit of the same run, whose epochs would repeat the steps)."""
        host.pruned = None
        running = getattr(host, "running", None)
        if running is None or running[1] == getattr(host, "_live_run", None):
            return None
        run_id = running[1]
        cfg, pipeline = host.pipeline.tuner.pruning, host.pipeline
        pruner = None
        # with seed repeats the first repeat is the probe: the others train in full
        if cfg.kind != "none" and (host.repeat_number or 1) == 1:
            peers = getattr(host, "_peers", None)
            if peers is None:
                peers = host._peers = live.PeerCurves(  # type: ignore[attr-defined]
                    host.tracker, pipeline.objective)
            pruner = live.TrialPruner(cfg, pipeline.objective, pipeline.direction, peers, run_id)
        return LiveEpochs(run_id, pruner)

    class TunetrackHyperModel(keras_tuner.HyperModel):
        def declare_hyperparameters(self, hp: Any) -> None:
            host.space.declare(hp)

        def build(self, hp: Any) -> Any:
            candidate = host.candidate(hp)
            # keras-tuner's _try_build has just cleared the Keras session; let the previous
            # trial's model go with it.
            host.last_model = None
            shape = models.input_shape(host.family, candidate, host.dataset.image_shape)
            training = host.pipeline.training  # mixed precision, XLA: models/_device.py
            with models.dtype_policy(models.precision_policy(training.mixed_precision)):
                model = models.build_model(host.family, candidate, shape, host.num_classes)
            compiled = models.compile_kwargs(host.family, candidate, host.num_classes)
            model.compile(**compiled, **models.compile_options(training.jit_compile))
            # the MacroF1 (search/imbalance.py reads it); None where the family compiles none
            host.macro_f1 = next((m for m in compiled["metrics"]
                                  if type(m).__name__ == "MacroF1"), None)
            return model

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            from tunetrack.search import classic_trial, imbalance

            candidate = host.candidate(hp)
            x_train, x_val = host.inputs(candidate)
            callbacks = list(kwargs.pop("callbacks", []))
            pipeline = host.pipeline
            if pipeline.tuner.kind != "hyperband":  # its later rounds start from them
                callbacks = kt_internal.without_weight_checkpoints(callbacks)
            if pipeline.training.patience:
                callbacks.append(keras.callbacks.EarlyStopping(
                    monitor=pipeline.objective, mode=pipeline.direction,
                    patience=pipeline.training.patience, restore_best_weights=True))
            callbacks.append(keras.callbacks.TerminateOnNaN())
            if (watch := live_callback()) is not None:
                callbacks.append(watch)
            callbacks.append(EpochReporter(host.reporter, kwargs.get("epochs", 1)))
            for key in ("x", "y", "validation_data", "verbose", "batch_size"):
                kwargs.pop(key, None)
            if classic_trial.uses_sklearn(host.family, candidate):  # scikit-learn, not fit()
                history = classic_trial.fit_sklearn(host, model, candidate, x_train, x_val,
                                                    callbacks)
                host.last_model = model
                return history
            # a folder streamed from disk (data.cache) comes as a keras PyDataset
            train, validation = fit_data(
                x_train, host.dataset.y_train, x_val, host.dataset.y_val,
                int(host.batch_size_override or candidate["batch_size"]),
                seed=getattr(host, "fit_seed", None) or host.pipeline.tuner.seed)
            names_ = list(host.dataset.class_names)  # the recalls first: the rest read them
            callbacks.insert(0, imbalance.macro_f1_callback(host.macro_f1, names_))
            history = model.fit(**train, validation_data=validation,
                                callbacks=callbacks, verbose=0,
                                class_weight=imbalance.class_weights(
                                    pipeline.training.class_weight, host.dataset.y_train,
                                    names_), **kwargs)
            host.last_model = models.served_model(model)  # without training-only outputs
            return history

    return TunetrackHyperModel()


def build_tuner(host: TrialHost, directory: str, *, overwrite: bool = True) -> Any:
    """The keras-tuner tuner; on a chief or alone its oracle counts rejections (``budget_oracle``).

    With ``overwrite=False`` an existing project under ``directory`` is reloaded: its running
    trials go back into keras-tuner's retry queue, so the interrupted trial runs again.
    """
    import keras_tuner

    kt_internal.quiet_failed_trials()
    pipeline = host.pipeline
    cfg = pipeline.tuner
    base = {"random": keras_tuner.RandomSearch, "grid": keras_tuner.GridSearch,
            "bayesian": keras_tuner.BayesianOptimization,
            "hyperband": keras_tuner.Hyperband, "tpe": keras_tuner.Tuner}[cfg.kind]

    class TunetrackTuner(kt_internal.declared_space_tuner(base)):  # type: ignore[misc]
        def declare_space(self, hp: Any) -> None:
            host.space.declare(hp)

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
            before = kt_internal.custom_gradient_names()
            try:
                return host.run_trial(self, trial,
                                      lambda: super(TunetrackTuner, self).run_trial(
                                          trial, *args, **kwargs))
            finally:
                release.release_trial(before)  # TF gradient registry, jax caches, C heap

        def pre_create_trial(self) -> None:
            check_interrupted()
            host.check_budget(self)

    objective = keras_tuner.Objective(pipeline.objective, direction=pipeline.direction)
    common = dict(hypermodel=_hypermodel(host), objective=objective, seed=cfg.seed,
                  max_consecutive_failed_trials=cfg.max_consecutive_failures,
                  executions_per_trial=1, directory=directory,  # repeats: search/repeats.py
                  project_name="search", overwrite=overwrite)
    if cfg.kind == "hyperband":
        tuner = TunetrackTuner(max_epochs=pipeline.training.epochs, factor=cfg.hyperband_factor,
                               **common)
    elif cfg.kind == "tpe":  # an oracle of our own: Optuna's TPE sampler (search/tpe.py)
        from tunetrack.search.tpe import TPEOracle

        oracle = TPEOracle(objective=common.pop("objective"), max_trials=cfg.max_trials,
                           seed=common.pop("seed"), max_consecutive_failed_trials=common.pop(
                               "max_consecutive_failed_trials"))
        tuner = TunetrackTuner(oracle=oracle, **common)
    else:
        tuner = TunetrackTuner(max_trials=cfg.max_trials, **common)
    if hasattr(tuner.oracle, "trials"):  # not a worker's OracleClient
        budget_oracle(tuner.oracle, cfg.max_trials, cfg.max_rejected)
        kt_internal.atomic_saves(tuner.oracle)  # a search killed mid-save can be resumed
    return tuner
