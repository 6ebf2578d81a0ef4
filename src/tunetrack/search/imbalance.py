"""Class imbalance: ``training.class_weight`` and the validation macro-F1 every trial logs.

:func:`class_weights` turns the pipeline's setting into Keras's ``class_weight`` (``balanced``:
``n / (C * n_c)``, scikit-learn's rule; a mapping names classes). :func:`macro_f1_callback`
adds ``val_macro_f1`` and ``val_recall_<class>`` to each epoch's logs, so they become curves
(``macro_f1/val``), ``best_``/``final_`` scores and the objective ``val_macro_f1`` like any
Keras metric. It must run first among the callbacks: early stopping, pruning, live logging
and keras-tuner's own callbacks read the logs it fills.
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


def macro_f1_callback(validation: Any, y_val: np.ndarray, class_names: list[str],
                      batch_size: int) -> Any:
    """A Keras callback that writes :func:`scores` on the validation split into the logs."""
    import keras

    x_val = validation[0] if isinstance(validation, tuple) else validation
    y_true = np.asarray(y_val, dtype=int).reshape(-1)

    def first(out: Any) -> np.ndarray:  # a model with training-only extra outputs: the first
        out = out[0] if isinstance(out, (list, tuple)) else out
        return np.asarray(keras.ops.convert_to_numpy(out))

    class MacroF1(keras.callbacks.Callback):
        def predicted(self) -> np.ndarray:
            if not isinstance(x_val, np.ndarray) and not hasattr(x_val, "take_uint8"):
                # a Keras PyDataset: its predict loop (data.StreamedImages slices like arrays)
                return first(self.model.predict(x_val, batch_size=batch_size, verbose=0))
            # arrays: direct calls in chunks, without predict()'s per-call setup (~0.2 s,
            # which on a small model would cost more than the epoch)
            step = max(256, batch_size)
            return np.concatenate([first(self.model(x_val[i:i + step], training=False))
                                   for i in range(0, len(x_val), step)])

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs is None or len(y_true) == 0:
                return
            logs.update(scores(y_true, self.predicted().argmax(axis=-1), class_names))

    return MacroF1()


__all__ = ["MACRO_F1", "class_weights", "macro_f1_callback", "recall_key", "scores"]
