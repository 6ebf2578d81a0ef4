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


def compile_kwargs(family: str, candidate: Mapping[str, Any]) -> dict[str, Any]:
    """``model.compile(**compile_kwargs(...))``; labels are integer class ids."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    return {"optimizer": _optimizer(candidate), "loss": _loss(family, candidate),
            "metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}
