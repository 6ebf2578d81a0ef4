"""Architecture arithmetic: per-layer output shapes, parameter counts and FLOPs of a candidate.

Pure Python (no TensorFlow, no keras) so a search can reject impossible or too-large
candidates before paying for a build, and ``tunetrack plan`` answers instantly.

The plan is also the blueprint of the model: :func:`plan_layers` turns a candidate into a list
of :class:`LayerSpec` and the Keras builder in ``tunetrack.families`` turns the very same specs
into layers, so the plan's shapes and counts equal Keras's by construction.

Shape rules (the course's): ``(N + 2·pad − P)/stride + 1`` must be a whole number ≥ 1. Keras's
``'valid'`` padding silently drops the leftover border; tunetrack rejects such a candidate
instead. ``'same'`` padding gives ``ceil(N/stride)`` and is always possible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tunetrack.errors import CandidateRejected
from tunetrack.space.catalog import FAMILIES, Key, element_name

__all__ = [
    "LayerPlan", "LayerSpec", "Plan", "batch_norm_params", "check_constraints",
    "conv_output_size", "conv_params", "dense_params", "feature_length", "plan_candidate",
    "plan_layers", "pool_output_size", "same_output_size", "valid_output_size",
]

SPATIAL_KINDS = ("conv", "max_pool", "avg_pool")


def _count(value: float) -> str:
    """``100,000`` for a limit, whether YAML gave ``100000`` or ``1e5``."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"


def _num(value: float) -> str:
    """``2.33``, ``3.5``, ``5``: short enough for a one-line reason."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


# --- the course formulas ------------------------------------------------------------------

def conv_output_size(n: int, kernel: int, stride: int, pad: int = 0, *,
                     layer: str = "conv") -> int:
    """``(N + 2·pad − P)/stride + 1``; a fraction or a size below 1 makes the layer impossible."""
    out = (n + 2 * pad - kernel) / stride + 1
    formula = f"{layer}: ({n} + 2·{pad} − {kernel})/{stride} + 1 = {_num(out)}"
    if out < 1:
        raise CandidateRejected(f"{formula} is smaller than 1 (the window {kernel} does not "
                                f"fit in the input {n} + 2·{pad})")
    if (n + 2 * pad - kernel) % stride:
        raise CandidateRejected(f"{formula} is not a whole number")
    return int(out)


def valid_output_size(n: int, kernel: int, stride: int, *, layer: str = "conv") -> int:
    """Keras ``'valid'`` padding, held to the course rule (no silent cropping)."""
    return conv_output_size(n, kernel, stride, 0, layer=layer)


def pool_output_size(n: int, pool_size: int, pool_stride: int, *, layer: str = "pool") -> int:
    """Pooling with ``'valid'`` padding: the same rule as a convolution without padding."""
    return conv_output_size(n, pool_size, pool_stride, 0, layer=layer)


def same_output_size(n: int, stride: int) -> int:
    """Keras ``'same'`` padding: ``ceil(N/stride)``, whatever the kernel."""
    return -(-n // stride)


def conv_params(kernel: int, depth: int, filters: int) -> int:
    """``(P·P·d + 1)·K``: a P×P×d kernel and a bias per filter."""
    return (kernel * kernel * depth + 1) * filters


def dense_params(n: int, m: int) -> int:
    """``(n + 1)·m``: a weight per input and a bias per unit."""
    return (n + 1) * m


def batch_norm_params(channels: int) -> tuple[int, int]:
    """``(total, trainable)``: γ, β trained; the moving mean and variance are not."""
    return 4 * channels, 2 * channels


# --- plan data ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerSpec:
    """One layer to build: ``kind`` and ``config`` say what, ``inputs`` name the layers it reads."""

    name: str
    kind: str
    inputs: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class LayerPlan:
    """What one layer produces (per example, no batch axis) and costs."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int = 0
    trainable: int = 0
    flops: int = 0


