"""The classic pipeline's parts on small generated images: each descriptor, encoding, the spatial
pyramid, the classifiers, saving/loading, the feature cache and the rejections."""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest

from tunetrack.errors import CandidateRejected
from tunetrack.models import classic_fit as cf
from tunetrack.models import classic_runtime as rt
from tunetrack.models import features
from tunetrack.space import _classic
from tunetrack.space.catalog import defaults
from tunetrack.space.plan import feature_length, plan_candidate

from .classic_textures import colour_pair_arrays, texture_arrays

pytest.importorskip("cv2")
SHAPE = (32, 32, 3)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((5, *SHAPE), dtype=np.float32)


@pytest.mark.parametrize("descriptor", rt.DESCRIPTORS)
def test_each_descriptor_gives_one_vector_per_grid_patch(images, descriptor, monkeypatch):
    monkeypatch.setattr(rt, "_CHUNK", 2)  # 3 chunks: the joblib threads run
    s = rt.Settings(descriptor=descriptor, step=4, patch=8)
    d = rt.extract(images, s)
    ny, nx = rt.grid(32, 32, s)
    assert (ny, nx) == (7, 7)
    assert d.shape == (5, 49, rt.descriptor_dim(s, 3)) and d.dtype == np.float32
    assert np.isfinite(d).all() and d.std() > 0
    assert np.array_equal(d[2:3], rt.extract(images[2:3], s))  # per image, order-free
    assert np.array_equal(d, rt.extract(images, s, n_jobs=1))


def test_descriptors_describe_the_patch_they_sit_on():
    x = np.zeros((1, 32, 32, 3), np.float32)
    x[0, :16, :16] = (1.0, 0.0, 0.0)  # red top-left quarter
    d = rt.extract(x, rt.Settings(descriptor="colour", step=8, patch=8))
    assert np.allclose(d[0, 0], [1, 0, 0, 0, 0, 0]) and np.allclose(d[0, -1], 0)
    lbp = rt.extract(x, rt.Settings(descriptor="lbp", step=8, patch=8))
    assert np.allclose(lbp.sum(-1), 1.0)  # a histogram of the patch's uniform codes


def test_grid_step_patch_and_options_are_hyperparameters(images):
    a = rt.extract(images, rt.Settings(descriptor="hog", step=4, patch=8, orientations=6))
    b = rt.extract(images, rt.Settings(descriptor="hog", step=8, patch=16, orientations=9))
    assert a.shape == (5, 49, 2 * 2 * 6) and b.shape == (5, 9, 2 * 2 * 9)


@pytest.mark.parametrize("descriptor,encoding,pyramid,pca", [
    (d, e, i % 3, 4 * (i % 2)) for i, (d, e) in enumerate(
        itertools.product(rt.DESCRIPTORS, rt.ENCODINGS))])
def test_plan_arithmetic_agrees_with_the_features(images, descriptor, encoding, pyramid, pca):
    cand = {**defaults("classic"), "descriptor": descriptor, "encoding": encoding,
            "pyramid": pyramid, "pca": pca, "step": 4, "patch": 8, "words": 3}
    s = rt.Settings.of(cand)
    enc = cf.fit_encoder(rt.extract(images, s), s, SHAPE)
    out = enc.encode(rt.extract(images, s))
    assert out.shape == (5, feature_length("classic", cand, SHAPE))
    assert out.shape[1] == rt.feature_length(s, SHAPE)
    assert np.isfinite(out).all()


def test_fisher_vector_is_scikit_image_s_per_cell_with_lazebnik_weights():
    from skimage.feature import fisher_vector
    from sklearn.mixture import GaussianMixture

    x, _ = texture_arrays(6, 32)
    s = rt.Settings(step=4, patch=8, words=3, pca=6, pyramid=1)
    d = rt.extract(x, s)
    enc = cf.fit_encoder(d, s, x.shape[1:])
    gmm = GaussianMixture(3, covariance_type="diag")
    gmm.weights_, gmm.means_, gmm.covariances_ = enc.weights, enc.means, enc.covariances
    gmm.precisions_cholesky_ = 1 / np.sqrt(enc.covariances)
    z = enc.reduce(d[1]).astype(np.float64)
    fv = enc.encode(d[1:2])[0].reshape(5, -1)
    m = rt.pyramid_membership(32, 32, s)
    assert rt.pyramid_weights(1) == [0.5, 0.5] and rt.pyramid_weights(2) == [0.25, 0.25, 0.5]
    for cell in range(5):
        ref = fisher_vector(z[m[cell] > 0], gmm, improved=True)  # power + L2 normalization
        assert np.allclose(fv[cell], 0.5 * ref, atol=1e-6)
    assert np.allclose(enc.posteriors(z), gmm.predict_proba(z), atol=1e-8)


