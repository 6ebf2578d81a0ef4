"""What each model family accepts in a search space: keys, types, allowed values, defaults.

Pure data, shared by the space validator (which keys exist, which values are legal) and the
families (which values a candidate carries). A key the space leaves out takes its default.

Naming of hyperparameters in a candidate (and in MLflow params, and in ``--set``):
- a top-level key keeps its name: ``learning_rate``;
- a repeated group (``blocks``, ``dense``) has its count under the group's name (``blocks``)
  and one value per element and key, 1-based: ``blocks.1.filters``, ``blocks.2.filters``.
  Element ``i``'s values exist only when the count is at least ``i``.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
OPTIMIZERS = ("sgd", "adam", "rmsprop")
POOLINGS = ("max", "avg", "none")
PADDINGS = ("valid", "same")
LINEAR_LOSSES = ("squared_error", "cross_entropy")
FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")


@dataclass(frozen=True)
class Key:
    """One hyperparameter a family understands.

    ``type`` is int, float, str or bool. ``choices`` limits str values. ``low``/``high`` bound
    numbers (inclusive; ``high_open`` makes ``high`` exclusive). ``inherit`` names a top-level
    key whose value a group element takes when the space does not set the key in the group.
    """

    type: type
    default: object
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    inherit: str | None = None
    help: str = ""


@dataclass(frozen=True)
class Group:
    """A repeated part of a network: ``count`` elements, each with its own values of ``keys``."""

    keys: dict[str, Key]
    count_default: int
    count_low: int = 0
    help: str = ""


TRAINING = {
    "batch_size": Key(int, 64, low=1, help="minibatch size"),
    "learning_rate": Key(float, 1e-3, low=0.0, help="optimizer step size (> 0)"),
    "optimizer": Key(str, "adam", choices=OPTIMIZERS),
    "momentum": Key(float, 0.9, low=0.0, high=1.0, high_open=True, help="sgd momentum"),
    "l1": Key(float, 0.0, low=0.0, help="L1 weight penalty on every kernel"),
    "l2": Key(float, 0.0, low=0.0, help="L2 weight penalty on every kernel"),
}

NETWORK = {
    "activation": Key(str, "relu", choices=ACTIVATIONS),
    "leaky_relu_slope": Key(float, 0.1, low=0.0, high=1.0),
    "dropout": Key(float, 0.0, low=0.0, high=1.0, high_open=True,
                   help="dropout rate before each dense layer"),
    "batch_norm": Key(bool, False, help="batch normalization after each conv/dense layer"),
}

# Random augmentation of the training images, inside the model: Keras's random layers are active
# in fit() only, so validation, test and served predictions see the images unchanged. Pixel
# families only (a feature family's extractor runs before the model). 0 / "none" is off.
AUGMENT = {
    "augment_translate": Key(float, 0.0, low=0.0, high=1.0, high_open=True,
                             help="random shift up to this fraction of height and width"),
    "augment_rotate": Key(float, 0.0, low=0.0, high=180.0,
                          help="random rotation up to this many degrees either way"),
    "augment_zoom": Key(float, 0.0, low=0.0, high=1.0, high_open=True,
                        help="random zoom in or out up to this fraction"),
    "augment_flip": Key(str, "none", choices=FLIPS, help="random mirroring"),
}

DENSE = Group({
    "units": Key(int, 64, low=1),
    "activation": Key(str, "relu", choices=ACTIVATIONS, inherit="activation"),
}, count_default=1, help="hidden dense layers before the output layer")

CONV_BLOCKS = Group({
    "filters": Key(int, 16, low=1),
    "kernel_size": Key(int, 3, low=1),
    "stride": Key(int, 1, low=1),
    "padding": Key(str, "same", choices=PADDINGS),
    "activation": Key(str, "relu", choices=ACTIVATIONS, inherit="activation"),
    "pooling": Key(str, "max", choices=POOLINGS),
    "pool_size": Key(int, 2, low=1),
    "pool_stride": Key(int, 2, low=1),
}, count_default=2, count_low=1, help="conv -> activation -> pooling blocks")

VGG_BLOCKS = Group({
    "filters": Key(int, 16, low=1),
    "convs": Key(int, 2, low=1, help="3x3 'same' convolutions stacked before the pooling"),
    "pooling": Key(str, "max", choices=POOLINGS),
}, count_default=2, count_low=1, help="stacked 3x3 convolutions then 2x2 pooling")

RESNET_BLOCKS = Group({
    "filters": Key(int, 16, low=1),
    "stride": Key(int, 1, low=1, help="stride of the block's first conv; a 1x1 projection "
                                      "shortcut is used when the shape changes"),
}, count_default=2, count_low=1, help="residual blocks of two 3x3 convolutions")


@dataclass(frozen=True)
class FamilySchema:
    name: str
    keys: dict[str, Key]
    groups: dict[str, Group]
    features: bool = False  # the model is trained on extracted features, not pixels
    help: str = ""


def _schema(name: str, keys: dict, groups: dict, *, features: bool = False,
            help: str = "") -> FamilySchema:
    augment = {} if features else AUGMENT
    return FamilySchema(name, {**TRAINING, **keys, **augment}, groups, features, help)


FAMILIES: dict[str, FamilySchema] = {s.name: s for s in (
    _schema("linear", {"loss": Key(str, "squared_error", choices=LINEAR_LOSSES)}, {},
            help="Wx + b on the flattened image"),
    _schema("softmax", {}, {}, help="one dense softmax layer on the flattened image"),
    _schema("mlp", NETWORK, {"dense": DENSE}, help="the two-layer network (hidden dense layers)"),
    _schema("cnn", NETWORK, {"blocks": CONV_BLOCKS, "dense": DENSE},
            help="LeNet-style conv -> activation -> pooling blocks, then dense layers"),
    _schema("vgg", NETWORK, {"blocks": VGG_BLOCKS, "dense": DENSE},
            help="VGG-style blocks of stacked 3x3 convolutions"),
    _schema("resnet", {**NETWORK, "stem_filters": Key(int, 16, low=1)},
            {"blocks": RESNET_BLOCKS, "dense": Group(DENSE.keys, count_default=0)},
            help="residual blocks with projection shortcuts, global average pooling"),
    _schema("colour", {**NETWORK, "colours": Key(int, 2, low=1, help="k most frequent colours"),
                       "levels": Key(int, 4, low=2, help="levels per RGB channel (4 -> 64)")},
            {"dense": Group(DENSE.keys, count_default=1)}, features=True,
            help="requantized colours; the k most frequent are the features"),
    _schema("hog", {**NETWORK, "orientations": Key(int, 9, low=1),
                    "pixels_per_cell": Key(int, 4, low=1),
                    "cells_per_block": Key(int, 2, low=1)},
            {"dense": Group(DENSE.keys, count_default=1)}, features=True,
            help="histogram-of-oriented-gradients descriptor grid, then a small classifier"),
    _schema("lbp", {**NETWORK, "points": Key(int, 8, low=1), "radius": Key(int, 1, low=1),
                    "grid": Key(int, 2, low=1, help="cells per side of the histogram grid")},
            {"dense": Group(DENSE.keys, count_default=1)}, features=True,
            help="local-binary-pattern histograms on a grid, then a small classifier"),
)}


def element_name(group: str, index: int | str, key: str) -> str:
    """``blocks.2.filters``: the hyperparameter of ``key`` in element ``index`` (1-based;
    messages pass ``"N"`` for the pattern)."""
    return f"{group}.{index}.{key}"


def defaults(family: str) -> dict[str, object]:
    """The candidate a family builds when a space sets nothing."""
    schema = FAMILIES[family]
    out: dict[str, object] = {k: key.default for k, key in schema.keys.items()}
    for gname, group in schema.groups.items():
        out[gname] = group.count_default
        for i in range(1, group.count_default + 1):
            for k, key in group.keys.items():
                out[element_name(gname, i, k)] = (out.get(key.inherit, key.default)
                                                  if key.inherit else key.default)
    return out
