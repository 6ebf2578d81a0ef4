"""The search session's lifecycle, the trial runner's bookkeeping and the oracle's budget.

No model is trained here: the session is opened and closed around a body that fails, is
interrupted or does nothing, and the records are read back through MlflowClient.
"""

from __future__ import annotations

import gc
import math
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from tunetrack import names
from tunetrack.names import TrialStatus
from tunetrack.search.records import REJECTED_METRIC, TrialRecord
from tunetrack.search.session import SearchSession
from tunetrack.search.trial import TrialRunner
from tunetrack.space.pipeline import load_pipeline

from .conftest import write_pipeline


def _parent(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id],
                              f"tags.`{names.TAG_ROLE}` = '{names.ROLE_SEARCH}'")
    assert len(runs) == 1
    return runs[0]


def test_a_failing_body_leaves_a_failed_search_with_its_reason(store, workdir: Path):
    pipeline = load_pipeline(write_pipeline(workdir))
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(ValueError, match="boom"), SearchSession(pipeline) as session:
        assert signal.getsignal(signal.SIGTERM) is not before
        raise ValueError("boom")
    assert signal.getsignal(signal.SIGTERM) is before
    run = _parent(store, "tiny")
    assert run.info.status == "FAILED"
    assert run.data.tags[names.TAG_REASON] == "ValueError: boom"
    assert run.data.tags[names.TAG_DIRECTION] == "max"
    assert session.result is not None and session.result.status == "FAILED"
    assert run.data.metrics[names.METRIC_TRIALS_COMPLETED] == 0


def test_an_interrupt_after_the_tuner_is_built_is_killed_and_unfreezes_gc(store, workdir: Path):
    pipeline = load_pipeline(write_pipeline(workdir))
    frozen = gc.get_freeze_count()
    with pytest.raises(KeyboardInterrupt), SearchSession(pipeline) as session:
        session.build_tuner()
        assert gc.get_freeze_count() > frozen
        raise KeyboardInterrupt
    assert gc.get_freeze_count() == frozen
    run = _parent(store, "tiny")
    assert run.info.status == "KILLED"
    assert run.data.tags[names.TAG_REASON] == "interrupted (Ctrl-C)"
    # an interrupted search keeps keras-tuner's state for --resume
    assert Path(session.directory, "search.json").is_file()



def test_a_search_killed_mid_save_keeps_the_oracle_it_had(store, workdir: Path, monkeypatch):
    """A search alone writes keras-tuner's oracle.json as the parallel chief does: to a
    temporary file renamed over the old one, so a kill mid-write leaves the last good state."""
    import json

    from keras_tuner.src.engine.stateful import Stateful

    pipeline = load_pipeline(write_pipeline(workdir))
    with pytest.raises(KeyboardInterrupt), SearchSession(pipeline) as session:
        oracle = session.build_tuner().oracle
        oracle.save()
        path = Path(oracle._get_oracle_fname())
        before = json.loads(path.read_text())

        def dies_mid_write(self, fname):
            Path(fname).write_text('{"half": ')  # what a kill -9 mid-write leaves
            raise KeyboardInterrupt

        monkeypatch.setattr(Stateful, "save", dies_mid_write)
        oracle.save()
    assert json.loads(path.read_text()) == before

def test_fail_without_an_exception(store, workdir: Path):
    pipeline = load_pipeline(write_pipeline(workdir))
    with SearchSession(pipeline) as session:
        session.fail("every worker failed (exit statuses {'tuner0': 1})")
    run = _parent(store, "tiny")
    assert run.info.status == "FAILED"
    assert run.data.tags[names.TAG_REASON].startswith("every worker failed")


def test_nothing_is_written_when_the_data_is_bad(store, workdir: Path):
    from tunetrack.errors import DataError

    pipeline = load_pipeline(write_pipeline(workdir)).override(data=str(workdir / "missing"))
    with pytest.raises(DataError), SearchSession(pipeline):
        pass
    assert store.get_experiment_by_name("tiny") is None


