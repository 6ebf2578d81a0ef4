"""Image files to uint8 arrays: one decoder for the folder loader and for prediction.

Both paths decode the same way (Pillow, first frame, 16-bit gray scaled, bilinear resize),
so a served model sees exactly what it was trained on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tunetrack.errors import DataError, allowed_list
from tunetrack.space import COLOR_MODES

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
FOLDER_IMAGE_SIZE = (32, 32)


def decode(path: Path, size: tuple[int, int], color_mode: str) -> np.ndarray:
    """One file as uint8 (H, W, C). ``load()`` forces the full decode so truncated files fail
    here, not later; GIF and TIFF give their first frame."""
    with Image.open(path) as opened:
        opened.load()
        im: Image.Image = opened
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


def decode_all(paths: Sequence[Path], size: tuple[int, int], color_mode: str
               ) -> tuple[np.ndarray, list[str | None]]:
    """uint8 stack of the files that decode (in order) and a failure reason per path.

    Pillow releases the GIL while decoding, so threads pay off on big folders."""
    def one(p: Path) -> tuple[np.ndarray | None, str | None]:
        try:
            return decode(p, size, color_mode), None
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
    files = [Path(p) for p in paths]
    x, reasons = decode_all(files, (int(image_size[0]), int(image_size[1])), color_mode)
    errors = [(str(p), r) for p, r in zip(files, reasons, strict=True) if r is not None]
    return x.astype(np.float32) / 255.0, errors