def test_bag_of_words_counts_nearest_words_per_cell():
    x, _ = texture_arrays(4, 32)
    s = rt.Settings(step=4, patch=8, words=5, pca=0, encoding="bovw", pyramid=0)
    d = rt.extract(x, s)
    enc = cf.fit_encoder(d, s, x.shape[1:])
    h = enc.encode(d) ** 2  # square-rooted word frequencies
    dist = ((d[0][:, None] - enc.means[None]) ** 2).sum(-1)
    expect = np.bincount(dist.argmin(1), minlength=5) / d.shape[1]
    assert np.allclose(h[0], expect) and np.allclose(h.sum(1), 1.0)


def test_codebook_is_fitted_on_the_training_split_only(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    from tunetrack.search import classic_trial

    x, _ = texture_arrays(6, 32)
    cand = {**defaults("classic"), "step": 4, "patch": 8, "words": 4, "pca": 8,
            "encoding": "bovw"}

    def run(x_val: np.ndarray) -> rt.Encoder:
        ds = SimpleNamespace(x_train=x[:12], x_val=x_val, image_shape=x.shape[1:],
                             fingerprint=f"fp-{x_val.sum():.6f}")
        runner = SimpleNamespace(family="classic", dataset=ds, _features={},
                                 pipeline=SimpleNamespace(tuner=SimpleNamespace(seed=0)))
        classic_trial.inputs(runner, cand)
        return runner._features[classic_trial.feature_key("classic", cand)][2]

    a, b = run(x[12:]), run(1.0 - x[12:])
    assert np.array_equal(a.means, b.means) and np.array_equal(a.pca_components,
                                                               b.pca_components)


def test_classifier_only_changes_compute_no_descriptor(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    from tunetrack.search import classic_trial

    x, _ = texture_arrays(4, 32)
    ds = SimpleNamespace(x_train=x[:8], x_val=x[8:], image_shape=x.shape[1:], fingerprint="fx")
    runner = SimpleNamespace(family="classic", dataset=ds, _features={},
                             pipeline=SimpleNamespace(tuner=SimpleNamespace(seed=0)))
    cand = {**defaults("classic"), "step": 4, "patch": 8, "words": 4, "pca": 8}
    first = classic_trial.inputs(runner, cand)
    assert classic_trial.stats.computed_descriptors
    again = classic_trial.inputs(runner, {**cand, "classifier": "logistic", "C": 3.0,
                                          "learning_rate": 0.1})
    assert again[0] is first[0] and classic_trial.stats.descriptor_seconds == 0.0
    classic_trial.inputs(runner, {**cand, "encoding": "bovw"})  # new encoding, same descriptors
    assert not classic_trial.stats.computed_descriptors
    assert list((tmp_path / classic_trial.CACHE_DIR).glob("*-train.npy"))
    classic_trial._descriptors.clear()  # a new process: the store's disk cache answers
    runner._features.clear()
    classic_trial.inputs(runner, cand)
    assert not classic_trial.stats.computed_descriptors


@pytest.mark.parametrize("kind", cf.SKLEARN_CLASSIFIERS)
@pytest.mark.parametrize("classes", [2, 3])
def test_linear_classifiers_as_one_linear_map(kind, classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 6)) * [1, 10, 100, 1, 1, 0]
    y = np.arange(90) % classes
    x[:, 0] += 6 * y
    fit = cf.fit_linear(x, y, kind, 1.0, classes + 1)  # one class never seen in training
    p = fit.proba(x)
    assert p.shape == (90, classes + 1) and np.allclose(p.sum(1), 1.0)
    assert p[:, classes].max() < 1e-6 and fit.scores(x, y)[0] > 0.9
    assert fit.params == (classes + 1) * 7
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
        assert np.allclose(p[:, :classes], ref.predict_proba(x), atol=1e-6)


def test_class_weight_reaches_the_linear_classifier():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] + 0.8 * rng.normal(size=200) > 0).astype(int)
    plain = cf.fit_linear(x, y, "logistic", 1.0, 2).proba(x).argmax(1).mean()
    heavy = cf.fit_linear(x, y, "logistic", 1.0, 2, class_weight={0: 1.0, 1: 20.0})
    assert heavy.proba(x).argmax(1).mean() > plain + 0.2  # class 1 predicted far more often


