"""Seed repeats: nested runs, mean/std/interval, compare's columns and --significance, and
promote --require-significant. Most tests fill an MLflow store by hand (no training); one
trains a tiny search with two repeats per candidate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from tunetrack import names
from tunetrack.errors import PipelineError, PromotionRefused
from tunetrack.tracking import significance as sig

from .conftest import write_pipeline

OBJ = "val_accuracy"


# -- statistics -------------------------------------------------------------------------------
def test_summary_is_mean_sample_std_and_t_interval():
    from scipy import stats

    s = sig.summarize([0.90, 0.92, 0.94])
    assert s.n == 3 and s.mean == pytest.approx(0.92)
    assert s.std == pytest.approx(0.02)
    half = stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3)
    assert s.ci == pytest.approx((0.92 - half, 0.92 + half))
    assert set(s.metrics()) == {names.METRIC_REPEATS_N, names.METRIC_REPEATS_MEAN,
                                names.METRIC_REPEATS_STD, names.METRIC_REPEATS_CI_LOW,
                                names.METRIC_REPEATS_CI_HIGH}
    one = sig.summarize([0.5])
    assert math.isnan(one.std) and set(one.metrics()) == {names.METRIC_REPEATS_N,
                                                          names.METRIC_REPEATS_MEAN}


def test_interval_stays_within_what_the_metric_can_be():
    # two repeats of an accuracy: the t interval (12.7 standard errors) would pass 1
    two = [0.92, 0.94]
    low, high = sig.summarize(two).ci
    assert high > 1.0  # unbounded for a metric not named
    clipped = sig.summarize(two, "val_accuracy").ci
    assert clipped == (pytest.approx(low), 1.0)
    assert sig.summarize([0.02, 0.30], "val_loss").ci[0] == 0.0
    assert sig.summarize([0.02, 0.30], "val_loss").ci[1] > 0.30
    assert sig.bounds("val_macro_f1") == (0.0, 1.0) and sig.bounds("custom") == (-math.inf,
                                                                                 math.inf)
    lead = sig.welch("trial 1", two, "trial 2", [0.90, 0.91], "max", "val_accuracy")
    assert lead.a.ci[1] == 1.0 and "0.9300 ± 0.0141 (95% CI" in lead.text()


def test_welch_says_in_words_whether_the_lead_exceeds_seed_noise():
    from scipy import stats

    clear = sig.welch("trial 1", [0.95, 0.951, 0.949], "trial 2", [0.90, 0.902, 0.899], "max")
    expected = stats.ttest_ind([0.95, 0.951, 0.949], [0.90, 0.902, 0.899], equal_var=False)
    assert clear.p == pytest.approx(expected.pvalue) and clear.significant
    assert "Welch's t-test" in clear.text() and "the lead exceeds seed noise" in clear.text()
    noisy = sig.welch("trial 1", [0.95, 0.90, 0.93], "trial 2", [0.94, 0.91, 0.92], "max")
    assert not noisy.significant
    assert "does NOT exceed seed noise" in noisy.text()
    once = sig.welch("trial 1", [0.95], "trial 2", [0.90], "max")
    assert not once.significant and "needs at least 2 repeats" in once.text()
    # a loss: lower is better, so #1 must have the lower mean
    loss = sig.welch("trial 1", [0.10, 0.11, 0.10], "trial 2", [0.30, 0.31, 0.30], "min")
    assert loss.margin > 0 and loss.significant


# -- the pipeline -----------------------------------------------------------------------------
def test_repeats_in_the_pipeline_and_on_the_command_line(workdir: Path):
    from tunetrack.space.pipeline import load_pipeline

    path = write_pipeline(workdir, tuner_options=", repeats: 3")
    assert load_pipeline(path).tuner.runs_per_candidate == 3
    legacy = write_pipeline(workdir, tuner_options=", executions_per_trial: 2", name="legacy")
    assert load_pipeline(legacy).tuner.runs_per_candidate == 2  # keras-tuner's name for it
    assert load_pipeline(legacy).override(repeats=4).tuner.runs_per_candidate == 4
    both = write_pipeline(workdir, tuner_options=", repeats: 3, executions_per_trial: 2",
                          name="both")
    with pytest.raises(PipelineError, match=r"both.yaml:\d+: tuner.repeats: repeats 3 "
                                            r"contradicts executions_per_trial 2"):
        load_pipeline(both)
    bad = write_pipeline(workdir, tuner_options=", repeats: 0", name="bad")
    with pytest.raises(PipelineError, match=r"tuner.repeats: must be at least 1, got 0"):
        load_pipeline(bad)
    with pytest.raises(PipelineError, match=r"--repeats must be at least 1, got 0"):
        load_pipeline(path).override(repeats=0)
    pruned = write_pipeline(workdir, tuner_options=", repeats: 2, pruning: median",
                            name="pruned")
    assert load_pipeline(pruned).tuner.pruning.kind == "median"  # repeat 1 is the probe


# -- a hand-filled store ----------------------------------------------------------------------
def _fake_search(client, candidates: dict[str, list[float] | float]) -> str:
    """A search whose trials have these repeat scores (a float: a trial without repeats)."""
    from mlflow.entities import Metric, Param

    from tunetrack.tracking.store import get_or_create_experiment

    exp = get_or_create_experiment(client, "fake")
    search = client.create_run(exp, run_name="fake-search", tags={
        names.TAG_ROLE: names.ROLE_SEARCH, names.TAG_OBJECTIVE: OBJ}).info.run_id
    client.log_batch(search, params=[Param("objective", OBJ), Param("direction", "max")])
    for trial_id, values in candidates.items():
        scores = values if isinstance(values, list) else [values]
        mean = sum(scores) / len(scores)
        tags = {names.TAG_PARENT: search, names.TAG_ROLE: names.ROLE_TRIAL,
                names.TAG_TRIAL_ID: trial_id, names.TAG_TRIAL_STATUS: "completed"}
        if isinstance(values, list):
            tags[names.TAG_REPEAT_SCORES] = json.dumps(values)
        run = client.create_run(exp, run_name=f"t{trial_id}", tags=tags).info.run_id
        client.log_batch(run, metrics=[Metric(f"best_{OBJ}", mean, 0, 0)],
                         params=[Param("learning_rate", str(0.001 * (1 + int(trial_id))))])
        for k, value in enumerate(scores if isinstance(values, list) else []):
            child = client.create_run(exp, run_name=f"t{trial_id} r{k + 1}", tags={
                names.TAG_PARENT: run, names.TAG_ROLE: names.ROLE_REPEAT,
                names.TAG_TRIAL_ID: trial_id, names.TAG_REPEAT: str(k + 1)}).info.run_id
            client.log_batch(child, metrics=[Metric(f"best_{OBJ}", value, 0, 0)])
        client.set_terminated(run)
    client.set_terminated(search)
    return search


def _cli(*args: str):
    from tunetrack.cli import main

    return CliRunner().invoke(main, list(args), prog_name="tunetrack")


def test_compare_ranks_by_mean_with_spread_and_interval(store):
    search = _fake_search(store, {"0": [0.90, 0.94, 0.92], "1": [0.93, 0.935, 0.94],
                                  "2": [0.80, 0.81, 0.79]})
    result = _cli("compare", "--search", search)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = lines[1].split()
    assert header[:7] == ["trial_id", "status", OBJ, "±", "ci95_low", "ci95_high", "repeats"]
    assert [line.split()[0] for line in lines[3:]] == ["1", "0", "2"]  # by mean
    first = lines[3].split()
    assert first[2] == "0.9350" and first[3] == "0.0050" and first[6] == "3"
    low, high = sig.summarize([0.93, 0.935, 0.94]).ci
    assert first[4] == f"{low:.4f}" and first[5] == f"{high:.4f}"
    assert "Welch" not in result.output

    verdict = _cli("compare", "--search", search, "--significance")
    assert verdict.exit_code == 0, verdict.output
    text = verdict.output.split("\n\n")[-1]
    assert text.startswith(f"significance of {OBJ} (max): #1 trial 1 0.9350 ± 0.0050")
    assert "vs #2 trial 0 0.9200 ± 0.0200" in text
    assert "Welch's t-test (two-sided, unequal variances)" in text
    assert "the lead does NOT exceed seed noise" in text


def test_compare_of_a_search_without_repeats_is_unchanged(store):
    search = _fake_search(store, {"0": 0.90, "1": 0.95})
    result = _cli("compare", "--search", search, "--significance")
    assert result.exit_code == 0, result.output
    assert "±" not in result.output and "ci95" not in result.output
    assert result.output.splitlines()[1].split()[:3] == ["trial_id", "status", OBJ]
    assert "significance: needs two completed candidates trained with repeats" in result.output


def test_promote_require_significant_refuses_a_lead_within_seed_noise(store):
    from tunetrack.registry.promote import promote

    search = _fake_search(store, {"0": [0.90, 0.94, 0.92], "1": [0.93, 0.935, 0.94]})
    with pytest.raises(PromotionRefused, match=r"--require-significant: #1 trial 1 0\.9350 .* "
                                               r"the lead does NOT exceed seed noise"):
        promote("fake", "digits-model", search=search, require_significant=True)
    result = _cli("promote", "--experiment", "fake", "--model-name", "m", "--search", search,
                  "--require-significant")
    assert result.exit_code == 1
    assert "Welch's t-test" in result.output and "does NOT exceed seed noise" in result.output
    once = _fake_search(store, {"0": 0.90, "1": 0.95})
    with pytest.raises(PromotionRefused, match=r"#1 trial 1 0\.9500 \(1 run\) vs #2 trial 0 "
                                               r"0\.9000 \(1 run\).*needs at least 2 repeats"):
        promote("fake", "digits-model", search=once, require_significant=True)


def test_require_significant_passes_a_clear_lead(store):
    from tunetrack.registry import _lookup

    search = _fake_search(store, {"0": [0.80, 0.81, 0.805], "1": [0.95, 0.951, 0.949]})
    exp = store.get_experiment_by_name("fake").experiment_id
    ranked = _lookup.ranked_trials(store, exp, search, OBJ)
    lead = sig.require_significant(store, ranked, OBJ)
    assert lead.significant and lead.first == "trial 1" and lead.p < 0.001


# -- a real search ----------------------------------------------------------------------------
@pytest.mark.slow
def test_search_with_repeats_nests_runs_and_scores_the_mean(store, workdir: Path, monkeypatch):
    import keras_tuner

    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline

    told = {}  # what the oracle is told of each trial
    real_update = keras_tuner.Oracle.update_trial

    def update_trial(self, trial_id, metrics, step=0):
        told[trial_id] = metrics[OBJ]
        return real_update(self, trial_id, metrics, step=step)

    monkeypatch.setattr(keras_tuner.Oracle, "update_trial", update_trial)
    pipeline = load_pipeline(write_pipeline(workdir, trials=2, epochs=1)).override(repeats=2)
    result = run_search(pipeline)
    assert [t.status.value for t in result.trials] == ["completed", "completed"]
    exp = store.get_experiment_by_name("tiny").experiment_id
    children = store.search_runs([exp], f"tags.`{names.TAG_PARENT}` = '{result.parent_run_id}'")
    assert sorted(r.info.run_id for r in children) == sorted(t.run_id for t in result.trials)
    for trial in result.trials:
        candidate = store.get_run(trial.run_id)
        repeats = store.search_runs([exp], f"tags.`{names.TAG_PARENT}` = '{trial.run_id}'")
        assert len(repeats) == 2
        assert {r.data.tags[names.TAG_ROLE] for r in repeats} == {names.ROLE_REPEAT}
        assert {r.info.status for r in repeats} == {"FINISHED"}
        assert len({r.data.params["seed"] for r in repeats}) == 2  # other seeds
        values = [r.data.metrics[f"best_{OBJ}"] for r in
                  sorted(repeats, key=lambda r: r.data.tags[names.TAG_REPEAT])]
        assert store.get_metric_history(repeats[0].info.run_id, "accuracy/val")  # its curve
        assert json.loads(candidate.data.tags[names.TAG_REPEAT_SCORES]) == \
            pytest.approx(values)
        m = candidate.data.metrics
        assert m[f"best_{OBJ}"] == pytest.approx(sum(values) / 2) == trial.objective
        assert told[trial.trial_id] == pytest.approx(trial.objective)  # the oracle: the mean
        assert m[names.METRIC_REPEATS_N] == 2
        assert m[names.METRIC_REPEATS_CI_LOW] <= m[names.METRIC_REPEATS_MEAN] \
            <= m[names.METRIC_REPEATS_CI_HIGH]
        assert "repeat" not in candidate.data.params  # the candidate's params stay its own
    parent = store.get_run(result.parent_run_id)
    table = Path(store.download_artifacts(parent.info.run_id, "repeats.md", str(workdir)))
    text = table.read_text()
    assert "ci95_low" in text and "Welch's t-test" in text
    assert result.trials[0].trial_id in text and result.trials[1].trial_id in text
    plots = [a.path for a in store.list_artifacts(parent.info.run_id, "plots")]
    assert "plots/failure_map.png" not in plots  # every trial completed: nothing to map



@pytest.mark.slow
def test_hyperband_with_repeats_trains_each_round_twice(store, workdir: Path):
    """Hyperband's brackets and seed repeats together: every trained candidate, first round or
    continued from a checkpoint, has its two repeats nested under it and scores their mean."""
    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline

    pipeline = load_pipeline(write_pipeline(workdir, tuner="hyperband", trials=4, epochs=3,
                                            tuner_options=", repeats: 2"))
    result = run_search(pipeline)
    trained = [t for t in result.trials if t.status.value == "completed"]
    assert len(trained) >= 2, [t.status for t in result.trials]
    exp = store.get_experiment_by_name("tiny").experiment_id
    for trial in trained:
        repeats = store.search_runs([exp], f"tags.`{names.TAG_PARENT}` = '{trial.run_id}'")
        assert len(repeats) == 2 and {r.info.status for r in repeats} == {"FINISHED"}
        values = [r.data.metrics[f"best_{OBJ}"] for r in repeats]
        assert trial.objective == pytest.approx(sum(values) / 2)
        assert store.get_run(trial.run_id).data.metrics[names.METRIC_REPEATS_N] == 2


@pytest.mark.slow
def test_pruning_with_repeats_judges_the_first_repeat(store, workdir: Path):
    """Grid order: lr 0.01 trains its two repeats in full; lr 1e-6's first repeat is far below
    the median at epoch 1, so the candidate is pruned with that one repeat and no other."""
    from tunetrack.search.session import run_search
    from tunetrack.space.pipeline import load_pipeline

    from .test_pruning import LR_SPACE

    pipeline = load_pipeline(write_pipeline(
        workdir, space=LR_SPACE, trials=2, epochs=3, tuner="grid",
        tuner_options=", repeats: 2, pruning: {kind: median, warmup_epochs: 0, min_trials: 1}"))
    result = run_search(pipeline)
    assert [t.status.value for t in result.trials] == ["completed", "pruned"]
    exp = store.get_experiment_by_name("tiny").experiment_id

    def repeats(trial):
        return store.search_runs([exp], f"tags.`{names.TAG_PARENT}` = '{trial.run_id}'")

    full, pruned = result.trials
    assert [int(r.data.metrics[names.METRIC_EPOCHS_TRAINED]) for r in repeats(full)] == [3, 3]
    (probe,) = repeats(pruned)
    assert probe.data.metrics[names.METRIC_EPOCHS_TRAINED] == 1
    assert probe.info.run_name.endswith(" pruned")
    run = store.get_run(pruned.run_id)
    assert run.data.tags[names.TAG_TRIAL_STATUS] == "pruned"
    assert run.data.metrics[names.METRIC_REPEATS_N] == 1
    assert pruned.objective == pytest.approx(probe.data.metrics[f"best_{OBJ}"])

def test_a_kill_during_a_repeat_ends_the_repeat_and_its_candidate(store):
    from types import SimpleNamespace

    from tunetrack.names import TrialStatus
    from tunetrack.search.records import TrialRecord
    from tunetrack.search.trial import TrialRunner
    from tunetrack.tracking.store import SearchTracker

    tracker = SearchTracker("killed")
    tracker.start_search("s", {})
    log = tracker.start_trial("3", "t03 training", {})
    repeat = store.create_run(tracker.experiment_id, tags={
        names.TAG_PARENT: log.run_id, names.TAG_ROLE: names.ROLE_REPEAT}).info.run_id
    runner = TrialRunner.__new__(TrialRunner)  # only what kill_running reads
    runner.tracker = tracker
    runner.pipeline = SimpleNamespace(objective=OBJ, training=SimpleNamespace(epochs=2))
    record = TrialRecord("3", TrialStatus.COMPLETED, {}, run_id=log.run_id)
    runner.running, runner.repeat_of = (record, repeat), log.run_id
    runner.kill_running("search interrupted by SIGINT")
    assert store.get_run(repeat).info.status == "KILLED"
    candidate = store.get_run(log.run_id)
    assert candidate.info.status == "KILLED"
    assert candidate.data.tags[names.TAG_TRIAL_STATUS] == "killed"
    assert runner.running is None and runner.repeat_of is None
