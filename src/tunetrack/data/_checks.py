"""What a :class:`~tunetrack.space.DataConfig` must satisfy before any file is touched."""

from __future__ import annotations

from math import floor

import numpy as np

from tunetrack.errors import ConfigError, allowed_list, did_you_mean
from tunetrack.space import BAD_IMAGE_POLICIES, COLOR_MODES, DataConfig


def bad(key: str, message: str) -> ConfigError:
    return ConfigError(message, key=f"data.{key}")


def check_config(cfg: DataConfig) -> None:
    """Reject impossible settings; a config built in Python skips the pipeline's checks."""
    if not isinstance(cfg.source, str) or not cfg.source:
        raise bad("source", f"must be 'digits', 'keras:NAME' or a folder path, got "
                            f"{cfg.source!r}")
    size = cfg.image_size
    if size is not None and (not isinstance(size, (tuple, list)) or len(size) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
            for v in size)):
        raise bad("image_size", f"must be [height, width] with positive integers, got {size!r}")
    for key, value, allowed in (("color_mode", cfg.color_mode, COLOR_MODES),
                                ("on_bad_image", cfg.on_bad_image, BAD_IMAGE_POLICIES)):
        if value not in allowed and not (key == "color_mode" and value is None):
            raise bad(key, f"must be one of {allowed_list(allowed)}, got {value!r}"
                           f"{did_you_mean(value, allowed)}")
    for key in ("validation_split", "test_split"):
        v = getattr(cfg, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v < 1.0:
            raise bad(key, f"must be a fraction with 0 < {key} < 1, got {v!r}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, (int, np.integer)):
        raise bad("seed", f"must be an integer, got {cfg.seed!r}")


def image_size(cfg: DataConfig) -> tuple[int, int] | None:
    """``cfg.image_size`` as two ints (JSON gives a list, numpy may give its integers)."""
    if cfg.image_size is None:
        return None
    height, width = cfg.image_size
    return int(height), int(width)


def min_images_per_class(test_split: float | None, validation_split: float) -> int:
    """Images a class needs so that every split is sure to get at least one of them.

    A sufficient bound for sklearn's stratified rounding: a split takes at least
    floor(n * fraction) of a class, and the other side may get one less than its share.
    ``test_split=None``: the source brings its own test set (``keras:``).
    """
    eps = 1e-9
    for n in range(2, 1_000_000):
        rest = n
        if test_split is not None:
            if floor(n * test_split + eps) < 1:
                continue
            rest = floor(n * (1 - test_split) + eps) - 1
        if floor(rest * validation_split + eps) >= 1 and \
                floor(rest * (1 - validation_split) + eps) >= 2:
            return n
    raise bad("validation_split", f"splits too small: test_split={test_split}, "
                                  f"validation_split={validation_split}")
