"""The sealed test split's verdict on a trial: accuracy, loss, per-class precision/recall and a
confusion matrix. Nothing is written to the trial's run (its times and status stay those of its
training): the promotion run records the verdict (see ``_decision.record_decision``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tunetrack import names
from tunetrack.errors import TrackingError
from tunetrack.registry._classifier import (
    KERAS_MODEL,
    PREPROCESSING_FILE,
    Classifier,
    Preprocessing,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from tunetrack.data import Dataset

CONFUSION_PLOT = "plots/test_confusion_matrix.png"
TEST_CHUNK = 1024  # images of a streamed test split in memory at once (data.cache: disk, none)
CLASSIC_DIR = "classic"  # beside a classic trial's network (search/classic_trial.py)
PER_CLASS_TABLE = "test_per_class.csv"


class Scores(NamedTuple):
    """What the test split says about one classifier."""

    accuracy: float
    loss: float
    precision: dict[str, float]
    recall: dict[str, float]
    confusion: np.ndarray
    truth: np.ndarray | None = None  # test labels (class indices), for MLflow's evaluation
    predicted: np.ndarray | None = None  # predicted class indices


@dataclass
class Evaluation:
    """One trial judged on the test split."""

    run_id: str
    trial_id: str
    family: str
    selection_score: float
    test_accuracy: float
    test_loss: float
    precision: dict[str, float]
    recall: dict[str, float]
    confusion: np.ndarray = field(repr=False)
    truth: np.ndarray | None = field(default=None, repr=False)
    predicted: np.ndarray | None = field(default=None, repr=False)


def _load_trial(mlclient: MlflowClient, run: Run) -> Classifier:
    import mlflow

    run_id = run.info.run_id
    listed = {a.path for a in mlclient.list_artifacts(run_id)}
    if PREPROCESSING_FILE not in listed:
        raise TrackingError(f"trial run {run_id} has no {PREPROCESSING_FILE}; it was recorded "
                            f"by a tunetrack that did not keep models")
    prep = Preprocessing.from_dict(mlflow.artifacts.load_dict(
        f"runs:/{run_id}/{PREPROCESSING_FILE}"))
    try:
        model = mlflow.keras.load_model(f"runs:/{run_id}/{KERAS_MODEL}",
                                        load_model_kwargs={"compile": False})
    except Exception as exc:  # noqa: BLE001
        raise TrackingError(f"cannot load the model of trial run {run_id} "
                            f"(runs:/{run_id}/{KERAS_MODEL}): {exc}") from exc
    classic = classic_dir = None
    if prep.family == "classic":  # its fitted encoder, saved beside the network
        from tunetrack.models import classic_runtime

        where = f"runs:/{run_id}/{KERAS_MODEL}/{CLASSIC_DIR}"
        try:
            classic_dir = Path(mlflow.artifacts.download_artifacts(where))
            classic = classic_runtime.load(classic_dir)
        except Exception as exc:  # noqa: BLE001 - missing or unreadable: one message
            raise TrackingError(f"cannot load the classic features of trial run {run_id} "
                                f"({where}): {exc}") from exc
    return Classifier(model, prep, classic, classic_dir)


def per_class_table(evaluation: Evaluation) -> str:
    """``class,precision,recall`` as CSV: one row per class (a table, not 2 x C metrics)."""
    rows = ["class,precision,recall"]
    for name, precision in evaluation.precision.items():
        label = f'"{name}"' if re.search(r'[,"\n]', name) else name
        rows.append(f"{label},{precision:.4f},{evaluation.recall[name]:.4f}")
    return "\n".join(rows) + "\n"


def probabilities(classifier: Classifier, images: Any, chunk: int = TEST_CHUNK) -> np.ndarray:
    """``classifier.probabilities(images)``; a split streamed from disk (``data.cache: disk |
    none``) is read ``chunk`` images at a time instead of whole, so judging a folder larger than
    memory needs no more memory than training on it."""
    from tunetrack.data import is_streamed

    if not is_streamed(images):
        return classifier.probabilities(images)
    parts = [classifier.probabilities(images[i:i + chunk]) for i in range(0, len(images), chunk)]
    return np.concatenate(parts) if parts else classifier.probabilities(images[0:0])


def evaluate(classifier: Classifier, dataset: Dataset) -> Scores:
    """Accuracy, cross-entropy, per-class precision/recall and confusion on the test split."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    if list(classifier.prep.class_names) != list(dataset.class_names):
        raise TrackingError(f"the model's classes {classifier.prep.class_names} differ from the "
                            f"data's {dataset.class_names}")
    probs = probabilities(classifier, dataset.x_test)
    y = dataset.y_test
    pred = probs.argmax(axis=1)
    labels = list(range(len(dataset.class_names)))
    accuracy = float(np.mean(pred == y))
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))))
    precision, recall, _, _ = precision_recall_fscore_support(y, pred, labels=labels,
                                                              zero_division=0)
    names_ = dataset.class_names
    return Scores(accuracy, loss, dict(zip(names_, map(float, precision), strict=True)),
                      dict(zip(names_, map(float, recall), strict=True)),
                      confusion_matrix(y, pred, labels=labels), np.asarray(y), pred)


def confusion_figure(confusion: np.ndarray, class_names: list[str], title: str) -> Figure:
    """A Figure without pyplot: no global backend state, safe in servers and tests."""
    from matplotlib.figure import Figure

    n = len(class_names)
    fig = Figure(figsize=(max(4.0, 0.5 * n + 2), max(3.5, 0.5 * n + 1.5)))
    ax = fig.add_subplot()
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=90 if n > 10 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    top = confusion.max() if confusion.size else 0
    for i in range(n):
        for j in range(n):
            if confusion[i, j]:
                ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if confusion[i, j] > top / 2 else "black")
    fig.tight_layout()
    return fig


def judge(mlclient: MlflowClient, run: Run, dataset: Dataset, metric_key: str
          ) -> tuple[Evaluation, Classifier]:
    """Evaluate one trial on the test split (read-only: the trial's run is not touched)."""
    classifier = _load_trial(mlclient, run)
    scores = evaluate(classifier, dataset)
    run_id = run.info.run_id
    trial_id = run.data.tags.get(names.TAG_TRIAL_ID, run_id)
    return Evaluation(run_id, trial_id, classifier.prep.family,
                      float(run.data.metrics[metric_key]), *scores), classifier


__all__ = ["CONFUSION_PLOT", "PER_CLASS_TABLE", "Evaluation", "Scores", "confusion_figure",
           "evaluate", "judge", "per_class_table", "probabilities"]
