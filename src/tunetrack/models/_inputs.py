"""What a family's model reads: the images themselves or a feature vector extracted from them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tunetrack.space.catalog import FAMILIES, FamilySchema
from tunetrack.space.plan import feature_length


def _schema(family: str) -> FamilySchema:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    return FAMILIES[family]


def input_shape(family: str, candidate: Mapping[str, Any],
                image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """``image_shape`` for pixel families, ``(feature_length,)`` for feature families."""
    if _schema(family).features:
        return (feature_length(family, candidate, image_shape),)
    return tuple(int(n) for n in image_shape)


def featurize(family: str, candidate: Mapping[str, Any], images: np.ndarray) -> np.ndarray:
    """The model's input for float32 NHWC images in [0, 1]: the images, or their features."""
    if not _schema(family).features:
        return images

    def get(key: str) -> int:
        return int(candidate.get(key, FAMILIES[family].keys[key].default))

    from tunetrack.models import features  # scikit-image is only needed by feature families

    if family == "colour":
        return features.colour_features(images, k=get("colours"), levels=get("levels"))
    if family == "hog":
        return features.hog_features(images, orientations=get("orientations"),
                                     pixels_per_cell=get("pixels_per_cell"),
                                     cells_per_block=get("cells_per_block"))
    if family == "lbp":
        return features.lbp_features(images, points=get("points"), radius=get("radius"),
                                     grid=get("grid"))
    if family == "classic":
        raise ValueError("the classic family's features need its fitted encoder: load the "
                         "trial's classic/ folder with tunetrack.models.classic_runtime.load")
    raise ValueError(f"feature family {family!r} has no extractor")