# -- the trial runner ------------------------------------------------------------------------
def _runner(objective: str, direction: str, scores: list[float], classes: int = 10):
    pipeline = SimpleNamespace(objective=objective, direction=direction, constraints=None,
                               tuner=SimpleNamespace(max_minutes=None))
    space = SimpleNamespace(family="cnn", constraints=SimpleNamespace(merged=lambda c: None))
    dataset = SimpleNamespace(class_names=[str(i) for i in range(classes)])
    trials = [TrialRecord(str(i), TrialStatus.COMPLETED, {}, objective=s)
              for i, s in enumerate(scores)]
    trials.append(TrialRecord("r", TrialStatus.REJECTED, {}, reason="too big"))
    return TrialRunner(pipeline, space, dataset, None, None, recorded=trials)  # type: ignore


@pytest.mark.parametrize("objective, direction, scores, expected", [
    ("val_accuracy", "max", [], 0.1),              # chance: 1 / 10 classes
    ("val_accuracy", "max", [0.9, 0.05], 0.05),    # a trial worse than chance
    ("val_loss", "min", [], math.log(10)),         # chance: ln 10, not an arbitrary 1e3
    ("val_loss", "min", [0.3, 0.5], math.log(10)),
    ("val_loss", "min", [0.3, 7.0], 7.0),          # a diverged trial
])
def test_a_rejection_scores_like_chance_or_the_worst_trial(objective, direction, scores,
                                                           expected):
    runner = _runner(objective, direction, scores)
    assert runner.penalty() == pytest.approx(expected)
    seen = scores + [expected]
    # the score lies within what the oracle has seen plus the chance level: the Bayesian
    # oracle's model of the objective keeps its scale
    assert min(seen) <= runner.penalty() <= max(seen + [math.log(10)])


def test_best_ignores_rejected_and_follows_the_direction():
    assert _runner("val_loss", "min", [0.4, 0.2, 0.3]).best().objective == 0.2
    assert _runner("val_accuracy", "max", [0.4, 0.9, 0.3]).best().objective == 0.9
    assert _runner("val_accuracy", "max", []).best() is None


def test_time_budget_stops_the_oracle(monkeypatch):
    from tunetrack.search import trial as trial_module

    now = [100.0]
    monkeypatch.setattr(trial_module, "clock", lambda: now[0])
    runner = _runner("val_accuracy", "max", [0.5])
    runner.pipeline.tuner.max_minutes = 1
    oracle = SimpleNamespace(trials={"0": 1, "1": 2}, max_trials=10)
    tuner = SimpleNamespace(oracle=oracle)
    runner.check_budget(tuner)
    assert oracle.max_trials == 10 and runner.stop_reason is None
    now[0] += 61
    runner.check_budget(tuner)
    assert oracle.max_trials == 2
    assert runner.stop_reason == "the 1-minute budget (--max-minutes) was used up"


# -- the oracle's budget -----------------------------------------------------------------------
def test_rejections_extend_the_budget_up_to_max_rejected(tmp_path):
    import keras_tuner

    from tunetrack.search.tuners import budget_oracle, stop_oracle

    hp = keras_tuner.HyperParameters()
    hp.Int("units", 1, 100)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=2,
        hyperparameters=hp, seed=1)
    oracle._set_project_dir(str(tmp_path), "budget")
    budget_oracle(oracle, budget=2, max_rejected=1)
    assert oracle.max_trials == 2
    for rejected in (True, True, False):
        trial = oracle.create_trial("tuner0")
        metrics = {"val_accuracy": 0.1, **({REJECTED_METRIC: 1.0} if rejected else {})}
        oracle.update_trial(trial.trial_id, metrics)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert oracle.max_trials == 3  # 2 trained + at most 1 rejection
    stop_oracle(oracle)
    assert oracle.max_trials == len(oracle.trials) == 3
    trial = oracle.create_trial("tuner0")
    assert trial.status == "STOPPED"
