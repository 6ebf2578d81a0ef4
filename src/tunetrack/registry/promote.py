"""Promotion: the best trial of a search is judged once on the sealed test split, packaged as a
pyfunc classifier and registered; alias ``champion`` moves only to a model that is at least as
good on the same test data. Registry aliases only, never stages (deprecated in MLflow 3).

Every decision is its own run (tag ``tunetrack.role=promotion``) in the search's experiment,
so :func:`promotion_history` can tell how the champion got there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunetrack import names
from tunetrack.errors import DataError, PromotionRefused, TrackingError, did_you_mean
from tunetrack.registry.evaluation import Evaluation, evaluate, judge
from tunetrack.registry.serving import Classifier, EnsembleClassifier

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tunetrack.data import Dataset

CHAMPION = "champion"
CHALLENGER = "challenger"
DATA_CONFIG_FILE = "data_config.json"
# Version tags that link a registered model back to where it came from.
TAG_SEARCH_RUN = "tunetrack.search_run_id"
TAG_TRIAL_RUN = "tunetrack.trial_run_id"
TAG_TEST_ACCURACY = "tunetrack.test_accuracy"
TAG_ENSEMBLE = "tunetrack.ensemble"  # members in the registered classifier (absent: 1)
# Tags of a promotion (decision) run.
TAG_DECISION = "tunetrack.decision"
TAG_MODEL_NAME = "tunetrack.model_name"
TAG_MODEL_VERSION = "tunetrack.model_version"
TAG_ALIAS = "tunetrack.alias"
TAG_CHAMPION_VERSION = "tunetrack.previous_champion_version"
TAG_CHAMPION_SCORE = "tunetrack.champion_score_source"
DECISIONS = ("promoted", "refused", "dry_run")


@dataclass
class PromotionResult:
    """What :func:`promote` decided; ``lines()`` is what the CLI prints."""

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
                       f"{_fmt(self.champion_test_accuracy)} ({self.champion_score_source})")
        if self.version is not None:
            out.append(f"registered '{self.model_name}' version {self.version} with alias "
                       f"'{self.alias}'")
        out.append(self.reason)
        return out


def _fmt(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.4f}"


# --------------------------------------------------------------------------- store look-ups

def _experiment_id(mlclient: MlflowClient, experiment: str) -> str:
    found = mlclient.get_experiment_by_name(experiment)
    if found is None or found.lifecycle_stage == "deleted":
        known = [e.name for e in mlclient.search_experiments()]
        raise TrackingError(f"unknown experiment {experiment!r}{did_you_mean(experiment, known)};"
                            f" experiments in this store: {', '.join(known) or 'none'}")
    return found.experiment_id


def _search_run(mlclient: MlflowClient, experiment_id: str, experiment: str,
                search: str | None) -> Any:
    from mlflow.exceptions import MlflowException

    role = f"tags.`{names.TAG_ROLE}` = '{names.ROLE_SEARCH}'"
    if search is None:
        runs = mlclient.search_runs([experiment_id], role, order_by=["attributes.start_time DESC"],
                                    max_results=1)
        if not runs:
            raise TrackingError(f"experiment {experiment!r} has no search run; run "
                                f"'tunetrack search' first")
        return runs[0]
    try:
        run = mlclient.get_run(search)
    except MlflowException as exc:
        raise TrackingError(f"unknown search run {search!r}: {exc.message}") from exc
    if run.info.experiment_id != experiment_id or \
            run.data.tags.get(names.TAG_ROLE) != names.ROLE_SEARCH:
        raise TrackingError(f"run {search} is not a search run of experiment {experiment!r} "
                            f"(its {names.TAG_ROLE} is {run.data.tags.get(names.TAG_ROLE)!r})")
    return run


def _ranked_trials(mlclient: MlflowClient, experiment_id: str, search_id: str,
                   metric: str) -> list[Any]:
    """Completed trials of a search, best ``best_<metric>`` first (lowest for losses)."""
    trials = mlclient.search_runs([experiment_id], f"tags.`{names.TAG_PARENT}` = '{search_id}'",
                                  max_results=10_000)
    status = [t.data.tags.get(names.TAG_TRIAL_STATUS) for t in trials]
    done = [t for t, s in zip(trials, status, strict=True)
            if s == names.TrialStatus.COMPLETED.value]
    if not trials:
        raise TrackingError(f"search {search_id} has no trials to promote")
    if not done:
        counts = {s: status.count(s) for s in sorted(set(map(str, status)))}
        detail = ", ".join(f"{n} {s}" for s, n in counts.items())
        raise TrackingError(f"search {search_id} has no completed trial to promote: all "
                            f"{len(trials)} trials were rejected or failed ({detail})")
    key = metric if metric.startswith("best_") else f"best_{metric}"
    scored = [t for t in done if key in t.data.metrics]
    if not scored:
        available = sorted({m for t in done for m in t.data.metrics if m.startswith("best_")})
        raise TrackingError(f"no completed trial of search {search_id} has metric {key!r}"
                            f"{did_you_mean(key, available)}; available: "
                            f"{', '.join(available) or 'none'}")
    sign = -1.0 if "loss" in key else 1.0
    return sorted(scored, key=lambda t: -sign * t.data.metrics[key])


def _sealed_test_data(search_run: Any) -> Dataset:
    """Rebuild the exact data the search used; refuse when it no longer matches."""
    import mlflow

    from tunetrack.data import DataConfig, load_dataset

    run_id = search_run.info.run_id
    try:
        cfg = mlflow.artifacts.load_dict(f"runs:/{run_id}/{DATA_CONFIG_FILE}")
    except Exception as exc:  # noqa: BLE001 - missing or unreadable artifact
        raise TrackingError(f"search run {run_id} has no {DATA_CONFIG_FILE}, so its test split "
                            f"cannot be rebuilt; re-run the search with this tunetrack") from exc
    from dataclasses import fields

    known = {f.name for f in fields(DataConfig)} - {"cache_dir"}  # the cache is local, not data
    cfg = {k: v for k, v in cfg.items() if k in known}
    if cfg.get("image_size") is not None:
        cfg["image_size"] = tuple(cfg["image_size"])
    dataset = load_dataset(DataConfig(**cfg))
    recorded = search_run.data.tags.get(names.TAG_DATA_FINGERPRINT)
    if recorded != dataset.fingerprint:
        raise DataError(f"the data changed since search {run_id}: its fingerprint was "
                        f"{recorded}, {cfg.get('source')!r} now gives {dataset.fingerprint}; "
                        f"the sealed test split cannot be rebuilt, so nothing is promoted")
    return dataset


# --------------------------------------------------------------------------- registry

def _check_registry(mlclient: MlflowClient) -> None:
    try:
        mlclient.search_registered_models(max_results=1)
    except Exception as exc:  # noqa: BLE001 - each store fails differently
        from tunetrack.tracking.store import tracking_uri

        raise TrackingError(f"the store {tracking_uri()} has no usable model registry "
                            f"({type(exc).__name__}: {exc}); promotion needs one, e.g. the "
                            f"default sqlite store under ./mlruns") from exc


def _champion(mlclient: MlflowClient, model_name: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return mlclient.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def _champion_score(mlclient: MlflowClient, champion: Any, dataset: Dataset,
                    winner: Evaluation) -> tuple[float | None, str]:
    """Re-evaluate the champion on this test split when its data is the same; otherwise its
    recorded score is all there is, and the result says so."""
    tags = champion.tags or {}
    recorded = tags.get(TAG_TEST_ACCURACY)
    recorded_value = float(recorded) if recorded is not None else None
    if tags.get(names.TAG_DATA_FINGERPRINT) != dataset.fingerprint:
        return recorded_value, "recorded on different data: the fingerprints differ"
    if tags.get(TAG_TRIAL_RUN) == winner.run_id:
        return winner.test_accuracy, "re-evaluated on the same test split (same trial)"
    from tunetrack.registry.serving import load_classifier

    classifier = load_classifier(f"models:/{champion.name}/{champion.version}")
    return evaluate(classifier, dataset)[0], "re-evaluated on the same test split"


def _register(mlclient: MlflowClient, model_name: str, model_uri: str, tags: dict[str, str]
              ) -> Any:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlclient.get_registered_model(model_name)
    except MlflowException:
        mlclient.create_registered_model(
            model_name, description="tunetrack image classifier: DataFrame column 'image' "
                                    "(base64 image bytes or path) in, 'class' and "
                                    "'probability' out")
    return mlflow.register_model(model_uri, model_name, tags=tags)


def _decision_run(mlclient: MlflowClient, experiment_id: str, model_name: str) -> str:
    run = mlclient.create_run(experiment_id, run_name=f"promote-{model_name}-"
                                                      f"{time.strftime('%Y%m%d-%H%M%S')}",
                              tags={names.TAG_ROLE: names.ROLE_PROMOTION})
    return run.info.run_id


def _record_decision(mlclient: MlflowClient, experiment_id: str, result: PromotionResult,
                     min_test_accuracy: float | None, run_id: str | None = None) -> str:
    """Fill the decision run (created here unless ``run_id`` already holds the ensemble)."""
    from tunetrack.tracking.store import RunLogger

    w = result.winner
    run_id = run_id or _decision_run(mlclient, experiment_id, result.model_name)
    log = RunLogger(mlclient, run_id)
    log.tags({TAG_DECISION: result.decision, TAG_MODEL_NAME: result.model_name,
              TAG_MODEL_VERSION: result.version, TAG_ALIAS: result.alias,
              TAG_SEARCH_RUN: result.search_run_id, TAG_TRIAL_RUN: w.run_id,
              names.TAG_TRIAL_ID: w.trial_id, TAG_CHAMPION_VERSION: result.champion_version,
              TAG_CHAMPION_SCORE: result.champion_score_source, names.TAG_REASON: result.reason})
    log.params({"metric": result.metric, "min_test_accuracy": min_test_accuracy,
                "candidates": len(result.candidates), "ensemble": len(result.members) or 1})
    log.metrics({"test_accuracy": w.test_accuracy, "test_loss": w.test_loss,
                 "champion_test_accuracy": result.champion_test_accuracy})
    log.flush()
    mlclient.log_dict(run_id, {
        "decision": result.decision, "model_name": result.model_name, "version": result.version,
        "search_run_id": result.search_run_id, "trial_run_id": w.run_id,
        "trial_id": w.trial_id, "test_accuracy": w.test_accuracy,
        "champion_version": result.champion_version,
        "champion_test_accuracy": result.champion_test_accuracy, "reason": result.reason,
        "candidates": [{"trial_id": e.trial_id, "run_id": e.run_id,
                        "test_accuracy": e.test_accuracy} for e in result.candidates]},
        "decision.json")
    mlclient.set_terminated(run_id, "FINISHED")
    return run_id


# --------------------------------------------------------------------------- promote

def promote(experiment: str, model_name: str, *, search: str | None = None,
            metric: str = "val_accuracy", min_test_accuracy: float | None = None, top: int = 1,
            ensemble: int = 1, dry_run: bool = False) -> PromotionResult:
    """Judge a search's best trial on its sealed test split and register it.

    ``top`` K: the K best trials by ``best_<metric>`` are evaluated and the best on test wins.
    ``ensemble`` K: the K best trials by ``best_<metric>`` become one classifier that averages
    their probabilities (chosen on validation alone; the test split only judges the result).
    Alias ``champion`` moves to the new version only if it reaches ``min_test_accuracy`` and
    at least the current champion's test accuracy; else the version becomes ``challenger`` and
    :class:`PromotionRefused` (exit 1, with ``.result``) says why. ``dry_run`` evaluates and
    reports (test metrics are still logged to the trial runs) but registers nothing.
    """
    from tunetrack.tracking.store import client

    if top < 1:
        raise TrackingError(f"top must be at least 1, got {top}")
    if ensemble < 1:
        raise TrackingError(f"ensemble must be at least 1, got {ensemble}")
    if ensemble > 1 and top > 1:
        raise TrackingError("choose --top (the best of K trials on test) or --ensemble (the K "
                            "best trials averaged), not both")
    if min_test_accuracy is not None and not 0.0 <= min_test_accuracy <= 1.0:
        raise TrackingError(f"min_test_accuracy must be within [0, 1], got {min_test_accuracy}")
    mlclient = client()
    experiment_id = _experiment_id(mlclient, experiment)
    if not dry_run:
        _check_registry(mlclient)
    search_run = _search_run(mlclient, experiment_id, experiment, search)
    search_id = search_run.info.run_id
    metric = metric[len("best_"):] if metric.startswith("best_") else metric
    ranked = _ranked_trials(mlclient, experiment_id, search_id, metric)[:max(top, ensemble)]
    if len(ranked) < ensemble:
        raise TrackingError(f"an ensemble of {ensemble} needs {ensemble} completed trials with "
                            f"best_{metric}; search {search_id} has {len(ranked)}")
    dataset = _sealed_test_data(search_run)

    judged = [judge(mlclient, run, dataset, f"best_{metric}") for run in ranked]
    members: list[Evaluation] = []
    if ensemble > 1:
        members = [e for e, _ in judged]
        winner, classifier = _ensemble(judged, dataset)
    else:
        best = max(range(len(judged)), key=lambda i: (judged[i][0].test_accuracy, -i))
        winner, classifier = judged[best]
    result = PromotionResult("dry_run" if dry_run else "promoted", model_name, search_id, winner,
                             [e for e, _ in judged], reason="", metric=metric, members=members)

    champion = None if dry_run and not _has_registry(mlclient) else _champion(mlclient,
                                                                              model_name)
    if champion is not None:
        result.champion_version = str(champion.version)
        result.champion_test_accuracy, result.champion_score_source = _champion_score(
            mlclient, champion, dataset, winner)
    refusals = _refusals(result, min_test_accuracy)

    if dry_run:
        verdict = "; ".join(refusals) if refusals else "it would become champion"
        result.reason = f"dry run, nothing registered: {verdict}"
        return result

    # A trial's classifier lives in the trial's run; an ensemble's in its decision run.
    decision_run = _decision_run(mlclient, experiment_id, model_name) if members else None
    result.model_uri = _log_classifier(classifier, decision_run or winner.run_id)
    tags = {TAG_SEARCH_RUN: search_id, TAG_TRIAL_RUN: winner.run_id,
            names.TAG_TRIAL_ID: winner.trial_id, TAG_TEST_ACCURACY: repr(winner.test_accuracy),
            "tunetrack.test_loss": repr(winner.test_loss),
            names.TAG_DATA_FINGERPRINT: dataset.fingerprint, names.TAG_FAMILY: winner.family}
    if members:
        tags[TAG_ENSEMBLE] = str(len(members))
    version = _register(mlclient, model_name, result.model_uri, tags)
    result.version = str(version.version)
    result.alias = CHALLENGER if refusals else CHAMPION
    mlclient.set_registered_model_alias(model_name, result.alias, result.version)
    if refusals:
        result.decision = "refused"
        result.reason = (f"'{model_name}' version {result.version} is not champion: "
                         + "; ".join(refusals) + f"; it has alias '{CHALLENGER}'"
                         + (f", version {result.champion_version} stays '{CHAMPION}'"
                            if result.champion_version else ""))
    else:
        before = (f"replacing version {result.champion_version} "
                  f"({_fmt(result.champion_test_accuracy)}, {result.champion_score_source})"
                  if result.champion_version else "the first champion")
        result.reason = (f"'{model_name}' version {result.version} is now '{CHAMPION}' with test "
                         f"accuracy {winner.test_accuracy:.4f}, {before}")
    result.decision_run_id = _record_decision(mlclient, experiment_id, result, min_test_accuracy,
                                              decision_run)
    if refusals:
        error = PromotionRefused(result.reason)
        error.result = result  # type: ignore[attr-defined]
        raise error
    return result


def _ensemble(judged: list[tuple[Evaluation, Classifier]], dataset: Dataset
              ) -> tuple[Evaluation, EnsembleClassifier]:
    """The members as one classifier, judged on the test split like a single trial; its run
    and trial ids join the members' (so re-promoting the same ensemble is recognised)."""
    members = [e for e, _ in judged]
    classifier = EnsembleClassifier.of([c for _, c in judged])
    acc, loss, precision, recall, confusion = evaluate(classifier, dataset)
    return Evaluation(",".join(e.run_id for e in members), "+".join(e.trial_id for e in members),
                      "+".join(dict.fromkeys(e.family for e in members)),
                      sum(e.selection_score for e in members) / len(members),
                      acc, loss, precision, recall, confusion), classifier


