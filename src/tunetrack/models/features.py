"""Hand-crafted image descriptors for the feature families: colour, HoG and LBP.

The course baseline: requantize to 64 colours and use the two most frequent as the features;
then descriptor grids (HoG, LBP). Pure numpy + scikit-image, no keras/tensorflow, so the
extraction can be tested and timed on its own.

Every extractor takes float32 images ``(N, H, W, C)`` in ``[0, 1]`` with ``C`` 1 or 3 and returns
float32 ``(N, length)``; the ``*_length`` functions give ``length`` without any image, with the
same formulas that :func:`tunetrack.space.plan.feature_length` uses.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Below this many images a thread pool costs more than it saves.
_POOL_MIN_IMAGES = 256
# Largest (images x colours) count table built at once by the colour bincount.
_MAX_COUNT_CELLS = 1 << 22


def colour_length(k: int) -> int:
    """Per colour rank: R, G, B of the colour and its fraction of the image."""
    return 4 * k


def hog_length(h: int, w: int, orientations: int, pixels_per_cell: int,
               cells_per_block: int) -> int:
    """skimage's HoG vector length: blocks per axis x cells per block x orientations.

    An axis with fewer cells than ``cells_per_block`` has no blocks (length 0; skimage refuses).
    """
    by = max(0, h // pixels_per_cell - cells_per_block + 1)
    bx = max(0, w // pixels_per_cell - cells_per_block + 1)
    return by * bx * cells_per_block * cells_per_block * orientations


def lbp_length(points: int, grid: int) -> int:
    """One histogram of the ``points + 2`` uniform codes per grid cell."""
    return grid * grid * (points + 2)


def _check_images(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (N, H, W, C) with C 1 or 3, got shape {x.shape}")
    return x


def _positive(name: str, value: int) -> None:
    if int(value) < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def colour_features(images: np.ndarray, k: int = 2, levels: int = 4) -> np.ndarray:
    """The ``k`` most frequent requantized colours of each image, as (R, G, B, fraction) each.

    Each channel is requantized to ``levels`` levels (4 -> 64 colours), a colour's channels are
    reported as level centres ``(level + 0.5) / levels``. Ties in frequency go to the lower
    colour index (``r * levels**2 + g * levels + b``); missing ranks are zeros. Grayscale counts
    as R = G = B.
    """
    x = _check_images(images)
    _positive("k", k)
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    n = x.shape[0]
    out = np.zeros((n, colour_length(k)), dtype=np.float32)
    if n == 0 or x.shape[1] * x.shape[2] == 0:
        return out
    q = np.minimum((np.clip(x, 0.0, 1.0) * levels).astype(np.int64), levels - 1)
    if q.shape[-1] == 1:
        idx = q[..., 0] * (levels * levels + levels + 1)
    else:
        idx = (q[..., 0] * levels + q[..., 1]) * levels + q[..., 2]
    idx = idx.reshape(n, -1)
    pixels = idx.shape[1]
    ncol = levels ** 3
    if ncol * min(n, 64) <= _MAX_COUNT_CELLS:
        top, counts = _top_colours_bincount(idx, ncol, k)
    else:
        top, counts = _top_colours_sorted(idx, ncol, k)
    present = counts > 0
    r, g, b = top // (levels * levels), (top // levels) % levels, top % levels
    feats = np.stack([(r + 0.5) / levels, (g + 0.5) / levels, (b + 0.5) / levels,
                      counts / pixels], axis=-1)  # (n, k, 4)
    feats[~present] = 0.0
    out[:] = feats.reshape(n, -1)
    return out


def _top_colours_bincount(idx: np.ndarray, ncol: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image counts by one offset bincount per chunk of images; fast for few colours."""
    n = idx.shape[0]
    chunk = max(1, _MAX_COUNT_CELLS // ncol)
    top = np.zeros((n, k), dtype=np.int64)
    counts = np.zeros((n, k), dtype=np.int64)
    kk = min(k, ncol)
    for s in range(0, n, chunk):
        part = idx[s:s + chunk]
        m = part.shape[0]
        offset = (np.arange(m, dtype=np.int64) * ncol)[:, None]
        table = np.bincount((part + offset).ravel(), minlength=m * ncol).reshape(m, ncol)
        order = np.argsort(-table, axis=1, kind="stable")[:, :kk]  # stable: lower index wins
        top[s:s + m, :kk] = order
        counts[s:s + m, :kk] = np.take_along_axis(table, order, axis=1)
    return top, counts


def _top_colours_sorted(idx: np.ndarray, ncol: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image counts by sorting (image, colour) keys; for many levels, where a table per
    image would not fit in memory."""
    n = idx.shape[0]
    keys = (np.arange(n, dtype=np.int64)[:, None] * ncol + idx).ravel()
    uniq, cnt = np.unique(keys, return_counts=True)
    img, col = uniq // ncol, uniq % ncol
    order = np.lexsort((col, -cnt, img))  # by image, then count desc, then colour asc
    img, col, cnt = img[order], col[order], cnt[order]
    starts = np.searchsorted(img, np.arange(n))
    rank = np.arange(img.size) - starts[img]
    keep = rank < k
    top = np.zeros((n, k), dtype=np.int64)
    counts = np.zeros((n, k), dtype=np.int64)
    top[img[keep], rank[keep]] = col[keep]
    counts[img[keep], rank[keep]] = cnt[keep]
    return top, counts


def _per_image(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, length: int,
               dtype: type = np.float32, threads: bool = False) -> np.ndarray:
    """Apply a per-image skimage function. ``threads`` only where skimage releases the GIL
    (LBP's Cython loop; HoG holds it and gets slower in a pool), and only for many images."""
    out: np.ndarray = np.empty((x.shape[0], length), dtype=dtype)

    def one(i: int) -> None:
        out[i] = fn(x[i])

    if threads and x.shape[0] >= _POOL_MIN_IMAGES:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one, range(x.shape[0])))
    else:
        for i in range(x.shape[0]):
            one(i)
    return out


def hog_features(images: np.ndarray, orientations: int = 9, pixels_per_cell: int = 4,
                 cells_per_block: int = 2) -> np.ndarray:
    """skimage's HoG descriptor of each image (all RGB channels, or the gray one)."""
    from skimage.feature import hog

    x = _check_images(images)
    for name, v in (("orientations", orientations), ("pixels_per_cell", pixels_per_cell),
                    ("cells_per_block", cells_per_block)):
        _positive(name, v)
    h, w = x.shape[1:3]
    length = hog_length(h, w, orientations, pixels_per_cell, cells_per_block)
    if length == 0:
        raise ValueError(
            f"HoG needs at least cells_per_block x pixels_per_cell = "
            f"{cells_per_block * pixels_per_cell} pixels per side, got a {h}x{w} image")
    rgb = x.shape[-1] == 3
    kw = dict(orientations=orientations, pixels_per_cell=(pixels_per_cell, pixels_per_cell),
              cells_per_block=(cells_per_block, cells_per_block), feature_vector=True)

    def one(img: np.ndarray) -> np.ndarray:
        return hog(img, channel_axis=-1, **kw) if rgb else hog(img[..., 0], **kw)

    return _per_image(one, x, length)


def _gray_uint8(x: np.ndarray) -> np.ndarray:
    """Luminance as 8-bit (N, H, W): LBP compares neighbours, and float inputs make skimage warn
    because equal-looking values may differ in the last bit."""
    if x.shape[-1] == 3:
        g = x[..., 0] * 0.2125 + x[..., 1] * 0.7154 + x[..., 2] * 0.0721  # skimage rgb2gray
    else:
        g = x[..., 0]
    return np.rint(np.clip(g, 0.0, 1.0) * 255.0).astype(np.uint8)


def lbp_features(images: np.ndarray, points: int = 8, radius: int = 1,
                 grid: int = 2) -> np.ndarray:
    """Normalized histograms of uniform LBP codes (0..points+1) on a grid x grid split.

    Cells come from ``np.array_split`` per axis, so uneven sizes are fine; an empty cell (grid
    larger than the image) has an all-zero histogram.
    """
    from skimage.feature import local_binary_pattern

    x = _check_images(images)
    for name, v in (("points", points), ("radius", radius), ("grid", grid)):
        _positive(name, v)
    n, h, w = x.shape[:3]
    nbins = points + 2
    gray = _gray_uint8(x)
    codes = _per_image(
        lambda g: local_binary_pattern(g, points, radius, method="uniform").ravel(),
        gray, h * w, dtype=np.int64, threads=True).reshape(n, h, w)
    # Cell of every pixel, from the same boundaries np.array_split uses.
    row_cell = np.concatenate([np.full(len(a), i) for i, a in
                               enumerate(np.array_split(np.arange(h), grid))]).astype(np.int64)
    col_cell = np.concatenate([np.full(len(a), i) for i, a in
                               enumerate(np.array_split(np.arange(w), grid))]).astype(np.int64)
    cell = row_cell[:, None] * grid + col_cell[None, :]  # (h, w)
    ncells = grid * grid
    keys = (np.arange(n, dtype=np.int64)[:, None, None] * ncells + cell) * nbins + codes
    hist = np.bincount(keys.ravel(), minlength=n * ncells * nbins).reshape(n, ncells, nbins)
    sizes = np.bincount(cell.ravel(), minlength=ncells).astype(np.float64)
    density = hist / np.maximum(sizes, 1.0)[None, :, None]
    return density.reshape(n, lbp_length(points, grid)).astype(np.float32)
