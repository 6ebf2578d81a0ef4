"""The classic (pre-CNN) pipeline at inference time: dense descriptors on a grid (SIFT, ORB,
HoG, LBP, colour), an encoding (histogram, bag of words, Fisher vectors with Perronnin et al.
2010's power + L2 normalization), a spatial pyramid (Lazebnik et al. 2006), a linear classifier.

Imports nothing from tunetrack (numpy, scikit-image, OpenCV), so it travels inside a served
model. State is ``settings.json`` + ``state.npz`` (no pickle); images are float32 NHWC in [0, 1].
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

DESCRIPTORS = ("sift", "orb", "hog", "lbp", "colour")
ENCODINGS = ("histogram", "bovw", "fisher")
CLASSIFIERS = ("dense", "linear_svm", "logistic")
SETTINGS_FILE, STATE_FILE = "settings.json", "state.npz"
FORMAT = 1
_CHUNK = 64  # images per parallel task / per encoding batch


@dataclass(frozen=True)
class Settings:
    """The hyperparameters of the feature pipeline (the classifier's are not needed here)."""

    descriptor: str = "sift"
    step: int = 8
    patch: int = 16
    orientations: int = 9
    points: int = 8
    radius: int = 1
    pca: int = 32
    encoding: str = "fisher"
    words: int = 16
    pyramid: int = 1

    @classmethod
    def of(cls, values: dict[str, Any]) -> Settings:
        known = {f.name: f.type for f in fields(cls)}
        kwargs: dict[str, Any] = {k: (str(v) if known[k] == "str" else int(v))
                                  for k, v in values.items() if k in known}
        return cls(**kwargs)

    def descriptor_key(self) -> tuple[Any, ...]:
        """What the descriptors depend on (a classifier or encoding change reuses them)."""
        opts = {"hog": (self.orientations,), "lbp": (self.points, self.radius)}
        return (self.descriptor, self.step, self.patch, *opts.get(self.descriptor, ()))


def one_blas_thread() -> Any:
    """One BLAS thread for these small matrices: a threaded BLAS spins against other processes
    on a shared machine (a GMM fit measured 15x slower on 2 busy cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return contextlib.nullcontext()
    return threadpool_limits(1)


# --- arithmetic (the same formulas as tunetrack.space.plan) ----------------------------------

def hog_cells(s: Settings) -> int:  # HoG cells per block side: whole cells of ``step`` pixels
    return max(1, s.patch // s.step)


def patch_size(s: Settings) -> int:
    return hog_cells(s) * s.step if s.descriptor == "hog" else s.patch


def grid(h: int, w: int, s: Settings) -> tuple[int, int]:
    """Patches per axis: top-left corners at ``0, step, 2 step, ...`` while the patch fits."""
    p = patch_size(s)
    return ((h - p) // s.step + 1 if h >= p else 0, (w - p) // s.step + 1 if w >= p else 0)


def descriptor_dim(s: Settings, channels: int) -> int:
    return {"sift": 128, "orb": 256, "hog": hog_cells(s) ** 2 * s.orientations,
            "lbp": s.points + 2, "colour": 2 * channels}[s.descriptor]


def reduced_dim(s: Settings, channels: int) -> int:  # after the optional PCA
    return min(s.pca, descriptor_dim(s, channels)) if s.pca > 0 else descriptor_dim(s, channels)


def pyramid_cells(levels: int) -> int:
    return sum(4 ** level for level in range(levels + 1))


def pyramid_weights(levels: int) -> list[float]:
    """Lazebnik et al. 2006: ``1/2^L`` for level 0, ``1/2^(L-l+1)`` for level ``l >= 1``."""
    return [1.0 / 2 ** levels if lv == 0 else 1.0 / 2 ** (levels - lv + 1)
            for lv in range(levels + 1)]


def cell_length(s: Settings, channels: int) -> int:
    d = reduced_dim(s, channels)
    return {"histogram": d, "bovw": s.words, "fisher": (2 * d + 1) * s.words}[s.encoding]


def feature_length(s: Settings, image_shape: tuple[int, ...]) -> int:
    return pyramid_cells(s.pyramid) * cell_length(s, int(image_shape[2]))


# --- descriptors -------------------------------------------------------------------------------

def positions(h: int, w: int, s: Settings) -> np.ndarray:
    """Patch centres ``(P, 2)`` as (y, x), row by row."""
    ny, nx = grid(h, w, s)
    half = patch_size(s) / 2.0
    ys, xs = np.meshgrid(np.arange(ny) * s.step + half, np.arange(nx) * s.step + half,
                         indexing="ij")
    return np.stack([ys.ravel(), xs.ravel()], axis=1).astype(np.float32)


def gray_uint8(x: np.ndarray) -> np.ndarray:
    g = (x[..., 0] * 0.2125 + x[..., 1] * 0.7154 + x[..., 2] * 0.0721
         if x.shape[-1] == 3 else x[..., 0])
    return np.rint(np.clip(g, 0.0, 1.0) * 255.0).astype(np.uint8)


def _box_means(values: np.ndarray, s: Settings) -> np.ndarray:
    """Mean of ``values (N, H, W, F)`` over every grid patch: ``(N, P, F)`` (integral image)."""
    n, h, w, f = values.shape
    ny, nx = grid(h, w, s)
    p = patch_size(s)
    ii = np.zeros((n, h + 1, w + 1, f), dtype=np.float64)
    ii[:, 1:, 1:] = values.cumsum(axis=1).cumsum(axis=2)
    t, left = np.arange(ny) * s.step, np.arange(nx) * s.step
    a = ii[:, t + p][:, :, left + p] - ii[:, t][:, :, left + p]
    a = a - ii[:, t + p][:, :, left] + ii[:, t][:, :, left]
    return (a / (p * p)).reshape(n, ny * nx, f).astype(np.float32)


def _keypoints(h: int, w: int, s: Settings, offset: float, size: float) -> list[Any]:
    import cv2

    return [cv2.KeyPoint(float(x) + offset, float(y) + offset, size, 0.0, 0.0, 0, i)
            for i, (y, x) in enumerate(positions(h, w, s))]


def _sift(gray: np.ndarray, s: Settings) -> np.ndarray:
    import cv2

    n, h, w = gray.shape
    # OpenCV's descriptor spans 6 x size pixels (4 bins of 3 sigma, sigma = size / 2): the
    # keypoint size that makes it cover the patch (as VLFeat's dense SIFT does).
    sift = cv2.SIFT_create()  # type: ignore[attr-defined]
    kps = _keypoints(h, w, s, 0.0, s.patch / 6.0)
    out = np.zeros((n, len(kps), 128), dtype=np.float32)
    for i in range(n):
        got, desc = sift.compute(gray[i], kps)
        if desc is not None:
            out[i, [k.class_id for k in got]] = desc
    return out


def _orb(gray: np.ndarray, s: Settings) -> np.ndarray:
    import cv2

    n, h, w = gray.shape
    pad = 2 * s.patch + 2  # ORB drops keypoints nearer the border than its edge threshold
    orb = cv2.ORB_create(edgeThreshold=s.patch, patchSize=max(s.patch, 2))  # type: ignore[attr-defined]
    kps = _keypoints(h, w, s, float(pad), float(s.patch))
    out = np.zeros((n, len(kps), 256), dtype=np.float32)
    for i in range(n):
        img = cv2.copyMakeBorder(gray[i], pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        got, desc = orb.compute(img, kps)
        if desc is not None:
            out[i, [k.class_id for k in got]] = np.unpackbits(desc, axis=1)
    return out


def _hog(gray: np.ndarray, s: Settings) -> np.ndarray:
    from skimage.feature import hog

    n = gray.shape[0]
    c = hog_cells(s)
    rows = [hog(g, orientations=s.orientations, pixels_per_cell=(s.step, s.step),
                cells_per_block=(c, c), feature_vector=False) for g in gray]
    return np.asarray(rows, dtype=np.float32).reshape(n, -1, c * c * s.orientations)


def _lbp(gray: np.ndarray, s: Settings) -> np.ndarray:
    from skimage.feature import local_binary_pattern

    codes = np.stack([local_binary_pattern(g, s.points, s.radius, method="uniform")
                      for g in gray]).astype(np.int64)
    onehot = np.eye(s.points + 2, dtype=np.float32)[codes]  # (N, H, W, bins)
    return _box_means(onehot, s)


def _colour(x: np.ndarray, s: Settings) -> np.ndarray:
    mean = _box_means(x, s)
    var = np.maximum(_box_means(x * x, s) - mean * mean, 0.0)
    return np.concatenate([mean, np.sqrt(var)], axis=2)


def _extract_chunk(x: np.ndarray, s: Settings) -> np.ndarray:
    if s.descriptor == "colour":
        return _colour(x, s)
    fn = {"sift": _sift, "orb": _orb, "hog": _hog, "lbp": _lbp}[s.descriptor]
    return fn(gray_uint8(x), s)


def extract(images: np.ndarray, s: Settings, n_jobs: int | None = None) -> np.ndarray:
    """Local descriptors ``(N, P, D)`` float32 at :func:`positions`; chunks of images run in
    joblib threads (OpenCV, LBP and numpy release the GIL)."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (N, H, W, C) with C 1 or 3, got shape {x.shape}")
    if 0 in grid(x.shape[1], x.shape[2], s):
        raise ValueError(f"descriptor {s.descriptor}: patch {patch_size(s)} does not fit a "
                         f"{x.shape[1]}x{x.shape[2]} image")
    chunks = [x[i:i + _CHUNK] for i in range(0, len(x), _CHUNK)]
    if len(chunks) <= 1 or n_jobs == 1:
        parts = [_extract_chunk(c, s) for c in chunks]
    else:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=n_jobs or -1, prefer="threads")(
            delayed(_extract_chunk)(c, s) for c in chunks)
    if not parts:
        p = int(np.prod(grid(x.shape[1], x.shape[2], s)))
        return np.zeros((0, p, descriptor_dim(s, x.shape[-1])), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32)


