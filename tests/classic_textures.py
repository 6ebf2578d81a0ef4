"""Test data for the classic pipeline: crops of scikit-image's bundled textures (brick, grass,
gravel), and a two-class colour pair. Seeded; nothing touches the network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TEXTURES = ("brick", "grass", "gravel")


def texture_arrays(per_class: int, size: int = 48, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(N, size, size, 1)`` float32 crops in [0, 1] (random position, scale 1-1.5x,
    brightness jitter) and their labels 0..2."""
    from skimage import data

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label, name in enumerate(TEXTURES):
        tex = getattr(data, name)().astype(np.float32) / 255.0
        for _ in range(per_class):
            side = int(size * rng.uniform(1.0, 1.5))
            y0, x0 = rng.integers(0, tex.shape[0] - side), rng.integers(0, tex.shape[1] - side)
            crop = Image.fromarray(np.uint8(tex[y0:y0 + side, x0:x0 + side] * 255))
            img = np.asarray(crop.resize((size, size), Image.BILINEAR), np.float32) / 255.0
            img = np.clip(img * rng.uniform(0.8, 1.2) + rng.uniform(-0.05, 0.05), 0, 1)
            xs.append(img[..., None])
            ys.append(label)
    return np.stack(xs).astype(np.float32), np.asarray(ys)


def colour_pair_arrays(per_class: int, size: int = 32, seed: int = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Two classes told apart by colour only: 'sea' (blues and greens) and 'sunset' (oranges and
    purples) as noisy blobs on a shared grey background, in varying proportions."""
    rng = np.random.default_rng(seed)
    palettes = ([(40, 90, 200), (30, 150, 120), (60, 120, 170)],
                [(230, 120, 40), (150, 60, 160), (200, 90, 90)])
    xs, ys = [], []
    yy, xx = np.mgrid[:size, :size]
    for label, palette in enumerate(palettes):
        for _ in range(per_class):
            img = np.full((size, size, 3), 128.0) + rng.normal(0, 20, 3)
            for _blob in range(rng.integers(1, 4)):
                cy, cx, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(4, size / 2)]
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
                img[mask] = np.asarray(palette[rng.integers(len(palette))]) + rng.normal(0, 25, 3)
            img += rng.normal(0, 10, img.shape)
            xs.append(np.clip(img, 0, 255) / 255.0)
            ys.append(label)
    return np.stack(xs).astype(np.float32), np.asarray(ys)


def write_folder(root: str | Path, x: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> Path:
    """One PNG per image under ``root/<class name>/``."""
    root = Path(root)
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        folder = root / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        arr = np.uint8(np.rint(img * 255))
        Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(folder / f"{i:04d}.png")
    return root
