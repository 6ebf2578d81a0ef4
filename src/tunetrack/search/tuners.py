"""keras-tuner adapters: the hypermodel, the tuner subclass, and the oracle's trial budget.

The tuner calls back into a :class:`TrialHost` (the search's :class:`~tunetrack.search.trial.
TrialRunner`) for everything tunetrack adds: planning and rejecting a candidate, recording the
trial, the time budget. The chief of a parallel search builds the same tuner without training.
"""

from __future__ import annotations

from typing import Any, Protocol

from tunetrack.search import _keras_tuner as kt_internal
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

    class EpochReporter(keras.callbacks.Callback):
        def __init__(self, reporter: Reporter, epochs: int) -> None:
            super().__init__()
            self.reporter, self.epochs = reporter, epochs

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            check_interrupted()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.reporter.epoch_ended(epoch=epoch, epochs=self.epochs, logs=dict(logs or {}))

    class TunetrackHyperModel(keras_tuner.HyperModel):
        def declare_hyperparameters(self, hp: Any) -> None:
            host.space.declare(hp)

        def build(self, hp: Any) -> Any:
            candidate = host.candidate(hp)
            # keras-tuner's _try_build has just cleared the Keras session; let the previous
            # trial's model go with it.
            host.last_model = None
            shape = models.input_shape(host.family, candidate, host.dataset.image_shape)
            model = models.build_model(host.family, candidate, shape, host.num_classes)
            model.compile(**models.compile_kwargs(host.family, candidate))
            return model

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            candidate = host.candidate(hp)
            x_train, x_val = host.inputs(candidate)
            callbacks = list(kwargs.pop("callbacks", []))
            pipeline = host.pipeline
            if pipeline.training.patience:
                callbacks.append(keras.callbacks.EarlyStopping(
                    monitor=pipeline.objective, mode=pipeline.direction,
                    patience=pipeline.training.patience, restore_best_weights=True))
            callbacks.append(keras.callbacks.TerminateOnNaN())
            callbacks.append(EpochReporter(host.reporter, kwargs.get("epochs", 1)))
            for key in ("x", "y", "validation_data", "verbose", "batch_size"):
                kwargs.pop(key, None)
            history = model.fit(x_train, host.dataset.y_train,
                                validation_data=(x_val, host.dataset.y_val),
                                batch_size=int(candidate["batch_size"]), callbacks=callbacks,
                                verbose=0, **kwargs)
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
            "hyperband": keras_tuner.Hyperband}[cfg.kind]

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
                kt_internal.release_trial_graphs(before)

        def pre_create_trial(self) -> None:
            check_interrupted()
            host.check_budget(self)

    objective = keras_tuner.Objective(pipeline.objective, direction=pipeline.direction)
    common = dict(hypermodel=_hypermodel(host), objective=objective, seed=cfg.seed,
                  max_consecutive_failed_trials=cfg.max_consecutive_failures,
                  executions_per_trial=cfg.executions_per_trial, directory=directory,
                  project_name="search", overwrite=overwrite)
    if cfg.kind == "hyperband":
        tuner = TunetrackTuner(max_epochs=pipeline.training.epochs, factor=cfg.hyperband_factor,
                               **common)
    else:
        tuner = TunetrackTuner(max_trials=cfg.max_trials, **common)
    if hasattr(tuner.oracle, "trials"):  # not a worker's OracleClient
        budget_oracle(tuner.oracle, cfg.max_trials, cfg.max_rejected)
    return tuner
