"""The model registry side of promotion: registered versions, their tags, and the alias
``champion`` with the score it has to beat. Registry aliases only, never stages (deprecated
in MLflow 3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunetrack import names
from tunetrack.errors import TrackingError
from tunetrack.registry._evaluation import Evaluation, evaluate
from tunetrack.registry._pyfunc import load_classifier

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from tunetrack.data import Dataset

CHAMPION = "champion"
CHALLENGER = "challenger"
# Version tags that link a registered model back to where it came from.
TAG_SEARCH_RUN = "tunetrack.search_run_id"
TAG_TRIAL_RUN = "tunetrack.trial_run_id"
TAG_TEST_ACCURACY = "tunetrack.test_accuracy"
TAG_TEST_LOSS = "tunetrack.test_loss"
TAG_ENSEMBLE = "tunetrack.ensemble"  # members in the registered classifier (absent: 1)
# the trial's own LoggedModel(s) (the version's source is the promotion run's LoggedModel)
TAG_TRIAL_MODEL = "tunetrack.trial_model_id"
_DESCRIPTION = ("tunetrack image classifier: DataFrame column 'image' (base64 image bytes or "
                "path) in, 'class' and 'probability' out")


def check_registry(mlclient: MlflowClient) -> None:
    """Raise a :class:`TrackingError` naming the store when it has no model registry."""
    try:
        mlclient.search_registered_models(max_results=1)
    except Exception as exc:  # noqa: BLE001 - each store fails differently
        from tunetrack.tracking.store import tracking_uri

        raise TrackingError(f"the store {tracking_uri()} has no usable model registry "
                            f"({type(exc).__name__}: {exc}); promotion needs one, e.g. the "
                            f"default sqlite store under ./mlruns") from exc


def has_registry(mlclient: MlflowClient) -> bool:
    try:
        check_registry(mlclient)
    except TrackingError:
        return False
    return True


def champion(mlclient: MlflowClient, model_name: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return mlclient.get_model_version_by_alias(model_name, CHAMPION)
    except MlflowException:
        return None


def champion_score(champion: ModelVersion, dataset: Dataset, winner: Evaluation
                   ) -> tuple[float | None, str]:
    """Re-evaluate the champion on this test split when its data is the same; otherwise its
    recorded score is all there is, and the result says so."""
    tags = champion.tags or {}
    recorded = tags.get(TAG_TEST_ACCURACY)
    recorded_value = float(recorded) if recorded is not None else None
    if tags.get(names.TAG_DATA_FINGERPRINT) != dataset.fingerprint:
        return recorded_value, "recorded on different data: the fingerprints differ"
    if tags.get(TAG_TRIAL_RUN) == winner.run_id:
        return winner.test_accuracy, "re-evaluated on the same test split (same trial)"
    classifier = load_classifier(f"models:/{champion.name}/{champion.version}")
    return evaluate(classifier, dataset).accuracy, "re-evaluated on the same test split"


def register(mlclient: MlflowClient, model_name: str, model_uri: str, tags: dict[str, str]
             ) -> ModelVersion:
    """A new version of ``model_name`` (created on first use) holding ``model_uri``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlclient.get_registered_model(model_name)
    except MlflowException:
        mlclient.create_registered_model(model_name, description=_DESCRIPTION)
    return mlflow.register_model(model_uri, model_name, tags=tags)


def trial_model_tag(mlclient: MlflowClient, run_ids: list[str]) -> dict[str, str]:
    """``{TAG_TRIAL_MODEL: "m-...,m-..."}``: each trial run's LoggedModel (none: no tag)."""
    found = []
    for run_id in run_ids:
        experiment = mlclient.get_run(run_id).info.experiment_id
        models = mlclient.search_logged_models(
            [experiment], filter_string=f"source_run_id = '{run_id}'", max_results=1)
        found += [m.model_id for m in models]
    return {TAG_TRIAL_MODEL: ",".join(found)} if found else {}


def version_tags(search_id: str, winner: Evaluation, fingerprint: str, members: int
                 ) -> dict[str, str]:
    """The tags of a registered version: where it came from and what it scored on test."""
    tags = {TAG_SEARCH_RUN: search_id, TAG_TRIAL_RUN: winner.run_id,
            names.TAG_TRIAL_ID: winner.trial_id, TAG_TEST_ACCURACY: repr(winner.test_accuracy),
            TAG_TEST_LOSS: repr(winner.test_loss), names.TAG_DATA_FINGERPRINT: fingerprint,
            names.TAG_FAMILY: winner.family}
    if members > 1:
        tags[TAG_ENSEMBLE] = str(members)
    return tags


__all__ = ["CHALLENGER", "CHAMPION", "TAG_ENSEMBLE", "TAG_SEARCH_RUN", "TAG_TEST_ACCURACY",
           "TAG_TEST_LOSS", "TAG_TRIAL_MODEL", "TAG_TRIAL_RUN", "champion", "champion_score",
           "check_registry", "has_registry", "register", "trial_model_tag", "version_tags"]
