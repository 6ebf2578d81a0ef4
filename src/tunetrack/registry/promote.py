"""Promotion: the best trial of a search is judged once on the sealed test split, packaged as a
pyfunc classifier and registered; alias ``champion`` moves only to a model that is at least as
good on the same test data, else the new version becomes ``challenger``.

The steps live in their own modules: finding the search and its trials (``_lookup``), the test
split's verdict (``_evaluation``), the registry and its aliases (``_aliases``), and the
decision run that records each outcome (``_decision``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunetrack.errors import TrackingError
from tunetrack.registry import _aliases, _lookup
from tunetrack.registry._aliases import CHALLENGER, CHAMPION
from tunetrack.registry._classifier import Classifier, EnsembleClassifier
from tunetrack.registry._decision import (
    PromotionResult,
    Refused,
    abandon_decision,
    decision_run,
    fmt_score,
    promotion_history,
    record_decision,
    refusals,
)
from tunetrack.registry._evaluation import Evaluation, evaluate, judge
from tunetrack.registry._mlflow_eval import evaluate_in_run
from tunetrack.registry._pyfunc import log_classifier

if TYPE_CHECKING:
    from tunetrack.data import Dataset


def _check_arguments(top: int, ensemble: int, min_test_accuracy: float | None) -> None:
    if top < 1:
        raise TrackingError(f"top must be at least 1, got {top}")
    if ensemble < 1:
        raise TrackingError(f"ensemble must be at least 1, got {ensemble}")
    if ensemble > 1 and top > 1:
        raise TrackingError("choose --top (the best of K trials on test) or --ensemble (the K "
                            "best trials averaged), not both")
    if min_test_accuracy is not None and not 0.0 <= min_test_accuracy <= 1.0:
        raise TrackingError(f"min_test_accuracy must be within [0, 1], got {min_test_accuracy}")


def promote(experiment: str, model_name: str, *, search: str | None = None,
            metric: str = "val_accuracy", min_test_accuracy: float | None = None, top: int = 1,
            ensemble: int = 1, dry_run: bool = False,
            require_significant: bool = False) -> PromotionResult:
    """Judge a search's best trial on its sealed test split and register it.

    ``top`` K: the K best trials by ``best_<metric>`` are evaluated and the best on test wins.
    ``ensemble`` K: the K best trials by ``best_<metric>`` become one classifier that averages
    their probabilities (chosen on validation alone; the test split only judges the result).
    Alias ``champion`` moves to the new version only if it reaches ``min_test_accuracy`` and
    at least the current champion's test accuracy; else the version becomes ``challenger`` and
    :class:`~tunetrack.errors.PromotionRefused` (exit 1, with ``.result``) says why.
    ``require_significant``: refuse (PromotionRefused) unless the best candidate's lead over
    the second exceeds seed noise (Welch's t-test on their repeats, see
    :mod:`tunetrack.tracking.significance`).
    ``dry_run`` evaluates and reports but writes nothing. Trial runs are only read: the verdict,
    the packaged classifier and the decision go on a promotion run (``tunetrack.role=promotion``,
    linked to the trial by tags) and on the registered version.
    """
    from tunetrack.tracking.store import client

    _check_arguments(top, ensemble, min_test_accuracy)
    mlclient = client()
    experiment_id = _lookup.experiment_id(mlclient, experiment)
    if not dry_run:
        _aliases.check_registry(mlclient)
    search_run = _lookup.search_run(mlclient, experiment_id, experiment, search)
    search_id = search_run.info.run_id
    metric = metric[len("best_"):] if metric.startswith("best_") else metric
    ranked = _lookup.ranked_trials(mlclient, experiment_id, search_id, metric)
    if require_significant:
        from tunetrack.tracking.significance import require_significant as check_lead

        check_lead(mlclient, ranked, metric)
    ranked = ranked[:max(top, ensemble)]
    if len(ranked) < ensemble:
        raise TrackingError(f"an ensemble of {ensemble} needs {ensemble} completed trials with "
                            f"best_{metric}; search {search_id} has {len(ranked)}")
    dataset = _lookup.sealed_test_data(search_run)

    judged = [judge(mlclient, run, dataset, f"best_{metric}") for run in ranked]
    members: list[Evaluation] = []
    classifier: Classifier
    if ensemble > 1:
        members = [e for e, _ in judged]
        winner, classifier = _ensemble(judged, dataset)
    else:
        best = max(range(len(judged)), key=lambda i: (judged[i][0].test_accuracy, -i))
        winner, classifier = judged[best]
    result = PromotionResult("dry_run" if dry_run else "promoted", model_name, search_id, winner,
                             [e for e, _ in judged], reason="", metric=metric, members=members)

    registry = not dry_run or _aliases.has_registry(mlclient)
    champion = _aliases.champion(mlclient, model_name) if registry else None
    if champion is not None:
        result.champion_version = str(champion.version)
        result.champion_test_accuracy, result.champion_score_source = _aliases.champion_score(
            champion, dataset, winner)
    refused = refusals(result, min_test_accuracy)

    if dry_run:
        verdict = "; ".join(refused) if refused else "it would become champion"
        result.reason = f"dry run, nothing registered: {verdict}"
        return result

    # The classifier lives in the promotion run, so the trial's run keeps its times and status.
    run_id = decision_run(mlclient, experiment_id, model_name)
    try:
        if winner.truth is not None and winner.predicted is not None:
            # MLflow's evaluation of the same predictions, logged on the promotion run
            evaluated = evaluate_in_run(run_id, winner.truth, winner.predicted,
                                        list(dataset.class_names))
            refused = refusals(result, min_test_accuracy, evaluated)
        _register(mlclient, result, run_id, classifier, dataset.fingerprint, refused)
        result.decision_run_id = record_decision(mlclient, experiment_id, result,
                                                 min_test_accuracy, run_id)
    except BaseException as error:
        abandon_decision(mlclient, run_id, error)
        raise
    if refused:
        raise Refused(result)
    return result


def _register(mlclient: Any, result: PromotionResult, run_id: str, classifier: Classifier,
              fingerprint: str, refused: list[str]) -> None:
    """Log the classifier to the promotion run, register it and move the alias."""
    winner, model_name, members = result.winner, result.model_name, result.members
    result.model_uri = log_classifier(run_id, classifier)
    tags = _aliases.version_tags(result.search_run_id, winner, fingerprint, len(members))
    tags |= _aliases.trial_model_tag(mlclient, winner.run_id.split(","))
    version = _aliases.register(mlclient, model_name, result.model_uri, tags)
    result.version = str(version.version)
    result.alias = CHALLENGER if refused else CHAMPION
    mlclient.set_registered_model_alias(model_name, result.alias, result.version)
    if refused:
        result.decision = "refused"
        result.reason = (f"'{model_name}' version {result.version} is not champion: "
                         + "; ".join(refused) + f"; it has alias '{CHALLENGER}'"
                         + (f", version {result.champion_version} stays '{CHAMPION}'"
                            if result.champion_version else ""))
    else:
        before = (f"replacing version {result.champion_version} "
                  f"({fmt_score(result.champion_test_accuracy)}, "
                  f"{result.champion_score_source})"
                  if result.champion_version else "the first champion")
        result.reason = (f"'{model_name}' version {result.version} is now '{CHAMPION}' with test "
                         f"accuracy {winner.test_accuracy:.4f}, {before}")


def _ensemble(judged: list[tuple[Evaluation, Classifier]], dataset: Dataset
              ) -> tuple[Evaluation, EnsembleClassifier]:
    """The members as one classifier, judged on the test split like a single trial; its run
    and trial ids join the members' (so re-promoting the same ensemble is recognised)."""
    members = [e for e, _ in judged]
    classifier = EnsembleClassifier.of([c for _, c in judged])
    scores = evaluate(classifier, dataset)
    return Evaluation(",".join(e.run_id for e in members), "+".join(e.trial_id for e in members),
                      "+".join(dict.fromkeys(e.family for e in members)),
                      sum(e.selection_score for e in members) / len(members),
                      *scores), classifier


__all__ = ["CHALLENGER", "CHAMPION", "PromotionResult", "promote", "promotion_history"]
