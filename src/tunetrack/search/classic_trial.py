"""Feature families inside a search: cached features, and scikit-learn classifiers as trials.

Features are computed once per distinct *feature* setting, not per candidate: a trial that
changes only the classifier, ``C``, the learning rate or the dense head reuses them. For the
``classic`` family two levels are cached: the local descriptors (keyed by the data's fingerprint
and the descriptor's settings: in memory, and as ``.npy`` files under the store's
``classic-cache/`` folder, so another search on the same data skips extraction), and the encoded
pyramid features with their encoder (codebook / GMM fitted on the training split only).

A scikit-learn classifier (``classifier: linear_svm | logistic``) is trained in place of Keras's
``fit``: the result is written into the candidate's Keras model, which for such a candidate is
one dense softmax layer (``plan`` gives it no hidden layers), so the trial is tracked, compared,
promoted and served like any other. Its history is one "epoch" with ``accuracy``, ``loss``,
``val_accuracy`` and ``val_loss``, passed through the trial's callbacks.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from tunetrack.errors import CandidateRejected
from tunetrack.space import _classic
from tunetrack.space.catalog import FAMILIES, NETWORK, TRAINING, classifier_keys

_log = logging.getLogger("tunetrack")
CACHE_DIR = "classic-cache"
_MEMORY_ITEMS = 6  # descriptor settings kept in memory (each: every image's descriptors)
_NOT_FEATURE = {*TRAINING, *NETWORK, *classifier_keys("dense")}
_descriptors: OrderedDict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()


class FeatureStats:
    """Seconds spent on features by the last :func:`inputs` call (the benchmark reads it)."""

    descriptor_seconds = 0.0
    encoding_seconds = 0.0
    computed_descriptors = False


stats = FeatureStats()


def uses_sklearn(family: str, candidate: dict[str, Any]) -> bool:
    return FAMILIES[family].features and _classic.uses_sklearn(candidate)


def feature_key(family: str, candidate: dict[str, Any]) -> tuple[Any, ...]:
    """The keys that change the extracted features (not the classifier's, nor training's)."""
    return (family, *sorted((k, v) for k, v in candidate.items()
                            if "." not in k and k not in _NOT_FEATURE
                            and k not in FAMILIES[family].groups))


def check(family: str, candidate: dict[str, Any], dataset: Any) -> None:
    """Reject, before training, a codebook (or PCA) larger than the training descriptors."""
    if family != "classic":
        return
    from tunetrack.space.catalog import defaults

    values = {**defaults("classic"), **candidate}
    per_image = _classic.descriptors_per_image(values.get, dataset.image_shape)
    total = per_image * len(dataset.x_train)
    where = (f"the {total} training descriptors ({len(dataset.x_train)} images × {per_image} "
             f"patches of descriptor {values['descriptor']}, step {values['step']}, patch "
             f"{values['patch']})")
    if values["encoding"] != "histogram" and int(values["words"]) > total:
        raise CandidateRejected(f"classic features: words {values['words']} > {where}")
    pca = _classic.reduced_dim(values.get, dataset.image_shape)
    if pca < _classic.raw_dim(values.get, dataset.image_shape[2]) and pca > total:
        raise CandidateRejected(f"classic features: pca {values['pca']} > {where}")


def _cache_folder() -> Path | None:
    try:
        from tunetrack.tracking.store import sqlite_path, tracking_uri

        db = sqlite_path(tracking_uri())
    except Exception:  # noqa: BLE001 - no store: memory only
        return None
    return None if db is None else db.parent / CACHE_DIR


def descriptors(dataset: Any, settings: Any) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation descriptors for ``settings``: memory, disk, or extracted."""
    from tunetrack.models import classic_runtime as rt

    key = (dataset.fingerprint, *settings.descriptor_key())
    if key in _descriptors:
        _descriptors.move_to_end(key)
        return _descriptors[key]
    stats.computed_descriptors = True
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
    folder = _cache_folder()
    files = [folder / f"{digest}-{split}.npy" for split in ("train", "val")] if folder else []
    if files and all(f.is_file() for f in files):
        try:
            pair = (np.load(files[0], allow_pickle=False), np.load(files[1], allow_pickle=False))
            stats.computed_descriptors = False
        except (OSError, ValueError):
            pair = None
    else:
        pair = None
    if pair is None:
        pair = (rt.extract(dataset.x_train, settings), rt.extract(dataset.x_val, settings))
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                for f, arr in zip(files, pair, strict=True):
                    tmp = f.with_suffix(".tmp.npy")
                    np.save(tmp, arr)
                    tmp.replace(f)
            except OSError as exc:
                _log.warning("classic descriptors not cached on disk: %s", exc)
    _descriptors[key] = pair
    while len(_descriptors) > _MEMORY_ITEMS:
        _descriptors.popitem(last=False)
    return pair


