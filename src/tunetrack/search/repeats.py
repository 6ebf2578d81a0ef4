"""Seed repeats: each candidate trained N times (``--repeats N``, ``tuner.repeats``).

Every repeat trains on the same split with its own seed (weights and shuffling:
``keras.utils.set_random_seed``) and is a run nested under the candidate's run (role
``repeat``, its own curves and scores); the candidate's run is, as always, a child of the search
run. The candidate records the mean, standard deviation and 95 % confidence interval of the
objective (:mod:`tunetrack.tracking.significance`), scores ``best_<metric>`` as the mean over
the repeats, and keeps the model and curves of the repeat closest to the mean (a typical model,
not the luckiest). keras-tuner receives every repeat's history and reports the mean objective
to the oracle (its own average over a list of results). Repeat 1 uses the seed a search without
repeats would use, so ``--repeats 1`` trains exactly as before.

With ``tuner.pruning``, repeat 1 is the probe: the pruner judges it as it would a trial without
repeats, and a pruned probe prunes the candidate (one repeat, no others trained). A candidate
whose probe survives trains its other repeats in full, so its mean is over complete runs.

``executions_per_trial`` (keras-tuner's name) means the same; keras-tuner itself is always
given 1, so every training is recorded.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunetrack import names
from tunetrack.names import RunStatus
from tunetrack.search import oom, runnames

SEED_STRIDE = 100_003  # repeat k (from 0) of trial n: seed + n + k * SEED_STRIDE


def seed_for(base: int, number: int, k: int) -> int:
    return base + number + k * SEED_STRIDE


def scores(history: Any) -> dict[str, float]:
    """``best_<key>`` (lowest for losses) and ``final_<key>`` of one training."""
    out: dict[str, float] = {}
    for key, values in history.history.items():
        out[f"best_{key}"] = float(min(values) if "loss" in key else max(values))
        out[f"final_{key}"] = float(values[-1])
    return out


def best_objective(history: Any, objective: str, direction: str) -> tuple[float, int]:
    """The objective's best value and its epoch (from 1)."""
    series = [float(v) for v in history.history[objective]]
    pick = max if direction == "max" else min
    best = pick(series)
    return best, series.index(best) + 1


@dataclass
class Repeat:
    number: int  # from 1
    seed: int
    run_id: str
    history: Any
    model: Any
    score: float
    seconds: float


@dataclass
class Repeated:
    """A candidate's repeats, as the trial's record takes them."""

    repeats: list[Repeat] = field(default_factory=list)

    def stats(self, objective: str | None = None) -> Any:
        """The repeats' scores summarized (``objective`` bounds their interval)."""
        from tunetrack.tracking.significance import summarize

        return summarize([r.score for r in self.repeats], objective)

    def chosen(self, direction: str) -> Repeat:
        """The repeat closest to the mean (ties: the better, then the first)."""
        mean, sign = self.stats().mean, 1.0 if direction == "max" else -1.0
        return min(self.repeats, key=lambda r: (abs(r.score - mean), -sign * r.score, r.number))

    def apply(self, record: Any, objective: str) -> None:
        """The candidate's scores: every ``best_``/``final_`` value is the mean over the
        repeats; the objective is their mean, with the ``repeats/*`` summary beside it."""
        per_repeat = [scores(r.history) for r in self.repeats]
        for key in list(record.metrics):
            values = [s[key] for s in per_repeat if key in s]
            if len(values) == len(per_repeat):
                record.metrics[key] = sum(values) / len(values)
        stats = self.stats(objective)
        record.objective = stats.mean
        record.metrics[objective] = stats.mean
        record.metrics[f"best_{objective}"] = stats.mean
        record.metrics.update(stats.metrics())


def fit_once(runner: Any, fit: Callable[[], Any], seed: int, batch_size: int, log: Any) -> Any:
    """One training seeded with ``seed``; retried once at half batch when out of memory; a NaN
    loss raises ``FloatingPointError``. Returns the History."""
    import keras

    def attempt() -> Any:
        keras.utils.set_random_seed(seed)
        return fit()

    histories = oom.with_retry(runner, attempt, batch_size, log)
    history = histories[0] if isinstance(histories, list) else histories
    losses = history.history.get("loss", [])
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    if not losses or bad:
        epoch = history.epoch[bad[0]] if bad else 0
        raise FloatingPointError(f"loss became NaN at epoch {epoch + 1}")
    return history


