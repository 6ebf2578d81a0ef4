"""Tiny synthetic image folders for tests: one subfolder per class, learnable patterns.

``beach`` is blue on top and sandy yellow below, ``desert`` is orange/sand all over; any other
class gets its own colour and stripe direction, so colour, HoG, LBP and pixel models can all
tell the classes apart. Everything is seeded; nothing touches the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

_PALETTE = [(200, 30, 30), (30, 160, 40), (120, 40, 200), (230, 230, 230), (20, 20, 20),
            (0, 170, 170), (220, 0, 160), (140, 90, 20)]
_PIL_FORMAT = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP", "gif": "GIF",
               "tif": "TIFF", "tiff": "TIFF"}


def class_image(name: str, index: int, size: tuple[int, int], rng: np.random.Generator
                ) -> np.ndarray:
    """uint8 RGB (h, w, 3) with the class's pattern plus a little noise; ``size`` is (w, h)."""
    w, h = size
    img = np.zeros((h, w, 3), dtype=np.float64)
    if name == "beach":
        img[: h // 2] = (40, 110, 220)   # sky/sea
        img[h // 2:] = (235, 215, 120)   # sand
    elif name == "desert":
        img[:] = (225, 150, 60)
        img[::4] = (200, 170, 110)       # dune ridges
    else:
        img[:] = _PALETTE[index % len(_PALETTE)]
        stripes = np.zeros((h, w), dtype=bool)
        if index % 2:
            stripes[:, ::3] = True
        else:
            stripes[::3] = True
        img[stripes] *= 0.4
    img += rng.normal(0.0, 8.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_image_folder(root: str | Path, classes: dict[str, int] | None = None,
                      sizes: Sequence[tuple[int, int]] = ((40, 30), (24, 24)),
                      mode: str = "RGB",
                      formats: Sequence[str] = ("png", "jpg", "bmp", "gif", "tiff"),
                      corrupt: str | None = None, seed: int = 0, extras: bool = False) -> Path:
    """Write ``classes`` ({name: count}) under ``root`` (created) and return ``root``.

    Sizes (width, height) and formats cycle per image; every fourth file has an upper-case
    extension. ``mode`` "RGB" or "L". ``corrupt``: "truncated_jpeg" adds ``broken.jpg`` (half a
    JPEG) and "text_as_png" adds ``notes.png`` (text), both to the first class. ``extras`` adds
    files a loader must ignore: ``readme.txt``, ``labels.csv``, ``.hidden.png``, ``.git/x.png``.
    """
    classes = {"beach": 6, "desert": 6} if classes is None else classes
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    counter = 0
    for ci, (name, count) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            size = tuple(sizes[counter % len(sizes)])
            fmt = formats[counter % len(formats)]
            ext = fmt.upper() if i % 4 == 3 else fmt
            counter += 1
            im = Image.fromarray(class_image(name, ci, size, rng), "RGB")
            if mode == "L":
                im = im.convert("L")
            kw = {"quality": 95} if _PIL_FORMAT[fmt] == "JPEG" else {}
            im.save(folder / f"{name}_{i:03d}.{ext}", _PIL_FORMAT[fmt], **kw)
        if extras:
            (folder / "readme.txt").write_text("not an image")
            (folder / "labels.csv").write_text("a,b\n1,2\n")
            Image.new("RGB", (8, 8)).save(folder / ".hidden.png")
            (folder / ".git").mkdir(exist_ok=True)
            Image.new("RGB", (8, 8)).save(folder / ".git" / "x.png")
    if corrupt is not None:
        first = root / next(iter(classes))
        if corrupt == "truncated_jpeg":
            im = Image.fromarray(class_image("beach", 0, (64, 64), rng), "RGB")
            path = first / "broken.jpg"
            im.save(path, "JPEG", quality=95)
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        elif corrupt == "text_as_png":
            (first / "notes.png").write_text("this is not a PNG file\n")
        else:
            raise ValueError(f"corrupt must be None, 'truncated_jpeg' or 'text_as_png', "
                             f"got {corrupt!r}")
    return root
