"""Architecture arithmetic: per-layer output shapes, parameter counts and FLOPs of a candidate.

Pure Python (no TensorFlow, no keras) so a search can reject impossible or too-large
candidates before paying for a build, and ``tunetrack plan`` answers instantly.

The plan is also the blueprint of the model: :func:`plan_layers` turns a candidate into a list
of :class:`LayerSpec` and the Keras builder in :mod:`tunetrack.models` turns the very same specs
into layers, so the plan's shapes and counts equal Keras's by construction.

Shape rules (the course's): ``(N + 2·pad − P)/stride + 1`` must be a whole number ≥ 1. Keras's
``'valid'`` padding silently drops the leftover border; tunetrack rejects such a candidate
instead. ``'same'`` padding gives ``ceil(N/stride)`` and is always possible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tunetrack.errors import CandidateRejected
from tunetrack.space._formulas import (
    batch_norm_params,
    conv_output_size,
    conv_params,
    dense_params,
    pool_output_size,
    same_output_size,
    valid_output_size,
)
from tunetrack.space._planner import Candidate, LayerPlan, LayerSpec, Plan, Planner, layer_label
from tunetrack.space.catalog import FAMILIES

__all__ = [
    "LayerPlan", "LayerSpec", "Plan", "batch_norm_params", "check_constraints",
    "conv_output_size", "conv_params", "dense_params", "feature_length", "plan_candidate",
    "plan_layers", "pool_output_size", "same_output_size", "valid_output_size",
]

SPATIAL_KINDS = ("conv", "max_pool", "avg_pool")


def _count(value: float) -> str:
    """``100,000`` for a limit, whether YAML gave ``100000`` or ``1e5``."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"


# --- families -------------------------------------------------------------------------------

def _cnn(p: Planner) -> None:
    cand = p.cand
    for i in range(1, cand.count("blocks") + 1):
        b = {key: cand.element("blocks", i, key) for key in FAMILIES["cnn"].groups["blocks"].keys}
        p.conv_unit(f"blocks.{i}", "", int(b["filters"]), int(b["kernel_size"]),
                    int(b["stride"]), str(b["padding"]), str(b["activation"]))
        if b["pooling"] != "none":
            p.pool(f"blocks.{i}.pool", str(b["pooling"]), int(b["pool_size"]),
                   int(b["pool_stride"]))


def _vgg(p: Planner) -> None:
    cand, act = p.cand, str(p.cand.get("activation"))
    for i in range(1, cand.count("blocks") + 1):
        filters = int(cand.element("blocks", i, "filters"))
        for j in range(1, int(cand.element("blocks", i, "convs")) + 1):
            p.conv_unit(f"blocks.{i}", str(j), filters, 3, 1, "same", act)
        pooling = str(cand.element("blocks", i, "pooling"))
        if pooling != "none":
            p.pool(f"blocks.{i}.pool", pooling, 2, 2)


def _resnet(p: Planner) -> None:
    cand, act = p.cand, str(p.cand.get("activation"))
    x = p.conv_unit("stem", "", int(cand.get("stem_filters")), 3, 1, "same", act)
    for i in range(1, cand.count("blocks") + 1):
        filters, stride = int(cand.element("blocks", i, "filters")), int(
            cand.element("blocks", i, "stride"))
        p.conv_unit(f"blocks.{i}", "1", filters, 3, stride, "same", act, src=x)
        main = p.conv_unit(f"blocks.{i}", "2", filters, 3, 1, "same", None)
        shortcut = x
        if stride != 1 or p.shapes[x][2] != filters:
            shortcut = p.conv(f"blocks.{i}.shortcut", filters, 1, stride, "same", src=x)
            if cand.network("batch_norm", False):
                shortcut = p.batch_norm(f"blocks.{i}.shortcut_bn")
        p.add(f"blocks.{i}.add", main, shortcut)
        x = p.activation(f"blocks.{i}.act", act)
    p.global_avg_pool()


