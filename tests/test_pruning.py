"""Pruning: the median and ASHA rules (pure, checked against Optuna's pruners), the pipeline and
CLI settings, and a search whose second trial is pruned."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from tunetrack import names
from tunetrack.errors import PipelineError
from tunetrack.search import pruning
from tunetrack.space._config import PruningSection
from tunetrack.space.pipeline import load_pipeline

from .conftest import write_pipeline


# -- the median rule ---------------------------------------------------------------------------
def test_median_waits_for_warmup_and_finished_trials():
    done = [{1: 0.8, 2: 0.9}, {1: 0.7, 2: 0.85}, {1: 0.9, 2: 0.95}]
    bad = {1: 0.1, 2: 0.2}
    rule = dict(direction="max", warmup_epochs=1, min_trials=3)
    assert pruning.median_verdict(bad, 1, done, **rule) is None  # still warming up
    assert pruning.median_verdict(bad, 2, done[:2], **rule) is None  # 2 < min_trials
    verdict = pruning.median_verdict(bad, 2, done, **rule)
    assert verdict is not None and verdict.threshold == 0.9 and verdict.peers == 3
    assert verdict.reason == ("pruned (median) after epoch 2: 0.2000 is worse than the median "
                              "0.9000 of 3 trials at that epoch")
    # the trial's best so far counts, not its last value; a tie goes on
    assert pruning.median_verdict({1: 0.95, 2: 0.2}, 2, done, **rule) is None
    assert pruning.median_verdict({1: 0.1, 2: 0.9}, 2, done, **rule) is None
    # no finished trial reached this epoch (they stopped early): go on
    assert pruning.median_verdict({1: 0.1, 2: 0.1, 3: 0.1}, 3, done, **rule) is None


def test_median_for_a_loss_prunes_the_higher_values():
    done = [{1: 0.5, 2: 0.3}, {1: 0.6, 2: 0.4}]
    rule = dict(direction="min", warmup_epochs=0, min_trials=1)
    assert pruning.median_verdict({1: 0.9, 2: 0.8}, 2, done, **rule) is not None
    assert pruning.median_verdict({1: 0.9, 2: 0.34}, 2, done, **rule) is None
    assert pruning.median_verdict({1: math.nan}, 1, done, **rule) is not None  # NaN: stop


@pytest.mark.parametrize("seed", range(8))
def test_median_agrees_with_optunas_median_pruner(seed: int):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(seed)
    direction = rng.choice(["max", "min"])
    warmup, min_trials, epochs = rng.randint(0, 2), rng.randint(1, 4), 6
    study = optuna.create_study(
        direction="maximize" if direction == "max" else "minimize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=min_trials, n_warmup_steps=warmup))
    finished = []
    for _ in range(rng.randint(0, 6)):
        curve = {e: rng.random() for e in range(1, rng.randint(2, epochs) + 1)}
        finished.append(curve)
        study.add_trial(optuna.trial.create_trial(
            value=0.5, intermediate_values={e - 1: v for e, v in curve.items()}))
    for _ in range(10):
        trial, curve = study.ask(), {}
        for epoch in range(1, epochs + 1):
            curve[epoch] = rng.random()
            trial.report(curve[epoch], epoch - 1)  # optuna's steps count from 0
            ours = pruning.median_verdict(curve, epoch, finished, direction=direction,
                                          warmup_epochs=warmup, min_trials=min_trials)
            assert (ours is not None) == trial.should_prune(), (seed, epoch, curve, finished)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)


# -- asynchronous successive halving ---------------------------------------------------------------
def test_rungs_are_geometric():
    assert pruning.rung_epochs(1, 3, 10) == [1, 3, 9]
    assert pruning.rung_epochs(2, 2, 20) == [2, 4, 8, 16]


def test_asha_keeps_the_top_third_at_a_rung():
    rule = dict(direction="max", min_epochs=1, reduction_factor=3)
    others = [{1: v} for v in (0.1, 0.2, 0.3, 0.4, 0.5)]
    # with itself: 6 values at rung 1, the top 6 // 3 = 2 continue
    verdict = pruning.asha_verdict({1: 0.35}, 1, others, **rule)
    assert verdict is not None and verdict.threshold == 0.4 and verdict.peers == 6
    assert pruning.asha_verdict({1: 0.45}, 1, others, **rule) is None
    assert pruning.asha_verdict({1: 0.4}, 1, others, **rule) is None  # ties the cut-off
    assert pruning.asha_verdict({1: 0.0, 2: 0.0}, 2, others, **rule) is None  # not a rung
    # the first trials at a rung: only the best so far continues
    assert pruning.asha_verdict({1: 0.3}, 1, [], **rule) is None
    assert pruning.asha_verdict({1: 0.3}, 1, [{1: 0.4}], **rule) is not None


@pytest.mark.parametrize("seed", range(6))
def test_asha_agrees_with_optunas_successive_halving(seed: int):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(seed)
    eta, r, epochs = rng.choice([2, 3]), rng.choice([1, 2]), 9
    direction = rng.choice(["max", "min"])
    study = optuna.create_study(
        direction="maximize" if direction == "max" else "minimize",
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=r, reduction_factor=eta,
                                                      min_early_stopping_rate=0))
    curves: list[dict[int, float]] = []
    for _ in range(12):
        trial, curve = study.ask(), {}
        for epoch in range(1, epochs + 1):
            curve[epoch] = round(rng.random(), 3)
            trial.report(curve[epoch], epoch)  # rungs at r * eta**k in the same units
            ours = pruning.asha_verdict(curve, epoch, curves, direction=direction,
                                        min_epochs=r, reduction_factor=eta)
            theirs = trial.should_prune()
            assert (ours is not None) == theirs, (seed, epoch, curve)
            if theirs:
                break
        curves.append(curve)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def test_asha_respects_warmup_through_verdict():
    config = PruningSection(kind="asha", warmup_epochs=1, min_epochs=1, reduction_factor=2)
    assert pruning.verdict(config, {1: 0.0}, 1, direction="max", finished=[],
                           others=[{1: 1.0}]) is None
    assert not pruning.needs_peers(config, 1) and pruning.needs_peers(config, 2)
    assert not pruning.needs_peers(config, 3)  # not a rung
    assert pruning.verdict(PruningSection(), {1: 0.0, 2: 0.0}, 2, direction="max",
                           finished=[{1: 1.0, 2: 1.0}], others=[]) is None  # kind none


# -- the settings --------------------------------------------------------------------------------
def test_pipeline_reads_pruning(workdir: Path):
    path = write_pipeline(workdir, tuner_options=", pruning: {kind: asha, warmup_epochs: 0, "
                                                 "reduction_factor: 2, min_epochs: 2}")
    cfg = load_pipeline(path).tuner.pruning
    assert cfg == PruningSection(kind="asha", warmup_epochs=0, reduction_factor=2, min_epochs=2)
    assert load_pipeline(write_pipeline(workdir, tuner_options=", pruning: median")
                         ).tuner.pruning.kind == "median"
    assert load_pipeline(write_pipeline(workdir)).tuner.pruning.kind == "none"


@pytest.mark.parametrize(("options", "message"), [
    (", pruning: {kind: mean}", r"tuner\.pruning\.kind: must be one of 'none', 'median', "
                                r"'asha', got 'mean'"),
    (", pruning: {kind: median, warmup: 2}", r"tuner\.pruning\.warmup: unknown key 'warmup'.*"
                                             r"did you mean 'warmup_epochs'"),
    (", pruning: {kind: asha, reduction_factor: 1}",
     r"tuner\.pruning\.reduction_factor: must be at least 2, got 1"),
    (", pruning: [median]", r"tuner\.pruning: must be a mapping like \{kind: median"),
])
def test_pipeline_refuses_bad_pruning(workdir: Path, options: str, message: str):
    with pytest.raises(PipelineError, match=message):
        load_pipeline(write_pipeline(workdir, tuner_options=options))


def test_pruning_refuses_hyperband(workdir: Path):
    with pytest.raises(PipelineError, match=r"tuner\.pruning: pruning 'median' cannot go with "
                                            r"tuner 'hyperband'"):
        load_pipeline(write_pipeline(workdir, tuner="hyperband",
                                     tuner_options=", pruning: median"))
    pipeline = load_pipeline(write_pipeline(workdir, tuner="hyperband"))
    with pytest.raises(PipelineError, match="cannot go with tuner 'hyperband'"):
        pipeline.override(pruning="asha")
    assert pipeline.override(tuner="random", pruning="asha").tuner.pruning.kind == "asha"
    with pytest.raises(PipelineError, match=r"--pruning must be one of 'none', 'median', 'asha'"):
        pipeline.override(pruning="mean")


def test_cli_offers_pruning_and_tpe():
    from click.testing import CliRunner

    from tunetrack.cli import main

    result = CliRunner().invoke(main, ["search", "--help"])
    assert "--pruning [none|median|asha]" in result.output
    assert "tpe" in result.output


# -- a search --------------------------------------------------------------------------------------
LR_SPACE = """\
family: mlp
dense:
  count: 1
  units: 16
