"""``tuner.kind: tpe``: Optuna's TPE sampler driving a keras-tuner oracle.

:class:`TPEOracle` is a ``keras_tuner.Oracle``, so TPE gets everything the other tuners have:
tracking, rejection before training (a rejected candidate is told its chance-level penalty
score, like any completed trial), resume and workers (the chief's oracle serves them over
keras-tuner's gRPC). Optuna only proposes values:

- each proposal is one ``study.ask()``; the space is walked in declaration order, as keras-tuner's
  own ``_random_values`` does, and only the hyperparameters active given the values so far are
  suggested, so an inactive block's keys are never sampled nor told (TPE's independent sampler
  models each key on the trials where it was active);
- ``Choice``/``Boolean`` are categorical; ``Int``/``Float`` are sampled on keras-tuner's own
  ``[0, 1)`` coordinate (``prob_to_value``), which keeps its step and log rules exactly, as
  keras-tuner's Bayesian oracle does; ``Fixed`` is never sampled;
- a finished trial is told its score (``tell``); a failed one ``FAIL``;
- after a reload, the study is rebuilt from the finished trials keras-tuner saved (Optuna's
  state is never written), so a resumed search proposes as if it had never stopped;
- a proposal already tried is told the earlier score and asked again (``max_collisions``).
"""

from __future__ import annotations

from typing import Any, Literal

import keras_tuner

from tunetrack.search import _keras_tuner as kt_internal

_CATEGORICAL = ("Choice", "Boolean")
# keras-tuner's trial statuses (plain strings in its public API)
RUNNING, COMPLETED, STOPPED, IDLE = "RUNNING", "COMPLETED", "STOPPED", "IDLE"


def startup_trials(max_trials: int | None) -> int:
    """Random trials before TPE models the objective: Optuna's 10, less for a short search."""
    return max(2, min(10, (max_trials or 30) // 3))


class TPEOracle(keras_tuner.Oracle):
    """A keras-tuner oracle whose proposals come from ``optuna.samplers.TPESampler``."""

    def __init__(self, objective: Any = None, max_trials: int | None = None, *,
                 seed: int | None = None, max_collisions: int = 20,
                 n_startup_trials: int | None = None, **kwargs: Any) -> None:
        super().__init__(objective=objective, max_trials=max_trials, seed=seed, **kwargs)
        self.max_collisions = max_collisions
        self.n_startup_trials = n_startup_trials or startup_trials(max_trials)
        self._study: Any = None
        self._asked: dict[str, Any] = {}  # keras-tuner trial id -> optuna trial
        self._told: set[str] = set()

    # -- optuna ---------------------------------------------------------------------------------
    def _direction(self) -> Literal["maximize", "minimize"]:
        return "maximize" if self.objective.direction == "max" else "minimize"

    def study(self) -> Any:
        """The optuna study; built (and rebuilt from saved trials) on first use."""
        if self._study is None:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            sampler = optuna.samplers.TPESampler(seed=self.seed,
                                                 n_startup_trials=self.n_startup_trials,
                                                 constant_liar=True)
            self._study = optuna.create_study(direction=self._direction(), sampler=sampler)
        for trial_id in list(self.start_order):
            trial = self.trials.get(trial_id)
            if trial is not None and trial_id not in self._told and trial_id not in self._asked \
                    and trial.status != RUNNING:
                self._add_finished(trial)
        return self._study

    def _distribution(self, hp: Any) -> Any:
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        if type(hp).__name__ in _CATEGORICAL:
            return CategoricalDistribution(list(hp.values))
        return FloatDistribution(0.0, 1.0)

    def _suggest(self, ask: Any) -> dict[str, Any]:
        """One candidate: active hyperparameters only, in declaration order."""
        hps = keras_tuner.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            kind = type(hp).__name__
            if kind == "Fixed":
                hps.values[hp.name] = hp.value
            elif kind in _CATEGORICAL:
                hps.values[hp.name] = ask.suggest_categorical(hp.name, list(hp.values))
            else:
                u = ask.suggest_float(hp.name, 0.0, 1.0)
                hps.values[hp.name] = hp.prob_to_value(min(u, 1.0 - 1e-12))
        return hps.values

    def _params(self, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """keras-tuner values as optuna params and distributions (the inverse of _suggest)."""
        params, dists = {}, {}
        for hp in self.hyperparameters.space:
            if hp.name not in values or type(hp).__name__ == "Fixed":
                continue
            dist = self._distribution(hp)
            value = values[hp.name]
            if type(hp).__name__ not in _CATEGORICAL:
                value = min(max(float(hp.value_to_prob(value)), 0.0), 1.0)
            elif value not in dist.choices:
                continue
            params[hp.name], dists[hp.name] = value, dist
        return params, dists

    def _score(self, trial: Any) -> float | None:
        if trial.status != COMPLETED or trial.score is None:
            return None
        return float(trial.score)

    def _add_finished(self, trial: Any) -> None:
        """A trial optuna did not ask for (reloaded, or retried after a dead worker)."""
        import optuna

        params, dists = self._params(trial.hyperparameters.values)
        score = self._score(trial)
        state = optuna.trial.TrialState.COMPLETE if score is not None else \
            optuna.trial.TrialState.FAIL
        self._study.add_trial(optuna.trial.create_trial(
            params=params, distributions=dists, value=score, state=state))
        self._told.add(trial.trial_id)

    # -- keras-tuner ------------------------------------------------------------------------------
    def populate_space(self, trial_id: str) -> dict[str, Any]:
        import optuna

        study = self.study()
        for _ in range(self.max_collisions + 1):
            ask = study.ask()
            values = self._suggest(ask)
            tried, earlier = kt_internal.tried_before(self, values)
            if not tried:
                self._asked[trial_id] = ask
                return {"status": RUNNING, "values": values}
            score = self._score(earlier) if earlier is not None else None
            if score is None:
                study.tell(ask, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(ask, score)
        return {"status": STOPPED, "values": None}

    @keras_tuner.synchronized
    def end_trial(self, trial: Any) -> None:
        super().end_trial(trial)
        import optuna

        done = self.trials[trial.trial_id]
        if done.status in (RUNNING, IDLE):
            return  # sent back for a retry: told when it really ends
        study = self.study()  # (after a reload, this may tell it already)
        if trial.trial_id in self._told:
            return
        ask = self._asked.pop(trial.trial_id, None)
        if ask is None:
            self._add_finished(done)
            return
        score = self._score(done)
        if score is None:
            study.tell(ask, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(ask, score)
        self._told.add(trial.trial_id)


__all__ = ["TPEOracle", "startup_trials"]
