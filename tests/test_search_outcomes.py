"""Rejected, failed and aborted trials; every tuner; the artifacts a search leaves behind."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tunetrack import names
from tunetrack.errors import SearchAborted
from tunetrack.space.pipeline import load_pipeline

from .conftest import fail_first_build, write_pipeline

pytestmark = pytest.mark.slow

# Half the candidates are too big (128 filters) and 3 valid-padded blocks on 8x8 are impossible:
# 8 -> conv 6 -> pool 3 -> conv 1 -> ... or an odd size before a pool.
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

GRID_SPACE = """\
family: mlp
dense:
  count: 1
  units: {choice: [8, 16, 32]}
learning_rate: {choice: [0.01, 0.003]}
"""


def _runs(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_rejected_candidates_are_recorded_and_never_built(store, workdir: Path, monkeypatch):
    from tunetrack import models as families
    from tunetrack.search.session import run_search

    built = []
    real_build = families.build_model
    monkeypatch.setattr(families, "build_model",
                        lambda *a, **k: built.append(a[1]) or real_build(*a, **k))
    pipeline = load_pipeline(write_pipeline(workdir, space=REJECTING_SPACE, trials=2, epochs=1))
    result = run_search(pipeline)
    statuses = [t.status.value for t in result.trials]
    assert statuses.count("completed") == 2, statuses  # rejections do not use up the budget
    assert statuses.count("rejected") >= 1
    assert len(built) == 2
    rejected = [r for r in _runs(store, "tiny")
                if r.data.tags.get(names.TAG_TRIAL_STATUS) == "rejected"]
    assert len(rejected) == statuses.count("rejected")
    for run in rejected:
        reason = run.data.tags[names.TAG_NOTE].splitlines()[0]
        assert "max_params 20,000" in reason or reason.startswith("blocks.")
        assert len(run.data.tags[names.TAG_REASON]) <= 40
        assert not store.get_metric_history(run.info.run_id, "loss/train")
    parent = store.get_run(result.parent_run_id)
    assert parent.data.metrics[names.METRIC_TRIALS_REJECTED] == statuses.count("rejected")
    assert parent.data.metrics[names.METRIC_TRIALS_COMPLETED] == 2
    summary = "\n".join(result.summary_lines())
    assert "2 trained" in summary and "rejected x" in summary


def test_failed_trial_is_recorded_and_search_goes_on(store, workdir: Path, monkeypatch):
    from tunetrack.search.session import run_search

    fail_first_build(monkeypatch)
    result = run_search(load_pipeline(write_pipeline(workdir, trials=3, epochs=1)))
    assert [t.status.value for t in result.trials] == ["failed", "completed", "completed"]
    failed = store.get_run(result.trials[0].run_id)
    assert failed.info.status == "FAILED"
    assert failed.data.tags[names.TAG_TRIAL_STATUS] == "failed"
    assert failed.data.tags[names.TAG_REASON] == "RuntimeError: simulated out of memory"
    traceback = store.download_artifacts(failed.info.run_id, "traceback.txt", str(workdir))
    assert "simulated out of memory" in Path(traceback).read_text()
    assert store.get_run(result.parent_run_id).info.status == "FINISHED"


def test_nan_loss_fails_the_trial(store, workdir: Path):
    from tunetrack.search.session import run_search

    space = "family: linear\nloss: squared_error\nlearning_rate: 1.0e+30\noptimizer: sgd\n"
    pipeline = load_pipeline(write_pipeline(workdir, space=space, trials=1, epochs=2,
                                            tuner_options=", max_consecutive_failures: 1"))
    with pytest.raises(SearchAborted, match="after 1 consecutive failed trials.*NaN"):
        run_search(pipeline)
    runs = _runs(store, "tiny")
    trial = next(r for r in runs if r.data.tags.get(names.TAG_ROLE) == "trial")
    assert names.full_reason(trial.data.tags).startswith("FloatingPointError: loss became NaN")
    assert trial.data.tags[names.TAG_REASON] == "NaN loss"
    assert trial.info.run_name.endswith(" failed: NaN loss")
    parent = next(r for r in runs if r.data.tags.get(names.TAG_ROLE) == "search")
    assert parent.info.status == "FAILED"


@pytest.mark.parametrize("tuner", ["random", "grid", "bayesian", "hyperband", "tpe"])
def test_every_tuner_records_complete_trials(store, workdir: Path, tuner: str):
    import mlflow
    import pandas as pd
    from PIL import Image

    from tunetrack.search.session import run_search

    pipeline = load_pipeline(write_pipeline(workdir, space=GRID_SPACE, trials=3, epochs=2,
                                            tuner=tuner))
    result = run_search(pipeline)
    trained = [t for t in result.trials if t.status.value == "completed"]
    assert 1 <= len(trained) <= 3 and len(result.trials) >= len(trained)
    client = store
    for record in trained:
        run_id = record.run_id
        files = {f.path for f in client.list_artifacts(run_id)}
        assert {"plots", "architecture.txt", "architecture.json", "preprocessing.json"} <= files
        assert [o.model_id for o in client.get_run(run_id).outputs.model_outputs]
        for png in ("plots/learning_curve.png", "plots/confusion_matrix.png"):
            Image.open(client.download_artifacts(run_id, png, str(workdir))).verify()
        model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
        scores = np.asarray(model.predict(np.zeros((2, 8, 8, 1), dtype="float32")))
        assert scores.shape == (2, 10)
        run = client.get_run(run_id)
        assert run.data.tags[names.TAG_TUNER] == tuner
        for metric in (names.METRIC_TRAIN_SECONDS, names.METRIC_FLOPS, names.METRIC_BEST_EPOCH,
                       "best_val_accuracy", "final_val_loss", names.METRIC_PARAMS_TOTAL):
            assert metric in run.data.metrics
    board = client.download_artifacts(result.parent_run_id, "leaderboard.csv", str(workdir))
    table = pd.read_csv(board)
    assert len(table) == len(result.trials)
    parent_files = {f.path for f in client.list_artifacts(result.parent_run_id, "config")}
    assert parent_files == {"config/space.yaml", "config/tiny.yaml"}
    png = client.download_artifacts(result.parent_run_id, "plots/accuracy_vs_params.png",
                                    str(workdir))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_decode(store, workdir: Path):
    """The parallel-coordinates plot of a search with searched hyperparameters."""
    from PIL import Image

    from tunetrack.search.session import run_search

    result = run_search(load_pipeline(write_pipeline(workdir, trials=2, epochs=1)))
    path = store.download_artifacts(result.parent_run_id, "plots/parallel_coordinates.png",
                                    str(workdir))
    Image.open(io.BytesIO(Path(path).read_bytes())).verify()


def test_max_minutes_ends_the_search_after_the_running_trial(store, workdir: Path,
                                                              monkeypatch):
    from tunetrack.search import trial as trial_module
    from tunetrack.search.progress import Reporter
    from tunetrack.search.session import run_search

    # a clock on which every trial takes 40 s: with a 1-minute budget the second trial is the
    # last one started (40 s < 60 s before it, 80 s after it), whatever this machine's speed
    now = [0.0]
    monkeypatch.setattr(trial_module, "clock", lambda: now[0])

    class FortySeconds(Reporter):
        def trial_ended(self, record, *, best, elapsed):
            now[0] += 40.0

    pipeline = load_pipeline(write_pipeline(workdir, trials=20, epochs=1))
    result = run_search(pipeline.override(max_minutes=1), reporter=FortySeconds())
    assert len(result.trials) == 2
    assert result.elapsed == 80.0
    assert result.stop_reason == "the 1-minute budget (--max-minutes) was used up"
    parent = store.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[names.TAG_STOP_REASON] == result.stop_reason


def test_a_signal_while_a_trial_run_is_created_leaves_no_run_running(store, workdir: Path,
                                                                      monkeypatch):
    """The signal lands once the run is in the store but before ``create_run`` returns (or
    before the trial's params are written): the run ends KILLED with the search."""
    from tunetrack.search.session import run_search
    from tunetrack.tracking.store import SearchTracker

    created = SearchTracker.start_trial

    def start_then_interrupted(self, *args, **kwargs):
        created(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(SearchTracker, "start_trial", start_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(load_pipeline(write_pipeline(workdir, trials=2, epochs=1)))
    runs = _runs(store, "tiny")
    assert sorted((r.data.tags[names.TAG_ROLE], r.info.status) for r in runs) == [
        ("search", "KILLED"), ("trial", "KILLED")]
    (trial,) = [r for r in runs if r.data.tags[names.TAG_ROLE] == "trial"]
    assert trial.data.tags[names.TAG_TRIAL_STATUS] == "killed"


def test_a_signal_while_a_seed_repeat_starts_leaves_no_run_running(store, workdir: Path,
                                                                   monkeypatch):
    """The signal lands as repeat 1's params are being written: the repeat, its candidate and
    the search all end KILLED."""
    from tunetrack.search.session import run_search
    from tunetrack.tracking.store import RunLogger

    params = RunLogger.params

    def interrupted_at_a_repeat(self, values):
        if "repeat" in values:
            raise KeyboardInterrupt
        return params(self, values)

    monkeypatch.setattr(RunLogger, "params", interrupted_at_a_repeat)
    with pytest.raises(KeyboardInterrupt):
        run_search(load_pipeline(write_pipeline(workdir, trials=1, epochs=1,
                                                tuner_options=", repeats: 2")))
    runs = _runs(store, "tiny")
    assert sorted((r.data.tags[names.TAG_ROLE], r.info.status) for r in runs) == [
        ("repeat", "KILLED"), ("search", "KILLED"), ("trial", "KILLED")]
