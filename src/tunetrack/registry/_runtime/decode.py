"""Image bytes or uint8 arrays to the network's float32 input, exactly as tunetrack decodes
training files (Pillow, first frame, 16-bit gray scaled, bilinear resize). A copy of
``tunetrack.data._decode.decode`` that imports nothing of tunetrack; a test keeps the two equal.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError


def _to_mode(im: Image.Image, size: tuple[int, int], color_mode: str) -> np.ndarray:
    if im.mode == "I" or im.mode.startswith("I;16"):  # 16-bit gray: scale, don't clip
        a = np.asarray(im, dtype=np.float64) / 257.0
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    im = im.convert("RGB" if color_mode == "rgb" else "L")
    if im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    arr = np.asarray(im, dtype=np.uint8)
    return arr if arr.ndim == 3 else arr[..., None]


def decode_bytes(raw: bytes, size: tuple[int, int], color_mode: str) -> np.ndarray:
    """Encoded image file bytes as uint8 (H, W, C); ``load()`` forces the full decode so a
    truncated file fails here. Raises ValueError with a short reason."""
    try:
        with Image.open(io.BytesIO(raw)) as opened:
            opened.load()
            return _to_mode(opened, size, color_mode)
    except UnidentifiedImageError:
        raise ValueError("not a recognised image format") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad image
        raise ValueError(f"{type(exc).__name__}: {exc}"[:200]) from None


def array_image(value: Any, size: tuple[int, int], color_mode: str) -> np.ndarray:
    """A uint8 array (H, W), (H, W, 1) or (H, W, 3) (nested lists too) as uint8 (H, W, C) of
    the model's size and colour mode. Raises ValueError naming the rule broken."""
    try:
        a = np.asarray(value)
    except Exception:  # noqa: BLE001 - ragged nested lists
        raise ValueError("an image array must be rectangular (H, W) or (H, W, C)") from None
    if a.dtype == object or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
        raise ValueError(f"an image array must be (H, W), (H, W, 1) or (H, W, 3) numbers, got "
                         f"shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"an image array must not be empty, got shape {a.shape}")
    if a.dtype.kind not in "uif" or a.dtype == np.bool_:
        raise ValueError(f"an image array must hold integers 0..255, got dtype {a.dtype}")
    if np.any(a < 0) or np.any(a > 255) or (a.dtype.kind == "f" and np.any(a != np.rint(a))):
        raise ValueError("an image array must hold integers 0..255 (uint8 pixels)")
    a = a.astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    im = Image.fromarray(a, "RGB" if a.ndim == 3 else "L")
    return _to_mode(im, size, color_mode)
