"""The Keras builders: every model equals its plan layer by layer, compiles and trains."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

keras = pytest.importorskip("keras")

from tunetrack import models as families  # noqa: E402
from tunetrack.errors import CandidateRejected  # noqa: E402
from tunetrack.space.catalog import ACTIVATIONS, FAMILIES, FLIPS, OPTIMIZERS, defaults  # noqa: E402
from tunetrack.space.plan import Plan, plan_candidate  # noqa: E402

FEATURE_FAMILIES = [name for name, schema in FAMILIES.items() if schema.features]
DENSE_FAMILIES = ["linear", "softmax", "mlp", *FEATURE_FAMILIES]
PROPERTY = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def assert_model_matches_plan(model: keras.Model, plan: Plan) -> None:
    """Same layers with the same output shapes and parameter counts.

    Keras orders a functional model's layers its own way (a residual shortcut may come before
    the main path's batch norm), so layers are matched by name.
    """
    assert sorted(layer.name for layer in model.layers) == sorted(lp.name for lp in plan.layers)
    for lp in plan.layers:
        layer = model.get_layer(lp.name)
        assert tuple(layer.output.shape[1:]) == lp.output_shape, lp.name
        assert layer.count_params() == lp.params, lp.name
    assert model.count_params() == plan.total_params
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == plan.trainable_params


def check_candidate(family: str, cand: dict, image_shape: tuple[int, ...], classes: int) -> None:
    try:
        plan = plan_candidate(family, cand, image_shape, classes)
    except CandidateRejected as err:
        assert err.kind == "impossible"
        assert err.reason.startswith(("blocks.", "stem.", "modules.", "hog features:",
                                      "lbp features:", "classic features:")), err.reason
        if not FAMILIES[family].features:  # the builder refuses what the plan refuses
            with pytest.raises(CandidateRejected, match=re.escape(err.reason)):
                families.build_model(family, cand, image_shape, classes)
        return
    shape = families.input_shape(family, cand, image_shape)
    assert shape == plan.input_shape
    assert_model_matches_plan(families.build_model(family, cand, shape, classes), plan)


# --- candidate strategies ---------------------------------------------------------------------

network = st.fixed_dictionaries({
    "activation": st.sampled_from(ACTIVATIONS), "batch_norm": st.booleans(),
    "dropout": st.sampled_from([0.0, 0.25]), "leaky_relu_slope": st.sampled_from([0.1, 0.3]),
    "l2": st.sampled_from([0.0, 1e-4])})
augment = st.fixed_dictionaries({
    "augment_translate": st.sampled_from([0.0, 0.1]),
    "augment_rotate": st.sampled_from([0.0, 15.0]),
    "augment_zoom": st.sampled_from([0.0, 0.2]), "augment_flip": st.sampled_from(FLIPS)})
# sides that 2x2 pooling keeps whole, mixed with any side, so most conv candidates get built
sides = st.one_of(st.sampled_from([4, 8, 12, 16]), st.integers(3, 20))
images = st.tuples(sides, sides, st.integers(1, 3))


@st.composite
def dense_layers(draw, cand: dict, max_count: int = 3) -> dict:
    count = draw(st.integers(0, max_count))
    cand["dense"] = count
    for i in range(1, count + 1):
        cand[f"dense.{i}.units"] = draw(st.integers(1, 12))
        cand[f"dense.{i}.activation"] = draw(st.sampled_from(ACTIVATIONS))
    return cand


@st.composite
def dense_candidates(draw):
    family = draw(st.sampled_from(DENSE_FAMILIES))
    cand = defaults(family)
    if not FAMILIES[family].features:
        cand.update(draw(augment))
    if "dense" in FAMILIES[family].groups:
        cand.update(draw(network))
        cand = draw(dense_layers({k: v for k, v in cand.items() if not k.startswith("dense")}))
    cand.update({k: draw(st.integers(1, hi)) for k, hi in
                 {"colours": 6, "orientations": 9, "pixels_per_cell": 8, "cells_per_block": 3,
                  "points": 12, "grid": 5, "step": 4, "patch": 8, "words": 4,
                  "pyramid": 2}.items() if k in cand})
    return family, cand


conv_extras = st.fixed_dictionaries({
    "bias": st.booleans(), "width": st.sampled_from([0.5, 1.0, 1.5]),
    "head": st.sampled_from(["flatten", "global_avg"])})
paddings = st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, 2).map(str))


@st.composite
def conv_block(draw) -> dict:
    """A cnn block or a stem layer: conv (any padding) then optional pooling."""
    return {"filters": draw(st.integers(1, 8)), "kernel_size": draw(st.integers(1, 5)),
            "stride": draw(st.integers(1, 3)), "padding": draw(paddings),
            "activation": draw(st.sampled_from(ACTIVATIONS)),
            "pooling": draw(st.sampled_from(["max", "avg", "none"])),
            "pool_size": draw(st.integers(1, 3)), "pool_stride": draw(st.integers(1, 3)),
            "pool_padding": draw(st.sampled_from(["same", "valid"]))}


@st.composite
def conv_candidates(draw, family: str):
    group = "modules" if family == "inception" else "blocks"
    cand = {k: v for k, v in defaults(family).items()
            if not k.startswith((group, "dense", "stem"))}
    cand.update(draw(network))
    cand.update(draw(augment))
    cand.update(draw(conv_extras))
    stem = draw(st.integers(0, 2))
    cand["stem"] = stem
    for i in range(1, stem + 1):
        cand.update({f"stem.{i}.{k}": v for k, v in draw(conv_block()).items()})
    count = draw(st.integers(1, 3))
    cand[group] = count
    for i in range(1, count + 1):
        if family == "cnn":
            b = draw(conv_block())
        elif family == "vgg":
            b = {"filters": draw(st.integers(1, 8)), "convs": draw(st.integers(1, 2)),
                 "pooling": draw(st.sampled_from(["max", "avg", "none"])),
                 "pool_size": draw(st.integers(1, 3)), "pool_stride": draw(st.integers(1, 2)),
                 "pool_padding": draw(st.sampled_from(["same", "valid"]))}
        elif family == "resnet":
            b = {"filters": draw(st.integers(1, 8)), "stride": draw(st.integers(1, 2)),
                 "repeat": draw(st.integers(1, 2))}
        else:
            b = {k: draw(st.integers(1, 6)) for k in
                 ("b1x1", "b3x3_reduce", "b3x3", "b5x5_reduce", "b5x5", "pool_proj")}
            b.update(b5x5_kernel=draw(st.sampled_from([3, 5])), aux=draw(st.booleans()),
                     pooling=draw(st.sampled_from(["max", "avg", "none"])),
                     pool_size=draw(st.integers(1, 3)), pool_stride=draw(st.integers(1, 2)),
                     pool_padding=draw(st.sampled_from(["same", "valid"])))
        cand.update({f"{group}.{i}.{k}": v for k, v in b.items()})
    return draw(dense_layers(cand, 2))


@given(dense_candidates(), images, st.integers(2, 5))
@PROPERTY
def test_dense_families_match_their_plan(fc, image_shape, classes):
    check_candidate(*fc, image_shape, classes)


@given(conv_candidates("cnn"), images, st.integers(2, 5))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_cnn_matches_its_plan(cand, image_shape, classes):
    check_candidate("cnn", cand, image_shape, classes)


@given(conv_candidates("vgg"), images, st.integers(2, 5))
@PROPERTY
def test_vgg_matches_its_plan(cand, image_shape, classes):
    check_candidate("vgg", cand, image_shape, classes)


@given(conv_candidates("resnet"), images, st.integers(2, 5))
@PROPERTY
def test_resnet_matches_its_plan(cand, image_shape, classes):
    check_candidate("resnet", cand, image_shape, classes)


@given(conv_candidates("inception"), images, st.integers(2, 5))
@PROPERTY
def test_inception_matches_its_plan(cand, image_shape, classes):
    check_candidate("inception", cand, image_shape, classes)


# --- building, compiling, training --------------------------------------------------------

RICH = {"batch_norm": True, "dropout": 0.25, "activation": "leaky_relu", "l1": 1e-5, "l2": 1e-4}
IMAGE = (8, 8, 3)


def fit_one_epoch(family: str, cand: dict) -> keras.Model:
    shape = families.input_shape(family, cand, IMAGE)
    model = families.build_model(family, cand, shape, 3)
    # XLA takes seconds to compile on a CPU: not what these tests are about
    model.compile(**families.compile_kwargs(family, cand), jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.random((16, *shape), dtype=np.float32)
    y = rng.integers(0, 3, 16)
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert "accuracy" in history.history
    out = np.asarray(model(x[:4], training=False))
    assert out.shape == (4, 3)
    if families.outputs_probabilities(family, cand):
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    return model


def test_auxiliary_classifiers_add_to_the_training_loss_only():
    """GoogLeNet's auxiliary classifiers: aux_weight × their cross-entropy in training, nothing
    in evaluation, and the served model is the main path alone."""
    cand = {**defaults("inception"), "modules": 1, "modules.1.aux": True, "aux_weight": 0.3}
    model = families.build_model("inception", cand, (8, 8, 3), 3)
    model.compile(**families.compile_kwargs("inception", cand))
    x = np.random.default_rng(0).random((6, 8, 8, 3), dtype=np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    main, aux = model(x, training=False)
    ce = keras.losses.sparse_categorical_crossentropy
    main_loss = float(np.mean(keras.ops.convert_to_numpy(ce(y, main))))
    aux_loss = float(np.mean(keras.ops.convert_to_numpy(ce(y, aux))))
    train = float(model.compute_loss(x, y, [main, aux], training=True))
    test = float(model.compute_loss(x, y, [main, aux], training=False))
    assert train == pytest.approx(main_loss + 0.3 * aux_loss, rel=1e-5)
    assert test == pytest.approx(main_loss, rel=1e-5)
    served = families.served_model(model)
    assert not [layer for layer in served.layers if ".aux" in layer.name]
    np.testing.assert_allclose(served(x, training=False), main, rtol=1e-6)
    plain = families.build_model("inception", defaults("inception"), (8, 8, 3), 3)
    assert families.served_model(plain) is plain


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "linear"])
def test_every_family_trains_one_epoch(family):
    cand = defaults(family)
    if family == "classic":  # its dense network, on a grid that fits 8x8 images
        cand.update({"classifier": "dense", "step": 2, "patch": 4})
    network_keys = set(FAMILIES[family].keys)
    cand.update({k: v for k, v in RICH.items() if k in network_keys})
    cand["optimizer"] = OPTIMIZERS[hash(family) % 3]
    for key in [k for k in cand if k.endswith(".activation")]:
        cand[key] = "leaky_relu"
    model = fit_one_epoch(family, cand)
    assert model.losses  # the L1/L2 penalties are in the loss
    assert_model_matches_plan(model, plan_candidate(family, cand, IMAGE, 3))


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["squared_error", "cross_entropy"])
def test_linear_trains_with_both_losses(loss):
    model = fit_one_epoch("linear", {**defaults("linear"), "loss": loss, "optimizer": "sgd"})
    assert model.layers[-1].get_config()["activation"] == "linear"
    assert not families.outputs_probabilities("linear", {})


def test_squared_error_is_mse_against_one_hot():
    scores = np.array([[0.5, 0.0, 1.0], [0.0, 2.0, 0.0]], dtype=np.float32)
    labels = np.array([2, 1])
    expected = np.mean((scores - np.eye(3)[labels]) ** 2, axis=1)
    got = keras.ops.convert_to_numpy(families.squared_error(labels, scores))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    got_col = keras.ops.convert_to_numpy(families.squared_error(labels[:, None], scores))
    np.testing.assert_allclose(got_col, expected, rtol=1e-6)


def test_compile_kwargs():
    kw = families.compile_kwargs("cnn", {"optimizer": "sgd", "learning_rate": 0.05,
                                         "momentum": 0.5})
    assert isinstance(kw["optimizer"], keras.optimizers.SGD)
    assert float(kw["optimizer"].learning_rate) == pytest.approx(0.05)
    assert float(kw["optimizer"].momentum) == pytest.approx(0.5)
    assert [m.name for m in kw["metrics"]] == ["accuracy"]
    assert isinstance(families.compile_kwargs("mlp", {"optimizer": "rmsprop"})["optimizer"],
                      keras.optimizers.RMSprop)
    ce = families.compile_kwargs("linear", {"loss": "cross_entropy"})["loss"]
    assert ce.get_config()["from_logits"] is True
    with pytest.raises(ValueError, match="must be one of sgd, adam, rmsprop, got 'lbfgs'"):
        families.compile_kwargs("mlp", {"optimizer": "lbfgs"})


def test_no_regularizer_when_penalties_are_zero():
    model = families.build_model("mlp", defaults("mlp"), (4, 4, 1), 2)
    assert model.get_layer("dense.1").kernel_regularizer is None


def test_leaky_relu_uses_the_slope():
    cand = {**defaults("mlp"), "dense.1.activation": "leaky_relu", "leaky_relu_slope": 0.3}
    model = families.build_model("mlp", cand, (4, 4, 1), 2)
    assert model.get_layer("dense.1.act").negative_slope == pytest.approx(0.3)


def test_augmentation_runs_in_training_only():
    """Random shifts, turns, zooms and flips change what fit() sees, never a prediction."""
    cand = {**defaults("cnn"), "augment_translate": 0.25, "augment_rotate": 20.0,
            "augment_zoom": 0.2, "augment_flip": "horizontal"}
    plan = plan_candidate("cnn", cand, (8, 8, 1), 3)
    names = [lp.name for lp in plan.layers if lp.kind == "augment"]
    assert names == ["augment.translate", "augment.rotate", "augment.zoom", "augment.flip"]
    assert plan.total_params == plan_candidate("cnn", defaults("cnn"), (8, 8, 1), 3).total_params
    model = families.build_model("cnn", cand, (8, 8, 1), 3)
    assert isinstance(model.get_layer("augment.rotate"), keras.layers.RandomRotation)
    assert model.get_layer("augment.rotate").factor == pytest.approx((-20 / 360, 20 / 360))
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(model(x, training=False), model(x, training=False))
    assert not np.allclose(model(x, training=True), model(x, training=False))


def test_feature_families_take_no_augmentation():
    assert "augment_translate" in FAMILIES["cnn"].keys
    assert not [k for name in FEATURE_FAMILIES for k in FAMILIES[name].keys
                if k.startswith("augment")]


def test_input_shape_and_identity_featurize():
    images = np.zeros((2, *IMAGE), dtype=np.float32)
    assert families.featurize("cnn", defaults("cnn"), images) is images
    assert families.input_shape("cnn", {}, IMAGE) == IMAGE
    assert families.input_shape("lbp", {"grid": 2, "points": 8}, IMAGE) == (40,)


# classic's features need a fitted encoder: tests/test_classic.py checks its lengths
@pytest.mark.parametrize("family", [f for f in FEATURE_FAMILIES if f != "classic"])
def test_featurize_length_matches_the_plan(family):
    pytest.importorskip("tunetrack.models.features")
    images = np.random.default_rng(1).random((3, 16, 16, 3), dtype=np.float32)
    cand = defaults(family)
    feats = families.featurize(family, cand, images)
    assert feats.shape == (3, *families.input_shape(family, cand, (16, 16, 3)))


@pytest.mark.filterwarnings("ignore:Skipping variable loading")  # an optimizer never stepped
def test_saved_linear_model_loads_with_its_loss(tmp_path):
    cand = {**defaults("linear"), "loss": "squared_error"}
    model = families.build_model("linear", cand, (4, 4, 1), 3)
    model.compile(**families.compile_kwargs("linear", cand))
    path = tmp_path / "linear.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects: the loss is registered
    x = np.random.default_rng(2).random((2, 4, 4, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.loss is families.squared_error
