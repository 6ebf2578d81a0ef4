"""What a running search prints: the header, a line per trial, the summary. No training."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from tunetrack.names import RunStatus, TrialStatus
from tunetrack.search.progress import ConsoleReporter, QuietReporter, describe_objective
from tunetrack.search.records import SearchResult, TrialRecord


def _pipeline(direction_stated: bool = False):
    return SimpleNamespace(name="tiny", objective="val_loss", direction="min",
                           direction_stated=direction_stated, experiment="exp",
                           tuner=SimpleNamespace(kind="random"),
                           training=SimpleNamespace(epochs=4))


def _console() -> tuple[ConsoleReporter, io.StringIO]:
    out = io.StringIO()
    return ConsoleReporter(Console(file=out, width=200, color_system=None)), out


def test_objective_states_its_direction_and_where_it_came_from():
    assert describe_objective(_pipeline()) == "val_loss (min, inferred)"
    assert describe_objective(_pipeline(True)) == "val_loss (min, stated)"


def test_console_reporter_shows_trial_i_of_n_score_and_best():
    reporter, out = _console()
    dataset = SimpleNamespace(source="digits", class_names=list("0123456789"),
                              image_shape=(8, 8, 1), summary=lambda: {"split_sizes": {"train": 9}})
    reporter.search_started(pipeline=_pipeline(), space=SimpleNamespace(family="cnn"),
                            dataset=dataset, total=3, experiment="exp", run_id="abc")
    reporter.trial_started(number=1, total=3, trial_id="00", shown={"learning_rate": 0.00123})
    reporter.epoch_ended(epoch=0, epochs=4, logs={"loss": 1.0, "val_loss": 0.9})
    done = TrialRecord("00", TrialStatus.COMPLETED, {}, objective=0.25, params_total=1234,
                       seconds=2.5, epochs=4)
    reporter.trial_ended(done, best=done, elapsed=3.0)
    reporter.trial_started(number=2, total=3, trial_id="01", shown={})
    rejected = TrialRecord("01", TrialStatus.REJECTED, {}, reason="264,522 params > 200,000")
    reporter.trial_ended(rejected, best=done, elapsed=3.1)
    pruned = TrialRecord("02", TrialStatus.PRUNED, {}, objective=0.5, epochs=2,
                         reason="pruned (median) after epoch 2: 0.5000 is worse than the median "
                                "0.3000 of 3 trials at that epoch")
    reporter.trial_ended(pruned, best=done, elapsed=3.2)
    text = out.getvalue()
    # the rule's reason once, not "pruned after epoch 2: pruned (median) after epoch 2: ..."
    assert ("val_loss 0.5000 pruned (median) after epoch 2: 0.5000 is worse than the median "
            "0.3000 of 3 trials at that epoch | best 0.2500 (trial 00)") in text
    assert "objective val_loss (min, inferred)" in text
    assert "10 classes, image 8x8x1" in text
    assert "trial 1/3 (id 00) learning_rate=0.00123" in text
    assert "val_loss 0.2500 (4 epochs, 1,234 params, 2.5s) | best 0.2500 (trial 00)" in text
    assert "rejected: 264,522 params > 200,000 | best 0.2500 (trial 00) | elapsed 3.1s" in text


def test_quiet_reporter_prints_only_the_summary():
    lines: list[str] = []
    trials = [TrialRecord("00", TrialStatus.COMPLETED, {}, run_id="r0", objective=0.2,
                          params_total=99),
              TrialRecord("01", TrialStatus.COMPLETED, {}, run_id="r1", objective=0.1,
                          params_total=50),
              TrialRecord("02", TrialStatus.REJECTED, {}, reason="3 x 3 kernel on 2 x 2"),
              TrialRecord("03", TrialStatus.REJECTED, {}, reason="3 x 3 kernel on 1 x 1")]
    pipeline = SimpleNamespace(objective="val_loss", direction="min", experiment="exp")
    result = SearchResult(pipeline, "1", "parent", trials, 75.0,  # type: ignore[arg-type]
                          RunStatus.FINISHED)
    reporter = QuietReporter(lines.append)
    reporter.trial_ended(trials[0], best=None, elapsed=1.0)
    assert lines == []
    reporter.search_ended(result)
    assert lines[0] == "search finished in 1m15s: 2 trained, 2 rejected, 0 failed"
    assert lines[1] == "  rejected x2, e.g. 3 x 3 kernel on 2 x 2"  # grouped by rule
    assert lines[2] == "best trial 01: val_loss 0.1000, 50 params (run r1)"
    assert lines[3] == "search run parent in experiment 'exp'"