@dataclass
class Plan:
    """A candidate's layers in build order, with the specs the Keras builder consumes."""

    family: str
    input_shape: tuple[int, ...]
    layers: list[LayerPlan]
    num_classes: int
    specs: list[LayerSpec] = field(default_factory=list, repr=False)
    image_shape: tuple[int, ...] | None = None

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable for layer in self.layers)

    @property
    def flops(self) -> int:
        """Multiply-adds per example of the conv and dense layers (the rest is negligible)."""
        return sum(layer.flops for layer in self.layers)

    def table(self) -> str:
        rows = [("layer", "kind", "output shape", "params")]
        rows += [(lp.name, lp.kind, "×".join(map(str, lp.output_shape)), f"{lp.params:,}")
                 for lp in self.layers]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  "
                 f"{r[3]:>{widths[3]}}" for r in rows]
        rule = "-" * len(lines[0])
        total, trainable = self.total_params, self.trainable_params
        return "\n".join([lines[0], rule, *lines[1:], rule,
                          f"total params:         {total:,}",
                          f"trainable params:     {trainable:,}",
                          f"non-trainable params: {total - trainable:,}",
                          f"FLOPs per example:    {self.flops:,} (multiply-adds)"])

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "input_shape": list(self.input_shape),
                "image_shape": list(self.image_shape) if self.image_shape else None,
                "num_classes": self.num_classes, "total_params": self.total_params,
                "trainable_params": self.trainable_params, "flops": self.flops,
                "layers": [{**asdict(lp), "output_shape": list(lp.output_shape)}
                           for lp in self.layers]}


# --- candidate access ---------------------------------------------------------------------

def _label(name: str) -> str:
    """``blocks.2.conv`` → ``blocks.2 conv``: how a reason names a layer."""
    head, _, tail = name.rpartition(".")
    return f"{head} {tail}" if head else name


class _Candidate:
    """Reads a candidate, falling back to the catalog default of a key it lacks."""

    def __init__(self, family: str, candidate: Mapping[str, Any]) -> None:
        self.schema, self.values = FAMILIES[family], candidate

    def get(self, key: str) -> Any:
        if key in self.values:
            return self.values[key]
        return self.schema.keys[key].default

    def count(self, group: str) -> int:
        if group not in self.schema.groups:
            return 0
        return int(self.values.get(group, self.schema.groups[group].count_default))

    def element(self, group: str, index: int, key: str) -> Any:
        name = element_name(group, index, key)
        if name in self.values:
            return self.values[name]
        spec: Key = self.schema.groups[group].keys[key]
        return self.get(spec.inherit) if spec.inherit else spec.default

    def network(self, key: str, default: Any) -> Any:
        """A NETWORK key (dropout, batch_norm, ...) or ``default`` where the family has none."""
        return self.get(key) if key in self.schema.keys else default


# --- the planner ----------------------------------------------------------------------------

