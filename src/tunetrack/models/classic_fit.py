"""Fitting the classic pipeline: PCA and codebook / Gaussian mixture on the training split's
descriptors, then a scikit-learn linear classifier on the encoded features.

Everything fitted here becomes plain arrays in :mod:`tunetrack.models.classic_runtime` (which
predicts without scikit-learn): the PCA's mean and components, the k-means codebook, the diagonal
GMM (fitted by scikit-image's ``learn_gmm``), and the linear classifier's ``coef`` / ``intercept``
with the feature standardization folded in. Like the runtime, it imports nothing from tunetrack.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from tunetrack.models.classic_runtime import (
    ClassicPredictor,
    Encoder,
    Settings,
    one_blas_thread,
    reduced_dim,
    softmax,
)

SKLEARN_CLASSIFIERS = ("linear_svm", "logistic")
MAX_FIT_DESCRIPTORS = 5_000  # sampled from the training descriptors for PCA / k-means / GMM


def fit_encoder(train_descriptors: np.ndarray, settings: Settings,
                image_shape: tuple[int, int, int], seed: int = 0) -> Encoder:
    """PCA and codebook / GMM from the *training* descriptors ``(N, P, D)`` only."""
    with one_blas_thread():
        return _fit_encoder(train_descriptors, settings, image_shape, seed)


def _fit_encoder(train_descriptors: np.ndarray, settings: Settings,
                 image_shape: tuple[int, int, int], seed: int) -> Encoder:
    s = settings
    n, p, d = train_descriptors.shape
    total = n * p
    if s.encoding in ("bovw", "fisher") and s.words > total:
        raise ValueError(f"encoding {s.encoding}: words {s.words} > the {total} training "
                         f"descriptors ({n} images x {p} patches of descriptor {s.descriptor}, "
                         f"step {s.step}, patch {s.patch}); lower words or step")
    rng = np.random.default_rng(seed)
    flat = train_descriptors.reshape(total, d)
    sample = flat[rng.choice(total, MAX_FIT_DESCRIPTORS, replace=False)] \
        if total > MAX_FIT_DESCRIPTORS else flat
    enc = Encoder(s, image_shape)
    k = reduced_dim(s, image_shape[2])
    if s.pca > 0 and k < d:
        from sklearn.decomposition import PCA

        if len(sample) < k:
            raise ValueError(f"pca {s.pca} > the {total} training descriptors; lower pca")
        pca = PCA(n_components=k, random_state=seed).fit(sample)
        enc.pca_mean = pca.mean_.astype(np.float32)
        enc.pca_components = pca.components_.astype(np.float32)
    sample = enc.reduce(sample).astype(np.float64)
    if s.encoding == "bovw":
        from sklearn.cluster import MiniBatchKMeans

        km = MiniBatchKMeans(n_clusters=s.words, random_state=seed, n_init=3,
                             batch_size=2048).fit(sample)
        enc.means = km.cluster_centers_.astype(np.float64)
    elif s.encoding == "fisher":
        from skimage.feature import learn_gmm
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():  # 50 EM steps are enough for an encoder
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm = learn_gmm([sample], n_modes=s.words, gm_args={
                "covariance_type": "diag", "random_state": seed, "reg_covar": 1e-4,
                "init_params": "k-means++", "tol": 1e-3, "max_iter": 50})
        enc.means = np.asarray(gmm.means_, dtype=np.float64)
        enc.covariances = np.asarray(gmm.covariances_, dtype=np.float64)
        enc.weights = np.asarray(gmm.weights_, dtype=np.float64)
    return enc


@dataclass
class LinearFit:
    """A fitted linear classifier as ``softmax(x @ coef.T + intercept)`` and its scores."""

    coef: np.ndarray  # (C, F)
    intercept: np.ndarray  # (C,)

    def proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(x, dtype=np.float64) @ self.coef.T + self.intercept)

    def scores(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """Accuracy and mean cross-entropy on ``(x, y)``."""
        p = self.proba(x)
        y = np.asarray(y).astype(int)
        if len(y) == 0:
            return 0.0, 0.0
        acc = float((p.argmax(1) == y).mean())
        loss = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0)).mean())
        return acc, loss

    @property
    def params(self) -> int:
        return int(self.coef.size + self.intercept.size)


def fit_linear(x: np.ndarray, y: np.ndarray, kind: str, c: float, num_classes: int,
               seed: int = 0, class_weight: dict[int, float] | None = None) -> LinearFit:
    """scikit-learn's LinearSVC (class probabilities: softmax of its margins) or
    LogisticRegression (its own probabilities) on standardized features, folded back to a
    linear map of the raw features."""
    if kind not in SKLEARN_CLASSIFIERS:
        raise ValueError(f"classifier {kind!r} is not one of {', '.join(SKLEARN_CLASSIFIERS)}")
    y = np.asarray(y).astype(int)
    present = np.unique(y)
    if len(present) < 2:
        raise ValueError(f"classifier {kind}: the training split holds only class "
                         f"{present.tolist()}; a linear classifier needs two classes")
    with one_blas_thread():
        return _fit_linear(x, y, kind, c, num_classes, seed, present, class_weight)


def _fit_linear(x: np.ndarray, y: np.ndarray, kind: str, c: float, num_classes: int,
                seed: int, present: np.ndarray,
                class_weight: dict[int, float] | None) -> LinearFit:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    if kind == "linear_svm":
        from sklearn.svm import LinearSVC

        model = LinearSVC(C=c, random_state=seed, max_iter=5000, class_weight=class_weight)
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=c, max_iter=2000, random_state=seed,
                                   class_weight=class_weight)
    model.fit(xs, y)
    w = np.atleast_2d(model.coef_).astype(np.float64)
    b = np.atleast_1d(model.intercept_).astype(np.float64)
    if w.shape[0] == 1:  # binary: one margin; softmax([-m/2, m/2]) = sigmoid(m)
        w, b = np.vstack([-w / 2, w / 2]), np.array([-b[0] / 2, b[0] / 2])
    coef = np.zeros((num_classes, x.shape[1]))
    intercept = np.full(num_classes, -1e3)  # a class absent from training is never predicted
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    for row, cls in enumerate(present):
        coef[cls] = w[row] / scale
        intercept[cls] = b[row] - (w[row] / scale) @ scaler.mean_
    return LinearFit(coef, intercept)


def predictor(encoder: Encoder, classifier: str, fit: LinearFit | None = None) -> ClassicPredictor:
    """The runtime object to save beside the model."""
    return ClassicPredictor(encoder, classifier, None if fit is None else fit.coef,
                            None if fit is None else fit.intercept)


def svc_baseline(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                 y_val: np.ndarray, grid: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)) -> float:
    """Best validation accuracy of an RBF ``sklearn.svm.SVC`` over ``C`` on standardized
    features: the reference a classic family's search should reach."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    best = 0.0
    for c in grid:
        model = make_pipeline(StandardScaler(), SVC(C=c)).fit(x_train, y_train)
        best = max(best, float(model.score(x_val, y_val)))
    return best
