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
from tunetrack.space import _classic
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
    p.stem()
    for i in range(1, p.cand.count("blocks") + 1):
        p.conv_block("blocks", i)


def _vgg(p: Planner) -> None:
    cand, act = p.cand, str(p.cand.get("activation"))
    p.stem()
    for i in range(1, cand.count("blocks") + 1):
        def key(k: str, i: int = i) -> Any:
            return cand.element("blocks", i, k)

        for j in range(1, int(key("convs")) + 1):
            p.conv_unit(f"blocks.{i}", str(j), int(key("filters")), 3, 1, "same", act)
        if key("pooling") != "none":
            p.pool(f"blocks.{i}.pool", str(key("pooling")), int(key("pool_size")),
                   int(key("pool_stride")), str(key("pool_padding")))


def _residual_block(p: Planner, prefix: str, x: str, filters: int, stride: int,
                    act: str) -> str:
    """Two 3×3 conv units and a shortcut (a 1×1 projection where the shape changes)."""
    p.conv_unit(prefix, "1", filters, 3, stride, "same", act, src=x)
    main = p.conv_unit(prefix, "2", filters, 3, 1, "same", None)
    shortcut = x
    if stride != 1 or p.shapes[x][2] != p.shapes[main][2]:
        shortcut = p.conv(f"{prefix}.shortcut", p.shapes[main][2], 1, stride, "same", src=x)
        if p.cand.network("batch_norm", False):
            shortcut = p.batch_norm(f"{prefix}.shortcut_bn")
    p.add(f"{prefix}.add", main, shortcut)
    return p.activation(f"{prefix}.act", act)


def _resnet(p: Planner) -> None:
    """Stages of basic blocks; a stage's first block takes its stride (torchvision's layout).
    A stage of one block is named ``blocks.i``, of several ``blocks.i.j``."""
    cand, act = p.cand, str(p.cand.get("activation"))
    x = p.stem()
    for i in range(1, cand.count("blocks") + 1):
        filters, stride = int(cand.element("blocks", i, "filters")), int(
            cand.element("blocks", i, "stride"))
        repeat = int(cand.element("blocks", i, "repeat"))
        for j in range(1, repeat + 1):
            prefix = f"blocks.{i}" if repeat == 1 else f"blocks.{i}.{j}"
            x = _residual_block(p, prefix, x, filters, stride if j == 1 else 1, act)


def _inception(p: Planner) -> None:
    """GoogLeNet (v1): a stem, then modules of four branches concatenated, each module
    optionally followed by a pooling layer."""
    cand, act = p.cand, str(p.cand.get("activation"))
    x = p.stem()
    for i in range(1, cand.count("modules") + 1):
        def key(k: str, i: int = i) -> int:
            return int(cand.element("modules", i, k))

        m = f"modules.{i}"
        b1 = p.conv_unit(f"{m}.b1", "", key("b1x1"), 1, 1, "same", act, src=x)
        p.conv_unit(f"{m}.b2", "_reduce", key("b3x3_reduce"), 1, 1, "same", act, src=x)
        b2 = p.conv_unit(f"{m}.b2", "", key("b3x3"), 3, 1, "same", act)
        p.conv_unit(f"{m}.b3", "_reduce", key("b5x5_reduce"), 1, 1, "same", act, src=x)
        b3 = p.conv_unit(f"{m}.b3", "", key("b5x5"), key("b5x5_kernel"), 1, "same", act)
        p.pool(f"{m}.b4.pool", "max", 3, 1, "same", src=x)
        b4 = p.conv_unit(f"{m}.b4", "", key("pool_proj"), 1, 1, "same", act)
        x = p.concat(f"{m}.concat", (b1, b2, b3, b4))
        if cand.element("modules", i, "aux"):
            p.aux_classifier(f"{m}.aux", x, act)
        pooling = str(cand.element("modules", i, "pooling"))
        if pooling != "none":
            x = p.pool(f"{m}.pool", pooling, key("pool_size"), key("pool_stride"),
                       str(cand.element("modules", i, "pool_padding")))


_FAMILY_BODIES = {"cnn": _cnn, "vgg": _vgg, "resnet": _resnet, "inception": _inception}


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
    if family == "classic":
        bad = _classic.problems(cand.get, h, w)
        if bad:
            raise CandidateRejected(bad[0])
        return _classic.feature_length(cand.get, image_shape)
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
    if features and _classic.uses_sklearn(candidate):  # one linear map, fitted by sklearn
        candidate = {**candidate, "dense": 0}
    p = Planner(Candidate(family, candidate), num_classes)
    p.input(input_shape)
    if not features:
        p.augment()
    if family in _FAMILY_BODIES:
        _FAMILY_BODIES[family](p)
    p.features()
    if family in ("linear", "softmax"):
        p.dense("output", num_classes, None if family == "linear" else "softmax")
    else:
        p.head(num_classes, "softmax")
    return Plan(family, input_shape, p.layers, num_classes, p.specs,
                aux_outputs=p.aux_outputs)


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
