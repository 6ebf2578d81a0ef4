"""What :func:`~tunetrack.data.load_dataset` would refuse, found before any image is decoded.

``tunetrack validate`` calls :func:`inspect_source` so that a pipeline it calls ok does not fail
when the search loads its data: the same checks run (the config, a ``keras:`` name, a folder's
classes and files, whether every class can fill every split), on labels only. It also says
which image shape and how many classes the search will see, for the fit check of the space.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tunetrack.data._checks import check_config, image_size, min_images_per_class
from tunetrack.data._decode import FOLDER_IMAGE_SIZE
from tunetrack.data._folders import list_folder
from tunetrack.data._sources import KERAS_CLASSES, keras_name
from tunetrack.data._splits import split
from tunetrack.errors import DataError
from tunetrack.space import DataConfig

# keras: datasets, without downloading them: native (height, width, channels) and the smallest
# class of the training set.
KERAS_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
KERAS_SMALLEST_CLASS = {"mnist": 5421, "fashion_mnist": 6000, "cifar10": 5000}
DIGITS_COUNTS = (178, 182, 177, 183, 181, 182, 181, 179, 174, 180)  # sklearn's digits per class


@dataclass(frozen=True)
class SourceInfo:
    """The images a search on this data sees: (height, width, channels) and the class count."""

    image_shape: tuple[int, int, int]
    num_classes: int | None
    kind: str  # "digits", "keras:NAME" or "folder"
    note: str = ""  # why the class count is unknown (None) with ``absent_ok``


def _channels(mode: str) -> int:
    return 3 if mode == "rgb" else 1


def _check_splits(labels: np.ndarray, classes: list[str], cfg: DataConfig) -> None:
    """:func:`split` on the labels, skipped (with sklearn's import, ~1 s) when every class is
    surely large enough (:func:`min_images_per_class` is a sufficient bound)."""
    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() < min_images_per_class(cfg.test_split, cfg.validation_split):
        split(labels, classes, cfg.test_split, cfg.validation_split, cfg.seed)


def inspect_source(cfg: DataConfig, *, absent_ok: bool = False) -> SourceInfo:
    """Run the checks :func:`load_dataset` makes before decoding; raise what it would raise
    (:class:`~tunetrack.errors.ConfigError` or :class:`DataError`).

    ``absent_ok``: an image folder that does not exist (yet, or on this machine) is not an
    error; the class count is then None and ``note`` says why. Anything else that exists is
    checked: a file where a folder belongs is still refused.
    """
    check_config(cfg)
    size = image_size(cfg)
    if cfg.source == "digits":
        y = np.repeat(np.arange(10), DIGITS_COUNTS)
        _check_splits(y, [str(i) for i in range(10)], cfg)
        mode = cfg.color_mode or "grayscale"
        h, w = size or (8, 8)
        return SourceInfo((h, w, _channels(mode)), 10, "digits")
    if cfg.source.startswith("keras:"):
        name = keras_name(cfg.source)
        needed = min_images_per_class(None, cfg.validation_split)
        if needed > KERAS_SMALLEST_CLASS[name]:
            raise DataError(f"keras:{name}: its smallest class has {KERAS_SMALLEST_CLASS[name]} "
                            f"training images, too few for validation_split="
                            f"{cfg.validation_split}; each class needs at least {needed}")
        nh, nw, nc = KERAS_SHAPES[name]
        channels = nc if cfg.color_mode is None else _channels(cfg.color_mode)
        h, w = size or (nh, nw)
        return SourceInfo((h, w, channels), len(KERAS_CLASSES[name]), cfg.source)
    root = Path(cfg.source).expanduser()
    h, w = size or FOLDER_IMAGE_SIZE
    shape = (h, w, _channels(cfg.color_mode or "rgb"))
    if absent_ok and not root.exists() and not root.is_symlink():
        return SourceInfo(shape, None, "folder", f"image folder {root} not found here: its "
                                                 f"classes and the fit of the space not checked")
    classes, _, labels = list_folder(root)
    _check_splits(labels, classes, cfg)
    return SourceInfo(shape, len(classes), "folder")
