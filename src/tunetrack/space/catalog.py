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
HEADS = ("flatten", "global_avg")
LINEAR_LOSSES = ("squared_error", "cross_entropy")
FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")
DESCRIPTORS = ("sift", "orb", "hog", "lbp", "colour")  # models/classic_runtime.py agrees
ENCODINGS = ("histogram", "bovw", "fisher")
CLASSIFIERS = ("dense", "linear_svm", "logistic")


class Padding(str):
    """The type of a conv ``padding`` key: ``'same'``, ``'valid'``, or a whole number of zero
    pixels added on every side (the course's z in ``(N + 2z − P)/s + 1``), kept as text
    (``'2'``) so that every value of the key has one type, as keras-tuner's ``Choice`` needs."""


@dataclass(frozen=True)
class Key:
    """One hyperparameter a family understands.

    ``type`` is int, float, str, bool or :class:`Padding`. ``choices`` limits str values.
    ``low``/``high`` bound numbers (inclusive; ``high_open`` makes ``high`` exclusive).
    ``inherit`` names a top-level key whose value a group element takes when the space does
    not set the key in the group.
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

POOL = {
    "pool_size": Key(int, 2, low=1),
    "pool_stride": Key(int, 2, low=1),
    "pool_padding": Key(str, "valid", choices=PADDINGS,
                        help="'same' keeps ceil(N/stride); 'valid' must fit exactly"),
}

CONV_UNIT = {
    "filters": Key(int, 16, low=1),
    "kernel_size": Key(int, 3, low=1),
    "stride": Key(int, 1, low=1),
    "padding": Key(Padding, "same", help="'same', 'valid' or zero pixels per side (2)"),
    "activation": Key(str, "relu", choices=ACTIVATIONS, inherit="activation"),
}

CONV_BLOCKS = Group({**CONV_UNIT, "pooling": Key(str, "max", choices=POOLINGS), **POOL},
                    count_default=2, count_low=1, help="conv -> activation -> pooling blocks")

STEM_KEYS = {**CONV_UNIT, "pooling": Key(str, "none", choices=POOLINGS), **POOL}
STEM_HELP = "conv -> activation [-> pooling] layers before the blocks (7x7/2 and 3x3/2 pool...)"

VGG_BLOCKS = Group({
    "filters": Key(int, 16, low=1),
    "convs": Key(int, 2, low=1, help="3x3 'same' convolutions stacked before the pooling"),
    "pooling": Key(str, "max", choices=POOLINGS),
    **POOL,
}, count_default=2, count_low=1, help="stages of stacked 3x3 convolutions, then pooling")

RESNET_BLOCKS = Group({
    "filters": Key(int, 16, low=1),
    "stride": Key(int, 1, low=1, help="stride of the stage's first conv; a 1x1 projection "
                                      "shortcut is used where the shape changes"),
    "repeat": Key(int, 1, low=1, help="basic residual blocks in the stage (ResNet-18: 2 each)"),
}, count_default=2, count_low=1, help="stages of residual blocks of two 3x3 convolutions")

INCEPTION_MODULES = Group({
    "b1x1": Key(int, 16, low=1, help="1x1 branch filters"),
    "b3x3_reduce": Key(int, 16, low=1, help="1x1 reduction before the 3x3 branch"),
    "b3x3": Key(int, 24, low=1),
    "b5x5_reduce": Key(int, 4, low=1, help="1x1 reduction before the 5x5 branch"),
    "b5x5": Key(int, 8, low=1),
    "b5x5_kernel": Key(int, 5, low=1, help="the 5x5 branch's kernel (torchvision's GoogLeNet "
                                           "uses 3)"),
    "pool_proj": Key(int, 8, low=1, help="1x1 projection after the branch's 3x3/1 max pool"),
    "pooling": Key(str, "none", choices=POOLINGS, help="pooling after the module"),
    "pool_size": Key(int, 3, low=1),
    "pool_stride": Key(int, 2, low=1),
    "pool_padding": Key(str, "same", choices=PADDINGS),
    "aux": Key(bool, False, help="an auxiliary classifier on this module's output, trained "
                                 "beside the main one and dropped from the served model "
                                 "(GoogLeNet: after 4a and 4d)"),
}, count_default=2, count_low=1,
    help="GoogLeNet modules: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | pool -> 1x1, concatenated")


def classifier_keys(default: str) -> dict[str, Key]:
    """How a feature family classifies: today's Keras dense network, or scikit-learn's linear
    SVM / logistic regression (then the dense keys are unused and the model is one linear map)."""
    return {"classifier": Key(str, default, choices=CLASSIFIERS,
                              help="dense (Keras network) | linear_svm | logistic (scikit-learn)"),
            "C": Key(float, 1.0, low=0.0, help="inverse regularization of linear_svm/logistic")}


CLASSIC = {
    "descriptor": Key(str, "sift", choices=DESCRIPTORS, help="local descriptor on a dense grid"),
    "step": Key(int, 4, low=1, help="grid step in pixels between patches"),
    "patch": Key(int, 16, low=2, help="patch side in pixels (HoG: whole cells of step pixels)"),
    "orientations": Key(int, 9, low=1, help="HoG orientation bins"),
    "points": Key(int, 8, low=1, help="LBP neighbours"),
    "radius": Key(int, 1, low=1, help="LBP radius"),
    "pca": Key(int, 32, low=0, help="PCA dimensions of the descriptors (0: none)"),
    "encoding": Key(str, "fisher", choices=ENCODINGS,
                    help="histogram (mean per cell) | bovw (k-means words) | fisher (GMM)"),
    "words": Key(int, 16, low=1, help="codebook size (bovw) or mixture components (fisher)"),
    "pyramid": Key(int, 1, low=0, help="spatial pyramid levels 0..L (1x1, 2x2, 4x4 cells)"),
}


def conv_keys(head: str) -> dict[str, Key]:
    """The keys every convolutional family shares: the network's, bias, width, head."""
    return {**NETWORK,
            "bias": Key(bool, True, help="conv layers add a bias (off where batch norm follows)"),
            "width": Key(float, 1.0, low=0.0, help="multiplies the filters of every conv layer"),
            "head": Key(str, head, choices=HEADS, help="how the last feature map becomes a "
                                                      "vector: flatten or global average pool")}


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
    _schema("cnn", conv_keys("flatten"),
            {"stem": Group(STEM_KEYS, count_default=0, help=STEM_HELP), "blocks": CONV_BLOCKS,
             "dense": DENSE},
            help="LeNet/AlexNet-style conv -> activation -> pooling blocks, then dense layers"),
    _schema("vgg", conv_keys("flatten"),
            {"stem": Group(STEM_KEYS, count_default=0, help=STEM_HELP), "blocks": VGG_BLOCKS,
             "dense": DENSE},
            help="VGG-style stages of stacked 3x3 convolutions"),
    _schema("resnet", conv_keys("global_avg"),
            {"stem": Group(STEM_KEYS, count_default=1, help=STEM_HELP), "blocks": RESNET_BLOCKS,
             "dense": Group(DENSE.keys, count_default=0)},
            help="stages of residual blocks with projection shortcuts"),
    _schema("inception", {**conv_keys("global_avg"),
                          "aux_weight": Key(float, 0.3, low=0.0, help="weight of each "
                                            "auxiliary classifier's loss in training")},
            {"stem": Group(STEM_KEYS, count_default=1, help=STEM_HELP),
             "modules": INCEPTION_MODULES, "dense": Group(DENSE.keys, count_default=0)},
            help="GoogLeNet: a stem, inception modules with pooling between them"),
    _schema("colour", {**NETWORK, **classifier_keys("dense"),
                       "colours": Key(int, 2, low=1, help="k most frequent colours"),
                       "levels": Key(int, 4, low=2, help="levels per RGB channel (4 -> 64)")},
            {"dense": Group(DENSE.keys, count_default=1)}, features=True,
            help="requantized colours; the k most frequent are the features"),
    _schema("hog", {**NETWORK, **classifier_keys("dense"), "orientations": Key(int, 9, low=1),
                    "pixels_per_cell": Key(int, 4, low=1),
                    "cells_per_block": Key(int, 2, low=1)},
            {"dense": Group(DENSE.keys, count_default=1)}, features=True,
            help="histogram-of-oriented-gradients descriptor grid, then a small classifier"),
    _schema("lbp", {**NETWORK, **classifier_keys("dense"), "points": Key(int, 8, low=1),
                    "radius": Key(int, 1, low=1),
                    "grid": Key(int, 2, low=1, help="cells per side of the histogram grid")},
            {"dense": Group(DENSE.keys, count_default=1)}, features=True,
            help="local-binary-pattern histograms on a grid, then a small classifier"),
    _schema("classic", {**NETWORK, **CLASSIC, **classifier_keys("linear_svm")},
            {"dense": Group(DENSE.keys, count_default=1)}, features=True,
            help="dense descriptors -> histogram/BoVW/Fisher -> spatial pyramid -> classifier"),
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
