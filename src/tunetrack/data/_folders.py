"""Image folders: one subfolder per class, any depth below it, common image formats."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from tunetrack.data._cache import cache_file, read_cache, write_cache
from tunetrack.data._dataset import DataWarning
from tunetrack.data._decode import IMAGE_EXTENSIONS, decode_all
from tunetrack.data._splits import split
from tunetrack.errors import DataError
from tunetrack.space import DataConfig


def list_folder(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
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


def load_folder(cfg: DataConfig, size: tuple[int, int], mode: str
                ) -> tuple[np.ndarray, np.ndarray, list[str], list[tuple[str, str]]]:
    """uint8 images, labels, class names and the skipped (path, reason) of a folder source."""
    root = Path(cfg.source).expanduser()
    classes, paths, labels = list_folder(root)
    # Counts are known before decoding: fail fast on a class that cannot fill every split.
    split(labels, classes, cfg.test_split, cfg.validation_split, cfg.seed)
    cache = cache_file(cfg, root, paths, size, mode)
    hit = read_cache(cache)
    if hit is not None:
        x, y, bad, reasons = hit
    else:
        x, all_reasons = decode_all(paths, size, mode)
        y = labels[[r is None for r in all_reasons]]
        failed = [(p, r) for p, r in zip(paths, all_reasons, strict=True) if r is not None]
        bad = [p.relative_to(root).as_posix() for p, _ in failed]
        reasons = [r for _, r in failed]
        write_cache(cache, x, y, bad, reasons)
    skipped = [(str(root / b), r) for b, r in zip(bad, reasons, strict=True)]
    bad_image_policy(cfg, root, classes, labels, y, skipped)
    return x, y, classes, skipped


def bad_image_policy(cfg: DataConfig, root: Path, classes: list[str], labels: np.ndarray,
                     y: np.ndarray, skipped: list[tuple[str, str]]) -> None:
    """``on_bad_image``: error naming the first bad file, or warn and go on without them."""
    if skipped and cfg.on_bad_image == "error":
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise DataError(f"cannot decode image: {skipped[0][0]}: {skipped[0][1]}{more}; remove "
                        f"the file or set on_bad_image: skip")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} undecodable image(s): "
                      + "; ".join(f"{p}: {r}" for p, r in skipped), DataWarning, stacklevel=4)
        for label, name in enumerate(classes):
            if not np.any(y == label):
                raise DataError(f"class folder {root / name} has no decodable images "
                                f"({int(np.sum(labels == label))} skipped)")
