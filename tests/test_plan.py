"""The keras-free arithmetic: the course's worked examples, feature lengths, rejections."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunetrack.errors import CandidateRejected
from tunetrack.space import plan as P
from tunetrack.space.catalog import FAMILIES, defaults


def cnn(blocks: list[dict], **top: object) -> dict:
    """A cnn candidate with the given blocks (unset keys keep their defaults) and no pooling."""
    cand = {**defaults("cnn"), "blocks": len(blocks), "dense": 0, **top}
    for i, block in enumerate(blocks, 1):
        cand.update({f"blocks.{i}.{k}": v for k, v in
                     {"pooling": "none", "activation": "relu", **block}.items()})
    return cand


# --- the course's worked examples -------------------------------------------------------------

def test_course_parameter_counts():
    assert P.conv_params(5, 3, 8) == 608
    assert P.conv_params(5, 8, 16) == 3216
    assert P.conv_params(1, 16, 32) == 544
    plan = P.plan_candidate("cnn", cnn([
        {"filters": 8, "kernel_size": 5}, {"filters": 16, "kernel_size": 5},
        {"filters": 32, "kernel_size": 1}]), (32, 32, 3), 10)
    convs = [lp.params for lp in plan.layers if lp.kind == "conv"]
    assert convs == [608, 3216, 544]


def test_course_output_sizes():
    assert P.conv_output_size(7, 3, 1) == 5
    assert P.conv_output_size(7, 3, 2) == 3
    with pytest.raises(CandidateRejected, match=r"2\.33 is not a whole number"):
        P.conv_output_size(7, 3, 3)
    assert P.conv_output_size(32, 5, 1, 2) == 32


def test_stride_rejection_names_the_layer_and_numbers():
    cand = cnn([{"filters": 4}, {"kernel_size": 3, "stride": 3, "padding": "valid"}])
    with pytest.raises(CandidateRejected) as err:
        P.plan_candidate("cnn", cand, (7, 7, 1), 3)
    assert err.value.reason == "blocks.2 conv: (7 + 2·0 − 3)/3 + 1 = 2.33 is not a whole number"
    assert err.value.kind == "impossible"


def test_window_larger_than_input_is_rejected():
    with pytest.raises(CandidateRejected, match=r"blocks\.1 conv: \(2 \+ 2·0 − 3\)/1 \+ 1 = 0 "
                                                r"is smaller than 1"):
        P.plan_candidate("cnn", cnn([{"kernel_size": 3, "padding": "valid"}]), (2, 2, 1), 2)


def test_pooling_follows_the_same_rule():
    assert P.pool_output_size(28, 2, 2) == 14
    cand = cnn([{"pooling": "max"}, {"pooling": "max"}, {"pooling": "avg"}])
    with pytest.raises(CandidateRejected, match=r"blocks\.3 pool: \(7 \+ 2·0 − 2\)/2 \+ 1 = 3\.5"):
        P.plan_candidate("cnn", cand, (28, 28, 1), 10)


def test_non_square_images_say_which_side():
    cand = cnn([{"kernel_size": 3, "stride": 2, "padding": "valid"}])
    assert P.plan_candidate("cnn", cand, (9, 7, 1), 2).layers[1].output_shape == (4, 3, 16)
    with pytest.raises(CandidateRejected, match=r"blocks\.1 conv \(width\)"):
        P.plan_candidate("cnn", cand, (9, 8, 1), 2)


def test_same_padding_is_ceil_and_never_rejected():
    assert [P.same_output_size(n, 3) for n in (1, 3, 7, 9)] == [1, 1, 3, 3]
    plan = P.plan_candidate("cnn", cnn([{"kernel_size": 5, "stride": 3}]), (7, 7, 3), 2)
    assert plan.layers[1].output_shape == (3, 3, 16)


@given(n=st.integers(1, 64), k=st.integers(1, 9), s=st.integers(1, 5), pad=st.integers(0, 4))
@settings(max_examples=200, deadline=None)
def test_conv_output_size_is_the_formula_or_rejected(n, k, s, pad):
    exact = (n + 2 * pad - k) / s + 1
    if exact >= 1 and exact == int(exact):
        assert P.conv_output_size(n, k, s, pad) == exact
        # where the course accepts, Keras's floor agrees
        assert (n + 2 * pad - k) // s + 1 == exact
    else:
        with pytest.raises(CandidateRejected, match=r"^conv: \("):
            P.conv_output_size(n, k, s, pad)


def test_dense_and_batch_norm_counts():
    assert P.dense_params(784, 10) == 7850
    assert P.batch_norm_params(16) == (64, 32)
    cand = {**defaults("mlp"), "dense": 1, "dense.1.units": 32, "batch_norm": True}
    plan = P.plan_candidate("mlp", cand, (8, 8, 1), 10)
    assert plan.total_params == 65 * 32 + 4 * 32 + 33 * 10
    assert plan.trainable_params == plan.total_params - 2 * 32
    assert plan.flops == 64 * 32 + 32 * 10


def test_linear_and_softmax_are_one_dense_layer():
    for family in ("linear", "softmax"):
        plan = P.plan_candidate(family, defaults(family), (28, 28, 1), 10)
        assert [lp.kind for lp in plan.layers] == ["input", "flatten", "dense"]
        assert plan.total_params == 785 * 10
    assert P.plan_candidate("linear", {}, (4, 4, 1), 3).specs[-1].config["activation"] is None


def test_cnn_flops_count_conv_and_dense():
    cand = cnn([{"filters": 8, "kernel_size": 5, "padding": "valid"}])
    plan = P.plan_candidate("cnn", cand, (32, 32, 3), 10)
    assert plan.flops == 28 * 28 * 8 * 5 * 5 * 3 + 28 * 28 * 8 * 10


def test_resnet_projection_only_when_the_shape_changes():
    cand = {**defaults("resnet"), "stem.1.filters": 8, "blocks": 3,
            "blocks.1.filters": 8, "blocks.1.stride": 1,
            "blocks.2.filters": 16, "blocks.2.stride": 1,
            "blocks.3.filters": 16, "blocks.3.stride": 2}
    plan = P.plan_candidate("resnet", cand, (9, 9, 3), 4)
    names = [lp.name for lp in plan.layers]
    assert "blocks.1.shortcut" not in names
    assert "blocks.2.shortcut" in names and "blocks.3.shortcut" in names
    shapes = {lp.name: lp.output_shape for lp in plan.layers}
    assert shapes["blocks.3.add"] == (5, 5, 16)
    assert shapes["global_avg_pool"] == (16,)
    assert plan.specs[names.index("blocks.1.add")].inputs == ("blocks.1.conv2", "stem.1.act")


# --- feature families ---------------------------------------------------------------------------

def test_feature_lengths():
    assert P.feature_length("colour", {"colours": 3}, (8, 8, 3)) == 12
    # 32 px / 8 px per cell = 4 cells; blocks of 2 cells: 3 x 3 positions; 2*2*9 values each
    hog = {"pixels_per_cell": 8, "cells_per_block": 2, "orientations": 9}
    assert P.feature_length("hog", hog, (32, 32, 3)) == 3 * 3 * 2 * 2 * 9
    assert P.feature_length("hog", {**hog, "pixels_per_cell": 5}, (32, 17, 1)) == 5 * 2 * 4 * 9
    assert P.feature_length("lbp", {"grid": 3, "points": 8}, (8, 8, 1)) == 9 * 10


def test_feature_rejections_state_the_numbers():
    with pytest.raises(CandidateRejected, match=r"hog features: cells_per_block 2 .* a 7×7 image "
                                                r"with pixels_per_cell 4 gives 1×1 cells"):
        P.plan_candidate("hog", defaults("hog"), (7, 7, 1), 2)
    with pytest.raises(CandidateRejected, match=r"lbp features: grid 9 .* the image is 8×8"):
        P.plan_candidate("lbp", {**defaults("lbp"), "grid": 9}, (8, 8, 1), 2)
    with pytest.raises(ValueError, match="does not extract features"):
        P.feature_length("cnn", {}, (8, 8, 1))


def test_feature_family_plans_start_from_the_vector():
    plan = P.plan_candidate("colour", {**defaults("colour"), "colours": 2}, (8, 8, 3), 5)
    assert plan.input_shape == (8,) and plan.image_shape == (8, 8, 3)
    assert plan.layers[0].output_shape == (8,)
    assert "flatten" not in [lp.kind for lp in plan.layers]


# --- constraints, reporting -----------------------------------------------------------------

def test_constraints():
    plan = P.plan_candidate("mlp", defaults("mlp"), (28, 28, 1), 10)
    P.check_constraints(plan, SimpleNamespace(max_params=None, max_flops=None))
    P.check_constraints(plan, object())
    with pytest.raises(CandidateRejected, match=r"^50,890 parameters > max_params 10,000$") as e:
        P.check_constraints(plan, SimpleNamespace(max_params=10_000))
    assert e.value.kind == "constraint"
    with pytest.raises(CandidateRejected, match=r"FLOPs per example > max_flops 1,000$"):
        P.check_constraints(plan, {"max_flops": 1e3})
    cplan = P.plan_candidate("cnn", defaults("cnn"), (16, 16, 1), 10)
    P.check_constraints(cplan, SimpleNamespace(min_feature_map=4))
    with pytest.raises(CandidateRejected, match=r"blocks\.2 pool: output 4×4 has a side 4 < "
                                                r"min_feature_map 5"):
        P.check_constraints(cplan, SimpleNamespace(min_feature_map=5))


def test_table_and_dict():
    plan = P.plan_candidate("cnn", defaults("cnn"), (16, 16, 1), 10)
    table = plan.table()
    lines = table.splitlines()
    assert lines[0].split() == ["layer", "kind", "output", "shape", "params"]
    assert "blocks.1.conv" in table and "16×16×16" in table
    assert f"total params:         {plan.total_params:,}" in table
    assert len({len(line) for line in lines[:len(plan.layers) + 3]}) == 1  # aligned
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["total_params"] == plan.total_params
    assert data["layers"][1] == {"name": "blocks.1.conv", "kind": "conv",
                                 "output_shape": [16, 16, 16], "params": 160,
                                 "trainable": 160, "flops": 16 * 16 * 16 * 9}


def test_defaults_plan_for_every_family():
    for family in FAMILIES:
        plan = P.plan_candidate(family, defaults(family), (32, 32, 3), 10)
        assert plan.layers[-1].name == "output" and plan.layers[-1].output_shape == (10,)


def test_missing_group_elements_take_catalog_defaults():
    cand = {**defaults("cnn"), "blocks": 3}  # blocks.3.* absent
    with pytest.raises(CandidateRejected, match=r"blocks\.3 pool"):
        P.plan_candidate("cnn", cand, (28, 28, 1), 10)
    plan = P.plan_candidate("cnn", cand, (32, 32, 1), 10)
    shapes = {lp.name: lp.output_shape for lp in plan.layers}
    assert shapes["blocks.3.pool"] == (4, 4, 16)


def test_unknown_family_and_bad_input():
    with pytest.raises(ValueError, match="unknown family 'cnm'"):
        P.plan_candidate("cnm", {}, (8, 8, 1), 2)
    with pytest.raises(ValueError, match=r"takes a \(H, W, C\) input"):
        P.plan_layers("cnn", {}, (64,), 2)


def test_plan_imports_no_tensorflow_or_keras():
    code = ("import sys, tunetrack.space.plan; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'keras_tuner', 'mlflow', 'jax', 'torch')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