def _start(runner: Any, record: Any, parent: str, number: int, seed: int) -> str:
    """Repeat ``number``'s run, the runner's running one (``repeat_of`` the candidate's)
    before its params are written: a signal landing there still finds it to end."""
    from tunetrack.tracking.store import RunLogger, retry_locked

    tracker = runner.tracker
    run = retry_locked(
        tracker.client.create_run, tracker.experiment_id,
        run_name=f"{runnames.trial_label(record.trial_id)} r{number} training",
        tags={names.TAG_PARENT: parent, names.TAG_ROLE: names.ROLE_REPEAT,
              names.TAG_TRIAL_ID: record.trial_id, names.TAG_REPEAT: str(number),
              names.TAG_SEED: str(seed)})
    run_id = str(run.info.run_id)
    runner.running, runner.repeat_of = (record, run_id), parent
    RunLogger(tracker.client, run_id).params(
        {**record.candidate, "repeat": number, "seed": seed}).flush()
    return run_id


def train(runner: Any, record: Any, log: Any, fit: Callable[[], Any],
          number: int) -> tuple[list[Any], Any, Repeated | None]:
    """Train the candidate ``runs_per_candidate`` times; ``(histories for keras-tuner, the
    history the candidate keeps, the repeats or None without repeats)``.

    Each repeat's run is ``runner.running`` while it trains (its epochs go to it live), with
    ``runner.repeat_of`` naming the candidate's run; a repeat that fails ends FAILED and fails
    the candidate with the same error.
    """
    from tunetrack.tracking.store import RunLogger

    pipeline, candidate = runner.pipeline, record.candidate
    batch = int(candidate.get("batch_size", 0) or 0)
    n = pipeline.tuner.runs_per_candidate
    if n <= 1:
        history = fit_once(runner, fit, seed_for(pipeline.tuner.seed, number, 0), batch, log)
        return [history], history, None
    done = Repeated()
    objective, direction = pipeline.objective, pipeline.direction
    for k in range(n):
        seed = seed_for(pipeline.tuner.seed, number, k)
        run_id = _start(runner, record, log.run_id, k + 1, seed)
        runner.fit_seed = seed if k else None  # repeat 1 shuffles as a search without repeats
        runner.repeat_number = k + 1  # tuner.pruning judges repeat 1 only
        t0 = time.perf_counter()
        repeat_log = RunLogger(runner.tracker.client, run_id)
        try:
            history = fit_once(runner, fit, seed, batch, log)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}".strip()[:500]
            repeat_log.tags({names.TAG_REASON: runnames.short_reason(reason),
                             names.TAG_NOTE: reason}).flush()
            runner.tracker.end_run(run_id, RunStatus.FAILED)
            raise
        finally:
            runner.running, runner.repeat_of = (record, log.run_id), None
            runner.fit_seed = runner.repeat_number = None
        score, best_epoch = best_objective(history, objective, direction)
        seconds = time.perf_counter() - t0
        steps = [int(e) + 1 for e in history.epoch]
        repeat_log.metrics({**scores(history), names.METRIC_TRAIN_SECONDS: seconds,
                            names.METRIC_BEST_EPOCH: best_epoch,
                            names.METRIC_EPOCHS_TRAINED: len(steps)})
        if runner.batch_size_override is not None:
            repeat_log.tags({names.TAG_BATCH_SIZE: runner.batch_size_override})
        label = runnames.trial_label(record.trial_id)
        pruned = " pruned" if runner.pruned is not None else ""
        repeat_log.tags({names.TAG_RUN_NAME: f"{label} r{k + 1} {score:.3f}{pruned}"}).flush()
        runner.tracker.end_run(run_id, RunStatus.FINISHED)
        done.repeats.append(Repeat(k + 1, seed, run_id, history, runner.last_model, score,
                                   seconds))
        if runner.pruned is not None:  # the probe was pruned: the candidate is, unrepeated
            break
    chosen = done.chosen(direction)
    runner.last_model = chosen.model
    # The candidate's curves: the kept repeat's (the repeats' own are on their runs).
    steps = [int(e) + 1 for e in chosen.history.epoch]
    for key, values in chosen.history.history.items():
        log.series(names.curve_name(key), [float(v) for v in values], steps)
    log.tags({names.TAG_REPEAT_SCORES: json.dumps([r.score for r in done.repeats]),
              names.TAG_REPEAT_KEPT: chosen.number}).flush()
    return [r.history for r in done.repeats], chosen.history, done