def inputs(runner: Any, candidate: dict[str, Any]) -> tuple[Any, Any]:
    """``(train, val)`` model inputs of a feature family, cached on ``runner._features``."""
    from tunetrack import models

    family, dataset = runner.family, runner.dataset
    key = feature_key(family, candidate)
    stats.descriptor_seconds = stats.encoding_seconds = 0.0
    stats.computed_descriptors = False
    if key in runner._features:
        return runner._features[key][:2]
    t0 = time.perf_counter()
    if family != "classic":
        pair = (models.featurize(family, candidate, dataset.x_train),
                models.featurize(family, candidate, dataset.x_val))
        stats.descriptor_seconds = time.perf_counter() - t0
        runner._features[key] = pair
        return pair
    from tunetrack.models import classic_fit
    from tunetrack.models import classic_runtime as rt
    from tunetrack.space.catalog import defaults

    settings = rt.Settings.of({**defaults("classic"), **candidate})
    d_train, d_val = descriptors(dataset, settings)
    t1 = time.perf_counter()
    try:
        encoder = classic_fit.fit_encoder(d_train, settings, tuple(dataset.image_shape),
                                          seed=int(runner.pipeline.tuner.seed))
    except ValueError as exc:  # raised before any training: the trial's reason names the keys
        raise CandidateRejected(str(exc)) from None
    pair = (encoder.encode(d_train), encoder.encode(d_val))
    stats.descriptor_seconds, stats.encoding_seconds = t1 - t0, time.perf_counter() - t1
    runner._features[key] = (*pair, encoder)
    while len(runner._features) > 2 * _MEMORY_ITEMS:
        runner._features.pop(next(iter(runner._features)))
    return pair


def model_extras(runner: Any, candidate: dict[str, Any]) -> dict[str, Any]:
    """Folders to save beside the trial's Keras model: ``classic/`` with the fitted encoder
    (and the linear classifier, so it predicts without Keras) for the classic family."""
    if runner.family != "classic":
        return {}
    from tunetrack.models import classic_runtime as rt

    runner.inputs(candidate)
    encoder = runner._features[feature_key("classic", candidate)][2]
    model = runner.last_model
    coef = intercept = None
    if _classic.uses_sklearn(candidate) and model is not None:
        kernel, bias = [layer for layer in model.layers if layer.get_weights()][-1].get_weights()
        coef, intercept = np.asarray(kernel, np.float64).T, np.asarray(bias, np.float64)
    classifier = str(candidate.get("classifier", "linear_svm"))
    predictor = rt.ClassicPredictor(encoder, classifier, coef, intercept)
    return {"classic": predictor.save}


def fit_sklearn(host: Any, model: Any, candidate: dict[str, Any], x_train: np.ndarray,
                x_val: np.ndarray, callbacks: list[Any]) -> Any:
    """Train the candidate's scikit-learn classifier and load it into ``model`` (one dense
    softmax layer); returns a one-epoch Keras ``History``."""
    import keras

    from tunetrack.models import classic_fit
    from tunetrack.search import imbalance

    ds = host.dataset
    class_names = list(ds.class_names)
    weights = imbalance.class_weights(getattr(host.pipeline.training, "class_weight", None),
                                      ds.y_train, class_names)
    fit = classic_fit.fit_linear(np.asarray(x_train), ds.y_train, str(candidate["classifier"]),
                                 float(candidate.get("C", 1.0)), host.num_classes,
                                 seed=int(host.pipeline.tuner.seed), class_weight=weights)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if len(dense) != 1:
        raise RuntimeError(f"a {candidate['classifier']} candidate's model must be one dense "
                           f"layer, got {len(dense)}")
    dense[0].set_weights([fit.coef.T.astype("float32"), fit.intercept.astype("float32")])
    acc, loss = fit.scores(x_train, ds.y_train)
    val_acc, val_loss = fit.scores(x_val, ds.y_val)
    logs: dict[str, Any] = {"accuracy": acc, "loss": loss, "val_accuracy": val_acc,
                            "val_loss": val_loss}
    if len(ds.y_val):  # the same per-class scores a Keras trial's first callback writes
        logs.update(imbalance.scores(np.asarray(ds.y_val), fit.proba(x_val).argmax(axis=1),
                                     class_names))
    history = keras.callbacks.History()
    calls = keras.callbacks.CallbackList([*callbacks, history], model=model)
    calls.on_train_begin()
    calls.on_epoch_begin(0)
    calls.on_epoch_end(0, logs)
    calls.on_train_end()
    history.history = {k: [float(v)] for k, v in logs.items()}
    history.epoch = [0]
    return history