def test_predictor_saves_without_pickle_and_predicts_the_same(tmp_path):
    x, y = texture_arrays(8, 32)
    s = rt.Settings(step=4, patch=8, words=4, pca=8, pyramid=1)
    enc = cf.fit_encoder(rt.extract(x, s), s, x.shape[1:])
    feats = enc.encode(rt.extract(x, s))
    pred = cf.predictor(enc, "linear_svm", cf.fit_linear(feats, y, "linear_svm", 1.0, 3))
    pred.save(tmp_path / "classic")
    assert sorted(p.name for p in (tmp_path / "classic").iterdir()) == ["settings.json",
                                                                        "state.npz"]
    assert json.loads((tmp_path / "classic" / "settings.json").read_text())["settings"][
        "descriptor"] == "sift"
    back = rt.load(tmp_path / "classic")
    assert np.allclose(back.predict_proba(x), pred.predict_proba(x))
    assert np.allclose(back.features(x), feats)
    with pytest.raises(ValueError, match=r"images must have shape \(N, \*\(32, 32, 1\)\)"):
        back.features(np.zeros((1, 16, 16, 1), np.float32))
    dense = cf.predictor(enc, "dense")
    with pytest.raises(ValueError, match="classifier is 'dense'.*features\\(\\) gives"):
        dense.predict_proba(x)


def test_impossible_settings_are_rejected_naming_the_hyperparameters():
    cand = {**defaults("classic"), "patch": 40}
    with pytest.raises(CandidateRejected, match="descriptor sift with patch 40 does not fit a "
                                                "32×32 image"):
        plan_candidate("classic", cand, SHAPE, 3)
    cand = {**defaults("classic"), "step": 8, "patch": 16, "pyramid": 2}
    with pytest.raises(CandidateRejected, match="pyramid 2 has 4×4 cells.*only 3×3 patches"):
        plan_candidate("classic", cand, SHAPE, 3)
    cand = {**defaults("classic"), "descriptor": "lbp", "radius": 5, "patch": 8}
    with pytest.raises(CandidateRejected, match="lbp radius 5 needs patch >= 11"):
        plan_candidate("classic", cand, SHAPE, 3)
    from tunetrack.search import classic_trial

    ds = SimpleNamespace(x_train=np.zeros((2, *SHAPE)), image_shape=SHAPE)
    with pytest.raises(CandidateRejected, match="words 64 > the 50 training descriptors "
                                                r"\(2 images × 25 patches"):
        classic_trial.check("classic", {**defaults("classic"), "words": 64}, ds)
    with pytest.raises(CandidateRejected, match="pca 100 > the 50 training descriptors"):
        classic_trial.check("classic", {**defaults("classic"), "pca": 100,
                                        "encoding": "histogram"}, ds)
    classic_trial.check("classic", {**defaults("classic"), "pca": 128, "words": 8}, ds)
    with pytest.raises(ValueError, match="words 64 > the 50 training descriptors"):
        cf.fit_encoder(np.zeros((2, 25, 8), np.float32), rt.Settings(words=64), SHAPE)


def test_sklearn_classifier_plans_one_linear_layer():
    cand = {**defaults("classic"), "classifier": "logistic"}
    plan = plan_candidate("classic", cand, SHAPE, 3)
    length = feature_length("classic", cand, SHAPE)
    assert [lp.kind for lp in plan.layers] == ["input", "dense"]
    assert plan.total_params == 3 * length + 3
    dense = plan_candidate("classic", {**cand, "classifier": "dense"}, SHAPE, 3)
    assert dense.total_params > plan.total_params
    hog = plan_candidate("hog", {**defaults("hog"), "classifier": "linear_svm"}, SHAPE, 3)
    assert [lp.kind for lp in hog.layers] == ["input", "dense"]
    assert _classic.uses_sklearn({"classifier": "linear_svm"})


def test_dense_sift_fisher_separates_three_textures():
    x, y = texture_arrays(40, 64, seed=0)
    idx = np.random.default_rng(1).permutation(len(x))
    tr, va = idx[:80], idx[80:]
    s = rt.Settings(step=4, patch=12, words=16, pca=32, pyramid=1)
    d = rt.extract(x, s)
    enc = cf.fit_encoder(d[tr], s, x.shape[1:])
    f = enc.encode(d)
    acc, _ = cf.fit_linear(f[tr], y[tr], "linear_svm", 1.0, 3).scores(f[va], y[va])
    assert acc >= 0.95


def test_colour_features_with_a_linear_classifier_on_a_colour_pair():
    x, y = colour_pair_arrays(60, 32, seed=0)
    idx = np.random.default_rng(1).permutation(len(x))
    tr, va = idx[:80], idx[80:]
    f = features.colour_features(x, k=8, levels=4)
    acc, _ = cf.fit_linear(f[tr], y[tr], "logistic", 1.0, 2).scores(f[va], y[va])
    assert acc >= 0.85