learning_rate: {choice: [0.01, 0.000001]}
"""


@pytest.mark.slow
def test_a_hopeless_trial_is_pruned_and_kept(store, workdir: Path):
    """Grid order: lr 0.01 trains to the end, then lr 1e-6 is far below its median at epoch 1."""
    from tunetrack.search.resume import recorded_trials
    from tunetrack.search.session import run_search
    from tunetrack.tracking.store import SearchTracker

    pipeline = load_pipeline(write_pipeline(
        workdir, space=LR_SPACE, trials=2, epochs=3, tuner="grid",
        tuner_options=", pruning: {kind: median, warmup_epochs: 0, min_trials: 1}"))
    result = run_search(pipeline)
    assert [t.status.value for t in result.trials] == ["completed", "pruned"]
    pruned = result.trials[1]
    assert pruned.epochs == 1 and pruned.objective is not None
    assert "pruned (median) after epoch 1" in (pruned.reason or "")
    run = store.get_run(pruned.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[names.TAG_TRIAL_STATUS] == "pruned"
    assert run.data.tags[names.TAG_PRUNER] == "median"
    assert run.info.run_name == f"t01 {pruned.objective:.3f} pruned ep1/3"
    assert run.data.metrics[names.METRIC_PRUNED_AT] == 1
    assert [m.step for m in store.get_metric_history(pruned.run_id, "accuracy/val")] == [1]
    completed = store.get_metric_history(result.trials[0].run_id, "accuracy/val")
    assert sorted(m.step for m in completed) == [1, 2, 3]  # logged once per epoch, no doubles
    parent = store.get_run(result.parent_run_id)
    assert parent.data.metrics[names.METRIC_TRIALS_PRUNED] == 1
    assert result.best is not None and result.best.trial_id == result.trials[0].trial_id
    from tunetrack.tracking import compare

    board = compare.leaderboard(result.trials, "val_accuracy", "max")
    assert list(board["status"]) == ["completed", "pruned"]  # ranked after the completed
    assert int(board["epochs"][1]) == 1
    # a resumed search reads it back with its score (the oracle is told it, not a failure)
    tracker = SearchTracker("tiny")
    again = recorded_trials(tracker, result.parent_run_id, "val_accuracy")
    assert [(t.status.value, t.objective) for t in again][1] == ("pruned", pruned.objective)
