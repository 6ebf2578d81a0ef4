"""Optimizer, loss and metric of a candidate, as keyword arguments for ``model.compile``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from tunetrack.space.catalog import FAMILIES, OPTIMIZERS


@keras.saving.register_keras_serializable(package="tunetrack")
def squared_error(y_true: Any, y_pred: Any) -> Any:
    """Mean squared error between raw scores and the one-hot label of integer class ids.

    The course's linear classifier loss; labels stay integers like every other family's.
    Registered so a saved linear model loads without ``custom_objects``.
    """
    labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
    one_hot = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
    return ops.mean(ops.square(one_hot - y_pred), axis=-1)


@keras.saving.register_keras_serializable(package="tunetrack")
class MacroF1(keras.metrics.Metric):
    """Macro-averaged F1 over ``num_classes`` classes, from a confusion matrix kept in graph.

    Keras computes it in the same pass as the loss and accuracy (``val_macro_f1`` on the
    validation split), so it costs no extra prediction. After the validation pass
    :attr:`confusion` holds that split's counts, from which ``search/imbalance.py`` reads the
    per-class recalls. A class never seen nor predicted scores 0, as scikit-learn's
    ``f1_score(average="macro", zero_division=0)`` counts it. Sample weights
    (``training.class_weight``) are ignored: the score counts images.

    :attr:`counting` off makes :meth:`update_state` a no-op. A search's callback turns it off
    for the training batches and on for validation: Keras traces the training step (TensorFlow,
    JAX) with counting off, so the training graph carries none of the metric's ops (tracing
    them cost ~0.1 s a trial), and under eager torch the flag holds batch by batch.
    """

    def __init__(self, num_classes: int, name: str = "macro_f1", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.counting = True
        self.confusion = self.add_variable(shape=(self.num_classes, self.num_classes),
                                           initializer="zeros", dtype="float32",
                                           name="confusion")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        if not self.counting:
            return
        labels = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), self.num_classes,
                             dtype="float32")
        guesses = ops.one_hot(ops.argmax(ops.reshape(y_pred, (-1, self.num_classes)), axis=-1),
                              self.num_classes, dtype="float32")
        self.confusion.assign_add(ops.matmul(ops.transpose(labels), guesses))

    def result(self) -> Any:
        hits = ops.diagonal(self.confusion)
        spread = ops.sum(self.confusion, axis=0) + ops.sum(self.confusion, axis=1)
        f1 = ops.where(spread > 0, 2.0 * hits / ops.maximum(spread, 1.0), 0.0)
        return ops.mean(f1)

    def reset_state(self) -> None:
        self.confusion.assign(ops.zeros((self.num_classes, self.num_classes), "float32"))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes}


def outputs_probabilities(family: str, candidate: Mapping[str, Any] | None = None) -> bool:
    """Whether the model ends in a softmax; only the linear family outputs raw scores."""
    return family != "linear"


def _optimizer(candidate: Mapping[str, Any]) -> keras.optimizers.Optimizer:
    name = str(candidate.get("optimizer", "adam"))
    lr = float(candidate.get("learning_rate", 1e-3))
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr,
                                    momentum=float(candidate.get("momentum", 0.9)))
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def _loss(family: str, candidate: Mapping[str, Any]) -> Any:
    if family != "linear":
        return keras.losses.SparseCategoricalCrossentropy()
    loss = str(candidate.get("loss", FAMILIES["linear"].keys["loss"].default))
    if loss == "squared_error":
        return squared_error
    if loss == "cross_entropy":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    raise ValueError(f"linear loss must be 'squared_error' or 'cross_entropy', got {loss!r}")


def compile_kwargs(family: str, candidate: Mapping[str, Any],
                   num_classes: int | None = None) -> dict[str, Any]:
    """``model.compile(**compile_kwargs(...))``; labels are integer class ids. With
    ``num_classes`` the metrics include :class:`MacroF1` (what a search compiles)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    metrics: list[Any] = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    if num_classes is not None:
        metrics.append(MacroF1(num_classes))
    return {"optimizer": _optimizer(candidate), "loss": _loss(family, candidate),
            "metrics": metrics}