def feature_length(family: str, candidate: Mapping[str, Any],
                   image_shape: tuple[int, ...]) -> int:
    """Length of the vector a feature family extracts from one image (``features.py`` agrees)."""
    cand = Candidate(family, candidate)
    h, w = int(image_shape[0]), int(image_shape[1])
    if family == "colour":
        return 4 * int(cand.get("colours"))
    if family == "hog":
        ppc, cpb = int(cand.get("pixels_per_cell")), int(cand.get("cells_per_block"))
        ch, cw = h // ppc, w // ppc
        if min(ch, cw) < cpb:
            raise CandidateRejected(
                f"hog features: cells_per_block {cpb} needs at least {cpb} cells per side, but "
                f"a {h}×{w} image with pixels_per_cell {ppc} gives {ch}×{cw} cells")
        return (ch - cpb + 1) * (cw - cpb + 1) * cpb * cpb * int(cand.get("orientations"))
    if family == "lbp":
        grid = int(cand.get("grid"))
        if grid > min(h, w):
            raise CandidateRejected(f"lbp features: grid {grid} needs at least {grid} pixels "
                                    f"per side, but the image is {h}×{w}")
        return grid * grid * (int(cand.get("points")) + 2)
    raise ValueError(f"family {family!r} does not extract features; feature families: "
                     f"{', '.join(n for n, s in FAMILIES.items() if s.features)}")


def plan_layers(family: str, candidate: Mapping[str, Any], input_shape: tuple[int, ...],
                num_classes: int) -> Plan:
    """The plan of the model's own input: the image for pixel families, the feature vector
    ``(length,)`` for feature families. The Keras builder calls this with its ``input_shape``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    input_shape = tuple(int(n) for n in input_shape)
    features = FAMILIES[family].features
    if len(input_shape) != (1 if features else 3):
        raise ValueError(f"family {family!r} takes a {'(length,)' if features else '(H, W, C)'}"
                         f" input, got {input_shape}")
    p = Planner(Candidate(family, candidate))
    p.input(input_shape)
    if not features:
        p.augment()
    if family in ("cnn", "vgg"):
        (_cnn if family == "cnn" else _vgg)(p)
    elif family == "resnet":
        _resnet(p)
    p.flatten()
    if family in ("linear", "softmax"):
        p.dense("output", num_classes, None if family == "linear" else "softmax")
    else:
        p.head(num_classes, "softmax")
    return Plan(family, input_shape, p.layers, num_classes, p.specs)


def plan_candidate(family: str, candidate: Mapping[str, Any], image_shape: tuple[int, ...],
                   num_classes: int) -> Plan:
    """Plan a candidate on images of ``image_shape`` (H, W, C); raises ``CandidateRejected``."""
    image_shape = tuple(int(n) for n in image_shape)
    if FAMILIES.get(family) is not None and FAMILIES[family].features:
        model_input: tuple[int, ...] = (feature_length(family, candidate, image_shape),)
    else:
        model_input = image_shape
    plan = plan_layers(family, candidate, model_input, num_classes)
    plan.image_shape = image_shape
    return plan


def check_constraints(plan: Plan, constraints: Any) -> None:
    """Reject a plan that breaks a user's limit; ``None`` (or a missing attribute) means none."""
    def limit(name: str) -> Any:
        if isinstance(constraints, Mapping):
            return constraints.get(name)
        return getattr(constraints, name, None)

    max_params, max_flops = limit("max_params"), limit("max_flops")
    min_side = limit("min_feature_map")
    if max_params is not None and plan.total_params > max_params:
        raise CandidateRejected(f"{plan.total_params:,} parameters > max_params "
                                f"{_count(max_params)}", kind="constraint")
    if max_flops is not None and plan.flops > max_flops:
        raise CandidateRejected(f"{plan.flops:,} FLOPs per example > max_flops "
                                f"{_count(max_flops)}",
                                kind="constraint")
    if min_side is not None:
        for lp in plan.layers:
            if lp.kind in SPATIAL_KINDS and min(lp.output_shape[:2]) < min_side:
                raise CandidateRejected(
                    f"{layer_label(lp.name)}: output {lp.output_shape[0]}×{lp.output_shape[1]} has "
                    f"a side {min(lp.output_shape[:2])} < min_feature_map {min_side}",
                    kind="constraint")
