"""The sealed test split's verdict in MLflow's own format, and the promotion gate as MLflow
metric thresholds.

``mlflow.models.evaluate`` (default classifier evaluator, on the candidate's test predictions)
logs ``accuracy_score``, ``precision_score``, ``recall_score``, ``f1_score``,
``per_class_metrics.csv`` and ``confusion_matrix.png`` on the promotion run; the gate is
``mlflow.validate_evaluation_results`` with one :class:`~mlflow.models.MetricThreshold` per rule:
``threshold=min_test_accuracy`` and ``min_relative_change=0.0`` against the champion (at least
as good). The champion is a baseline ``EvaluationResult`` of its test accuracy, re-evaluated on
the same data or as recorded when the data differ: MLflow cannot re-run a model logged for
another test split, so that number stays tunetrack's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation import EvaluationResult

ACCURACY = "accuracy_score"  # MLflow's name for the metric the gate reads
MLFLOW_ARTIFACTS = ("per_class_metrics.csv", "confusion_matrix.png")


def static_result(accuracy: float) -> EvaluationResult:
    """An ``EvaluationResult`` holding a known test accuracy (a dry run, or the champion)."""
    from mlflow.models.evaluation import EvaluationResult

    return EvaluationResult(metrics={ACCURACY: float(accuracy)}, artifacts={})


def evaluate_in_run(run_id: str, truth: np.ndarray, predicted: np.ndarray,
                    class_names: list[str]) -> EvaluationResult:
    """``mlflow.models.evaluate`` on the test split's labels and predictions, logged to the
    run ``run_id`` (metrics, per-class table, confusion matrix)."""
    import warnings

    import mlflow
    import pandas as pd

    names_ = np.asarray(class_names, dtype=object)
    data = pd.DataFrame({"label": names_[np.asarray(truth, dtype=int)],
                         "prediction": names_[np.asarray(predicted, dtype=int)]})
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mlflow.models.evaluate(
            data=data, targets="label", predictions="prediction", model_type="classifier",
            evaluators=["default"],
            evaluator_config={"default": {"log_model_explainability": False}})


def thresholds(min_test_accuracy: float | None, champion: bool
               ) -> dict[str, dict[str, MetricThreshold]]:
    """The gate's rules by name: ``min_test_accuracy`` and ``beats_champion``."""
    from mlflow.models import MetricThreshold

    out: dict[str, dict[str, MetricThreshold]] = {}
    if min_test_accuracy is not None:
        out["min_test_accuracy"] = {ACCURACY: MetricThreshold(
            threshold=float(min_test_accuracy), greater_is_better=True)}
    if champion:
        out["beats_champion"] = {ACCURACY: MetricThreshold(
            min_relative_change=0.0, greater_is_better=True)}
    return out


def failed_rules(candidate: EvaluationResult, min_test_accuracy: float | None,
                 champion_accuracy: float | None) -> dict[str, str]:
    """Each rule MLflow's validation refuses, with MLflow's own words."""
    import mlflow
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    baseline = None if champion_accuracy is None else static_result(champion_accuracy)
    failed = {}
    for rule, threshold in thresholds(min_test_accuracy, baseline is not None).items():
        try:
            mlflow.validate_evaluation_results(
                threshold, candidate, baseline if rule == "beats_champion" else None)
        except ModelValidationFailedException as exc:
            failed[rule] = str(exc.message).strip()
    return failed


def described(min_test_accuracy: float | None, champion: bool) -> dict[str, Any]:
    """The gate as text, for ``decision.json``."""
    return {rule: {metric: str(t) for metric, t in spec.items()}
            for rule, spec in thresholds(min_test_accuracy, champion).items()}


__all__ = ["ACCURACY", "MLFLOW_ARTIFACTS", "described", "evaluate_in_run", "failed_rules",
           "static_result", "thresholds"]
