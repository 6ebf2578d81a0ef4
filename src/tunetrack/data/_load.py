"""``load_dataset``: any source to checked, split, fingerprinted float32 arrays."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from tunetrack.data._checks import check_config, image_size
from tunetrack.data._dataset import Dataset
from tunetrack.data._decode import FOLDER_IMAGE_SIZE
from tunetrack.data._folders import bad_image_policy, list_folder, load_folder
from tunetrack.data._ondisk import resolve_cache, stream_folder
from tunetrack.data._sources import KERAS_CLASSES, load_digits, load_keras
from tunetrack.data._splits import split
from tunetrack.data._stream import StreamedImages
from tunetrack.space import DataConfig

_FINGERPRINT_VERSION = "tunetrack-data-1"


def _head(parts: dict[str, Any]) -> Any:
    h = hashlib.sha256(_FINGERPRINT_VERSION.encode())
    h.update(json.dumps(parts, sort_keys=True).encode())
    return h


def _fingerprint(parts: dict[str, Any], *arrays: np.ndarray) -> str:
    """Equal data + equal array-changing config -> equal hash; the folder path does not count."""
    h = _head(parts)
    for a in arrays:
        b = np.ascontiguousarray(a).tobytes()
        h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()


def _floats(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load, check and split the data a search trains on."""
    check_config(cfg)
    size = image_size(cfg)
    test_split: float | None = cfg.test_split
    skipped: list[tuple[str, str]] = []
    own_test: tuple[np.ndarray, np.ndarray] | None = None
    hashed: tuple[np.ndarray, ...]
    if cfg.source == "digits":
        kind, mode, size = "digits", cfg.color_mode or "grayscale", size or (8, 8)
        x, y, raw = load_digits(size, mode)
        classes, hashed = [str(i) for i in range(10)], (raw, y)
    elif cfg.source.startswith("keras:"):
        kind, test_split = cfg.source, None  # the dataset's own test set is the sealed split
        x, y, xt, yt, mode, size = load_keras(cfg, size)
        classes, hashed, own_test = KERAS_CLASSES[cfg.source[6:]], (x, y, xt, yt), (xt, yt)
    else:
        kind, mode, size = "folder", cfg.color_mode or "rgb", size or FOLDER_IMAGE_SIZE
        root = Path(cfg.source).expanduser()
        listed = list_folder(root)
        how = resolve_cache(cfg, len(listed[1]), (*size, 3 if mode == "rgb" else 1))
        if how != "memory":
            return _load_streamed(cfg, root, listed, size, mode, how)
        x, y, classes, skipped = load_folder(cfg, size, mode)
        hashed = (x, y)
    tr, va, te = split(y, classes, test_split, cfg.validation_split, cfg.seed)
    fp = _fingerprint({"kind": kind, "classes": classes, "size": list(size), "mode": mode,
                       "test_split": test_split, "validation_split": cfg.validation_split,
                       "seed": int(cfg.seed)}, *hashed)
    x_test, y_test = (_floats(x[te]), y[te]) if own_test is None else \
        (_floats(own_test[0]), own_test[1])
    return Dataset(x_train=_floats(x[tr]), y_train=y[tr], x_val=_floats(x[va]), y_val=y[va],
                   x_test=x_test, y_test=y_test, class_names=list(classes),
                   image_shape=(size[0], size[1], 3 if mode == "rgb" else 1),
                   fingerprint=fp, skipped=skipped, source=cfg.source)


def _load_streamed(cfg: DataConfig, root: Path, listed: tuple[list[str], list[Path], np.ndarray],
                   size: tuple[int, int], mode: str, how: str) -> Dataset:
    """A folder whose splits stay on disk (``data.cache: disk | none``): same checks, same
    splits, same fingerprint as :func:`load_folder`'s in-memory path."""
    classes, paths, labels = listed
    split(labels, classes, cfg.test_split, cfg.validation_split, cfg.seed)  # fail fast
    parts = {"kind": "folder", "classes": classes, "size": list(size), "mode": mode,
             "test_split": cfg.test_split, "validation_split": cfg.validation_split,
             "seed": int(cfg.seed)}
    rows, y, bad, fp = stream_folder(cfg, root, paths, labels, size, mode, how,
                                     lambda: _head(parts))
    skipped = [(str(root / b), r) for b, r in bad]
    bad_image_policy(cfg, root, classes, labels, y, skipped)
    tr, va, te = split(y, classes, cfg.test_split, cfg.validation_split, cfg.seed)
    return Dataset(x_train=StreamedImages(rows, tr), y_train=y[tr],
                   x_val=StreamedImages(rows, va), y_val=y[va],
                   x_test=StreamedImages(rows, te), y_test=y[te], class_names=list(classes),
                   image_shape=(size[0], size[1], 3 if mode == "rgb" else 1),
                   fingerprint=fp, skipped=skipped, source=cfg.source)