class _Planner:
    """Appends specs and their computed shapes in step; each method returns the new layer."""

    def __init__(self, cand: _Candidate) -> None:
        self.cand = cand
        self.specs: list[LayerSpec] = []
        self.layers: list[LayerPlan] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.last = ""

    def _add(self, spec: LayerSpec, shape: tuple[int, ...], params: int = 0,
             trainable: int | None = None, flops: int = 0) -> str:
        self.specs.append(spec)
        self.layers.append(LayerPlan(spec.name, spec.kind, shape, params,
                                     params if trainable is None else trainable, flops))
        self.shapes[spec.name] = shape
        self.last = spec.name
        return spec.name

    def input(self, shape: tuple[int, ...]) -> str:
        return self._add(LayerSpec("input", "input", (), {"shape": shape}), shape)

    def augment(self) -> None:
        """The active random-augmentation layers: shape unchanged, no parameters, no FLOPs
        counted (they run in training only)."""
        for key in ("translate", "rotate", "zoom", "flip"):
            value = self.cand.get(f"augment_{key}")
            if value in (None, 0, 0.0, "none"):
                continue
            spec = LayerSpec(f"augment.{key}", "augment", (self.last,),
                             {"op": key, "factor": value})
            self._add(spec, self.shapes[self.last])

    def _sides(self, src: str, name: str, size: Any) -> tuple[int, int]:
        (h, w, _), label = self.shapes[src], _label(name)
        if h == w:
            side = size(h, label)
            return side, side
        return size(h, f"{label} (height)"), size(w, f"{label} (width)")

    def conv(self, name: str, filters: int, kernel: int, stride: int = 1,
             padding: str = "same", src: str | None = None) -> str:
        src = src or self.last
        depth = self.shapes[src][2]
        if padding == "same":
            h, w = self._sides(src, name, lambda n, _lbl: same_output_size(n, stride))
        else:
            h, w = self._sides(src, name, lambda n, lbl: valid_output_size(n, kernel, stride,
                                                                           layer=lbl))
        spec = LayerSpec(name, "conv", (src,), {"filters": filters, "kernel": kernel,
                                                "stride": stride, "padding": padding})
        return self._add(spec, (h, w, filters), conv_params(kernel, depth, filters),
                         flops=h * w * filters * kernel * kernel * depth)

    def pool(self, name: str, mode: str, size: int, stride: int) -> str:
        src = self.last
        h, w = self._sides(src, name, lambda n, lbl: pool_output_size(n, size, stride,
                                                                      layer=lbl))
        spec = LayerSpec(name, f"{mode}_pool", (src,), {"size": size, "stride": stride})
        return self._add(spec, (h, w, self.shapes[src][2]))

    def batch_norm(self, name: str, src: str | None = None) -> str:
        src = src or self.last
        shape = self.shapes[src]
        total, trainable = batch_norm_params(shape[-1])
        return self._add(LayerSpec(name, "batch_norm", (src,)), shape, total, trainable)

    def activation(self, name: str, activation: str, src: str | None = None) -> str:
        src = src or self.last
        config = {"activation": activation}
        if activation == "leaky_relu":
            config["slope"] = float(self.cand.network("leaky_relu_slope", 0.1))
        return self._add(LayerSpec(name, "activation", (src,), config), self.shapes[src])

    def dropout(self, name: str) -> str | None:
        rate = float(self.cand.network("dropout", 0.0))
        if rate <= 0:
            return None
        return self._add(LayerSpec(name, "dropout", (self.last,), {"rate": rate}),
                         self.shapes[self.last])

    def flatten(self) -> str:
        shape = self.shapes[self.last]
        if len(shape) == 1:
            return self.last
        return self._add(LayerSpec("flatten", "flatten", (self.last,)), (math.prod(shape),))

    def global_avg_pool(self) -> str:
        shape = self.shapes[self.last]
        return self._add(LayerSpec("global_avg_pool", "global_avg_pool", (self.last,)),
                         (shape[-1],))

    def dense(self, name: str, units: int, activation: str | None = None) -> str:
        (n,) = self.shapes[self.last]
        spec = LayerSpec(name, "dense", (self.last,), {"units": units, "activation": activation})
        return self._add(spec, (units,), dense_params(n, units), flops=n * units)

    def add(self, name: str, a: str, b: str) -> str:
        return self._add(LayerSpec(name, "add", (a, b)), self.shapes[a])

    def conv_unit(self, prefix: str, suffix: str, filters: int, kernel: int, stride: int,
                  padding: str, activation: str | None, src: str | None = None) -> str:
        """conv → [batch norm] → [activation]: the unit every conv family repeats."""
        self.conv(f"{prefix}.conv{suffix}", filters, kernel, stride, padding, src)
        if self.cand.network("batch_norm", False):
            self.batch_norm(f"{prefix}.bn{suffix}")
        if activation:
            self.activation(f"{prefix}.act{suffix}", activation)
        return self.last

    def head(self, num_classes: int, output_activation: str | None) -> None:
        """Hidden dense layers (dropout → dense → [bn] → activation), then the output layer."""
        cand = self.cand
        for i in range(1, cand.count("dense") + 1):
            self.dropout(f"dense.{i}.dropout")
            self.dense(f"dense.{i}", int(cand.element("dense", i, "units")))
            if cand.network("batch_norm", False):
                self.batch_norm(f"dense.{i}.bn")
            self.activation(f"dense.{i}.act", str(cand.element("dense", i, "activation")))
        self.dropout("output.dropout")
        self.dense("output", num_classes, output_activation)


# --- families -------------------------------------------------------------------------------

def _cnn(p: _Planner) -> None:
    cand = p.cand
    for i in range(1, cand.count("blocks") + 1):
        b = {key: cand.element("blocks", i, key) for key in FAMILIES["cnn"].groups["blocks"].keys}
        p.conv_unit(f"blocks.{i}", "", int(b["filters"]), int(b["kernel_size"]),
                    int(b["stride"]), str(b["padding"]), str(b["activation"]))
        if b["pooling"] != "none":
            p.pool(f"blocks.{i}.pool", str(b["pooling"]), int(b["pool_size"]),
                   int(b["pool_stride"]))


def _vgg(p: _Planner) -> None:
    cand, act = p.cand, str(p.cand.get("activation"))
    for i in range(1, cand.count("blocks") + 1):
        filters = int(cand.element("blocks", i, "filters"))
        for j in range(1, int(cand.element("blocks", i, "convs")) + 1):
            p.conv_unit(f"blocks.{i}", str(j), filters, 3, 1, "same", act)
        pooling = str(cand.element("blocks", i, "pooling"))
        if pooling != "none":
            p.pool(f"blocks.{i}.pool", pooling, 2, 2)


def _resnet(p: _Planner) -> None:
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
    cand = _Candidate(family, candidate)
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
    p = _Planner(_Candidate(family, candidate))
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
                    f"{_label(lp.name)}: output {lp.output_shape[0]}×{lp.output_shape[1]} has "
                    f"a side {min(lp.output_shape[:2])} < min_feature_map {min_side}",
                    kind="constraint")
