"""Keras 3 models built from the plan's layer specs, so the model is exactly what was planned.

Backend-agnostic: only ``keras.layers``; no TensorFlow calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from tunetrack.space.catalog import FAMILIES
from tunetrack.space.plan import LayerSpec, plan_layers

MERGES = ("add", "concat")  # layers that take a list of inputs


def _regularizer(candidate: Mapping[str, Any]) -> keras.regularizers.Regularizer | None:
    """L1/L2 penalty on every kernel; ``None`` when both are zero (no extra loss terms)."""
    l1, l2 = float(candidate.get("l1", 0.0)), float(candidate.get("l2", 0.0))
    if l1 <= 0 and l2 <= 0:
        return None
    return keras.regularizers.L1L2(l1=l1, l2=l2)


def _layer(spec: LayerSpec, reg: keras.regularizers.Regularizer | None) -> keras.layers.Layer:
    """The Keras layer of one spec; the name is the plan's, so the two can be compared."""
    c, name = spec.config, spec.name
    if spec.kind == "conv":
        return keras.layers.Conv2D(c["filters"], c["kernel"], strides=c["stride"],
                                   padding=c["padding"], use_bias=c.get("bias", True),
                                   kernel_regularizer=reg, name=name)
    if spec.kind == "zero_pad":
        return keras.layers.ZeroPadding2D(c["pad"], name=name)
    if spec.kind == "dense":
        return keras.layers.Dense(c["units"], activation=c["activation"],
                                  kernel_regularizer=reg, name=name)
    if spec.kind == "batch_norm":
        # Momentum 0.9, not Keras's 0.99: the moving statistics used at validation time must
        # settle within the few hundred steps a small search trains for, or every trial with
        # batch norm scores at chance on the validation split for its first epochs.
        return keras.layers.BatchNormalization(momentum=0.9, name=name)
    if spec.kind == "activation":
        if c["activation"] == "leaky_relu":
            return keras.layers.LeakyReLU(negative_slope=c["slope"], name=name)
        return keras.layers.Activation(c["activation"], name=name)
    if spec.kind == "max_pool":
        return keras.layers.MaxPooling2D(c["size"], strides=c["stride"],
                                         padding=c.get("padding", "valid"), name=name)
    if spec.kind == "avg_pool":
        return keras.layers.AveragePooling2D(c["size"], strides=c["stride"],
                                             padding=c.get("padding", "valid"), name=name)
    if spec.kind == "augment":
        return _augment(c["op"], c["factor"], name)
    if spec.kind == "dropout":
        return keras.layers.Dropout(c["rate"], name=name)
    if spec.kind == "flatten":
        return keras.layers.Flatten(name=name)
    if spec.kind == "adaptive_avg_pool":
        return keras.layers.AdaptiveAveragePooling2D(c["size"], name=name)
    if spec.kind == "global_avg_pool":
        return keras.layers.GlobalAveragePooling2D(name=name)
    if spec.kind == "add":
        return keras.layers.Add(name=name)
    if spec.kind == "concat":
        return keras.layers.Concatenate(name=name)
    raise ValueError(f"layer {name!r}: unknown spec kind {spec.kind!r}")


def _augment(op: str, factor: Any, name: str) -> keras.layers.Layer:
    """Keras's random preprocessing layers: identity outside ``fit`` (``training=False``)."""
    if op == "flip":
        return keras.layers.RandomFlip(str(factor), name=name)
    f = float(factor)
    if op == "translate":
        return keras.layers.RandomTranslation(f, f, fill_mode="constant", name=name)
    if op == "rotate":  # degrees in the space; Keras takes a fraction of a full turn
        return keras.layers.RandomRotation(f / 360.0, fill_mode="constant", name=name)
    if op == "zoom":
        return keras.layers.RandomZoom(f, f, fill_mode="constant", name=name)
    raise ValueError(f"layer {name!r}: unknown augmentation {op!r}")


class AuxiliaryClassifiers(keras.Model):
    """A functional model with outputs ``[main, aux...]`` (GoogLeNet's auxiliary classifiers).

    Training adds ``aux_weight`` × each auxiliary classifier's cross-entropy to the main loss;
    metrics, validation and :attr:`served` see the main output only, so ``accuracy`` and
    ``val_accuracy`` mean what they mean for every other model. Backend-agnostic: only
    ``compute_loss``/``compute_metrics`` are overridden.
    """

    def __init__(self, *args: Any, aux_weight: float = 0.3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aux_weight = float(aux_weight)

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None,
                     sample_weight: Any = None, training: bool = True) -> Any:
        main, *aux = y_pred
        loss = super().compute_loss(x, y, main, sample_weight, training)
        if training and aux and self.aux_weight:
            for out in aux:
                loss = loss + self.aux_weight * keras.ops.mean(
                    keras.losses.sparse_categorical_crossentropy(y, out))
        return loss

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        return super().compute_metrics(x, y, y_pred[0], sample_weight)

    @property
    def served(self) -> keras.Model:
        """The same layers without the auxiliary classifiers: what is logged and served."""
        return keras.Model(self.inputs, self.outputs[0], name=self.name)


def served_model(model: keras.Model) -> keras.Model:
    """The model to evaluate, log and serve: ``model`` without training-only outputs."""
    return model.served if isinstance(model, AuxiliaryClassifiers) else model


def build_model(family: str, candidate: Mapping[str, Any], input_shape: tuple[int, ...],
                num_classes: int) -> keras.Model:
    """The uncompiled functional model of a candidate; raises ``CandidateRejected`` like the
    plan does. ``input_shape`` is the image (H, W, C) or, for feature families, ``(length,)``.
    With auxiliary classifiers it is an :class:`AuxiliaryClassifiers` (see :func:`served_model`).
    """
    plan = plan_layers(family, candidate, input_shape, num_classes)
    reg = _regularizer(candidate)
    tensors: dict[str, Any] = {}
    for spec in plan.specs:
        if spec.kind == "input":
            tensors[spec.name] = keras.Input(shape=spec.config["shape"], name=spec.name)
            continue
        args = [tensors[name] for name in spec.inputs]
        tensors[spec.name] = _layer(spec, reg)(args if spec.kind in MERGES else args[0])
    inputs, main = tensors[plan.specs[0].name], tensors[plan.specs[-1].name]
    name = f"tunetrack_{FAMILIES[family].name}"
    if plan.aux_outputs:
        return AuxiliaryClassifiers(inputs, [main, *(tensors[n] for n in plan.aux_outputs)],
                                    aux_weight=float(candidate.get("aux_weight", 0.3)),
                                    name=name)
    return keras.Model(inputs, main, name=name)
