"""Classic: the descriptor cache of a search, and linear classifiers beside a tuned SVC.

A folder of a few hundred texture crops (scikit-image's brick, grass and gravel) goes through
the code a search runs for the ``classic`` family (``search.classic_trial.inputs``, the trial
runner's feature cache): trial 1 extracts dense SIFT and fits the Fisher-vector GMM; trial 2
changes only the classifier (``logistic``, another ``C``) and must compute no descriptor (goal:
its feature time <= 10 % of trial 1's); trial 3 changes only the encoding (bag of words) and
reuses the descriptors; a fresh process reads them from the store's disk cache.

Accuracy: each family's features (sift_fisher, hog, lbp on the textures; colour on a two-class
colour pair) with the best of scikit-learn's linear SVM / logistic regression over ``C`` (what
the families' spaces search) beside an RBF ``SVC`` tuned over ``C`` on the same features
(goal: within 0.02).
"""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from benchmarks import ROOT, Row, check_size, tmp_root, workdir

NAME = "classic"
# images per class (textures, colour pair), image side
SIZES = {"smoke": (8, 10, 32), "quick": (40, 40, 64), "full": (100, 100, 64)}
C_GRID = (0.01, 0.1, 1.0, 10.0)


def _split(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(n)
    cut = int(0.7 * n)
    return idx[:cut], idx[cut:]


def _best_linear(f: np.ndarray, y: np.ndarray, tr: np.ndarray, va: np.ndarray,
                 classes: int) -> float:
    from tunetrack.models import classic_fit as cf

    return max(cf.fit_linear(f[tr], y[tr], kind, c, classes).scores(f[va], y[va])[0]
               for kind in cf.SKLEARN_CLASSIFIERS for c in C_GRID)


def run(size: str) -> list[Row]:
    check_size(size)
    folder = tmp_root(NAME)
    with workdir(folder, {"MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}):
        return _measure(size)


def _measure(size: str) -> list[Row]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.classic_textures import colour_pair_arrays, texture_arrays

    from tunetrack.models import classic_fit as cf
    from tunetrack.models import features
    from tunetrack.search import classic_trial
    from tunetrack.space.catalog import defaults

    per_class, pairs, side = SIZES[size]
    x, y = texture_arrays(per_class, side, seed=0)
    tr, va = _split(len(x))
    ds = SimpleNamespace(x_train=x[tr], x_val=x[va], y_train=y[tr], y_val=y[va],
                         image_shape=x.shape[1:], fingerprint=f"bench-{size}-{len(x)}")
    runner = SimpleNamespace(family="classic", dataset=ds, _features={},
                             pipeline=SimpleNamespace(tuner=SimpleNamespace(seed=0)))
    cand: dict[str, Any] = {**defaults("classic"), "step": 4, "patch": 12, "words": 16,
                            "pca": 32, "pyramid": 1, "classifier": "linear_svm", "C": 1.0}
    seconds = []
    for change in ({}, {"classifier": "logistic", "C": 0.1}, {"encoding": "bovw", "words": 64}):
        t0 = time.perf_counter()
        classic_trial.inputs(runner, {**cand, **change})
        seconds.append((time.perf_counter() - t0, classic_trial.stats.computed_descriptors,
                        classic_trial.stats.descriptor_seconds))
    classic_trial._descriptors.clear()  # a later search on the same data: the disk cache
    runner._features.clear()
    t0 = time.perf_counter()
    f_train, f_val = classic_trial.inputs(runner, cand)
    disk = time.perf_counter() - t0
    first, second, third = seconds
    n = len(x)
    rows = [
        Row(NAME, f"trial 1 features (dense SIFT + Fisher, {n} images {side}px)", first[0], "s",
            note=f"descriptors {first[2]:.2f} s, the rest is the GMM and encoding"),
        Row(NAME, "trial 2 features (classifier-only change)", second[0], "s", first[0],
            "trial 1", goal="<= 10% of trial 1", met=second[0] <= 0.1 * first[0] and
            not second[1], note="descriptors computed: " + ("yes" if second[1] else "no")),
        Row(NAME, "trial 3 features (encoding-only change: bag of words)", third[0], "s",
            first[0], "trial 1", note="descriptors computed: " + ("yes" if third[1] else
                                                                  "no (reused)")),
        Row(NAME, "new process, same data: features from the disk cache", disk, "s", first[0],
            "trial 1", note="descriptors read from <store>/classic-cache, encoder refitted"),
    ]
    f = np.concatenate([f_train, f_val])
    order = np.concatenate([tr, va])
    yy = y[order]
    t2, v2 = np.arange(len(tr)), np.arange(len(tr), len(order))
    sets = {"sift_fisher (textures)": (f, yy, t2, v2, 3)}
    for fam, fn in (("hog", lambda a: features.hog_features(a, 9, 8, 2)),
                    ("lbp", lambda a: features.lbp_features(a, 8, 1, 2))):
        g = fn(np.repeat(x, 3, axis=-1))
        sets[f"{fam} (textures)"] = (g, y, tr, va, 3)
    xc, yc = colour_pair_arrays(pairs, 32, seed=0)
    tc, vc = _split(len(xc))
    sets["colour (colour pair, k=8)"] = (features.colour_features(xc, 8, 4), yc, tc, vc, 2)
    for label, (g, gy, a, b, k) in sets.items():
        linear = _best_linear(g, gy, a, b, k)
        svc = cf.svc_baseline(g[a], gy[a], g[b], gy[b], C_GRID)
        rows.append(Row(NAME, f"val accuracy, {label}: best linear_svm/logistic", linear, "acc",
                        svc, "RBF SVC tuned over C", goal=">= SVC - 0.02",
                        met=linear >= svc - 0.02, note=f"{len(b)} validation images"))
    return rows
