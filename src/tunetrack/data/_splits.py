"""Stratified, seeded train / validation / test index splits in which every class appears."""

from __future__ import annotations

import numpy as np

from tunetrack.data._checks import min_images_per_class
from tunetrack.errors import DataError


def split(y: np.ndarray, classes: list[str], test_split: float | None, validation_split: float,
          seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted index arrays: test first (unless the source has its own, ``test_split=None``),
    then validation from the rest; every class must land in every split."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y, minlength=len(classes))
    needed = min_images_per_class(test_split, validation_split)
    fractions = ("" if test_split is None else f"test_split={test_split}, ") + \
        f"validation_split={validation_split}"

    def too_few(label: int, detail: str) -> DataError:
        return DataError(
            f"class {classes[label]!r} has {counts[label]} images, too few for the splits "
            f"({fractions}): {detail}; each class needs at least {needed} images")

    low = int(np.argmin(counts))
    if counts[low] < (2 if test_split is None else 3):
        raise too_few(low, "every split needs at least one image")
    idx = np.arange(len(y))
    try:
        pool, test = (idx, idx[:0]) if test_split is None else train_test_split(
            idx, test_size=test_split, random_state=seed, stratify=y)
        train, val = train_test_split(pool, test_size=validation_split, random_state=seed,
                                      stratify=y[pool])
    except ValueError as exc:
        raise too_few(low, str(exc)) from exc
    names = ("training", "validation", "test")[: 2 if test_split is None else 3]
    for name, part in zip(names, (train, val, test), strict=False):
        got = np.bincount(y[part], minlength=len(classes))
        if np.any(got == 0):
            raise too_few(int(np.argmax(got == 0)), f"none left for the {name} split")
    return np.sort(train), np.sort(val), np.sort(test)
