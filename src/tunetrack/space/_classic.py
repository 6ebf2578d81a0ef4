"""Arithmetic of the ``classic`` family (descriptor grid -> encoding -> spatial pyramid), pure.

The same formulas as :mod:`tunetrack.models.classic_runtime` (a test checks they agree): the
space layer may not import models, and a search must know a candidate's feature length, and
whether it can run at all, before any descriptor is computed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SKLEARN_CLASSIFIERS = ("linear_svm", "logistic")


def uses_sklearn(candidate: Any) -> bool:
    """A candidate whose classifier is scikit-learn's (trained without Keras's fit)."""
    return str(candidate.get("classifier", "dense")) in SKLEARN_CLASSIFIERS


def _patch(get: Callable[[str], Any]) -> int:
    step, patch = int(get("step")), int(get("patch"))
    return max(1, patch // step) * step if get("descriptor") == "hog" else patch


def reduced_dim(get: Callable[[str], Any], image_shape: tuple[int, ...]) -> int:
    """A descriptor's length after the optional PCA."""
    return _dim(get, int(image_shape[2]))


def raw_dim(get: Callable[[str], Any], channels: int) -> int:
    cells = max(1, int(get("patch")) // int(get("step")))
    return {"sift": 128, "orb": 256, "hog": cells * cells * int(get("orientations")),
            "lbp": int(get("points")) + 2, "colour": 2 * channels}[str(get("descriptor"))]


def _dim(get: Callable[[str], Any], channels: int) -> int:
    d, pca = raw_dim(get, channels), int(get("pca"))
    return min(pca, d) if pca > 0 else d


def grid(get: Callable[[str], Any], h: int, w: int) -> tuple[int, int]:
    p, step = _patch(get), int(get("step"))
    return ((h - p) // step + 1 if h >= p else 0, (w - p) // step + 1 if w >= p else 0)


def problems(get: Callable[[str], Any], h: int, w: int) -> list[str]:
    """Why a classic candidate cannot run on ``h x w`` images (each names its keys)."""
    descriptor, step, patch = str(get("descriptor")), int(get("step")), int(get("patch"))
    p = _patch(get)
    if min(h, w) < p:
        what = (f"patch {patch} (HoG: {p // step} cells of step {step})"
                if descriptor == "hog" else f"patch {patch}")
        return [f"classic features: descriptor {descriptor} with {what} does not fit a "
                f"{h}×{w} image"]
    if descriptor == "lbp" and 2 * int(get("radius")) + 1 > p:
        return [f"classic features: descriptor lbp radius {get('radius')} needs patch >= "
                f"{2 * int(get('radius')) + 1}, got patch {patch}"]
    ny, nx = grid(get, h, w)
    levels = int(get("pyramid"))
    if 2 ** levels > min(ny, nx):
        return [f"classic features: pyramid {levels} has {2 ** levels}×{2 ** levels} cells at "
                f"its finest level, but step {step} and patch {patch} give only {ny}×{nx} "
                f"patches on a {h}×{w} image"]
    return []


def feature_length(get: Callable[[str], Any], image_shape: tuple[int, ...]) -> int:
    d = _dim(get, int(image_shape[2]))
    words = int(get("words"))
    per_cell = {"histogram": d, "bovw": words, "fisher": (2 * d + 1) * words}[
        str(get("encoding"))]
    return sum(4 ** lv for lv in range(int(get("pyramid")) + 1)) * per_cell


def descriptors_per_image(get: Callable[[str], Any], image_shape: tuple[int, ...]) -> int:
    ny, nx = grid(get, int(image_shape[0]), int(image_shape[1]))
    return ny * nx
