"""``--tuner tpe``: Optuna's TPE sampler behind a keras-tuner oracle (conditional keys, seeds,
duplicates, reload) and a tracked search with rejections."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunetrack import names
from tunetrack.space.pipeline import load_pipeline

from .conftest import write_pipeline


def _space():
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hp.Int("blocks", 1, 2)
    with hp.conditional_scope("blocks", [2]):
        hp.Choice("filters.2", [4, 8, 16])
    hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    hp.Int("units", 8, 64, step=8)
    hp.Fixed("batch_size", 32)
    return hp


def _oracle(folder: Path, *, seed: int = 3, max_trials: int = 20):
    import keras_tuner

    from tunetrack.search.tpe import TPEOracle

    oracle = TPEOracle(objective=keras_tuner.Objective("val_accuracy", "max"),
                       max_trials=max_trials, seed=seed, hyperparameters=_space())
    oracle._set_project_dir(str(folder), "tpe")
    return oracle


def _score(values: dict) -> float:
    """A made-up objective: best at learning_rate 0.01, two blocks with 16 filters."""
    import math

    lr = abs(math.log10(values["learning_rate"]) + 2)
    return 1.0 - 0.2 * lr + (0.1 if values.get("filters.2") == 16 else 0.0)


def _run(oracle, n: int) -> list[dict]:
    seen = []
    for _ in range(n):
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        values = dict(trial.hyperparameters.values)
        seen.append(values)
        oracle.update_trial(trial.trial_id, {"val_accuracy": _score(values)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        oracle.save()  # as the tuner does after each trial
    return seen


def test_inactive_keys_are_never_suggested(tmp_path: Path):
    oracle = _oracle(tmp_path)
    seen = _run(oracle, 16)
    assert len(seen) == 16
    for values in seen:
        assert ("filters.2" in values) == (values["blocks"] == 2), values
        assert values["batch_size"] == 32 and values["units"] % 8 == 0
        assert 1e-4 <= values["learning_rate"] <= 1e-1
    study = oracle.study()
    assert len(study.trials) == 16
    for frozen, values in zip(study.trials, seen, strict=True):  # no inactive key told
        assert ("filters.2" in frozen.params) == ("filters.2" in values), (frozen, values)
        assert "batch_size" not in frozen.params
    # TPE learns: the later half scores better than the random start-up trials
    first, last = seen[:6], seen[-6:]
    assert sum(map(_score, last)) > sum(map(_score, first))


def test_seeded(tmp_path: Path):
    assert _run(_oracle(tmp_path / "a", seed=5), 8) == _run(_oracle(tmp_path / "b", seed=5), 8)
    assert _run(_oracle(tmp_path / "c", seed=6), 8) != _run(_oracle(tmp_path / "d", seed=5), 8)


def test_a_small_space_stops_instead_of_repeating(tmp_path: Path):
    import keras_tuner

    from tunetrack.search.tpe import TPEOracle

    hp = keras_tuner.HyperParameters()
    hp.Choice("optimizer", ["adam", "sgd"])
    oracle = TPEOracle(objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=6,
                       seed=1, hyperparameters=hp)
    oracle._set_project_dir(str(tmp_path), "tpe")
    seen = []
    for _ in range(6):
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            assert trial.status == "STOPPED"
            break
        seen.append(trial.hyperparameters.values["optimizer"])
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert sorted(seen) == ["adam", "sgd"]


def test_reload_rebuilds_the_study(tmp_path: Path):
    first = _oracle(tmp_path)
    _run(first, 7)
    again = _oracle(tmp_path)
    again.reload()
    study = again.study()
    assert len(study.trials) == 7
    assert sorted(t.value for t in study.trials) == sorted(
        t.score for t in first.trials.values())
    more = _run(again, 3)
    assert len(more) == 3 and len(again.study().trials) == 10


def test_a_failed_trial_is_told_as_failed(tmp_path: Path):
    import optuna

    oracle = _oracle(tmp_path)
    trial = oracle.create_trial("tuner0")
    trial.status = "FAILED"
    trial.message = "boom"
    oracle.end_trial(trial)
    assert [t.state for t in oracle.study().trials] == [optuna.trial.TrialState.FAIL]


REJECTING_SPACE = """\
family: cnn
blocks:
  count: {int: [1, 3]}
  filters: {choice: [4, 128]}
  kernel_size: 3
  padding: valid
  pooling: max
dense: 0
learning_rate: 0.01
constraints: {max_params: 20000}
"""


@pytest.mark.slow
def test_a_tpe_search_tracks_trials_and_rejections(store, workdir: Path):
    from tunetrack.search.session import run_search

    pipeline = load_pipeline(write_pipeline(workdir, space=REJECTING_SPACE, trials=2, epochs=1,
                                            tuner="tpe"))
    assert pipeline.tuner.kind == "tpe"
    result = run_search(pipeline)
    statuses = [t.status.value for t in result.trials]
    assert statuses.count("completed") == 2, statuses
    assert statuses.count("rejected") >= 1, statuses
    for record in result.trials:
        run = store.get_run(record.run_id)
        assert run.data.tags[names.TAG_TUNER] == "tpe"
        if record.status.value == "completed":
            assert "blocks.3.filters" not in run.data.params or run.data.params["blocks"] == "3"


class StopAt:
    """A reporter that stops the search (as Ctrl-C would) during trial ``n``'s first epoch."""

    def __init__(self, n: int) -> None:
        from tunetrack.search.progress import Reporter

        self.base, self.n, self.started = Reporter(), n, 0

    def __getattr__(self, name: str):
        return getattr(self.base, name)

    def trial_started(self, **kwargs) -> None:
        self.started += 1

    def epoch_ended(self, **kwargs) -> None:
        if self.started == self.n:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_an_interrupted_tpe_search_resumes(store, workdir: Path):
    from tunetrack.search.session import run_search

    pipeline = load_pipeline(write_pipeline(workdir, trials=3, epochs=1, tuner="tpe"))
    with pytest.raises(KeyboardInterrupt):
        run_search(pipeline, reporter=StopAt(3))
    result = run_search(pipeline, mode="resume")
    trained = [t for t in result.trials if t.status.value == "completed"]
    assert len(trained) == 3
    assert len({t.trial_id for t in trained}) == 3
    candidates = [tuple(sorted(t.candidate.items())) for t in trained]
    assert len(set(candidates)) == 3  # the reloaded oracle proposes nothing twice