def _has_registry(mlclient: MlflowClient) -> bool:
    try:
        _check_registry(mlclient)
    except TrackingError:
        return False
    return True


def _refusals(result: PromotionResult, min_test_accuracy: float | None) -> list[str]:
    """Why the candidate may not become champion; empty when it may."""
    acc = result.winner.test_accuracy
    out = []
    if min_test_accuracy is not None and acc < min_test_accuracy:
        out.append(f"test accuracy {acc:.4f} is below min_test_accuracy "
                   f"{min_test_accuracy:.4f}")
    champ = result.champion_test_accuracy
    if champ is not None and acc < champ:
        out.append(f"test accuracy {acc:.4f} is below the champion's {champ:.4f} (version "
                   f"{result.champion_version}, {result.champion_score_source})")
    return out


def _log_classifier(classifier: Classifier, run_id: str) -> str:
    from tunetrack.registry.serving import log_classifier

    return log_classifier(run_id, classifier)


def promotion_history(experiment: str, model_name: str | None = None) -> list[dict[str, Any]]:
    """Every promotion decision in an experiment, oldest first, as plain dicts."""
    from tunetrack.tracking.store import client

    mlclient = client()
    experiment_id = _experiment_id(mlclient, experiment)
    query = f"tags.`{names.TAG_ROLE}` = '{names.ROLE_PROMOTION}'"
    if model_name is not None:
        query += f" and tags.`{TAG_MODEL_NAME}` = '{model_name}'"
    runs = mlclient.search_runs([experiment_id], query, order_by=["attributes.start_time ASC"],
                                max_results=10_000)
    return [{"run_id": r.info.run_id, "time": r.info.start_time,
             "decision": r.data.tags.get(TAG_DECISION),
             "model_name": r.data.tags.get(TAG_MODEL_NAME),
             "version": r.data.tags.get(TAG_MODEL_VERSION),
             "alias": r.data.tags.get(TAG_ALIAS),
             "search_run_id": r.data.tags.get(TAG_SEARCH_RUN),
             "trial_run_id": r.data.tags.get(TAG_TRIAL_RUN),
             "trial_id": r.data.tags.get(names.TAG_TRIAL_ID),
             "test_accuracy": r.data.metrics.get("test_accuracy"),
             "champion_version": r.data.tags.get(TAG_CHAMPION_VERSION),
             "champion_test_accuracy": r.data.metrics.get("champion_test_accuracy"),
             "reason": r.data.tags.get(names.TAG_REASON)} for r in runs]


__all__ = ["CHALLENGER", "CHAMPION", "DATA_CONFIG_FILE", "Evaluation", "PromotionResult",
           "evaluate", "promote", "promotion_history"]