# --- encoding ----------------------------------------------------------------------------------

def pyramid_membership(h: int, w: int, s: Settings) -> np.ndarray:
    """``(cells, P)``: 1 where patch ``p``'s centre lies in cell ``c`` (levels, then rows)."""
    pos = positions(h, w, s)
    rows = []
    for level in range(s.pyramid + 1):
        k = 2 ** level
        cy = np.minimum((pos[:, 0] / h * k).astype(int), k - 1)
        cx = np.minimum((pos[:, 1] / w * k).astype(int), k - 1)
        rows.append(np.eye(k * k, dtype=np.float32)[cy * k + cx].T)
    return np.concatenate(rows)


def _cell_weights(s: Settings) -> np.ndarray:
    return np.repeat(pyramid_weights(s.pyramid), [4 ** lv for lv in range(s.pyramid + 1)])


@dataclass
class Encoder:
    """Fitted encoder state: optional PCA, and the codebook (``bovw``) or the diagonal GMM
    (``fisher``: ``means``, ``covariances`` = variances, ``weights``)."""

    settings: Settings
    image_shape: tuple[int, int, int]
    pca_mean: np.ndarray | None = None
    pca_components: np.ndarray | None = None
    means: np.ndarray | None = None
    covariances: np.ndarray | None = None
    weights: np.ndarray | None = None

    def reduce(self, desc: np.ndarray) -> np.ndarray:
        if self.pca_components is None or self.pca_mean is None:
            return desc
        return ((desc - self.pca_mean) @ self.pca_components.T).astype(np.float32)

    def encode(self, desc: np.ndarray) -> np.ndarray:
        """``(N, P, D)`` descriptors to ``(N, feature_length)`` pyramid features."""
        with one_blas_thread():
            return self._encode(desc)

    def _encode(self, desc: np.ndarray) -> np.ndarray:
        s, (h, w, _) = self.settings, self.image_shape
        m = pyramid_membership(h, w, s)  # (cells, P)
        counts = np.maximum(m.sum(axis=1), 1.0)
        cw = _cell_weights(s)
        out = []
        k = len(self.means) if self.means is not None else 1
        step = max(1, min(_CHUNK, 4_000_000 // max(1, m.size * k)))  # bounds Fisher's memory
        for i in range(0, len(desc), step):
            x = self.reduce(desc[i:i + step]).astype(np.float64)
            out.append(self._encode_chunk(x, m, counts, cw))
        if not out:
            return np.zeros((0, feature_length(s, self.image_shape)), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def _encode_chunk(self, x: np.ndarray, m: np.ndarray, counts: np.ndarray,
                      cw: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        enc = self.settings.encoding
        if enc == "histogram":
            cells = np.einsum("cp,npd->ncd", m, x) / counts[None, :, None]
        elif enc == "bovw":
            assert self.means is not None
            d2 = ((x ** 2).sum(-1, keepdims=True) - 2 * x @ self.means.T
                  + (self.means ** 2).sum(-1))
            onehot = np.eye(len(self.means))[d2.argmin(-1)]  # (n, P, K)
            cells = np.sqrt(np.einsum("cp,npk->nck", m, onehot) / counts[None, :, None])
        else:
            cells = self._fisher(x, m, counts)
        return (cells * cw[None, :, None]).reshape(n, -1)

    def posteriors(self, x: np.ndarray) -> np.ndarray:
        """The diagonal GMM's component posteriors ``(..., K)`` (sklearn's predict_proba)."""
        assert self.means is not None and self.covariances is not None and self.weights is not None
        prec = 1.0 / self.covariances
        log_det = np.log(self.covariances).sum(-1)
        maha = (x ** 2) @ prec.T - 2 * x @ (self.means * prec).T + (self.means ** 2 * prec).sum(-1)
        logp = (-0.5 * (x.shape[-1] * np.log(2 * np.pi) + log_det + maha)
                + np.log(self.weights))
        logp -= logp.max(-1, keepdims=True)
        p = np.exp(logp)
        return np.asarray(p / p.sum(-1, keepdims=True))

    def _fisher(self, x: np.ndarray, m: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Improved Fisher vectors per cell, as ``skimage.feature.fisher_vector(...,
        improved=True)`` computes them for the cell's descriptors (an empty cell: zeros)."""
        assert self.means is not None and self.covariances is not None and self.weights is not None
        mu, var, wk = self.means, self.covariances, self.weights
        gamma = self.posteriors(x)  # (n, P, K)
        n, _, k = gamma.shape
        a = (m[None, :, :, None] * gamma[:, None]).transpose(0, 1, 3, 2)  # (n, cells, K, P)
        nc = counts[None, :, None]
        pp_sum = a.sum(-1) / nc  # (n, cells, K)
        flat = a.reshape(n, -1, a.shape[-1])  # batched matmuls (BLAS), not einsum loops
        pp_x = (flat @ x).reshape(*a.shape[:3], -1) / nc[..., None]
        pp_x2 = (flat @ (x * x)).reshape(*a.shape[:3], -1) / nc[..., None]
        s0 = pp_sum[..., None]
        d_pi = (pp_sum - wk) / np.sqrt(wk)
        d_mu = (pp_x - s0 * mu) / (np.sqrt(wk)[:, None] * np.sqrt(var))
        d_sigma = (-pp_x2 - s0 * mu ** 2 + s0 * var + 2 * pp_x * mu) / (
            np.sqrt(2) * np.sqrt(wk)[:, None] * var)
        fv = np.concatenate([d_pi, d_mu.reshape(n, -1, mu.size),
                             d_sigma.reshape(n, -1, mu.size)], axis=2)
        fv = np.sign(fv) * np.sqrt(np.abs(fv))
        norm = np.linalg.norm(fv, axis=2, keepdims=True)
        empty = (m.sum(axis=1) == 0)[None, :, None]
        return np.where(empty, 0.0, fv / np.maximum(norm, 1e-12))


# --- the predictor -----------------------------------------------------------------------------

def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


@dataclass
class ClassicPredictor:
    """Raw images to features (and, with a linear head, to class probabilities)."""

    encoder: Encoder
    classifier: str = "dense"
    coef: np.ndarray | None = None  # (C, F): softmax(features @ coef.T + intercept)
    intercept: np.ndarray | None = None
    n_jobs: int | None = None

    def features(self, images: np.ndarray) -> np.ndarray:
        if tuple(np.shape(images)[1:]) != self.encoder.image_shape:
            raise ValueError(f"images must have shape (N, *{self.encoder.image_shape}) for this "
                             f"model, got {np.shape(images)}")
        return self.encoder.encode(extract(images, self.encoder.settings, self.n_jobs))

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        if self.coef is None or self.intercept is None:
            raise ValueError(f"this classic pipeline's classifier is {self.classifier!r} (a Keras "
                             f"network): features() gives its input")
        return softmax(self.features(images).astype(np.float64) @ self.coef.T + self.intercept)

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        e = self.encoder
        meta = {"format": FORMAT, "settings": asdict(e.settings),
                "image_shape": list(e.image_shape), "classifier": self.classifier}
        (d / SETTINGS_FILE).write_text(json.dumps(meta, indent=2))
        arrays: dict[str, Any] = {k: v for k, v in {
            "pca_mean": e.pca_mean, "pca_components": e.pca_components, "means": e.means,
            "covariances": e.covariances, "weights": e.weights, "coef": self.coef,
            "intercept": self.intercept}.items() if v is not None}
        np.savez(d / STATE_FILE, **arrays)
        return d


def load(directory: str | Path) -> ClassicPredictor:
    """A :class:`ClassicPredictor` from what :meth:`ClassicPredictor.save` wrote."""
    d = Path(directory)
    meta = json.loads((d / SETTINGS_FILE).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{d / SETTINGS_FILE}: format {meta.get('format')!r}, expected {FORMAT}")
    with np.load(d / STATE_FILE, allow_pickle=False) as z:
        arrays = {k: np.asarray(z[k]) for k in z.files}
    h, w, c = (int(n) for n in meta["image_shape"])
    encoder = Encoder(Settings.of(meta["settings"]), (h, w, c), arrays.get("pca_mean"),
                      arrays.get("pca_components"), arrays.get("means"),
                      arrays.get("covariances"), arrays.get("weights"))
    return ClassicPredictor(encoder, str(meta["classifier"]), arrays.get("coef"),
                            arrays.get("intercept"))
