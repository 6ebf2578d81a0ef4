"""Class imbalance: ``training.class_weight`` and the validation macro-F1 every trial logs.

:func:`class_weights` turns the pipeline's setting into Keras's ``class_weight`` (``balanced``:
``n / (C * n_c)``, scikit-learn's rule; a mapping names classes). A search compiles every model
with the in-graph ``MacroF1`` metric (models/_compile.py), so Keras itself logs
``val_macro_f1``; :func:`macro_f1_callback` has it count validation batches only and adds
``val_recall_<class>`` from its confusion matrix. They become curves (``macro_f1/val``),
``best_``/``final_`` scores and the objective ``val_macro_f1`` like any Keras metric. The
callback must run first: early stopping, pruning, live logging and keras-tuner's own
callbacks read the logs.
:func:`scores` is the same on predictions (the scikit-learn classifiers).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tunetrack.errors import DataError, allowed_list

MACRO_F1 = "val_macro_f1"
RECALL_PREFIX = "val_recall_"


def recall_key(class_name: str) -> str:
    """``val_recall_<class>`` with the characters MLflow metric names refuse replaced."""
    return RECALL_PREFIX + re.sub(r"[^\w\-. /]", "_", class_name)


def class_weights(setting: str | dict[str, float] | None, y_train: np.ndarray,
                  class_names: list[str]) -> dict[int, float] | None:
    """Keras ``class_weight`` for ``training.class_weight``; None when unset."""
    if setting is None:
        return None
    if setting == "balanced":
        counts = np.bincount(np.asarray(y_train, dtype=int), minlength=len(class_names))
        present = counts > 0
        weights = np.ones(len(class_names))
        weights[present] = len(y_train) / (int(present.sum()) * counts[present])
        return {i: float(w) for i, w in enumerate(weights)}
    if isinstance(setting, dict):
        unknown = [k for k in setting if k not in class_names]
        if unknown:
            raise DataError(f"training.class_weight names {allowed_list(unknown)}, which the "
                            f"data does not have; its classes are {allowed_list(class_names)}")
        return {i: float(setting.get(name, 1.0)) for i, name in enumerate(class_names)}
    raise DataError(f"training.class_weight must be 'balanced' or a mapping of class name to "
                    f"weight, got {setting!r}")


def scores(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """``val_macro_f1`` and one ``val_recall_<class>`` per class."""
    from sklearn.metrics import f1_score, recall_score

    labels = list(range(len(class_names)))
    out = {MACRO_F1: float(f1_score(y_true, y_pred, labels=labels, average="macro",
                                    zero_division=0))}
    recalls = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    out |= {recall_key(name): float(r) for name, r in zip(class_names, recalls, strict=True)}
    return out


def macro_f1_callback(metric: Any, class_names: list[str]) -> Any:
    """A Keras callback around the compiled :class:`~tunetrack.models._compile.MacroF1`.

    It lets the metric count validation batches only (``counting``: off from the start of
    training, on for each validation pass), drops the empty training-side ``macro_f1`` from
    the epoch's logs, and adds ``val_recall_<class>``: Keras has just put ``val_macro_f1`` in
    the logs and the metric's confusion matrix still holds the validation split's counts, so
    the recalls cost no prediction. It must come first: later callbacks read what it writes.
    """
    import keras

    class MacroF1Logs(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            metric.counting = False

        def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
            metric.counting = True

        def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
            metric.counting = False

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            metric.counting = True  # a later evaluate() outside fit counts as usual

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs is None:
                return
            logs.pop(metric.name, None)  # training batches were not counted
            if MACRO_F1 not in logs:  # no validation split
                return
            confusion = np.asarray(metric.confusion.numpy(), dtype=float)
            seen = confusion.sum(axis=1)
            recalls = np.divide(np.diag(confusion), seen, out=np.zeros_like(seen),
                                where=seen > 0)
            logs.update({recall_key(name): float(r)
                         for name, r in zip(class_names, recalls, strict=True)})

    return MacroF1Logs()


__all__ = ["MACRO_F1", "class_weights", "macro_f1_callback", "recall_key", "scores"]
