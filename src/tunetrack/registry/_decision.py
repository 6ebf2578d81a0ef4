"""A promotion's decision: what was judged, why the champion alias moved or did not, and the
decision run (tag ``tunetrack.role=promotion``) that keeps it, so :func:`promotion_history`
can tell how the champion got there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunetrack import names
from tunetrack.errors import PromotionRefused
from tunetrack.registry._aliases import TAG_SEARCH_RUN, TAG_TRIAL_RUN
from tunetrack.registry._evaluation import (
    CONFUSION_PLOT,
    PER_CLASS_TABLE,
    Evaluation,
    confusion_figure,
    per_class_table,
)
from tunetrack.registry._lookup import experiment_id
from tunetrack.registry._mlflow_eval import described

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.models.evaluation import EvaluationResult

DECISIONS = ("promoted", "refused", "dry_run")
# Tags of a promotion (decision) run.
TAG_DECISION = "tunetrack.decision"
TAG_MODEL_NAME = "tunetrack.model_name"
TAG_MODEL_VERSION = "tunetrack.model_version"
TAG_ALIAS = "tunetrack.alias"
TAG_CHAMPION_VERSION = "tunetrack.previous_champion_version"
TAG_CHAMPION_SCORE = "tunetrack.champion_score_source"


@dataclass
class PromotionResult:
    """What :func:`~tunetrack.registry.promote` decided; ``lines()`` is what the CLI prints."""

    decision: str
    model_name: str
    search_run_id: str
    winner: Evaluation
    candidates: list[Evaluation]
    reason: str
    metric: str
    version: str | None = None
    alias: str | None = None
    model_uri: str | None = None
    champion_version: str | None = None
    champion_test_accuracy: float | None = None
    champion_score_source: str | None = None  # "re-evaluated" | "recorded"
    decision_run_id: str | None = None
    members: list[Evaluation] = field(default_factory=list)  # an ensemble's trials

    @property
    def test_accuracy(self) -> float:
        return self.winner.test_accuracy

    def lines(self) -> list[str]:
        w = self.winner
        if self.members:
            out = [f"search {self.search_run_id}: ensemble of the {len(self.members)} best "
                   f"trials by best_{self.metric} ({w.family}), probabilities averaged"]
            out += [f"  member trial {e.trial_id} (run {e.run_id}): best_{self.metric} "
                    f"{e.selection_score:.4f}, test accuracy {e.test_accuracy:.4f}"
                    for e in self.members]
        else:
            out = [f"search {self.search_run_id}: trial {w.trial_id} (run {w.run_id}, "
                   f"{w.family}) best_{self.metric} {w.selection_score:.4f}"]
        if len(self.candidates) > 1 and not self.members:
            out += [f"  candidate trial {e.trial_id}: test accuracy {e.test_accuracy:.4f}"
                    for e in self.candidates]
        out.append(f"test accuracy {w.test_accuracy:.4f}, test loss {w.test_loss:.4f}")
        if self.champion_version is not None:
            out.append(f"current champion: version {self.champion_version}, test accuracy "
                       f"{fmt_score(self.champion_test_accuracy)} "
                       f"({self.champion_score_source})")
        if self.version is not None:
            out.append(f"registered '{self.model_name}' version {self.version} with alias "
                       f"'{self.alias}'")
        out.append(self.reason)
        return out


class Refused(PromotionRefused):
    """:class:`PromotionRefused` (exit 1) that carries the decision, scores included."""

    def __init__(self, result: PromotionResult) -> None:
        super().__init__(result.reason)
        self.result = result


def fmt_score(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4f}"


def refusals(result: PromotionResult, min_test_accuracy: float | None,
             verdict: EvaluationResult | None = None) -> list[str]:
    """Why the candidate may not become champion; empty when it may. The rules are MLflow
    metric thresholds checked by ``mlflow.validate_evaluation_results`` on ``verdict`` (the
    promotion's ``mlflow.models.evaluate`` result; a dry run uses the test accuracy alone)."""
    from tunetrack.registry._mlflow_eval import ACCURACY, failed_rules, static_result

    verdict = verdict or static_result(result.winner.test_accuracy)
    acc = float(verdict.metrics[ACCURACY])
    champ = result.champion_test_accuracy
    failed = failed_rules(verdict, min_test_accuracy, champ)
    out = []
    if "min_test_accuracy" in failed:
        out.append(f"test accuracy {acc:.4f} is below min_test_accuracy "
                   f"{min_test_accuracy:.4f}")
    if "beats_champion" in failed:
        out.append(f"test accuracy {acc:.4f} is below the champion's {champ:.4f} (version "
                   f"{result.champion_version}, {result.champion_score_source})")
    return out


def decision_run(mlclient: MlflowClient, experiment_id: str, model_name: str) -> str:
    """The promotion run: it holds the packaged classifier, the test verdict and the decision;
    the judged trial runs are only read."""
    run = mlclient.create_run(experiment_id, run_name=f"promote-{model_name}-"
                                                      f"{time.strftime('%Y%m%d-%H%M%S')}",
                              tags={names.TAG_ROLE: names.ROLE_PROMOTION})
    return run.info.run_id


def abandon_decision(mlclient: MlflowClient, run_id: str, error: BaseException) -> None:
    """A promotion that raised before its decision was recorded: FAILED, with the reason."""
    reason = f"{type(error).__name__}: {error}"[:500]
    mlclient.set_tag(run_id, names.TAG_REASON, reason)
    mlclient.set_tag(run_id, names.TAG_NOTE, f"Promotion failed: {reason}")
    mlclient.set_terminated(run_id, "FAILED")


def _description(result: PromotionResult) -> str:
    w = result.winner
    trials = (", ".join(f"trial {e.trial_id} (run {e.run_id})" for e in result.members)
              if result.members else f"trial {w.trial_id} (run {w.run_id})")
    return (f"{result.reason}\n\nJudged on the sealed test split: {trials} of search run "
            f"{result.search_run_id}; test accuracy {w.test_accuracy:.4f}, test loss "
            f"{w.test_loss:.4f}. Per-class precision and recall: `{PER_CLASS_TABLE}`.")


def record_decision(mlclient: MlflowClient, experiment_id: str, result: PromotionResult,
                    min_test_accuracy: float | None, run_id: str | None = None) -> str:
    """Fill the decision run (created here unless ``run_id`` already holds the ensemble)."""
    from tunetrack.tracking.store import RunLogger

    w = result.winner
    run_id = run_id or decision_run(mlclient, experiment_id, result.model_name)
    log = RunLogger(mlclient, run_id)
    log.tags({TAG_DECISION: result.decision, TAG_MODEL_NAME: result.model_name,
              TAG_MODEL_VERSION: result.version, TAG_ALIAS: result.alias,
              TAG_SEARCH_RUN: result.search_run_id, TAG_TRIAL_RUN: w.run_id,
              names.TAG_TRIAL_ID: w.trial_id, TAG_CHAMPION_VERSION: result.champion_version,
              TAG_CHAMPION_SCORE: result.champion_score_source, names.TAG_REASON: result.reason,
              names.TAG_NOTE: _description(result)})
    log.params({"metric": result.metric, "min_test_accuracy": min_test_accuracy,
                "candidates": len(result.candidates), "ensemble": len(result.members) or 1})
    log.metrics({names.METRIC_TEST_ACCURACY: w.test_accuracy,
                 names.METRIC_TEST_LOSS: w.test_loss})
    if result.champion_test_accuracy is not None:
        log.metric(names.METRIC_CHAMPION_TEST_ACCURACY, result.champion_test_accuracy)
    log.flush()
    mlclient.log_text(run_id, per_class_table(w), PER_CLASS_TABLE)
    if w.confusion.size:
        mlclient.log_figure(run_id, confusion_figure(
            w.confusion, list(w.precision), f"trial {w.trial_id}: test accuracy "
                                            f"{w.test_accuracy:.4f}"), CONFUSION_PLOT)
    mlclient.log_dict(run_id, {
        "decision": result.decision, "model_name": result.model_name, "version": result.version,
        "search_run_id": result.search_run_id, "trial_run_id": w.run_id,
        "trial_id": w.trial_id, "test_accuracy": w.test_accuracy,
        "champion_version": result.champion_version,
        "champion_test_accuracy": result.champion_test_accuracy, "reason": result.reason,
        "gate": described(min_test_accuracy, result.champion_test_accuracy is not None),
        "candidates": [{"trial_id": e.trial_id, "run_id": e.run_id,
                        "test_accuracy": e.test_accuracy} for e in result.candidates]},
        "decision.json")
    mlclient.set_terminated(run_id, "FINISHED")
    return run_id


def promotion_history(experiment: str, model_name: str | None = None) -> list[dict[str, Any]]:
    """Every promotion decision in an experiment, oldest first, as plain dicts."""
    from tunetrack.tracking.store import client

    mlclient = client()
    query = f"tags.`{names.TAG_ROLE}` = '{names.ROLE_PROMOTION}'"
    if model_name is not None:
        query += f" and tags.`{TAG_MODEL_NAME}` = '{model_name}'"
    runs = mlclient.search_runs([experiment_id(mlclient, experiment)], query,
                                order_by=["attributes.start_time ASC"], max_results=10_000)
    return [{"run_id": r.info.run_id, "time": r.info.start_time,
             "decision": r.data.tags.get(TAG_DECISION),
             "model_name": r.data.tags.get(TAG_MODEL_NAME),
             "version": r.data.tags.get(TAG_MODEL_VERSION),
             "alias": r.data.tags.get(TAG_ALIAS),
             "search_run_id": r.data.tags.get(TAG_SEARCH_RUN),
             "trial_run_id": r.data.tags.get(TAG_TRIAL_RUN),
             "trial_id": r.data.tags.get(names.TAG_TRIAL_ID),
             "test_accuracy": r.data.metrics.get(names.METRIC_TEST_ACCURACY),
             "champion_version": r.data.tags.get(TAG_CHAMPION_VERSION),
             "champion_test_accuracy": r.data.metrics.get(names.METRIC_CHAMPION_TEST_ACCURACY),
             "reason": r.data.tags.get(names.TAG_REASON)} for r in runs]


__all__ = ["DECISIONS", "PromotionResult", "Refused", "abandon_decision", "decision_run",
           "fmt_score",
           "promotion_history", "record_decision", "refusals"]
