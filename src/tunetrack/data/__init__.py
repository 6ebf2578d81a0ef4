"""Datasets for a search: sklearn digits, image folders, ``keras:`` datasets.

Every source becomes float32 NHWC arrays in ``[0, 1]`` with stratified, seeded train /
validation / test splits. The test split depends only on the data, ``test_split`` and ``seed``,
so it stays sealed across searches that change the validation split. Bad data raises
``DataError`` before any training starts. keras is imported only for ``keras:`` sources.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from math import floor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tunetrack.errors import ConfigError, DataError, allowed_list, did_you_mean

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
COLOR_MODES = ("rgb", "grayscale")
ON_BAD_IMAGE = ("error", "skip")
FOLDER_IMAGE_SIZE = (32, 32)
DEFAULT_CACHE_DIR = Path(".tunetrack") / "cache"
_FINGERPRINT_VERSION = "tunetrack-data-1"
_CACHE_VERSION = 1
_KERAS_CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"],
}


class DataWarning(UserWarning):
    """Data was loaded, but not all of it (undecodable files skipped)."""


@dataclass
class DataConfig:
    """What to load and how to split it. ``image_size`` is (height, width)."""

    source: str
    image_size: tuple[int, int] | None = None
    color_mode: str | None = None
    validation_split: float = 0.2
    test_split: float = 0.2
    seed: int = 0
    on_bad_image: str = "error"
    cache_dir: Path | str | bool | None = None  # None: .tunetrack/cache; False / "": no cache


@dataclass
class Dataset:
    """Split arrays (float32 NHWC in [0, 1], int64 labels) and what identifies them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    image_shape: tuple[int, int, int]
    fingerprint: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def summary(self) -> dict:
        """JSON-ready description for the search run, so a run says what it was trained on."""
        splits = {"train": self.y_train, "val": self.y_val, "test": self.y_test}
        counts = {k: dict(zip(self.class_names, np.bincount(y, minlength=self.num_classes)
                              .tolist(), strict=True)) for k, y in splits.items()}
        return {"source": self.source, "class_names": list(self.class_names),
                "num_classes": self.num_classes, "image_shape": list(self.image_shape),
                "split_sizes": {k: int(len(y)) for k, y in splits.items()},
                "class_counts": counts, "fingerprint": self.fingerprint,
                "skipped": len(self.skipped)}


# --------------------------------------------------------------------------- config

def _bad(key: str, message: str) -> ConfigError:
    return ConfigError(message, key=f"data.{key}")


