"""The bundled sources: sklearn's digits and the ``keras:`` datasets.

keras is imported only to load a ``keras:`` dataset, inside :func:`keras_loader`; the arrays
are converted with the same rules a decoded file follows.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from tunetrack.data._splits import split
from tunetrack.errors import DataError, did_you_mean
from tunetrack.space import KERAS_DATASETS, DataConfig

KERAS_CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"],
}

Arrays = tuple[np.ndarray, np.ndarray]


def load_digits(size: tuple[int, int], mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sklearn's bundled 8x8 digits: values 0..16 read as 8-bit v*255/16, i.e. v/16."""
    from sklearn import datasets

    d = datasets.load_digits()
    raw = d.images.astype(np.uint8)  # integers 0..16
    x = (raw.astype(np.float32) / 16.0)[..., None]
    if size != (8, 8):  # bilinear on the float values, like a decoded file would be
        h, w = size
        x = np.stack([np.asarray(Image.fromarray(img[..., 0], "F").resize(
            (w, h), Image.Resampling.BILINEAR)) for img in x])[..., None].clip(0.0, 1.0)
    if mode == "rgb":
        x = np.repeat(x, 3, axis=-1)
    return x.astype(np.float32), d.target.astype(np.int64), raw


def keras_loader(name: str) -> tuple[Arrays, Arrays]:
    """``keras.datasets.NAME.load_data()``; tests replace this function (no network there)."""
    import keras

    return getattr(keras.datasets, name).load_data()


def convert_uint8(x: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
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


def keras_name(source: str) -> str:
    """``mnist`` for ``keras:mnist``; an unknown name is a :class:`DataError` listing the known."""
    name = source.split(":", 1)[1]
    if name not in KERAS_DATASETS:
        raise DataError(f"unknown keras dataset {name!r}: allowed are "
                        f"{', '.join('keras:' + n for n in KERAS_DATASETS)}"
                        f"{did_you_mean(name, KERAS_DATASETS)}")
    return name


def load_keras(cfg: DataConfig, size: tuple[int, int] | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str, tuple[int, int]]:
    """uint8 train and test images with their labels, the colour mode and the image size."""
    name = keras_name(cfg.source)
    try:
        (xa, ya), (xt, yt) = keras_loader(name)
    except Exception as exc:  # noqa: BLE001 - download or file problems
        raise DataError(f"cannot load keras:{name}: {type(exc).__name__}: {exc} (keras downloads "
                        f"it to ~/.keras/datasets on first use, which needs the network)"
                        ) from exc
    xa, xt = np.asarray(xa), np.asarray(xt)
    mode = cfg.color_mode or ("rgb" if xa.ndim == 4 and xa.shape[-1] == 3 else "grayscale")
    if size is None:
        size = int(xa.shape[1]), int(xa.shape[2])
    ya, yt = (np.asarray(v).reshape(-1).astype(np.int64) for v in (ya, yt))
    split(ya, KERAS_CLASSES[name], None, cfg.validation_split, cfg.seed)  # before resizing
    return convert_uint8(xa, size, mode), ya, convert_uint8(xt, size, mode), yt, mode, size
