"""keras-tuner adapters: the hypermodel, the tuner subclass, and an oracle that counts rejections.

Split from :mod:`tunetrack.tuning` (the trial loop) so that the chief of a parallel search can
build the same tuner without training anything.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

from tunetrack.search.progress import Reporter
from tunetrack.search.session import REJECTED_METRIC, check_interrupted

if TYPE_CHECKING:
    from tunetrack.search.session import _Search


def stop_oracle(oracle: Any) -> None:
    """No new trial after the running ones; survives the budget hook's next update."""
    oracle.tunetrack_stopped = True
    oracle.max_trials = len(oracle.trials)


def budget_oracle(oracle: Any, budget: int, max_rejected: int) -> None:
    """Make ``oracle`` extend ``max_trials`` by one per rejected trial (up to ``max_rejected``).

    ``max_trials`` is not part of keras-tuner's saved oracle state, so it is recomputed from the
    trials after every ``end_trial`` (and now, after a reload), inside the oracle's lock.
    """
    from keras_tuner.src.engine.oracle import synchronized

    base = type(oracle)
    if getattr(base, "tunetrack_budgeted", False):
        base = base.__mro__[1]

    class BudgetedOracle(base):  # type: ignore[misc, valid-type]
        tunetrack_budgeted = True

        @synchronized
        def end_trial(self, trial: Any) -> None:
            super().end_trial(trial)
            self.tunetrack_sync_budget()

        def tunetrack_sync_budget(self) -> None:
            if getattr(self, "tunetrack_stopped", False):
                self.max_trials = len(self.trials)
                return
            rejected = sum(t.metrics.exists(REJECTED_METRIC) for t in self.trials.values())
            self.max_trials = budget + min(rejected, max_rejected)

    BudgetedOracle.__name__ = BudgetedOracle.__qualname__ = base.__name__
    oracle.__class__ = BudgetedOracle
    oracle.tunetrack_sync_budget()


def _hypermodel(search: _Search) -> Any:
    import keras
    import keras_tuner

    from tunetrack import models as families

    class TunetrackHyperModel(keras_tuner.HyperModel):
        def declare_hyperparameters(self, hp: Any) -> None:
            search.space.declare(hp)

        def build(self, hp: Any) -> Any:
            candidate = search.candidate(hp)
            # keras-tuner's _try_build has just cleared the Keras session; let the previous
            # trial's model go with it.
            search.last_model = None
            shape = families.input_shape(search.family, candidate, search.dataset.image_shape)
            model = families.build_model(search.family, candidate, shape, search.num_classes)
            model.compile(**families.compile_kwargs(search.family, candidate))
            return model

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            candidate = search.candidate(hp)
            x_train, x_val = search.inputs(candidate)
            callbacks = list(kwargs.pop("callbacks", []))
            pipeline = search.pipeline
            if pipeline.training.patience:
                callbacks.append(keras.callbacks.EarlyStopping(
                    monitor=pipeline.objective, mode=pipeline.direction,
                    patience=pipeline.training.patience, restore_best_weights=True))
            callbacks.append(keras.callbacks.TerminateOnNaN())
            callbacks.append(_EpochReporter(search.reporter, kwargs.get("epochs", 1)))
            for key in ("x", "y", "validation_data", "verbose", "batch_size"):
                kwargs.pop(key, None)
            history = model.fit(x_train, search.dataset.y_train,
                                validation_data=(x_val, search.dataset.y_val),
                                batch_size=int(candidate["batch_size"]), callbacks=callbacks,
                                verbose=0, **kwargs)
            search.last_model = model
            return history

    class _EpochReporter(keras.callbacks.Callback):
        def __init__(self, reporter: Reporter, epochs: int) -> None:
            super().__init__()
            self.reporter, self.epochs = reporter, epochs

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            check_interrupted()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.reporter.epoch_ended(epoch=epoch, epochs=self.epochs, logs=dict(logs or {}))

    return TunetrackHyperModel()


def _gradient_registry() -> dict | None:
    """TensorFlow's process-global gradient registry; None on another backend (or TF moved it)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    try:
        from tensorflow.python.framework import ops
    except ImportError:
        return None
    registry = getattr(getattr(ops, "gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


def _custom_gradient_names() -> set[str]:
    registry = _gradient_registry()
    return {k for k in registry if isinstance(k, str)} if registry is not None else set()


def release_trial_graphs(before: set[str]) -> int:
    """Free the traced train step a finished trial leaves in TensorFlow; returns entries dropped.

    Keras's TensorFlow optimizer all-reduces gradients through the distribute replica context
    even without a strategy; that op is a custom gradient, which registers a closure under a
    new ``CustomGradient-<uid>`` name in TF's global gradient registry on every trace. The
    closure holds the traced graph's tensors, so every trial's ``one_step_on_data`` graph (and
    its optimizer and metric branches) stays alive: ~4.4 MiB a trial, ``clear_session()``
    notwithstanding (tensorflow/tensorflow#97697). An entry is only read while its own graph
    is traced, so once the trial is over the entries it added can go.
    """
    registry = _gradient_registry()
    if registry is None:
        return 0
    stale = [k for k in registry
             if isinstance(k, str) and k.startswith("CustomGradient-") and k not in before]
    for key in stale:
        registry.pop(key, None)
    return len(stale)


def build_tuner(search: _Search, directory: str, *, overwrite: bool = True) -> Any:
    """The keras-tuner tuner; on a chief or alone its oracle counts rejections (``budget_oracle``).

    With ``overwrite=False`` an existing project under ``directory`` is reloaded: its running
    trials go back into keras-tuner's retry queue, so the interrupted trial runs again.
    """
    import keras_tuner
    from keras_tuner.src import config as kt_config

    kt_config.DEBUG = False  # failed trials keep their traceback as an artifact, not on stderr
    pipeline = search.pipeline
    cfg = pipeline.tuner
    base = {"random": keras_tuner.RandomSearch, "grid": keras_tuner.GridSearch,
            "bayesian": keras_tuner.BayesianOptimization,
            "hyperband": keras_tuner.Hyperband}[cfg.kind]

    class TunetrackTuner(base):  # type: ignore[misc, valid-type]
        def _populate_initial_space(self) -> None:
            # Declaring is enough: building models to discover conditional scopes (keras-tuner's
            # default) would cost a Keras build per scope and could fail on impossible defaults.
            hp = self.oracle.get_space()
            search.space.declare(hp)
            self.oracle.update_space(hp)

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
            before = _custom_gradient_names()
            try:
                return search.run_trial(self, trial,
                                        lambda: super(TunetrackTuner, self).run_trial(
                                            trial, *args, **kwargs))
            finally:
                release_trial_graphs(before)

        def pre_create_trial(self) -> None:
            check_interrupted()
            search.check_budget(self)

    objective = keras_tuner.Objective(pipeline.objective, direction=pipeline.direction)
    common = dict(hypermodel=_hypermodel(search), objective=objective, seed=cfg.seed,
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
    # keras-tuner runs gc.collect() before every trial's build. With TensorFlow, MLflow and
    # pandas loaded that walks millions of long-lived objects: ~1.3 s per trial, measured.
    # Freezing them moves them out of the collector's reach; each trial's garbage is still freed.
    gc.freeze()
    return tuner