def _check_config(cfg: DataConfig) -> None:
    """Reject impossible settings before touching any file."""
    if not isinstance(cfg.source, str) or not cfg.source:
        raise _bad("source", f"must be 'digits', 'keras:NAME' or a folder path, got "
                             f"{cfg.source!r}")
    size = cfg.image_size
    if size is not None and (not isinstance(size, (tuple, list)) or len(size) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
            for v in size)):
        raise _bad("image_size", f"must be [height, width] with positive integers, got {size!r}")
    for key, value, allowed in (("color_mode", cfg.color_mode, COLOR_MODES),
                                ("on_bad_image", cfg.on_bad_image, ON_BAD_IMAGE)):
        if value not in allowed and not (key == "color_mode" and value is None):
            raise _bad(key, f"must be one of {allowed_list(allowed)}, got {value!r}"
                            f"{did_you_mean(value, allowed)}")
    for key in ("validation_split", "test_split"):
        v = getattr(cfg, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v < 1.0:
            raise _bad(key, f"must be a fraction with 0 < {key} < 1, got {v!r}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, (int, np.integer)):
        raise _bad("seed", f"must be an integer, got {cfg.seed!r}")


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
    raise _bad("validation_split", f"splits too small: test_split={test_split}, "
                                   f"validation_split={validation_split}")


# --------------------------------------------------------------------------- decoding

def _decode(path: Path, size: tuple[int, int], color_mode: str) -> np.ndarray:
    """One file as uint8 (H, W, C). ``load()`` forces the full decode so truncated files fail
    here, not later; GIF and TIFF give their first frame."""
    with Image.open(path) as im:
        im.load()
        if im.mode == "I" or im.mode.startswith("I;16"):  # 16-bit gray: scale, don't clip
            a = np.asarray(im, dtype=np.float64) / 257.0
            im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
        im = im.convert("RGB" if color_mode == "rgb" else "L")
        if im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return arr if arr.ndim == 3 else arr[..., None]


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognised image format"
    return f"{type(exc).__name__}: {exc}"


def _decode_all(paths: Sequence[Path], size: tuple[int, int], color_mode: str
                ) -> tuple[np.ndarray, list[str | None]]:
    """uint8 stack of the files that decode (in order) and a failure reason per path.

    Pillow releases the GIL while decoding, so threads pay off on big folders."""
    def one(p: Path) -> tuple[np.ndarray | None, str | None]:
        try:
            return _decode(p, size, color_mode), None
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
            return None, _reason(exc)

    if len(paths) >= 64:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            results = list(pool.map(one, paths))
    else:
        results = [one(p) for p in paths]
    good = [a for a, _ in results if a is not None]
    channels = 3 if color_mode == "rgb" else 1
    x = np.stack(good) if good else np.zeros((0, *size, channels), dtype=np.uint8)
    return x, [r for _, r in results]


def load_images(paths: Iterable[str | Path], image_size: tuple[int, int] = FOLDER_IMAGE_SIZE,
                color_mode: str = "rgb") -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Decode files exactly as the folder loader does, for prediction.

    Returns float32 (n, H, W, C) in [0, 1] for the files that decoded, in input order, and
    (path, reason) for each that did not.
    """
    if color_mode not in COLOR_MODES:
        raise DataError(f"color_mode must be one of {allowed_list(COLOR_MODES)}, got "
                        f"{color_mode!r}")
    paths = [Path(p) for p in paths]
    x, reasons = _decode_all(paths, (int(image_size[0]), int(image_size[1])), color_mode)
    errors = [(str(p), r) for p, r in zip(paths, reasons, strict=True) if r is not None]
    return x.astype(np.float32) / 255.0, errors


# --------------------------------------------------------------------------- image folders

def _list_folder(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """Class names (sorted subfolders) and image files; structural problems raise here."""
    if not root.exists():
        raise DataError(f"image folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"image folder source is not a directory: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(
            f"{root}: an image folder needs one subfolder per class and at least 2 classes; "
            f"found {len(classes)} class folder{'' if len(classes) == 1 else 's'}"
            f"{': ' + ', '.join(classes) if classes else ''}")
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = []
        for dirpath, dirnames, filenames in os.walk(root / name):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found += [Path(dirpath) / f for f in filenames
                      if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
        if not found:
            raise DataError(f"class folder {root / name} has no images "
                            f"(looked for {', '.join(IMAGE_EXTENSIONS)})")
        paths += sorted(found)
        labels += [label] * len(found)
    return classes, paths, np.asarray(labels, dtype=np.int64)


def _cache_file(cfg: DataConfig, root: Path, paths: list[Path], size: tuple[int, int],
                mode: str) -> Path | None:
    """Keyed by what changes the decoded arrays: relative paths, sizes, mtimes, size, mode."""
    if cfg.cache_dir is False or cfg.cache_dir == "":
        return None
    base = Path.cwd() / DEFAULT_CACHE_DIR if cfg.cache_dir is None else Path(cfg.cache_dir)
    h = hashlib.sha256(f"{_CACHE_VERSION}|{size}|{mode}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"|{p.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return base / f"folder-{h.hexdigest()[:40]}.npz"


def _read_cache(path: Path | None) -> tuple[np.ndarray, np.ndarray, list, list] | None:
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["x"], z["y"], z["bad"].tolist(), z["reasons"].tolist()
    except Exception:  # noqa: BLE001 - a broken cache is rebuilt, never trusted
        return None


def _write_cache(path: Path | None, x: np.ndarray, y: np.ndarray, bad: list[str],
                 reasons: list[str]) -> None:
    """Atomic write (temp file + rename) so a concurrent search never reads half a cache."""
    if path is None:
        return
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, x=x, y=y, bad=np.asarray(bad, dtype=str),
                     reasons=np.asarray(reasons, dtype=str))
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        warnings.warn(f"could not write the decode cache {path}: {exc}", DataWarning,
                      stacklevel=4)


def _load_folder(cfg: DataConfig, size: tuple[int, int], mode: str
                 ) -> tuple[np.ndarray, np.ndarray, list[str], list[tuple[str, str]]]:
    root = Path(cfg.source).expanduser()
    classes, paths, labels = _list_folder(root)
    # Counts are known before decoding: fail fast on a class that cannot fill every split.
    _split(labels, classes, cfg.test_split, cfg.validation_split, cfg.seed)
    cache = _cache_file(cfg, root, paths, size, mode)
    hit = _read_cache(cache)
    if hit is not None:
        x, y, bad, reasons = hit
    else:
        x, all_reasons = _decode_all(paths, size, mode)
        y = labels[[r is None for r in all_reasons]]
        failed = [(p, r) for p, r in zip(paths, all_reasons, strict=True) if r is not None]
        bad = [p.relative_to(root).as_posix() for p, _ in failed]
        reasons = [r for _, r in failed]
        _write_cache(cache, x, y, bad, reasons)
    skipped = [(str(root / b), r) for b, r in zip(bad, reasons, strict=True)]
    if skipped and cfg.on_bad_image == "error":
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise DataError(f"cannot decode image: {skipped[0][0]}: {skipped[0][1]}{more}; remove "
                        f"the file or set on_bad_image: skip")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} undecodable image(s): "
                      + "; ".join(f"{p}: {r}" for p, r in skipped), DataWarning, stacklevel=3)
        for label, name in enumerate(classes):
            if not np.any(y == label):
                raise DataError(f"class folder {root / name} has no decodable images "
                                f"({int(np.sum(labels == label))} skipped)")
    return x, y, classes, skipped


# --------------------------------------------------------------------------- digits, keras

def _load_digits(size: tuple[int, int], mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sklearn's bundled 8x8 digits: values 0..16 read as 8-bit v*255/16, i.e. v/16."""
    from sklearn.datasets import load_digits

    d = load_digits()
    raw = d.images.astype(np.uint8)  # integers 0..16
    x = (raw.astype(np.float32) / 16.0)[..., None]
    if size != (8, 8):  # bilinear on the float values, like a decoded file would be
        h, w = size
        x = np.stack([np.asarray(Image.fromarray(img[..., 0], "F").resize(
            (w, h), Image.Resampling.BILINEAR)) for img in x])[..., None].clip(0.0, 1.0)
    if mode == "rgb":
        x = np.repeat(x, 3, axis=-1)
    return x.astype(np.float32), d.target.astype(np.int64), raw


def _keras_loader(name: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``keras.datasets.NAME.load_data()``; tests replace this function (no network there)."""
    import keras

    return getattr(keras.datasets, name).load_data()


def _convert_uint8(x: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """keras arrays to the asked mode and size, with the same conversions as a decoded file."""
    x = np.asarray(x).astype(np.uint8)
    x = x[..., None] if x.ndim == 3 else x
    if mode == "grayscale" and x.shape[-1] == 3:  # Pillow's "L": ITU-R 601-2, fixed point
        r, g, b = (x[..., i].astype(np.uint32) for i in range(3))
        x = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[..., None]
    elif mode == "rgb" and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    if x.shape[1:3] != tuple(size):
        pil_mode, (h, w) = ("RGB" if x.shape[-1] == 3 else "L"), size
        out = [np.asarray(Image.fromarray(img if pil_mode == "RGB" else img[..., 0], pil_mode)
                          .resize((w, h), Image.Resampling.BILINEAR)) for img in x]
        x = np.stack(out).reshape(len(x), h, w, -1) if out else np.zeros((0, h, w, x.shape[-1]),
                                                                             dtype=np.uint8)
    return x


def _load_keras(cfg: DataConfig, size: tuple[int, int] | None):
    name = cfg.source.split(":", 1)[1]
    if name not in KERAS_DATASETS:
        raise DataError(f"unknown keras dataset {name!r}: allowed are "
                        f"{', '.join('keras:' + n for n in KERAS_DATASETS)}"
                        f"{did_you_mean(name, KERAS_DATASETS)}")
    try:
        (xa, ya), (xt, yt) = _keras_loader(name)
    except Exception as exc:  # noqa: BLE001 - download or file problems
        raise DataError(f"cannot load keras:{name}: {type(exc).__name__}: {exc} (keras downloads "
                        f"it to ~/.keras/datasets on first use, which needs the network)"
                        ) from exc
    xa, xt = np.asarray(xa), np.asarray(xt)
    mode = cfg.color_mode or ("rgb" if xa.ndim == 4 and xa.shape[-1] == 3 else "grayscale")
    size = size or tuple(int(v) for v in xa.shape[1:3])
    ya, yt = (np.asarray(v).reshape(-1).astype(np.int64) for v in (ya, yt))
    _split(ya, _KERAS_CLASSES[name], None, cfg.validation_split, cfg.seed)  # before resizing
    return _convert_uint8(xa, size, mode), ya, _convert_uint8(xt, size, mode), yt, mode, size


# --------------------------------------------------------------------------- splits

def _split(y: np.ndarray, classes: list[str], test_split: float | None, validation_split: float,
           seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded index splits: test first (unless the source has its own), then
    validation from the rest; every class must land in every split."""
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


# --------------------------------------------------------------------------- entry point

def _fingerprint(parts: dict, *arrays: np.ndarray) -> str:
    """Equal data + equal array-changing config -> equal hash; the folder path does not count."""
    h = hashlib.sha256(_FINGERPRINT_VERSION.encode())
    h.update(json.dumps(parts, sort_keys=True).encode())
    for a in arrays:
        b = np.ascontiguousarray(a).tobytes()
        h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()


def _floats(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load, check and split the data a search trains on."""
    _check_config(cfg)
    size = tuple(int(v) for v in cfg.image_size) if cfg.image_size is not None else None
    test_split: float | None = cfg.test_split
    skipped: list[tuple[str, str]] = []
    own_test: tuple[np.ndarray, np.ndarray] | None = None
    if cfg.source == "digits":
        kind, mode, size = "digits", cfg.color_mode or "grayscale", size or (8, 8)
        x, y, raw = _load_digits(size, mode)
        classes, hashed = [str(i) for i in range(10)], (raw, y)
    elif cfg.source.startswith("keras:"):
        kind, test_split = cfg.source, None  # the dataset's own test set is the sealed split
        x, y, xt, yt, mode, size = _load_keras(cfg, size)
        classes, hashed, own_test = _KERAS_CLASSES[cfg.source[6:]], (x, y, xt, yt), (xt, yt)
    else:
        kind, mode, size = "folder", cfg.color_mode or "rgb", size or FOLDER_IMAGE_SIZE
        x, y, classes, skipped = _load_folder(cfg, size, mode)
        hashed = (x, y)
    tr, va, te = _split(y, classes, test_split, cfg.validation_split, cfg.seed)
    fp = _fingerprint({"kind": kind, "classes": classes, "size": list(size), "mode": mode,
                       "test_split": test_split, "validation_split": cfg.validation_split,
                       "seed": int(cfg.seed)}, *hashed)
    x_test, y_test = (_floats(x[te]), y[te]) if own_test is None else \
        (_floats(own_test[0]), own_test[1])
    return Dataset(x_train=_floats(x[tr]), y_train=y[tr], x_val=_floats(x[va]), y_val=y[va],
                   x_test=x_test, y_test=y_test, class_names=list(classes),
                   image_shape=(int(size[0]), int(size[1]), 3 if mode == "rgb" else 1),
                   fingerprint=fp, skipped=skipped, source=cfg.source)


__all__ = [
    "DataConfig", "Dataset", "DataWarning", "load_dataset", "load_images",
    "min_images_per_class", "IMAGE_EXTENSIONS", "KERAS_DATASETS",
]
